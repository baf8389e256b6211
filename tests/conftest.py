"""Test configuration: verification runs in float64 (docs/model.md §11).

x64 is switched on here, for the test process only; the package itself never changes it.
Tests that check float32 pass explicit float32 arrays.

Compiled programs are kept in JAX's persistent compilation cache by the notebook kernels and
CLI subprocesses the tests start (they inherit ``JAX_COMPILATION_CACHE_DIR``): many of them
compile the same small simulations, and on 2 cores compilation is most of a test's time.  The
cache is keyed by the compiled program, so a stale entry is never used for changed code.  Set
``JAX_COMPILATION_CACHE_DIR`` to choose the folder.

The long-lived pytest workers themselves do not write to it: twice, in a full run on the
2-core VM (jaxlib 0.10.2 CPU), a worker aborted inside XLA's ``executable.serialize()`` while
writing a heated simulation to the cache (``jax._src.compilation_cache``, "Fatal Python
error: Aborted"), after some 300 tests; the same tests pass alone, serialization included.
Once more (2026-12-06, clean-clone CI), a worker died of a segmentation fault inside XLA's
``backend_compile_and_load`` after ~360 tests, compiling a batched heated scan that passes
alone (67 s) — so every test module now ends with ``jax.clear_caches()``: a worker keeps no
compiled program from one module to the next, the same state as a test run alone.
"""
import getpass
import os
import tempfile

# LLVM's optimization level 0 for the tests' compiled programs.  On 2 cores compilation is most
# of a test's time: level 0 compiles faster (26.3 → 19.2 s and 40.6 → 33.4 s for two
# compile-heavy tests) and runs slower (25 → 47 s for the network delivery's convergence test);
# over the whole suite it won (2026-12-07, dev checkout, 2 cores: 849 s at level 0, 995 s at
# level 1; 1050 s at the default level earlier that day).  XLA's own graph passes run as always;
# results may differ at round-off (e.g. fused multiply-adds).  Set XLA_FLAGS (even to "") to
# test at the default level; CLI subprocesses inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

# The run command draws part of its figures in a spawned process (``figure_worker``); the
# tests draw them in their own process, saving a process start per command, and
# tests/test_figure_worker.py checks that both ways give the same pixels.
os.environ.setdefault("NANOTRANSPORT_FIGURE_PROCESS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"nanotransport-tests-jax-cache-{getpass.getuser()}"))
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_enable_compilation_cache", False)  # in this process (see above)


@pytest.fixture(autouse=True, scope="module")
def _fresh_compiled_programs():
    """Forget the module's compiled programs when it ends (see the module docstring)."""
    yield
    jax.clear_caches()

