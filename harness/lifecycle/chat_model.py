"""The code of every logged harness model, logged by path (MLflow "models from code").

MLflow copies this file into the model and runs it when the model loads, instead of unpickling
an object: nothing executable is deserialised. It names the class only; the class, and the check
that the model's files are of a format this harness reads, come from the harness installed where
the model loads (:mod:`harness.lifecycle.model_format`).
"""

import mlflow

from harness.lifecycle.serving import ChatModel

mlflow.models.set_model(ChatModel())
