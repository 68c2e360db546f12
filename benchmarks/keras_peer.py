"""The Keras 3 peer: the reference model of the spec (keras_reference.py), compiled as the spec says and
trained with `fit` (jit is Keras' default), on the backend the framework's name gives (keras-jax, keras-torch)."""
from __future__ import annotations

from .keras_reference import build, compile_like_spec, keras_inputs, keras_targets
from .workloads import Arch, Work


def keras_work(backend: str, arch_name: str, arch: Arch, model, inputs: dict, targets: dict) -> Work:
    net = build(arch_name, backend)
    compile_like_spec(net, model)
    x, y = keras_inputs(net, inputs), keras_targets(model, targets)

    def epoch():
        net.fit(x, y, batch_size=arch.batch, epochs=1, verbose=0, shuffle=True)

    def infer():
        net.predict(x, batch_size=arch.batch, verbose=0)

    first = [array[:1] for array in x] if isinstance(x, list) else x[:1]

    def infer_one():
        net.predict_on_batch(first)

    return net.count_params(), epoch, infer, infer_one
