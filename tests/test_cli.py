"""CLI smoke tests on tiny grids: files, summary keys, exit codes."""
import json

import pytest

import xarray as xr

from nanotransport import cli

TINY = ["--set", "numerics.cells=16", "--set", "numerics.t_end_h=2", "--set",
        "numerics.max_dt_min=30", "--quiet"]
SUMMARY_KEYS = {
    "plasma_auc_free_ug_h_per_ml", "plasma_auc_encapsulated_ug_h_per_ml",
    "plasma_auc_total_ug_h_per_ml", "tumor_drug_auc_ug_h_per_g", "tumor_drug_peak_ug_per_g",
    "tumor_intracellular_auc_ug_h_per_g", "tumor_carrier_pct_id", "tumor_carrier_pct_id_per_g",
    "fraction_released", "efficacy", "mass_balance_error"}


def test_run_writes_results_summary_and_figures(tmp_path, capsys):
    assert cli.main(["run", *TINY, "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert set(summary["tumor_carrier_pct_id"]) == {"0", "0.25", "0.5", "1", "2"}
    assert summary["mass_balance_error"] < 1e-10
    obj = summary["objective"]
    terms = ("efficacy", "tox_cardiac_auc", "tox_cardiac_peak", "tox_hand_foot", "tox_marrow",
             "tox_thermal")
    assert set(terms) <= set(obj) and set(obj["references"]) == set(terms[1:])
    assert obj["J"] == pytest.approx(obj["efficacy"] - obj["toxicity"], rel=1e-12)
    ds = xr.open_dataset(tmp_path / "results.nc")
    assert ds["organ_heart_free_drug"].attrs["units"] == "ug/g"
    assert ds.payload.dims == ("time", "r") and ds.time.attrs["units"] == "h"
    assert ds.r.attrs["units"] == "mm" and "units" in ds.free.attrs
    assert "[formulation]" in ds.attrs["scenario_toml"]
    for fig in ("plasma_pk.png", "tumor_profiles.png", "pressure_velocity.png",
                "release_cells.png"):
        assert (tmp_path / fig).stat().st_size > 1000
    assert "tumor drug AUC" in capsys.readouterr().out


def test_compare(tmp_path, capsys):
    assert cli.main(["compare", "free-dox", "doxil", *TINY, "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "compare.json").read_text())
    assert [r["scenario"] for r in rows] == ["free-dox", "doxil"]
    assert "relative to free-dox" in capsys.readouterr().out


def test_bad_scenario_exits_2_with_message(capsys):
    assert cli.main(["run", "--set", "diameter_nm=-1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "formulation.diameter_nm = -1 is out of range" in err


def test_scenarios_and_show(capsys):
    assert cli.main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert "doxil" in out and "free-dox" in out
    assert cli.main(["show", "doxil"]) == 0
    out = capsys.readouterr().out
    assert "diameter_nm = 90.0" in out and "[tissue.tumor]" in out


def test_optimize_and_capillary_smoke(tmp_path, capsys):
    out = tmp_path / "opt"
    assert cli.main(["optimize", "thermodox", "--vary", "diameter_nm=40:150",
                     "--vary", "release_temperature_C=39:44", *TINY, "--max-iter", "2",
                     "--contour", "0", "--out", str(out)]) == 0
    report = json.loads((out / "optimization.json").read_text())
    assert set(report["best"]["design"]) == {"formulation.diameter_nm",
                                             "formulation.release_temperature_C"}
    best, history = report["best"], report["history"]
    assert {"efficacy", "tox_cardiac_auc", "toxicity"} <= set(best["terms"])
    # J is its efficacy less its weighted toxicity, and the search did not end below its first
    # iterate (the bounds alone guarantee neither)
    assert abs(best["objective"] - (best["terms"]["efficacy"] - best["terms"]["toxicity"])) \
        <= 1e-12 * max(abs(best["objective"]), 1e-3)
    assert best["objective"] >= history[0]["objective"] - 1e-12
    assert (out / "optimization_convergence.png").exists()
    cap = tmp_path / "cap"
    assert cli.main(["capillary", "--nr", "6", "--nz", "12", "--t-end-s", "2",
                     "--out", str(cap)]) == 0
    summary = json.loads((cap / "capillary_summary.json").read_text())
    assert summary["ledger_drug_error_max"] < 1e-10
    assert "optimize" not in capsys.readouterr().err


def test_the_readouts_compiled_ahead_on_a_standin_serve_the_run():
    """``run_one`` compiles the summary metrics, the result's arrays and the objective on a
    stand-in result while the run compiles (``cli._compile_readouts``); the stand-in has the
    real result's structure, shapes, dtypes and placement, so each program compiles once."""
    import jax

    from nanotransport import io, scenario
    from nanotransport.engine import export_cache
    from nanotransport.model import objective, simulate, summary

    folder = export_cache.folder()
    export_cache.configure(None)  # the plain jitted calls, whose compiled programs we count
    try:
        s = scenario.load("doxil", [TINY[i + 1] for i in range(0, len(TINY) - 1, 2)]
                          + ["numerics.cells=13"])  # a structure no other test compiles
        programs = (summary._metrics_jit, io._model_arrays_jit, objective._objective_jit)
        before = [f._cache_size() for f in programs]
        result, lay, _, _ = cli.run_one(s, s.name, show_progress=False)
        io.to_xarray(result, lay, s)
        cli._objective_summary(result)
        assert [f._cache_size() - b for f, b in zip(programs, before)] == [1, 1, 1]
        standin = simulate.standin_result(s)
        kind = lambda x: (jax.typeof(x), getattr(x, "committed", None))  # noqa: E731
        assert (jax.tree_util.tree_structure(standin)
                == jax.tree_util.tree_structure(result))
        assert jax.tree.map(kind, standin) == jax.tree.map(kind, result)
    finally:
        export_cache.configure(folder)
