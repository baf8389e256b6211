"""The persistent compilation cache of the command line (``nanotransport/compile_cache.py``):
where it goes, how it is turned off, and that a run writes its compiled programs there."""
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
    there (the progress bar's run: no host callback in it); ``--no-compile-cache`` nothing."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    cache, off = tmp_path / "cache", tmp_path / "off"
    for flags, folder in ((["--compile-cache", str(cache)], cache),
                          (["--no-compile-cache", "--compile-cache", str(off)], off)):
        subprocess.run([sys.executable, "-m", "nanotransport.cli", "run", *TINY, *flags,
                        "--out", str(tmp_path / "out")], check=True, env=env,
                       capture_output=True, timeout=300)
    names = [p.name for p in cache.iterdir()]
    assert any(n.startswith("jit__advance_jit") for n in names), names
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

folder, overrides, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
if folder != "off":
    export_cache.configure(folder)
result = simulate.simulate(scenario.load("doxil", overrides), progress=lambda t: None)
values = summary.metrics(result)
arrays = {"fields": result.fields, "systemic": result.systemic,
          "systemic_carrier": result.systemic_carrier, "accumulators": result.accumulators,
          "dose_mol": result.inputs.dose_mol, "pressure": result.inputs.fluid.pressure}
arrays.update({"m_" + k: v for k, v in values.items() if not isinstance(v, dict)})
np.savez(out, **{k: np.asarray(v) for k, v in arrays.items()})
print(json.dumps(export_cache.counts))
"""
SMALL = ["numerics.cells=10", "numerics.t_end_h=1", "numerics.max_dt_min=30"]


def _run(tmp_path, folder, overrides=SMALL, tag="run"):
    """Simulate and take the metrics in a fresh process; (export_cache.counts, arrays)."""
    out = tmp_path / f"{tag}.npz"
    res = subprocess.run([sys.executable, "-c", RUN, str(folder), json.dumps(overrides),
                          str(out)], check=True, capture_output=True, text=True, timeout=300)
    with np.load(out) as f:
        arrays = dict(f)
    return json.loads(res.stdout.strip().splitlines()[-1]), arrays


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=0, err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The plain jitted path (export cache off) of the small run."""
    return _run(tmp_path_factory.mktemp("ref"), "off")[1]


def test_a_fresh_process_loads_the_exported_programs(tmp_path, reference):
    """The first process exports (prepare, advance, metrics) and writes them; the second
    loads them (no export, so no tracing of the model) and gets the uncached numbers."""
    folder = tmp_path / "exports"
    first, a = _run(tmp_path, folder, tag="first")
    assert first["miss"] >= 3 and first["hit"] == 0 and first["fallback"] == 0, first
    assert len(list(folder.glob("*.jaxexport"))) == first["miss"]
    second, b = _run(tmp_path, folder, tag="second")
    assert second["hit"] == first["miss"] and second["miss"] == 0, second
    assert second["fallback"] == 0, second
    _same(a, reference)
    _same(b, reference)


def test_new_numbers_reuse_an_export_a_new_structure_does_not(tmp_path):
    folder = tmp_path / "exports"
    _run(tmp_path, folder)
    numbers, _ = _run(tmp_path, folder, SMALL + ["dose.dose_mg_per_m2=20",
                                                 "formulation.diameter_nm=90"])
    assert numbers["miss"] == 0 and numbers["hit"] >= 3, numbers
    cells, _ = _run(tmp_path, folder, SMALL + ["numerics.cells=11"])
    assert cells["miss"] >= 3 and cells["hit"] == 0, cells


def test_a_corrupted_export_falls_back_to_the_jitted_call(tmp_path, reference):
    folder = tmp_path / "exports"
    _run(tmp_path, folder)
    files = sorted(folder.glob("*.jaxexport"))
    for i, f in enumerate(files):  # a truncated file, and garbage after a valid header
        blob = f.read_bytes()
        f.write_bytes(blob[: len(blob) // 2] if i % 2 else blob[:60] + b"\x00garbage")
    counts, arrays = _run(tmp_path, folder, tag="corrupt")
    assert counts["fallback"] == len(files) and counts["hit"] == 0, counts
    _same(arrays, reference)


def test_the_key_follows_source_static_structure_and_shapes():
    import jax
    import numpy as np

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
