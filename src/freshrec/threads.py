"""Single-threaded BLAS for every command: a matrix-vector product per request must not wake a thread pool.

NumPy's OpenBLAS starts one thread per core. For the products of serving (CF scores, exact vector search:
one vector against every item) the threads cost more than they save, and on a machine whose cores are busy
with other requests they wait for each other: ``bench/strategies.py`` measured ``cf`` at a median of 16 ms
with two BLAS threads on a loaded 2-core machine and 0.68 ms with one. ``implicit`` asks for one BLAS thread
during training too (it runs its own threads). ``FRESHREC_BLAS_THREADS`` overrides the limit.
"""

from __future__ import annotations

import os

import numpy  # noqa: F401  (loads NumPy's BLAS, so that the limit below reaches it)
import threadpoolctl


def limit_blas() -> int:
    """Limit BLAS to ``FRESHREC_BLAS_THREADS`` threads (default 1) for the rest of the process."""
    threads = int(os.environ.get("FRESHREC_BLAS_THREADS", "1"))
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # BLAS libraries loaded from now on
        os.environ.setdefault(name, str(threads))
    threadpoolctl.threadpool_limits(limits=threads, user_api="blas")  # kept until the process ends
    return threads
