"""The persistent compilation cache of the command line (``nanotransport/compile_cache.py``):
where it goes, how it is turned off, and that a run writes its compiled programs there."""
import os
import subprocess
import sys
from pathlib import Path

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
    assert not off.exists() or not any(off.iterdir())
