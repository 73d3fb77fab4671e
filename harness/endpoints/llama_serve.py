"""``python -m harness.endpoints.llama_serve ARGS``: ``python -m llama_cpp.server ARGS``, made safe.

llama-cpp-python 0.3.36 built on a CPU with AMX segfaults in ``ggml_backend_amx_mul_mat`` on
the first decode (seen here with the packaged SmolLM2 Q4_1 GGUF). The AMX kernels are an
"extra buffer type"; turning those off (``use_extra_bufts = False``, not exposed as a server
option) falls back to the plain CPU kernels. Elsewhere the server runs unchanged.
"""

from __future__ import annotations

from pathlib import Path


def cpu_has_amx() -> bool:
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _without_extra_buffers() -> None:
    import llama_cpp.llama_cpp as bindings

    default = bindings.llama_model_default_params

    def params():  # type: ignore[no-untyped-def]
        value = default()
        value.use_extra_bufts = False
        return value

    # llama_cpp.Llama reads its defaults through this module attribute.
    bindings.llama_model_default_params = params


def main() -> None:
    if cpu_has_amx():
        _without_extra_buffers()
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
