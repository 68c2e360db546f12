"""specc's side of a benchmark row: the spec's own model, trained and run through its public API."""
from __future__ import annotations

from .workloads import Arch, Work


def specc_work(arch: Arch, model, inputs: dict, targets: dict) -> Work:
    from specc.io.data import Dataset
    data = Dataset(inputs, targets)

    def epoch():
        model.fit(epochs=1, batch_size=arch.batch, data=(data, None))

    def infer():
        model.predict(inputs, batch_size=arch.batch)

    first = {name: array[:1] for name, array in inputs.items()}

    def infer_one():
        model.predict(first, batch_size=1)

    return model.count_params(), epoch, infer, infer_one
