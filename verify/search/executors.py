"""Where work units run: in this process (default), a local process pool, or a Dask cluster.

Any ``concurrent.futures.Executor`` works; results are gathered in submission order,
so the merged certificate does not depend on which worker finished first.
"""
from __future__ import annotations

import contextlib

from .batches import evaluate_batch


def run_units(job, units, executor=None) -> list:
    """Results of ``evaluate_batch(job, I, K)`` for each (I, K) in order.

    Without an executor the units run here, one after the other, with nothing pickled.
    """
    if executor is None:
        return [evaluate_batch(job, I, K) for I, K in units]
    futures = [executor.submit(evaluate_batch, job, I, K) for I, K in units]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise


@contextlib.contextmanager
def open_executor(workers: int = 1, scheduler: str | None = None):
    """An executor for ``--workers N`` / ``--scheduler tcp://host:port`` (None: serial, in process)."""
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise ValueError("--scheduler needs dask[distributed] (pip install 'attncert[dask]')") from None
        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError) as e:
            raise ValueError(f"cannot reach the Dask scheduler {scheduler}: {e}") from None
        try:
            yield client.get_executor()
        finally:
            client.close()
        return
    if workers is None or workers <= 1:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    # spawn, not fork: forking a process that has threads (BLAS, JAX, Dask) can deadlock
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
