"""Issue #16: nothing lost, nothing silently wrong.  One test (or more) per defect of the issue:
(1) concurrent scans and chunk verification, (2) NaN in JSON, (3) maps files, (4) the dose unit
rule, (5) the exit-status contract, (6) atomic figures, SIGINT, stale temporary files and the
smaller ones; a fuzz test over scenario files and --set values.  Tiny grids throughout."""
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from nanotransport import cli, outdir, scan, scenario as sc, tissue
from nanotransport.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["numerics.cells=12", "numerics.t_end_h=2", "numerics.max_dt_min=30",
        "numerics.save_times_h=[0, 1, 2]", "outputs.figures=false"]
TINY_ARGS = [a for t in TINY for a in ("--set", t)]
FAST = ["numerics.cells=8", "numerics.t_end_h=1", "numerics.max_dt_min=30",
        "numerics.save_times_h=[0, 1]", "outputs.figures=false"]  # the fuzz test's structure
FAST_ARGS = [a for t in FAST for a in ("--set", t)]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", JAX_PLATFORMS="cpu",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _strict(path: Path):
    """Parse JSON as a strict parser does: NaN, Infinity are errors."""
    def refuse(name):
        raise ValueError(f"{path.name}: non-standard JSON constant {name}")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


# ================================================================== (1) scans: lock, hashes
def test_concurrent_scans_into_one_folder_second_is_refused(tmp_path, capsys):
    """Scan A runs in a subprocess; scan B (another grid) into the same folder while A holds it
    is refused with exit 2 naming A's pid, and writes nothing: A's results are never mixed
    with B's (before: both exited 0 and scan.nc mixed the two)."""
    out = tmp_path / "scan"
    grid_a = ["--grid", "diameter_nm=40:160:2", "--chunk", "1"]
    slow = textwrap.dedent("""
        import sys, time
        import nanotransport.scan_store as s
        write = s._write_chunk
        def slow_write(*a, **k):  # a slow disk: scan A holds the folder for a while
            write(*a, **k)
            time.sleep(1.0)
        s._write_chunk = slow_write
        from nanotransport.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", slow, "scan", "doxil", *TINY_ARGS, *grid_a,
                             "--quiet", "--no-figures", "--out", str(out)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / outdir.LOCK_NAME
    deadline = time.time() + 120
    while not lock.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert lock.exists(), proc.communicate()[1][-2000:]
    holder = json.loads(lock.read_text())
    assert holder["pid"] == proc.pid and "scan" in holder["command"]
    rc = main(["scan", "doxil", *TINY_ARGS, "--grid", "diameter_nm=30:300:2", "--chunk", "1",
               "--quiet", "--no-figures", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"in use by pid {proc.pid}" in err and "command: nanotransport scan" in err
    # an identical scan is refused too: no work done twice
    assert main(["scan", "doxil", *TINY_ARGS, *grid_a, "--quiet", "--no-figures", "--out",
                 str(out)]) == 2
    assert proc.wait(timeout=240) == 0, proc.stderr.read()[-3000:]
    with xr.open_dataset(out / "scan.nc") as ds:
        assert ds["diameter_nm"].values.tolist() == [40.0, 160.0]
    manifest = json.loads((out / "scan.json").read_text())
    assert manifest["spec"]["grid"][0]["values"] == [40.0, 160.0]
    assert not lock.exists()  # released


def test_stale_lock_is_broken_and_live_lock_names_holder(tmp_path):
    """A lock of a process that is gone (killed) is stale: taken over with a warning; a lock of
    a live process is refused with its pid, host, command and start time."""
    folder = tmp_path / "out"
    sleeper = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from nanotransport import outdir
        outdir.acquire({str(folder)!r}, "holder-command")
        print("locked", flush=True)
        time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True, env=_env())
    assert sleeper.stdout.readline().strip() == "locked"
    with pytest.raises(outdir.FolderError, match=rf"in use by pid {sleeper.pid} on host .* since "
                                                 r".*\(command: holder-command\)"):
        outdir.acquire(folder, "second")
    sleeper.send_signal(signal.SIGKILL)
    sleeper.wait(timeout=30)
    with pytest.warns(UserWarning, match="stale lock"):
        outdir.acquire(folder, "third")
    assert json.loads((folder / outdir.LOCK_NAME).read_text())["pid"] == os.getpid()
    outdir.release(folder)
    assert not (folder / outdir.LOCK_NAME).exists()


def test_corrupted_chunk_is_detected_and_recomputed(tmp_path):
    """Every chunk's SHA-256 is in the manifest; a flipped byte inside a chunk's data is found
    on resume, reported and the chunk recomputed: the result equals the uncorrupted scan
    (before: the flipped value went silently into scan.nc)."""
    s = sc.load("doxil", TINY)
    out = tmp_path / "scan"
    first = scan.run_scan(s, grid={"diameter_nm": [60.0, 120.0]}, out=out, chunk=1,
                          progress=False)
    manifest = json.loads((out / "scan.json").read_text())
    chunk = out / "chunks" / "chunk-00001.nc"
    assert manifest["chunks"]["1"] == scan._file_sha256(chunk)
    data = bytearray(chunk.read_bytes())
    with xr.open_dataset(chunk) as ds:  # flip a byte of the stored efficacy value
        raw = np.asarray(ds["efficacy"].values, "<f8").tobytes()
    raw_be = np.asarray(np.frombuffer(raw, "<f8"), ">f8").tobytes()
    pos = max(data.find(raw), data.find(raw_be))
    assert pos > 0
    data[pos + 3] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="does not match the manifest"):
        second = scan.run_scan(s, grid={"diameter_nm": [60.0, 120.0]}, out=out, chunk=1,
                               progress=False)
    for k in first.data_vars:
        assert np.array_equal(first[k].values, second[k].values, equal_nan=True), k
    assert json.loads((out / "scan.json").read_text())["chunks"]["1"] == \
        scan._file_sha256(chunk)


# ================================================================== (2) strict JSON, NaN
def test_zero_dose_gives_zeros_and_strict_json(tmp_path):
    """dose 0: every metric finite (zeros), mass balance 0, strict JSON (before: NaN)."""
    assert main(["run", *FAST_ARGS, "--set", "dose_mg_per_m2=0", "--quiet", "--out",
                 str(tmp_path)]) == 0
    summary = _strict(tmp_path / "summary.json")
    assert summary["mass_balance_error"] == 0.0
    def numbers(v):  # every number in the (nested) summary; text (references) skipped
        if isinstance(v, dict):
            return [x for w in v.values() for x in numbers(w)]
        return [v] if isinstance(v, (int, float)) and not isinstance(v, bool) else []

    flat = numbers(summary)
    assert flat and all(isinstance(v, (int, float)) and math.isfinite(v) for v in flat)
    assert all(x == 0.0 for x in summary["tumor_carrier_pct_id"].values())
    # no drug, no drug toxicity: each drug term is 0 (not 0/0)
    assert all(summary["objective"][k] == 0.0 for k in ("tox_cardiac_auc", "tox_cardiac_peak",
                                                         "tox_hand_foot", "tox_marrow"))


def test_no_viable_cells_efficacy_null_with_warning(tmp_path, capsys):
    """The necrotic core fills the tumor on the grid: efficacy is undefined → JSON null, with a
    warning; the file is strict JSON (before: NaN in summary.json)."""
    assert main(["run", *TINY_ARGS, "--set", "necrotic_radius_mm=9.999", "--quiet", "--out",
                 str(tmp_path)]) == 0
    summary = _strict(tmp_path / "summary.json")
    assert summary["efficacy"] is None
    assert "efficacy is undefined" in capsys.readouterr().err


def test_strict_json_writer_never_writes_nan(tmp_path):
    with pytest.warns(outdir.NonFiniteWarning, match="a.b, c\\[1\\]"):
        outdir.write_json(tmp_path / "x.json", {"a": {"b": float("nan")},
                                                "c": [1.0, np.float32("inf")], "d": 2})
    assert _strict(tmp_path / "x.json") == {"a": {"b": None}, "c": [1.0, None], "d": 2}


def test_capillary_nan_setting_is_refused(tmp_path, capsys):
    out = tmp_path / "cap"
    assert main(["capillary", "--set", "plasma_velocity_m_per_s=nan", "--out", str(out)]) == 2
    assert "plasma_velocity_m_per_s=nan: allowed: a finite number" in capsys.readouterr().err
    assert not out.exists()


# ================================================================== (3) maps files
def _grid(cells=12):
    return tissue.layout(sc.load("doxil", [f"numerics.cells={cells}"])).grid


def _maps(tmp_path, name="maps.nc", **arrays):
    g = _grid()
    ds = xr.Dataset({k: (("r",), np.broadcast_to(np.asarray(v, float), g.shape))
                     for k, v in arrays.items()})
    path = tmp_path / name
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize("arrays, message", [
    ({"vascular_fraction": 30.0}, r"map 'vascular_fraction' = 30 at cell \(0,\) \(tumor\) "
                                  r"makes tissue.tumor.vascular_fraction = 2.1; allowed: a "
                                  r"number in \[0.001, 0.5\]$"),
    ({"vessel_surface_density_per_cm": 1e30}, r"map 'vessel_surface_density_per_cm' = 1e\+30 "
                                              r"at cell \(0,\).*allowed: a number in \[0, 2000\]"),
    ({"vascular_fraction": 7.0, "interstitial_fraction": 2.0},
     r"φ_v \+ φ_e = 1.\d+ at cell \(0,\), so the cell fraction"),
    ({"pore_radius_nm": -1.0}, r"multiplier map 'pore_radius_nm' is -1 at cell \(0,\); "
                               r"allowed: >= 0"),
    ({"vascular_fraction": np.nan}, r"map 'vascular_fraction' is nan at cell \(0,\)"),
    ({"colour": 1.0}, r"unknown map 'colour'"),
])
def test_maps_are_range_checked_per_cell(tmp_path, arrays, message):
    path = _maps(tmp_path, **arrays)
    with pytest.raises(sc.ScenarioError, match=message):
        tissue.layout(sc.load("doxil", ["numerics.cells=12", f"tissue.maps_file='{path}'"]))


def test_maps_shape_coordinates_url_and_files(tmp_path):
    s = lambda p: sc.load("doxil", ["numerics.cells=12", f"tissue.maps_file='{p}'"])  # noqa
    g = _grid()
    xr.Dataset({"vascular_fraction": (("r",), np.ones(5))}).to_netcdf(tmp_path / "short.nc")
    with pytest.raises(sc.ScenarioError, match=r"map 'vascular_fraction' has shape \(5,\); "
                                               r"the grid .* needs \(12,\)"):
        tissue.layout(s(tmp_path / "short.nc"))
    wrong = xr.Dataset({"vascular_fraction": (("r",), np.ones(12))},
                       coords={"r": np.linspace(0, 1, 12)})
    wrong.to_netcdf(tmp_path / "coords.nc")
    with pytest.raises(sc.ScenarioError, match=r"coordinate 'r' is 0 mm at index 0; the grid's "
                                               r"cell centre"):
        tissue.layout(s(tmp_path / "coords.nc"))
    right = wrong.assign_coords(r=g.centers[0] * 1e3)
    right.to_netcdf(tmp_path / "right.nc")
    lay = tissue.layout(s(tmp_path / "right.nc"))
    assert dict(lay.multipliers)["vascular_fraction"].shape == (12,)
    for url in ("http://127.0.0.1:9/maps.nc", "https://example.org/m.nc", "file:///tmp/m.nc",
                "s3://bucket/m.nc"):
        with pytest.raises(sc.ScenarioError, match="URL or another scheme; allowed: a local"):
            tissue.layout(s(url))
    (tmp_path / "text.nc").write_text("not netcdf")
    with pytest.raises(sc.ScenarioError, match="cannot be read as netCDF"):
        tissue.layout(s(tmp_path / "text.nc"))
    with pytest.raises(sc.ScenarioError, match="does not exist"):
        tissue.layout(s(tmp_path / "missing.nc"))


def test_maps_errors_exit_2_before_anything_is_written(tmp_path, capsys):
    path = _maps(tmp_path, vascular_fraction=30.0)
    out = tmp_path / "out"
    assert main(["run", *TINY_ARGS, "--set", f"tissue.maps_file='{path}'", "--quiet", "--out",
                 str(out)]) == 2
    assert "map 'vascular_fraction' = 30 at cell (0,)" in capsys.readouterr().err
    assert not out.exists()
    ok = _maps(tmp_path, "ok.nc", vascular_fraction=2.0)  # 0.1 in the tumor: in range
    assert main(["scan", "doxil", *TINY_ARGS, "--set", f"tissue.maps_file='{ok}'", "--grid",
                 "tissue.tumor.vascular_fraction=0.05:0.3:2", "--out", str(out)]) == 2
    assert "makes tissue.tumor.vascular_fraction = 0.6" in capsys.readouterr().err
    assert not out.exists()



def test_maps_are_read_at_load_and_ride_with_the_scenario(tmp_path):
    """The maps file is read by ``scenario.load`` (``scenario.read_tissue_maps``); the model
    takes its arrays: they change the run, travel in its structure into the Result, and a
    scenario cannot switch to another file without loading it."""
    from nanotransport import simulate, summary

    ok = _maps(tmp_path, "ok.nc", vascular_fraction=2.0)
    s = sc.load("doxil", TINY + [f"tissue.maps_file='{ok}'"])
    assert s.maps is not None and s.maps.source == str(ok)
    assert dict(tissue.layout(s).multipliers)["vascular_fraction"].shape == (12,)
    r = simulate.simulate(s)
    assert r.scenario.maps == s.maps
    key = "tumor_drug_auc_ug_h_per_g"
    plain = summary.metrics(simulate.simulate(sc.load("doxil", TINY)))[key]
    assert float(summary.metrics(r)[key]) != float(plain)
    with pytest.raises(sc.ScenarioError, match="read when the scenario is loaded"):
        s.replace(**{"tissue.maps_file": str(tmp_path / "other.nc")})
    assert s.replace(**{"tissue.maps_file": ""}).maps is None
    with pytest.raises(sc.ScenarioError, match="was not read"):
        tissue.layout(sc.Scenario(s.params, s.static))  # built without loading the file


# ================================================================== (4) dose unit rule
def test_dose_in_the_unit_the_species_does_not_use_is_refused_everywhere(tmp_path, capsys):
    """run, compare, optimize --vary, scan and the API refuse a dose in the other unit, naming
    the field and the species (before: run and optimize ignored it silently)."""
    expected = "dose.dose_mg_per_kg is not used for patient.species = 'human'"
    out = tmp_path / "out"
    for argv in (["run", "doxil", "--set", "dose_mg_per_kg=5"],
                 ["compare", "doxil", "free-dox", "--set", "dose_mg_per_kg=5"],
                 ["optimize", "doxil", "--vary", "dose_mg_per_kg=1:10"],
                 ["scan", "doxil", "--grid", "dose_mg_per_kg=1:10:2"],
                 ["run", "doxil-mouse", "--set", "dose_mg_per_m2=50"]):
        assert main([*argv, "--out", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert (expected if "doxil-mouse" not in argv else
                "dose.dose_mg_per_m2 is not used for patient.species = 'mouse'") in err, err
        assert not out.exists()
    with pytest.raises(sc.ScenarioError, match=expected):
        sc.load("doxil", ["dose_mg_per_kg=5"])
    from nanotransport import design

    with pytest.raises(sc.ScenarioError, match=expected):
        design.optimize(sc.load("doxil", TINY), {"dose_mg_per_kg": (1.0, 10.0)})
    # switching the species and dosing in its unit is fine
    s = sc.load("doxil", ["patient.species=mouse", "dose_mg_per_kg=3"])
    assert s["dose.dose_mg_per_kg"] == 3.0


# ================================================================== (5) exit-status contract
@pytest.mark.parametrize("content, message", [
    (b"[dose]\ndose_mg_per_m2 = 5\xff\n", "is not UTF-8 text (byte 25"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "is binary (it holds NUL bytes)"),
    (b"# nothing but a comment\n\n", "sets nothing (only comments or blank lines)"),
])
def test_bad_scenario_files_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "s.toml"
    path.write_bytes(content)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_scenario_folder_unreadable_file_and_bad_csv_exit_2(tmp_path, capsys):
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    assert main(["run", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "is a folder" in capsys.readouterr().err
    csv = tmp_path / "obs.csv"
    csv.write_bytes(b"time_h,tumor_pct_id_per_g\n1,0.\xe9\n")
    assert main(["calibrate", "--observed", str(csv), *TINY_ARGS, "--out",
                 str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "observation file" in err and "is not UTF-8 text" in err, err
    if not IS_ROOT:  # root reads any file
        locked = tmp_path / "locked.toml"
        locked.write_text("[dose]\ndose_mg_per_m2 = 5\n")
        locked.chmod(0)
        assert main(["run", str(locked), "--out", str(tmp_path / "o")]) == 2
        assert "cannot be read" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()


def test_bad_csv_is_named(tmp_path):
    from nanotransport import calibrate

    csv = tmp_path / "obs.csv"
    csv.write_bytes(b"time_h,tumor_pct_id_per_g\n1,0.\xe9\n")
    with pytest.raises(calibrate.ObservationError, match="obs.csv' is not UTF-8 text"):
        calibrate.load_observations(csv)


@pytest.mark.parametrize("argv, message", [
    (["capillary", "--diameter-nm", "-5"], "--diameter-nm -5.0; allowed: a number in [1, 2000]"),
    (["capillary", "--nr", "0"], "--nr 0; allowed: an integer >= 2"),
    (["capillary", "--heated", "0.3:0.1:42"], "--heated '0.3:0.1:42'; allowed: START_MM"),
    (["capillary", "--t-end-s", "nan"], "--t-end-s nan; allowed: a finite number > 0"),
    (["optimize", "--vary", "diameter_nm=40:100", "--max-iter", "-1"],
     "--max-iter -1; allowed: an integer >= 1"),
    (["calibrate", "--observed", "x.csv", "--max-iter", "0"], "--max-iter 0; allowed"),
    (["run", "--set", "numerics.cells=100000", "--set", "tumor.geometry=cartesian3d"],
     "numerics.cells = 100000 on a cartesian3d grid gives 1,000,000,000,000,000 cells, an "
     "estimated"),
])
def test_argument_errors_exit_2_before_work(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_out_that_is_a_file_or_read_only_is_refused_first(tmp_path, capsys, monkeypatch):
    """--out is checked before any work (before: found after the whole simulation)."""
    ran = []
    monkeypatch.setattr(cli, "run_one", lambda *a, **k: ran.append(1))
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert main(["run", *TINY_ARGS, "--out", str(afile)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["run", *TINY_ARGS, "--out", str(afile / "sub")]) == 2
    assert "is a file, so the folder cannot be created" in capsys.readouterr().err
    if not IS_ROOT:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        assert main(["run", *TINY_ARGS, "--out", str(ro / "sub")]) == 2
        assert "is not writable" in capsys.readouterr().err
    assert ran == [] and afile.read_text() == "keep"


# ================================================================== (6) smaller defects
def test_figure_write_is_atomic_on_exception_and_does_not_follow_symlinks(tmp_path):
    import matplotlib.pyplot as plt

    from nanotransport import plots

    path = tmp_path / "fig.png"
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    plots._save(fig, path)
    old = path.read_bytes()

    class Boom(Exception):
        pass

    fig, ax = plt.subplots()

    def partial(target, **kw):  # write half a file, then fail (a full disk, a signal)
        Path(target).write_bytes(b"\x89PNG partial")
        raise Boom

    fig.savefig = partial
    with pytest.raises(Boom):
        plots._save(fig, path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # no temporary file left
    victim = tmp_path / "victim.txt"
    victim.write_text("do not overwrite")
    link = tmp_path / "link.png"
    link.symlink_to(victim)
    fig, ax = plt.subplots()
    plots._save(fig, link)
    assert victim.read_text() == "do not overwrite"
    assert not link.is_symlink() and link.read_bytes()[:4] == b"\x89PNG"


def test_killed_figure_write_leaves_old_file_and_stale_temp_is_removed(tmp_path):
    """SIGKILL in the middle of a figure write: the target keeps its old content; the
    temporary file it leaves is removed when the next run takes the folder."""
    path = tmp_path / "fig.png"
    path.write_bytes(b"old figure")
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        import matplotlib.pyplot as plt
        from nanotransport import plots
        fig, ax = plt.subplots()
        def killed(target, **kw):
            with open(target, "wb") as f:
                f.write(b"\\x89PNG half")
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        fig.savefig = killed
        plots._save(fig, {str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=_env(), timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"old figure"
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].read_bytes().startswith(b"\x89PNG half")
    outdir.acquire(tmp_path, "next run")
    outdir.release(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_sigint_prints_one_line_no_traceback_exit_130(tmp_path):
    """Ctrl-C during a long run: exit 130, one line saying what was kept and how to go on."""
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from nanotransport import cli
        def long_run(*a, **k):
            # returns to Python often, as a real run does between compiled calls: once JAX's
            # threads run, a process signal may land on one of them, and Python handles it
            # only when the main thread next runs Python code (one 120-s sleep would hide it)
            print("running", flush=True)
            for _ in range(1200):
                time.sleep(0.1)
        cli.run_one = long_run
        sys.exit(cli.main(sys.argv[1:]))
    """)
    for command in (["run"], ["scan", "--grid", "diameter_nm=40:160:2"]):
        if command[0] == "scan":
            script_ = script.replace("cli.run_one = long_run",
                                     "import nanotransport.studies.scan_exec as s; s.run = "
                                     "lambda *a, **k: long_run()")
        else:
            script_ = script
        proc = subprocess.Popen([sys.executable, "-c", script_, *command, *TINY_ARGS,
                                 "--quiet", "--out", str(out)], env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("interrupted:")
        if command[0] == "scan":
            assert "rerun the same command to resume" in err
        assert not (out / outdir.LOCK_NAME).exists()


def test_failed_netcdf_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from nanotransport import io

    ds = xr.Dataset({"a": ("x", np.arange(3.0))})

    def boom(self, target, *a, **k):
        Path(target).write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        io.write_netcdf(ds, tmp_path / "r.nc")
    assert list(tmp_path.iterdir()) == []


def test_design_optimum_quick_writes_only_to_quick_folder(monkeypatch):
    spec = importlib.util.spec_from_file_location("design_optimum",
                                                  ROOT / "experiments" / "design_optimum.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    spec.loader.exec_module(module)
    seen = []
    monkeypatch.setattr(module, "part_design", lambda args, out, suffix: seen.append(out) or 0)
    monkeypatch.setattr(module, "part_tumors", lambda args, out, suffix: seen.append(out) or 0)
    module.main(["--quick"])
    module.main(["--quick", "--tumors"])
    module.main([])
    assert seen == [Path("experiments/results/quick")] * 2 + [Path("experiments/results")]


# ================================================================== fuzz
FUZZ_FIELDS = {  # bare or dotted names, with values that are legal, edge or illegal
    "diameter_nm": (1.0, 90.0, 2000.0, 0.0, -5.0, 1e9),
    "dose_mg_per_m2": (0.0, 50.0, 200.0, -1.0),
    "dose_mg_per_kg": (5.0,),
    "tissue.tumor.vascular_fraction": (0.001, 0.05, 0.5, 0.6),
    "tissue.tumor.interstitial_fraction": (0.01, 0.3, 0.9),
    "tissue.tumor.pore_radius_nm": (0.5, 400.0, 5000.0),
    "leak_rate_per_h": (0.0, 0.01, 10.0),
    "tissue.tumor.vessel_surface_density_per_cm": (0.0, 200.0, 2000.0),
}
FUZZ_RAW = ("nan", "inf", "-inf", "'text'", "true", "[1, 2]", "1e400", "", "0x10")


def test_fuzz_scenarios_refuse_or_run_finite(tmp_path):
    """Random --set values and scenario files: either refused (ScenarioError; exit 2 on the
    command line) or a run with finite metrics (null-free strict JSON) and a mass balance below
    1e-10 (float64).  The structure is fixed, so one compiled simulation serves every example."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from nanotransport import simulate, summary

    base = FAST
    value = st.one_of(st.sampled_from(FUZZ_RAW),
                      st.floats(allow_nan=True, allow_infinity=True).map(repr))
    pick = st.sampled_from(sorted(FUZZ_FIELDS)).flatmap(
        lambda k: st.tuples(st.just(k), st.one_of(st.sampled_from(FUZZ_FIELDS[k]).map(repr),
                                                  value)))

    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(pick, max_size=3))
    def check_sets(changes):
        try:
            s = sc.load("doxil", base + [f"{k}={v}" for k, v in changes])
        except sc.ScenarioError:
            return
        ran.append(changes)
        r = simulate.simulate(s)
        values = summary.metrics(r)
        for k, v in values.items():
            assert np.all(np.isfinite(np.asarray(v))), (changes, k, v)
        assert float(values["mass_balance_error"]) < 1e-10, changes

    ran: list = []
    check_sets()
    assert ran  # some examples really ran (the others were refused)

    toml_value = st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True),
                           st.text(max_size=5), st.booleans())
    section = st.dictionaries(st.sampled_from(["diameter_nm", "dose_mg_per_m2", "cells", "x",
                                               "species", "t_end_h"]), toml_value, max_size=3)
    doc = st.dictionaries(st.sampled_from(["formulation", "dose", "numerics", "patient",
                                           "bogus"]), section, max_size=3)
    junk = st.binary(max_size=40)

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(doc, junk))
    def check_files(content):
        import tomli_w

        path = tmp_path / "fuzz.toml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            try:
                path.write_text(tomli_w.dumps(content), encoding="utf-8")
            except (TypeError, ValueError):  # not representable in TOML
                return
        try:
            s = sc.load(str(path))
        except sc.ScenarioError:
            return
        assert isinstance(s, sc.Scenario)

    check_files()
    assert main(["run", *TINY_ARGS, "--set", "diameter_nm=nan", "--quiet", "--out",
                 str(tmp_path / "o")]) == 2


def test_scan_with_undefined_efficacy_warns():
    """A scan whose points have no viable tumor cells: a warning says efficacy is undefined
    there (before: an empty Pareto front and exit 0 without a word)."""
    ds = xr.Dataset({"efficacy": ("diameter_nm", np.array([np.nan, np.nan]))})
    with pytest.warns(UserWarning, match=r"efficacy is undefined .* at 2 of 2 scan point"):
        scan._warn_undefined(ds)
    assert not scan.pareto_mask(ds["efficacy"].values, np.array([1.0, 2.0])).any()
