"""Benchmarks of specc against PyTorch and Keras (`run.py`), kernel timings, and the Keras reference models
that the tests compare specc with (`keras_reference.py`)."""
