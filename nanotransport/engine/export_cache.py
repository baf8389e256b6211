"""Traced programs kept on disk (``jax.export``): trace a compiled entry point once, ever.

JAX's persistent compilation cache keeps compiled programs, but finds them by the traced
program, so every process still traces the model (seconds for the whole model).  ``call``
keeps the traced program itself: on the first call it exports the jitted function
(``jax.export.export``) and writes the serialized ``Exported`` (a flatbuffer, no pickle) to
the folder; a later process with the same key reads it back and runs it under ``jax.jit``
(``Exported.call``), so nothing of the model is traced and the compilation comes from the
persistent cache.

The key is a SHA-256 of: the package's source (every ``nanotransport/**/*.py``, read once per
process), the jax and jaxlib versions, the backend, ``jax_enable_x64``, the entry point's name,
its static arguments (by value: arrays by content) and the arguments' pytree structure,
shapes, dtypes and weak types.  New numbers reuse an export; a new structure, new code or a new
JAX writes a new one (old files are left; deleting the folder is always safe).

Off unless ``configure(folder)`` is called (the command line does, through
``compile_cache.enable``: ``<cache folder>/exports``).  It is bypassed when an argument is
traced (``jit``, ``vmap``, ``grad`` of a caller), and any failure to look up, read, export or
write an entry falls back to the plain jitted call (logged at debug level): the results are
those of ``fn`` either way.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

import jax
import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"nanotransport-export 1\n"
PACKAGE = Path(__file__).resolve().parent.parent

_folder: Path | None = None
_loaded: dict[str, Callable | None] = {}  # key → jitted call of its export; None: failed
_registered: set[type] = set()  # pytree node types registered for serialization by this module
#: what ``call`` did in this process: "hit" (a stored export ran), "miss" (exported and
#: written), "fallback" (a failure: the plain call ran), "bypass" (traced arguments)
counts = {"hit": 0, "miss": 0, "fallback": 0, "bypass": 0}


def configure(folder: str | os.PathLike | None) -> Path | None:
    """Keep exports in ``folder`` (created on the first write), or turn the cache off (None)."""
    global _folder
    _folder = None if folder is None else Path(folder)
    _loaded.clear()
    return _folder


def folder() -> Path | None:
    """The folder in use, or None when off."""
    return _folder


@functools.cache
def source_digest() -> str:
    """SHA-256 of the package's Python source (relative paths and contents, sorted)."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _feed(h, x) -> None:
    """Feed a static value to a hash, by value: arrays by content, dataclasses by fields."""
    if x is None or isinstance(x, (bool, int, float, str, bytes, np.generic)):
        h.update(repr((type(x).__name__, x)).encode())
    elif isinstance(x, (tuple, list)):
        h.update(f"{type(x).__name__}[{len(x)}](".encode())
        for v in x:
            _feed(h, v)
        h.update(b")")
    elif isinstance(x, dict):
        h.update(f"dict[{len(x)}](".encode())
        for k in sorted(x, key=repr):
            _feed(h, k)
            _feed(h, x[k])
        h.update(b")")
    elif isinstance(x, np.ndarray):
        h.update(f"ndarray{x.shape}{x.dtype.str}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    elif isinstance(x, type):
        h.update(f"type {x.__module__}.{x.__qualname__}".encode())
    elif dataclasses.is_dataclass(x):
        h.update(f"{type(x).__module__}.{type(x).__qualname__}(".encode())
        for f in dataclasses.fields(x):
            h.update(f.name.encode())
            _feed(h, getattr(x, f.name))
        h.update(b")")
    else:  # a value without a stable form: its repr (an address in it only costs a miss)
        h.update(f"{type(x).__module__}.{type(x).__qualname__} {x!r}".encode())


def _feed_treedef(h, treedef) -> None:
    """Feed a pytree structure: node types, their auxiliary data (by value) and children."""
    data = treedef.node_data()
    if data is None:
        h.update(b"*")
        return
    _feed(h, data)
    h.update(f"[{treedef.num_nodes}](".encode())
    for child in treedef.children():
        _feed_treedef(h, child)
    h.update(b")")


def _digest(feed: Callable, x) -> str:
    h = hashlib.sha256()
    feed(h, x)
    return h.hexdigest()


@functools.lru_cache(maxsize=256)
def _avals_text(avals: tuple) -> str:
    """Shapes, dtypes and weak types of the arguments (memoized: a host loop calls an entry
    point with the same hundred-odd argument types once per macro-interval)."""
    return ";".join(f"{a.shape}{a.dtype}{'w' if a.weak_type else ''}" for a in avals)


_static_digest = functools.cache(functools.partial(_digest, _feed))
_treedef_digest = functools.cache(functools.partial(_digest, _feed_treedef))


def key(name: str, static: tuple, treedef, avals, source: str | None = None) -> str:
    """The file name (hex SHA-256) of an export: source digest (``source_digest()`` unless
    given), JAX versions, backend, x64, ``name``, ``static``, the arguments' structure and
    abstract values (shape, dtype, weak type)."""
    import jaxlib

    try:
        static_digest = _static_digest(static)
    except TypeError:  # unhashable (not a jit static argument): not memoized
        static_digest = _digest(_feed, static)
    h = hashlib.sha256()
    for part in (source or source_digest(), jax.__version__, jaxlib.__version__,
                 jax.default_backend(), str(jax.config.jax_enable_x64), name,
                 static_digest, _treedef_digest(treedef), _avals_text(tuple(avals))):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------- pytree nodes of the outputs
def _aux_to_json(x):
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, tuple):
        return {"tuple": [_aux_to_json(v) for v in x]}
    if isinstance(x, list):
        return [_aux_to_json(v) for v in x]
    raise TypeError(f"pytree auxiliary data of type {type(x).__name__} is not exported")


def _aux_from_json(x):
    if isinstance(x, dict):
        return tuple(_aux_from_json(v) for v in x["tuple"])
    if isinstance(x, list):
        return [_aux_from_json(v) for v in x]
    return x


def _type_name(t: type) -> str:
    return f"{t.__module__}:{t.__qualname__}"


def _register(t: type) -> None:
    """Register a node type of an output for ``jax.export`` serialization (once), its
    auxiliary data as JSON."""
    if t in _registered:
        return
    name = "nanotransport/" + _type_name(t)
    try:
        if issubclass(t, tuple) and hasattr(t, "_fields"):
            jax.export.register_namedtuple_serialization(t, serialized_name=name)
        else:
            jax.export.register_pytree_node_serialization(
                t, serialized_name=name,
                serialize_auxdata=lambda aux: json.dumps(_aux_to_json(aux)).encode(),
                deserialize_auxdata=lambda b: _aux_from_json(json.loads(b.decode())))
    except ValueError:  # registered elsewhere already: that registration serves
        pass
    _registered.add(t)


_BUILTIN = (tuple, list, dict, type(None))


def _node_types(treedef, found: set) -> set:
    data = treedef.node_data()
    if data is not None and data[0] not in _BUILTIN:
        found.add(data[0])
    for child in treedef.children():
        _node_types(child, found)
    return found


def _import_type(name: str) -> type:
    module, _, qualname = name.partition(":")
    if module.split(".")[0] != "nanotransport":
        raise ValueError(f"export names a type outside the package: {name}")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------- files
def _read(path: Path) -> Callable:
    """The jitted call of a stored export (its node types registered first)."""
    blob = path.read_bytes()
    if not blob.startswith(MAGIC):
        raise ValueError("not an export file")
    header, _, body = blob[len(MAGIC):].partition(b"\n")
    for name in json.loads(header)["types"]:
        _register(_import_type(name))
    return _jit_call(jax.export.deserialize(bytearray(body)), json.loads(header)["name"])


def _jit_call(exported, name: str) -> Callable:
    """``Exported.call`` under ``jax.jit``, named after the exported function (the name of its
    entries in the persistent compilation cache)."""
    def run(*leaves):
        return exported.call(*leaves)

    run.__name__ = run.__qualname__ = name
    return jax.jit(run)


def _write(path: Path, exported, types: set) -> None:
    """Write atomically: a temporary file in the folder, then ``os.replace``.  The file: a
    magic line, a JSON line (the function's name, the node types of its outputs), then the
    serialized export."""
    header = json.dumps({"name": exported.fun_name,
                         "types": sorted(_type_name(t) for t in types)}).encode()
    blob = MAGIC + header + b"\n" + bytes(exported.serialize())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _export(fn: Callable, treedef, avals, static: tuple):
    """Export ``fn(*args, *static)`` as a function of the flat argument leaves; returns the
    export and the node types of its outputs (registered for serialization)."""
    def flat(*leaves):
        return fn(*jax.tree_util.tree_unflatten(treedef, leaves), *static)

    flat.__name__ = flat.__qualname__ = getattr(fn, "__name__", "fn")
    specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in avals]
    exported = jax.export.export(jax.jit(flat))(*specs)
    types = _node_types(exported.out_tree, set())
    for t in types:
        if not _type_name(t).startswith("nanotransport."):
            raise ValueError(f"output node type outside the package: {_type_name(t)}")
        _register(t)
    return exported, types


def call(name: str, fn: Callable, args: tuple, static: tuple = ()):
    """``fn(*args, *static)``, through a stored export when the cache is on (``configure``).

    ``fn`` is a jitted function whose trailing arguments ``static`` are static (hashable,
    compared by value); ``name`` names it in the key (unique per function).  Traced
    arguments, or the cache off, call ``fn`` directly; a failure falls back to it."""
    if _folder is None:
        return fn(*args, *static)
    leaves, treedef = jax.tree_util.tree_flatten(args)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        counts["bypass"] += 1
        return fn(*args, *static)
    try:
        avals = [jax.typeof(x) for x in leaves]
        k = key(name, static, treedef, avals)
    except Exception as e:  # noqa: BLE001 -- never worse than the plain call
        return _fall_back(name, e, fn, args, static)
    if k in _loaded:
        run = _loaded[k]
        return fn(*args, *static) if run is None else run(*_committed(leaves))
    path = _folder / f"{k}.jaxexport"
    try:
        if path.exists():
            run = _read(path)
            counts["hit"] += 1
            log.debug("export cache: %s loaded from %s", name, path)
        else:
            exported, types = _export(fn, treedef, avals, static)
            _write(path, exported, types)
            run = _read(path)  # as a later process will (its outputs' types, e.g. no weak ones)
            counts["miss"] += 1
            log.debug("export cache: %s exported to %s", name, path)
        out = run(*_committed(leaves))
    except Exception as e:  # noqa: BLE001 -- never worse than the plain call
        _loaded[k] = None  # this process calls fn from now on; a later one writes a new file
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return _fall_back(name, e, fn, args, static)
    _loaded[k] = run
    return out


def _committed(leaves: list) -> list:
    """The array leaves committed to their device.  ``jax.jit`` lowers an uncommitted argument
    (a fresh ``jnp.asarray``) and a committed one (an earlier call's output) to two programs,
    so a host loop that feeds back its outputs (``solver.integrate_on_host``: the time ``t``)
    would compile, and load from the persistent cache, its entry point twice."""
    out = []
    for x in leaves:
        if isinstance(x, jax.Array) and not x.committed:
            x = jax.device_put(x, next(iter(x.devices())))
        elif isinstance(x, np.ndarray):
            x = jax.device_put(x, jax.devices()[0])
        out.append(x)
    return out


def _fall_back(name: str, error: Exception, fn: Callable, args: tuple, static: tuple):
    counts["fallback"] += 1
    log.debug("export cache: %s falls back to the jitted call (%s: %s)", name,
              type(error).__name__, error)
    return fn(*args, *static)
