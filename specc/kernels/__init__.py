"""Numba kernels: pure functions over arrays, compiled on first use and cached on disk.

Submodules load lazily (`kernels.activations` imports numba only when first touched), so the commands
that only read specs (validate, summary, schema, render) never pay for numba.
"""
import importlib


def __getattr__(name):
    if name.startswith("_"):
        raise AttributeError(name)
    return importlib.import_module(f"{__name__}.{name}")
