"""Scans (``nanotransport.scan``): batched = one by one, sharding over devices, kill-and-resume,
bad input.  Tiny runs: 12 cells, 2 h, 30-min steps, saved at 0, 1, 2 h."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr

from nanotransport import objective, scan, scenario as sc, simulate, summary
from nanotransport.cli import main

TINY = ["numerics.cells=12", "numerics.t_end_h=2", "numerics.max_dt_min=30",
        "numerics.save_times_h=[0, 1, 2]"]
TINY_ARGS = [a for t in TINY for a in ("--set", t)]
VARIED = ("formulation.diameter_nm", "tissue.tumor.pore_radius_nm", "dose.dose_mg_per_m2")


@pytest.fixture(scope="module")
def tiny():
    return sc.load("doxil", TINY)


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(7)
    return {"formulation.diameter_nm": rng.uniform(20.0, 200.0, 8),
            "tissue.tumor.pore_radius_nm": rng.uniform(100.0, 800.0, 8),
            "dose.dose_mg_per_m2": rng.uniform(10.0, 80.0, 8)}


@pytest.fixture(scope="module")
def one_device(tiny, points):
    """Metrics of the 8 points in one batch on one device."""
    return scan.batched_metrics(tiny, points, devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
    """Persistent compilation cache shared by the scan subprocesses of one test run."""
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, jax_cache):
    """The scan of the kill-and-resume and distributed tests, uninterrupted (same command)."""
    out = tmp_path_factory.mktemp("reference") / "scan"
    proc = subprocess.run([sys.executable, "-m", "nanotransport.cli", *_scan_args(out),
                           "--quiet", "--no-figures"], env=_env(jax_cache),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with xr.open_dataset(out / "scan.nc") as ds:
        return ds.load()


def _env(cache: Path | None = None, devices: int | None = None) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", JAX_PLATFORMS="cpu")
    if devices:  # the test process's own flags kept (conftest: compared to the last bit)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                            + f" --xla_force_host_platform_device_count={devices}").strip()
    if cache is not None:  # the killed and the resumed process share compiled code
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


def test_batched_equals_one_by_one(tiny, points, one_device):
    """Random points: every metric of the batch equals the single jitted run to 1e-12 relative
    (float64); mass_balance_error, itself round-off (~1e-15), to 1e-13 absolute.  The scan's
    objective, its terms and toxicity are those of the design objective (``optimize``)."""
    for i in (0, 5):
        s = tiny.replace(**{p: float(points[p][i]) for p in VARIED})
        r = simulate.simulate(s)
        j, terms = objective.objective(r)
        weighted = objective.weighted_toxicity(terms, s.params)
        single = {**summary.metrics(r), **terms, "objective": j, "toxicity": weighted}
        assert set(single) <= set(one_device)
        for k, v in single.items():
            v, b = np.asarray(v), one_device[k][i]
            if k == "mass_balance_error":
                np.testing.assert_allclose(b, v, rtol=0, atol=1e-13, err_msg=k)
            else:
                np.testing.assert_allclose(b, v, rtol=1e-12, atol=1e-300, err_msg=k)
    assert np.ptp(one_device["efficacy"]) > 0  # the points really differ


def test_sharded_over_four_devices(tmp_path, points, one_device):
    """A process with 4 CPU devices shards a batch of 8 two per device (NamedSharding over a
    'batch' mesh) and gets the metrics of the one-device batch to 1e-12 relative: most are bit
    for bit equal; sums over cells compiled for another per-device width (the partitioned
    program fuses differently) may differ in the last bit, which efficacy = 1 − SF ≈ 1e-3
    magnifies about 1000-fold."""
    payload = json.dumps({k: v.tolist() for k, v in points.items()})
    script = textwrap.dedent(f"""
        import json, sys, jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        from nanotransport import scan, scenario as sc
        s = sc.load("doxil", {TINY!r})
        values = {{k: np.asarray(v) for k, v in json.loads({payload!r}).items()}}
        runner = scan.BatchRunner(s, list(values), 8)
        out = runner.device_call(values)
        eff = out["efficacy"]
        info = {{"devices": len(jax.devices()), "shards": len(eff.addressable_shards),
                 "shard_rows": [int(x.data.shape[0]) for x in eff.addressable_shards],
                 "on": len(eff.sharding.device_set), "spec": str(eff.sharding.spec),
                 "metrics": {{k: np.asarray(v).tolist() for k, v in out.items()}}}}
        print("RESULT" + json.dumps(info))
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=_env(devices=4), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert info["devices"] == 4 and info["shards"] == 4 and info["on"] == 4
    assert info["shard_rows"] == [2, 2, 2, 2]
    assert "batch" in info["spec"]
    exact = 0
    for k, v in one_device.items():
        np.testing.assert_allclose(np.asarray(info["metrics"][k]), v, rtol=1e-12, atol=1e-300,
                                   err_msg=k)
        exact += np.array_equal(np.asarray(info["metrics"][k]), v)
    assert exact >= len(one_device) // 2  # efficacy, plasma AUCs, ... bit for bit


def _scan_args(out: Path) -> list[str]:
    return (["scan", "doxil", *TINY_ARGS, "--grid", "diameter_nm=40:160:3",
             "--sample", "tissue.tumor.pore_radius_nm=lognormal(400, 0.4)", "--samples", "4",
             "--seed", "3", "--chunk", "2", "--out", str(out)])


def test_kill_and_resume(tmp_path, tiny, reference, jax_cache):
    """SIGKILL after the first chunk file appears, then the same command: the dataset equals an
    uninterrupted scan exactly, with each of the 12 simulations once."""
    out, cache = tmp_path / "scan", jax_cache
    slow = textwrap.dedent("""
        import sys, time
        import nanotransport.scan_store as s
        write = s._write_chunk
        def slow_write(*a, **k):  # a slow disk: leaves time to kill the scan mid-way
            write(*a, **k)
            time.sleep(1.0)
        s._write_chunk = slow_write
        from nanotransport.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    args = _scan_args(out)
    proc = subprocess.Popen([sys.executable, "-c", slow, *args, "--quiet"], env=_env(cache),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = out / "chunks" / "chunk-00000.nc"
    deadline = time.time() + 240
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert first.exists(), err[-3000:]
    written = sorted(p.name for p in (out / "chunks").glob("chunk-*.nc"))
    assert 1 <= len(written) < 6, written  # killed mid-way
    assert not (out / "scan.nc").exists()

    done = subprocess.run([sys.executable, "-m", "nanotransport.cli", *args], env=_env(cache),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{2 * len(written)} resumed" in done.stdout
    assert (out / "scan_efficacy.png").exists() and (out / "scan_pareto.png").exists()
    assert (out / "scan_distributions.png").exists()

    with xr.open_dataset(out / "scan.nc") as resumed:
        resumed = resumed.load()
    assert resumed.sizes == reference.sizes
    assert dict(resumed.sizes) == {"diameter_nm": 3, "sample": 4, "time": 3}
    assert set(resumed.data_vars) == set(reference.data_vars)
    for k in reference.data_vars:
        assert np.array_equal(resumed[k].values, reference[k].values), k
    for k in reference.coords:
        assert np.array_equal(resumed[k].values, reference[k].values), k
    # each flat index exactly once over the chunk files
    idx = np.concatenate([xr.open_dataset(p)["index"].values
                          for p in sorted((out / "chunks").glob("chunk-*.nc"))])
    assert np.array_equal(np.sort(idx), np.arange(12)) and idx.size == 12
    assert resumed.attrs["scenario_toml"] == tiny.to_toml()


@pytest.mark.skipif(os.environ.get("NANOTRANSPORT_TEST_DISTRIBUTED") != "1",
                    reason="two processes compiling at once take 25-35 s on 2 cores; set "
                           "NANOTRANSPORT_TEST_DISTRIBUTED=1 to run")
def test_two_processes_with_jax_distributed(tmp_path, reference):
    """Two processes (2 CPU devices each) joined by jax.distributed.initialize(): one 4-device
    mesh over both, each feeding its half of every chunk; process 0 writes.  Same dataset as
    the single-process scan to 1e-12 relative (another partitioned program: sums differ in the
    last bit, and efficacy = 1 − SF ≈ 1e-3 magnifies that 1000-fold)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "scan"
    script = textwrap.dedent(f"""
        import sys, jax
        jax.config.update("jax_enable_x64", True)
        jax.distributed.initialize("localhost:{port}", num_processes=2,
                                   process_id=int(sys.argv[1]))
        from nanotransport import scan, scenario as sc
        s = sc.load("doxil", {TINY!r})
        ds = scan.run_scan(s, grid={{"diameter_nm": "40:160:3"}},
                           samples={{"tissue.tumor.pore_radius_nm": "lognormal(400, 0.4)"}},
                           n_samples=4, seed=3, chunk=4, progress=False, out={str(out)!r})
        print("RESULT", jax.process_count(), len(jax.devices()), ds is None)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], env=_env(devices=2),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, results):
        assert p.returncode == 0, e[-3000:]
    assert "RESULT 2 4 False" in results[0][0] and "RESULT 2 4 True" in results[1][0]
    with xr.open_dataset(out / "scan.nc") as ds:
        for k in reference.data_vars:
            np.testing.assert_allclose(ds[k].values, reference[k].values, rtol=1e-12,
                                       atol=1e-300, err_msg=k)
    assert len(list((out / "chunks").glob("chunk-*.nc"))) == 3


@pytest.mark.parametrize("flag, text, expected", [
    ("--grid", "diameter_nm=10:100:0", "n = 0 points; allowed: n >= 1"),
    ("--grid", "diameter_nm=100:10:5", "lo = 100 > hi = 10; allowed: lo <= hi"),
    ("--grid", "diameter_nm=0:10:3:log", "log spacing needs lo > 0"),
    ("--grid", "diameter_nm=0.1:100:3", "out of range (e.g. 0.1"),
    ("--grid", "diamter_nm=10:100:3", "unknown field 'diamter_nm'; did you mean 'diameter_nm'"),
    ("--grid", "numerics.cells=10:20:2", "numerics.cells is structure"),
    ("--grid", "tumor.radius_mm=5:10:2", "cannot be batched in one compiled scan; set it with "
                                         "--set tumor.radius_mm=VALUE"),
    ("--grid", "pore_radius_nm=10:100:3", "'pore_radius_nm' is ambiguous"),
    ("--sample", "diameter_nm=lognormal(90, 0)", "sigma > 0"),
    ("--sample", "diameter_nm=lognormal(-1, 0.3)", "median > 0"),
    ("--sample", "diameter_nm=normal(90, -1)", "sd > 0"),
    ("--sample", "diameter_nm=uniform(100, 50)", "lo < hi"),
    ("--sample", "diameter_nm=gamma(2, 3)", "unknown distribution 'gamma'; allowed: uniform"),
    ("--sample", "diameter_nm=normal(90, 1e4)", "out of range"),
])
def test_bad_input_is_named(flag, text, expected, tmp_path, capsys):
    out = tmp_path / "scan"
    extra = ["--samples", "8"] if flag == "--sample" else []
    assert main(["scan", *TINY_ARGS, flag, text, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert not out.exists()  # nothing written


def test_folder_of_another_scan_is_refused(tmp_path, tiny, capsys):
    """A folder holding another scan (other grid, other scenario) is refused before anything
    runs, and none of its files change."""
    out = tmp_path / "scan"
    spec = scan.make_spec(grid={"diameter_nm": "40:160:3"})
    pts = spec.points()
    scan.prepare_folder(out, spec, tiny, scan._points_hash(pts, spec.paths), 2, True)
    (out / "chunks" / "chunk-00000.nc").write_bytes(b"placeholder")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # another grid
    assert main(["scan", *TINY_ARGS, "--grid", "diameter_nm=40:160:4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "belongs to a different scan" in err and "grid" in err and "40:160:3" in err
    # same grid, another scenario
    assert main(["scan", *TINY_ARGS, "--set", "dose_mg_per_m2=30", "--grid",
                 "diameter_nm=40:160:3", "--chunk", "2", "--out", str(out)]) == 2
    assert "another scenario" in capsys.readouterr().err
    # same scan, other chunk size
    assert main(["scan", *TINY_ARGS, "--grid", "diameter_nm=40:160:3", "--chunk", "3",
                 "--out", str(out)]) == 2
    assert "resume with --chunk 2" in capsys.readouterr().err
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    # scan files without a manifest
    other = tmp_path / "other"
    (other / "chunks").mkdir(parents=True)
    assert main(["scan", *TINY_ARGS, "--grid", "diameter_nm=40:160:3", "--out",
                 str(other)]) == 2
    assert "no scan.json" in capsys.readouterr().err
    assert not (other / "scan.json").exists()


def test_structure_changing_values_and_spec_errors(tiny):
    with pytest.raises(scan.ScanError, match="changes the structure"):
        scan.check_points(tiny, None, {"formulation.ligands_per_particle": np.array([0.0, 10.0])})
    with pytest.raises(scan.ScanError, match="not used for patient.species = 'human'"):
        scan.check_points(tiny, None, {"dose.dose_mg_per_kg": np.array([1.0])})
    with pytest.raises(scan.ScanError, match="vascular_fraction \\+ interstitial_fraction"):
        scan.check_points(tiny, None, {"tissue.tumor.interstitial_fraction": np.array([0.95])})
    with pytest.raises(scan.ScanError, match="nothing to scan"):
        scan.make_spec()
    with pytest.raises(scan.ScanError, match="M >= 1"):
        scan.make_spec(samples={"diameter_nm": "uniform(50, 100)"})
    with pytest.raises(scan.ScanError, match="scanned twice"):
        scan.ScanSpec((scan.make_axis("diameter_nm", [50, 60]),),
                      (scan.make_sample("formulation.diameter_nm", "uniform(50, 100)"),), 4)


def test_grid_spacing_samples_and_pareto():
    axis = scan.make_axis("diameter_nm", "10:1000:3:log")
    assert axis.values == (10.0, 100.0, 1000.0) and axis.dim == "diameter_nm"
    assert scan.make_axis("dose_mg_per_m2", "10, 20,40").values == (10.0, 20.0, 40.0)
    spec = scan.make_spec(grid={"diameter_nm": [50, 100]},
                          samples={"tissue.tumor.pore_radius_nm": "loguniform(100, 1000)"},
                          n_samples=16, seed=1)
    pts = spec.points()
    assert spec.shape == (2, 16) and spec.dims == ("diameter_nm", "sample")
    assert np.array_equal(pts["formulation.diameter_nm"], np.repeat([50.0, 100.0], 16))
    pore = pts["tissue.tumor.pore_radius_nm"]
    assert np.array_equal(pore[:16], pore[16:])  # the same draws at every grid point
    assert 100 <= pore.min() and pore.max() <= 1000
    # Sobol: stratified in ln(pore): every 1/16 of the log range holds one point
    u = np.log(pore[:16] / 100) / np.log(10)
    assert sorted(np.floor(u * 16).astype(int)) == list(range(16))
    assert np.array_equal(spec.points()["tissue.tumor.pore_radius_nm"], pore)  # reproducible
    eff = np.array([0.1, 0.5, 0.4, 0.9, 0.9])
    tox = np.array([1.0, 2.0, 3.0, 5.0, 6.0])
    assert scan.pareto_mask(eff, tox).tolist() == [True, True, False, True, False]
