"""The persistent compilation cache of the command line (``nanotransport/compile_cache.py``):
where it goes, how it is turned off, and that a run writes its compiled programs there; and
the export cache of traced programs (``nanotransport/engine/export_cache.py``): hits in a
fresh process, its key, fallbacks, and that traced arguments bypass it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nanotransport import compile_cache

TINY = ["--set", "numerics.cells=12", "--set", "numerics.t_end_h=1", "--set",
        "numerics.max_dt_min=30"]


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(compile_cache, "_jax_folder", lambda: None)


def test_where_the_cache_goes(no_env, monkeypatch, tmp_path):
    assert compile_cache.resolve() == Path.home() / ".cache" / "nanotransport" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.resolve() == tmp_path / "nanotransport" / "jax"
    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "env"))
    assert compile_cache.resolve() == tmp_path / "env"
    assert compile_cache.resolve(tmp_path / "flag") == tmp_path / "flag"  # the flag wins
    for off in ("off", "OFF", "none", ""):
        monkeypatch.setenv(compile_cache.ENV, off)
        assert compile_cache.resolve() is None
    assert compile_cache.resolve(tmp_path / "flag", disabled=True) is None


def test_a_folder_given_to_jax_is_kept(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    monkeypatch.setattr(compile_cache, "_jax_folder", lambda: str(tmp_path))
    assert compile_cache.resolve() == tmp_path


def test_the_command_writes_its_programs_to_the_cache(tmp_path):
    """A fresh process with ``--compile-cache DIR`` leaves the model's compiled macro-interval
    there, once (the progress bar's run: no host callback in it); ``--no-compile-cache``
    nothing."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    cache, off = tmp_path / "cache", tmp_path / "off"
    for flags, folder in ((["--compile-cache", str(cache)], cache),
                          (["--no-compile-cache", "--compile-cache", str(off)], off)):
        subprocess.run([sys.executable, "-m", "nanotransport.cli", "run", *TINY, *flags,
                        "--out", str(tmp_path / "out")], check=True, env=env,
                       capture_output=True, timeout=300)
    names = [p.name for p in cache.iterdir()]
    # one program: the loop's first call (a fresh time) and the later ones (the previous
    # call's output) must not compile twice (export_cache._committed)
    assert sum(n.startswith("jit__advance_jit") for n in names) == 1, names
    assert any((cache / compile_cache.EXPORTS).glob("*.jaxexport"))  # the traced programs
    assert not off.exists() or not any(off.iterdir())


# ------------------------------------------------ traced programs kept on disk (export_cache)
RUN = r"""
import json, sys
import jax
import numpy as np
jax.config.update("jax_enable_x64", True)
from nanotransport import scenario, simulate, summary
from nanotransport.engine import export_cache

folder, steps, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
assert export_cache.folder() is None  # off in the Python API unless configured
counts, arrays = [], {}
for i, step in enumerate(steps):
    if step.get("corrupt"):  # a truncated file, and garbage after the first 60 bytes
        for k, f in enumerate(sorted(__import__("pathlib").Path(folder).glob("*.jaxexport"))):
            blob = f.read_bytes()
            f.write_bytes(blob[: len(blob) // 2] if k % 2 else blob[:60] + b"\0garbage")
    export_cache.configure(folder if step["cache"] else None)  # forgets loaded exports
    before = dict(export_cache.counts)
    result = simulate.simulate(scenario.load("doxil", step["overrides"]),
                               progress=lambda t: None)
    values = summary.metrics(result)
    counts.append({k: export_cache.counts[k] - before[k] for k in before})
    got = {"fields": result.fields, "systemic": result.systemic,
           "systemic_carrier": result.systemic_carrier, "accumulators": result.accumulators,
           "dose_mol": result.inputs.dose_mol, "pressure": result.inputs.fluid.pressure,
           **{"m_" + k: v for k, v in values.items() if not isinstance(v, dict)}}
    arrays.update({f"{i}/{k}": np.asarray(v) for k, v in got.items()})
np.savez(out, **arrays)
print(json.dumps(counts))
"""
SMALL = ["numerics.cells=10", "numerics.t_end_h=1", "numerics.max_dt_min=30"]


def _run(tmp_path, folder, steps, tag="run"):
    """``steps`` ({"overrides", "cache", "corrupt"}) in one fresh process, each a small run and
    its metrics; per step: (export_cache.counts of the step, arrays)."""
    out = tmp_path / f"{tag}.npz"
    res = subprocess.run([sys.executable, "-c", RUN, str(folder), json.dumps(steps), str(out)],
                         check=True, capture_output=True, text=True, timeout=300)
    counts = json.loads(res.stdout.strip().splitlines()[-1])
    with np.load(out) as f:
        arrays = [{k.split("/", 1)[1]: f[k] for k in f.files if k.startswith(f"{i}/")}
                  for i in range(len(steps))]
    return list(zip(counts, arrays))


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=0, err_msg=k)


def test_a_fresh_process_loads_the_exported_programs(tmp_path):
    """The first process exports (inputs, macro-interval, metrics) and writes them; a fresh
    process loads them (no export: the model is not traced) and gets the numbers of the plain
    jitted path (cache off) to 1e-12."""
    folder = tmp_path / "exports"
    (ref, reference), (first, a) = _run(tmp_path, folder, [
        {"overrides": SMALL, "cache": False}, {"overrides": SMALL, "cache": True}], "first")
    assert ref == {"hit": 0, "miss": 0, "fallback": 0, "bypass": 0}, ref
    assert first["miss"] >= 3 and first["hit"] == 0 and first["fallback"] == 0, first
    assert len(list(folder.glob("*.jaxexport"))) == first["miss"]
    [(second, b)] = _run(tmp_path, folder, [{"overrides": SMALL, "cache": True}], "second")
    assert second["hit"] == first["miss"] and second["miss"] == 0, second
    assert second["fallback"] == 0, second
    _same(a, reference)
    _same(b, reference)


def test_numbers_reuse_exports_a_structure_does_not_and_bad_files_fall_back(tmp_path):
    """New numbers load the exports of the first run; a new grid (``numerics.cells``) writes
    its own; corrupted files fall back to the plain jitted path, with its numbers."""
    folder = tmp_path / "exports"
    new_numbers = SMALL + ["dose.dose_mg_per_m2=20", "formulation.diameter_nm=90"]
    (first, _), (numbers, _), (cells, _), (corrupt, c), (_, reference) = _run(
        tmp_path, folder, [{"overrides": SMALL, "cache": True},
                           {"overrides": new_numbers, "cache": True},
                           {"overrides": SMALL + ["numerics.cells=11"], "cache": True},
                           {"overrides": SMALL, "cache": True, "corrupt": True},
                           {"overrides": SMALL, "cache": False}])
    assert numbers["miss"] == 0 and numbers["hit"] == first["miss"], numbers
    assert cells["miss"] == first["miss"] and cells["hit"] == 0, cells
    assert corrupt["fallback"] == first["miss"] and corrupt["hit"] == 0, corrupt
    _same(c, reference)


def test_the_key_follows_source_static_structure_and_shapes():
    import jax

    from nanotransport.engine import export_cache

    tree = jax.tree_util.tree_structure(({"a": 1.0}, np.zeros(3)))
    avals = [jax.typeof(1.0), jax.typeof(np.zeros(3))]
    key = lambda **kw: export_cache.key(**{**dict(  # noqa: E731
        name="f", static=(("cells", 10),), treedef=tree, avals=avals, source="a"), **kw})
    assert key() == key()
    assert key(source="b") != key()
    assert key(static=(("cells", 11),)) != key()
    assert key(name="g") != key()
    assert key(avals=[jax.typeof(1.0), jax.typeof(np.zeros(4))]) != key()
    assert key(treedef=jax.tree_util.tree_structure(({"b": 1.0}, np.zeros(3)))) != key()
    maps = np.arange(4.0)  # arrays in a static argument count by content
    assert key(static=(maps,)) == key(static=(maps.copy(),))
    assert key(static=(maps,)) != key(static=(maps + 1,))
    assert len(export_cache.source_digest()) == 64


def test_traced_arguments_bypass_the_cache(tmp_path, monkeypatch):
    """Under jit/vmap/grad the plain function runs (nothing is exported or written)."""
    import jax
    import jax.numpy as jnp

    from nanotransport.engine import export_cache

    monkeypatch.setattr(export_cache, "_folder", tmp_path)
    f = jax.jit(lambda x, n: x * n, static_argnums=1)
    call = lambda x: export_cache.call("test.f", f, (x,), (3,))  # noqa: E731
    before = dict(export_cache.counts)
    assert float(jax.grad(call)(2.0)) == 3.0
    assert jnp.allclose(jax.vmap(call)(jnp.arange(3.0)), jnp.arange(3.0) * 3)
    assert export_cache.counts["bypass"] == before["bypass"] + 2
    assert not any(tmp_path.iterdir())
