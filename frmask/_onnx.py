"""onnxruntime sessions, made the same way everywhere: quiet logs, CPU or CUDA, a thread limit."""

from __future__ import annotations

import re
import warnings

_MAX_IR = re.compile(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)")


def load_error(exc: Exception, source: str) -> ValueError:
    """The one-line ValueError for onnxruntime's failure ``exc`` to load the model named ``source``.

    An IR version that this onnxruntime cannot read gets the versions it can (onnxruntime exposes no API
    for its maximum: it is read from its own message, which states it)."""
    import onnxruntime as ort

    text = str(exc).strip()
    found = _MAX_IR.search(text)
    if found:
        return ValueError(f"{source}: ONNX IR version {found[1]} is not supported by onnxruntime {ort.__version__}, "
                          f"which reads IR versions up to {found[2]}; re-export the model with an older onnx "
                          f"exporter, or upgrade onnxruntime")
    detail = text.splitlines()[-1] if text else type(exc).__name__
    return ValueError(f"{source}: onnxruntime {ort.__version__} cannot load the model: {detail}")


def make_session(model: bytes, device: str = "cpu", threads: int = 0, stacklevel: int = 3,
                 source: str = "the ONNX model"):
    """An onnxruntime InferenceSession for ``model`` (ONNX bytes).

    A model onnxruntime cannot load (an unsupported IR version, an unknown operator) is a
    :class:`ValueError` naming ``source`` (:func:`load_error`), never onnxruntime's traceback.
    ``device``: ``"cpu"``; ``"cuda"`` (the CUDA provider when onnxruntime can use it, else the CPU with a
    RuntimeWarning); ``"auto"`` (CUDA when usable, silently the CPU otherwise); under ``torchrun`` the GPU
    is number ``LOCAL_RANK``. ``threads`` > 0 limits
    onnxruntime's intra-op threads (0: its default). Log messages below errors are silenced.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in ort.get_available_providers():
        from frmask.distributed import env

        where = env()  # under torchrun, LOCAL_RANK picks the GPU of the process
        cuda = "CUDAExecutionProvider"
        providers = [(cuda, {"device_id": where.local_rank}) if where.world > 1 else cuda, "CPUExecutionProvider"]
    # "auto" tries CUDA quietly: onnxruntime-gpu lists its CUDA provider even where the CUDA libraries are
    # missing, and logs an error when it cannot load them. "cuda" keeps that error: it says what is missing.
    ort.set_default_logger_severity(4 if device == "auto" else 3)
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind11 exception classes
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        raise load_error(exc, source) from None
    finally:
        ort.set_default_logger_severity(3)
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        warnings.warn("device='cuda' was asked for but CUDA is not usable by onnxruntime; running on the CPU",
                      RuntimeWarning, stacklevel=stacklevel + 1)
    return session
