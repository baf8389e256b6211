"""JAX's persistent compilation cache: compile a model once per machine, not once per run.

Compiling the model is most of a short run (``nanotransport run``: ~10 s of ~16 s on 2 CPU
cores).  JAX can keep compiled programs on disk, keyed by the program itself (so a stale entry
is never used for changed code or another JAX version), and load them in later processes.
The command line turns it on for every command; the Python API leaves JAX's settings alone
unless asked (``enable()``).

Where (first that applies): ``--compile-cache DIR``; the environment variable
``NANOTRANSPORT_COMPILE_CACHE`` (a folder, or ``off``); a folder already given to JAX
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``); else the user cache folder,
``$XDG_CACHE_HOME/nanotransport/jax`` (default ``~/.cache/nanotransport/jax``).
``--no-compile-cache`` or ``NANOTRANSPORT_COMPILE_CACHE=off`` turns it off.  Deleting the
folder is always safe.

JAX finds a compiled program by its traced program, so each process would still trace the model
(~3 s of a warm ``nanotransport run``).  ``enable`` therefore also turns on the export cache
(``engine/export_cache.py``) in the subfolder ``exports/``: the traced programs of the run's
compiled entry points (inputs, macro-interval, metrics, objective, the result's derived
arrays), serialized by ``jax.export`` and keyed by the package source, the JAX version and the
structure, so a later process neither traces nor compiles them.  It follows the same rules
(off with the compilation cache); deleting ``exports/`` is safe too.

Programs that call back into Python (``jax.debug.callback``) are never written to the cache,
which is why ``simulate.simulate(..., progress=)`` reports progress from the host between
compiled macro-intervals (``simulate.run_with_progress``).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "NANOTRANSPORT_COMPILE_CACHE"
OFF = ("off", "none", "0", "false", "")
#: programs that compile faster than this (s) are not written (loading would not pay)
MIN_COMPILE_SECONDS = 0.5
#: subfolder of the traced programs (``engine/export_cache.py``)
EXPORTS = "exports"


def default_dir() -> Path:
    """The user cache folder: ``$XDG_CACHE_HOME/nanotransport/jax`` or
    ``~/.cache/nanotransport/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "nanotransport" / "jax"


def _jax_folder() -> str | None:
    """The folder JAX was given (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``), if any."""
    import jax

    return jax.config.jax_compilation_cache_dir


def resolve(path: str | os.PathLike | None = None, disabled: bool = False) -> Path | None:
    """The folder the cache will use (None: off), by the rules of the module docstring."""
    if disabled:
        return None
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ENV)
    if env is not None:
        return None if env.strip().lower() in OFF else Path(env).expanduser()
    given = _jax_folder()
    return Path(given) if given else default_dir()


def enable(path: str | os.PathLike | None = None, disabled: bool = False) -> Path | None:
    """Turn JAX's persistent compilation cache on (in ``resolve``'s folder) or off, and the
    export cache with it (in its subfolder ``EXPORTS``); returns the folder, or None when off.
    Call it before the first compilation."""
    import jax

    from .engine import export_cache

    folder = resolve(path, disabled)
    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
        export_cache.configure(None)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    export_cache.configure(folder / EXPORTS)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if jax.config.jax_persistent_cache_min_compile_time_secs > MIN_COMPILE_SECONDS:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder
