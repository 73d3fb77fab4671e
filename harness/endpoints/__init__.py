"""A model behind the OpenAI chat-completions protocol: its config, clients, local server, answers.

``endpoint`` (the config type, pydantic only) sits at the bottom with the settings; ``client``,
``llama_server`` and ``answerer`` sit below the evaluation and synthesis that use them. Nothing is
imported here, so the settings can read ``endpoint`` without loading the rest.
"""
