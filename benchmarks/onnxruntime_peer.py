"""The onnxruntime peer, inference only: the spec's model exported by `specc.onnx` (its initial weights: speed
does not depend on them) and run by an onnxruntime session as a serving program would: default options (all
graph optimizations, its default thread pool), the CPU provider, one `run` per batch."""
from __future__ import annotations

import tempfile
from pathlib import Path

from .workloads import Arch, Work, batch_starts


def onnxruntime_work(arch: Arch, model, inputs: dict, targets: dict) -> Work:
    import onnxruntime

    from specc.onnx.export import export_onnx
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(model, path)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rows = len(next(iter(inputs.values())))

    def infer():
        for start in batch_starts(rows, arch.batch):
            session.run(None, {name: array[start:start + arch.batch] for name, array in inputs.items()})

    first = {name: array[:1] for name, array in inputs.items()}

    def infer_one():
        session.run(None, first)

    return model.count_params(), None, infer, infer_one
