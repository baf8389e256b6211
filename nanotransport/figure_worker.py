"""A second process that draws figures while this one finishes a command (``nanotransport run``).

Why: drawing the run's six figures is ~1.5 s of single-threaded matplotlib, about a third of a
warm ``nanotransport run`` on the 2-core CPU, and the rest of the command (importing JAX,
running the cached model, the objective) keeps one core busy. So the command starts one worker
process at once; it imports matplotlib and xarray while this process imports JAX and runs the
model, then draws its share of the figures from the written ``results.nc`` while this process
computes the objective and draws the rest (``benchmarks/default_run.py``).

The process is *spawned*, not forked: JAX runs threads, and a forked child of a threaded process
can deadlock. Arguments and results cross by the standard library's process pool (in memory,
between the two processes; no file is unpickled). An error in the worker is raised here with its
traceback; if the worker cannot start or dies, its figures are drawn here instead.
``NANOTRANSPORT_FIGURE_PROCESS=0`` draws everything in this process (the tests do, to save a
process start per command; ``tests/test_figure_worker.py`` checks that both ways give the
same pixels).
"""
from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import os

ENV = "NANOTRANSPORT_FIGURE_PROCESS"  #: "0": no worker process
PRELOAD = "nanotransport.plots"  #: what the worker imports as soon as it starts


def enabled() -> bool:
    """Whether commands may start a worker (``NANOTRANSPORT_FIGURE_PROCESS`` is not "0")."""
    return os.environ.get(ENV, "1").strip() != "0"


class FigureWorker:
    """One spawned worker process, started on construction (a context manager).

    ``submit(fn, *args)`` runs ``fn(*args)`` there and returns a future; without a worker
    (disabled, or it could not start) it runs ``fn`` here at once and returns a finished one.
    ``result(future)`` waits for it, running ``fn`` here if the worker died."""

    def __init__(self):
        self._pool = None
        self._calls = {}  # future → (fn, args), to run here if the worker dies
        if not enabled():
            return
        try:
            self._pool = cf.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"),
                initializer=importlib.import_module, initargs=(PRELOAD,))
            self._pool.submit(int)  # the pool starts its process on the first task: now
        except (OSError, RuntimeError):
            self._pool = None

    def submit(self, fn, *args) -> cf.Future:
        if self._pool is not None:
            try:
                future = self._pool.submit(fn, *args)
                self._calls[future] = (fn, args)
                return future
            except (cf.process.BrokenProcessPool, RuntimeError):
                self._pool = None
        future = cf.Future()
        future.set_result(fn(*args))
        return future

    def result(self, future: cf.Future):
        try:
            return future.result()
        except cf.process.BrokenProcessPool:
            fn, args = self._calls.pop(future)
            self._pool = None
            return fn(*args)

    def close(self):
        """Let the worker exit (it finishes what it is doing; queued work is cancelled)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
