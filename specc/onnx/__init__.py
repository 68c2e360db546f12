"""Export to ONNX: a compiled specc graph and its weights as an ONNX model that onnxruntime, or any ONNX
runtime, runs with specc's predictions. Needs the optional `onnx` package (`pip install 'specc[onnx]'`);
nothing else in specc imports this package."""
from .errors import ExportError

try:
    import onnx  # noqa: F401
except ImportError:
    raise ExportError("export to ONNX needs the onnx package: pip install 'specc[onnx]'") from None
