"""Virtual-cohort pre-selection (``nanotransport.cohort``): the statistics against brute-force
definitions, correlated patient draws, an end-to-end run of ``nanotransport cohort``, bad
input."""
import json

import numpy as np
import pytest
import xarray as xr

from nanotransport import cohort, scan, scenario as sc
from nanotransport.cli import main


def _auc_pairs(score, positive):
    """P(score of a positive > score of a negative), ties ½, by all pairs."""
    pos, neg = score[positive], score[~positive]
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def test_roc_auc_and_curve_match_their_definitions():
    rng = np.random.default_rng(5)
    score = np.round(rng.normal(size=200), 1)  # with ties
    positive = rng.random(200) < 1.0 / (1.0 + np.exp(-2.0 * score))
    auc = cohort.roc_auc(score, positive)
    assert abs(auc - _auc_pairs(score, positive)) < 1e-12
    fpr, tpr = cohort.roc_curve(score, positive)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert abs(np.trapezoid(tpr, fpr) - auc) < 1e-12  # trapezoids = ties counted ½
    assert cohort.roc_auc(np.arange(10.0), np.arange(10) >= 5) == 1.0
    assert cohort.roc_auc(np.arange(10.0), np.arange(10) < 5) == 0.0


def test_selection_and_gain():
    readout = np.arange(1.0, 101.0)
    efficacy = readout / 200.0  # perfectly predictive
    rep = cohort.analyse(readout, efficacy, cohort.CohortSettings(select_fraction=0.25))
    s = rep["selection"]
    assert s["patients_selected"] == 25 and rep["roc_auc"] == 1.0
    assert rep["spearman_rho"] == pytest.approx(1.0)
    assert s["mean_efficacy_selected"] == pytest.approx(np.mean(efficacy[75:]), rel=1e-12)
    assert s["efficacy_gain"] == pytest.approx(np.mean(efficacy[75:]) - np.mean(efficacy))
    assert s["responder_rate_selected"] == 1.0 and s["responders_missed"] == 25


def test_patients_are_correlated_log_normal():
    """Medians, log-sds and the log-correlations of the drawn EPR parameters (4096 draws:
    tolerances ≈ 4 standard errors)."""
    s = sc.load("doxil")
    samples, corr = cohort.distributions(s)
    spec = scan.make_spec(samples=samples, n_samples=4096, seed=2, sampler="random",
                          correlation=corr)
    vals = spec.sample_values()
    for path, sd, _ in cohort.EPR_VARIABILITY:
        logs = np.log(vals[path])
        assert abs(np.median(logs) - np.log(float(s[path]))) < 4 * 1.25 * sd / 64
        assert abs(logs.std() / sd - 1.0) < 4 / np.sqrt(2 * 4096)
    for a, b, rho, _ in cohort.EPR_CORRELATIONS:
        r = np.corrcoef(np.log(vals[a]), np.log(vals[b]))[0, 1]
        assert abs(r - rho) < 4 * (1 - rho**2) / 64


def test_cohort_command_end_to_end(tmp_path):
    out = tmp_path / "c"
    args = ["cohort", "doxil", "--patients", "8", "--imaging-time-h", "6", "--out", str(out),
            "--quiet", "--set", "numerics.cells=12", "--set", "numerics.t_end_h=12",
            "--set", "numerics.max_dt_min=60", "--set", "numerics.save_times_h=[0, 12]"]
    assert main(args) == 0
    rep = json.loads((out / "cohort.json").read_text())
    assert rep["patients"] == 8 and rep["readout"] == "imaging_tumor_pct_id_per_g"
    assert -1.0 <= rep["spearman_rho"] <= 1.0 and 0.0 <= rep["roc_auc"] <= 1.0
    with xr.open_dataset(out / "cohort.nc") as ds:
        assert ds.sizes["sample"] == 8 and np.all(ds.readout > 0)
        assert int(ds.selected.sum()) == rep["selection"]["patients_selected"]
        # J and its terms per patient, under the names of optimize and scans
        np.testing.assert_allclose(ds.objective, ds.efficacy - ds.toxicity, rtol=0, atol=1e-15)
        assert {"tox_cardiac_auc", "tox_cardiac_peak", "tox_hand_foot", "tox_thermal"} \
            <= set(ds.data_vars)
    with xr.open_dataset(out / "imaging" / "scan.nc") as a, \
            xr.open_dataset(out / "therapy" / "scan.nc") as b:  # the same patients
        np.testing.assert_array_equal(a["pore_radius_nm"] if "pore_radius_nm" in a else
                                      a["tissue.tumor.pore_radius_nm"],
                                      b["pore_radius_nm"] if "pore_radius_nm" in b else
                                      b["tissue.tumor.pore_radius_nm"])
    assert (out / "cohort.png").stat().st_size > 0


@pytest.mark.parametrize("change, message", [
    ({"patients": 2}, "--patients"),
    ({"imaging_dose_fraction": 0.0}, "--imaging-dose-fraction"),
    ({"readout": "suv"}, "--readout"),
    ({"select_fraction": 1.0}, "--select-fraction"),
    ({"spreads": {"tissue.tumor.pore_radius_nm": -0.1}}, "--spread"),
])
def test_bad_cohort_settings(change, message):
    with pytest.raises(scan.ScanError, match=message):
        cohort.CohortSettings(**change).check()


def test_unknown_spread_name():
    with pytest.raises(scan.ScanError, match="not an EPR parameter"):
        cohort.distributions(sc.load("doxil"), {"diameter_nm": 0.3})
