"""Keras 3 as a second engine: a spec exported as the equivalent Keras model, a Keras model imported as a
spec, and training through Keras' `fit` on whatever devices its JAX backend sees (GPUs, TPUs, several hosts).

Keras and JAX are an optional extra (`pip install 'specc[keras]'`); nothing else in specc imports this
package, so the default install and the numba engine never load them."""
from __future__ import annotations

import os

INSTALL = "pip install 'specc[keras]'"
BACKEND = "jax"  # the backend whose data parallelism (keras.distribution) spans devices and hosts


class KerasMissing(ImportError):
    """Keras or its JAX backend is not installed; the message says what to install."""


def import_keras():
    """Keras on JAX (unless KERAS_BACKEND names another backend); KerasMissing when it cannot be imported.

    Keras reads KERAS_BACKEND once, when first imported, and its own default (TensorFlow) is not the one
    specc uses."""
    os.environ.setdefault("KERAS_BACKEND", BACKEND)
    try:
        import keras
    except ImportError as e:
        raise KerasMissing(f"this command needs Keras 3 with JAX ({e}); install them with: {INSTALL}") from None
    if int(keras.__version__.split(".")[0]) < 3:
        raise KerasMissing(f"this command needs Keras 3, found Keras {keras.__version__}; install it with: {INSTALL}")
    return keras
