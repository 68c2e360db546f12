"""Products on one BLAS thread when small, on all when large, and numpy's thread count restored after."""
import numpy as np
import pytest

from specc.runtime import blas

pytest.importorskip("threadpoolctl")


def openblas():
    """The OpenBLAS whose threads `matmul` sets: the one loaded when specc first looked (another, such as
    scipy's, may have been loaded since)."""
    library = blas.threads().openblas
    if library is None:
        pytest.skip("numpy's BLAS is not OpenBLAS")
    return library


def test_products_equal_numpy():
    rng = np.random.default_rng(0)
    for m, k, n in [(3, 4, 5), (32, 784, 64), (512, 512, 64)]:
        a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        out = np.empty((m, n))
        with blas.managed():
            assert np.array_equal(blas.matmul(a, b), a @ b)
            assert blas.matmul(a, b, out=out) is out and np.array_equal(out, a @ b)


def test_thread_count_per_product_and_restored_after():
    library = openblas()
    before = library.num_threads
    library.set_num_threads(2)
    small = np.ones((8, 8), np.float32)
    large = np.ones((256, 256), np.float32)
    try:
        with blas.managed():
            blas.matmul(small, small)
            assert library.num_threads == 1
            with blas.managed():  # nested: still managed, and restoring is the outer one's job
                blas.matmul(small, small)
            assert library.num_threads == 1
            blas.matmul(large, large)
            assert library.num_threads == 2
            blas.matmul(small, small)
        assert library.num_threads == 2
        blas.matmul(small, small)  # outside: numpy's threads are left alone
        assert library.num_threads == 2
    finally:
        library.set_num_threads(before)
