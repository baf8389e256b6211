"""Test configuration: verification runs in float64 (docs/model.md §11).

x64 is switched on here, for the test process only; the package itself never changes it.
Tests that check float32 pass explicit float32 arrays.

Compiled programs are kept in JAX's persistent compilation cache, shared by the xdist workers
and by the notebook kernels and CLI subprocesses the tests start (they inherit
``JAX_COMPILATION_CACHE_DIR``): many tests compile the same small simulations, and on 2 cores
compilation is most of a test's time.  The cache is keyed by the compiled program, so a stale
entry is never used for changed code.  Set ``JAX_COMPILATION_CACHE_DIR`` to choose the folder.
"""
import getpass
import os
import tempfile

import jax

_CACHE = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), f"nanotransport-tests-jax-cache-{getpass.getuser()}"))
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
