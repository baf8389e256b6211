"""Calibration from images (``nanotransport.calibrate``): synthetic-data recovery within the
reported uncertainty, flags on parameters the data cannot identify, observation files."""
import json

import numpy as np
import pytest

from nanotransport import calibrate as cal, io, scenario as sc
from nanotransport.studies.calibrate import ObservationError

COARSE = ["numerics.cells=20", "numerics.max_dt_min=30"]
PORE = "tissue.tumor.pore_radius_nm"
KILL = "drug.kill_coefficient_per_ng_h_per_1e5cells"
TIMES_H = np.array([1.0, 4.0, 12.0, 24.0, 48.0])


def test_synthetic_recovery_and_unidentifiable_flag():
    """Data from pore radius 1.6× the scenario's, 4 % noise: the fit recovers it within 3 of its
    reported standard deviations (and the sd is below 0.5 in ln); the kill coefficient, which
    no image sees, is flagged as carrying no information."""
    import jax

    base = sc.load("doxil", COARSE)
    truth = base.replace(**{PORE: 1.6 * float(base[PORE])})
    f = cal.model_function(truth, [PORE], "imaging_tumor_pct_id_per_g", TIMES_H)
    clean = np.asarray(jax.jit(f)(np.zeros(1)))
    sd = 0.04 * clean
    noisy = clean + sd * np.random.default_rng(11).normal(size=clean.size)
    obs = cal.make_observations({"time_h": TIMES_H, "tumor_pct_id_per_g": noisy,
                                 "tumor_pct_id_per_g_sd": sd})
    result = cal.fit(base, obs, [PORE, KILL])
    assert result.converged
    err = np.log(result.values[PORE] / float(truth[PORE]))
    assert result.identifiable[PORE] and result.sd_ln[PORE] < 0.5
    assert abs(err) <= 3.0 * result.sd_ln[PORE], (err, result.sd_ln[PORE])
    assert not result.identifiable[KILL] and result.values[KILL] == float(base[KILL])
    assert any(KILL in w and "no information" in w for w in result.warnings)
    assert result.chi2 < 5 * 3  # χ² ~ n − k = 4 with the true noise


def _write(tmp_path, text, name="obs.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_observation_files(tmp_path):
    o = cal.load_observations(_write(tmp_path, "# a comment\ntime_min,tumor_pct_id_per_kg\n"
                                               "60,1.5\n1440,3.0\n"))
    np.testing.assert_allclose(o.times_h, [1.0, 24.0])
    assert o.quantity == "tumor_pct_id_per_kg" and o.sd is None
    p = tmp_path / "obs.json"
    p.write_text(json.dumps({"time_d": [1, 3], "tumor_to_reference": [2.0, 4.0],
                             "tumor_to_reference_sd": [0.2, 0.3]}))
    o = cal.load_observations(p)
    np.testing.assert_allclose(o.times_h, [24.0, 72.0])
    assert o.metric == "imaging_tumor_to_reference"
    back = cal.load_observations(io.write_observations(o, tmp_path / "back.csv"))
    np.testing.assert_array_equal(back.values, o.values)


@pytest.mark.parametrize("text, message", [
    ("time_h,tumor_pct_id_per_g\n", "no observations"),
    ("time_h,tumor_pct_id_per_g\n4,0.1\n2,0.2\n", "not increasing"),
    ("time_h,tumor_pct_id_per_g\n0,0.1\n", "times > 0"),
    ("time_hours,tumor_pct_id_per_g\n1,0.1\n", "time unit 'time_hours'"),
    ("time_h,tumor_pct_id_per_g,tumor_pct_id_per_kg_sd\n1,0.1,0.01\n", "mismatched units"),
    ("time_h,tumor_ug_per_g\n1,0.1\n", "not recognized"),
    ("time_h,tumor_pct_id_per_g\n1,-0.1\n", "values >= 0"),
    ("time_h,tumor_pct_id_per_g,tumor_pct_id_per_g_sd\n1,0.1,0\n", "standard deviations > 0"),
    ("time_h,tumor_pct_id_per_g\n1,abc\n", "not a number"),
])
def test_bad_observation_files(tmp_path, text, message):
    with pytest.raises(ObservationError, match=message):
        cal.load_observations(_write(tmp_path, text))


def test_bad_fit_requests(tmp_path):
    obs = cal.make_observations({"time_h": [1.0], "tumor_pct_id_per_g": [0.1]})
    with pytest.raises(ObservationError, match="noise cannot be estimated"):
        cal.fit(sc.load("doxil", COARSE), obs, [PORE])
    with pytest.raises(sc.ScenarioError, match="not a numeric parameter"):
        cal.check_parameters(["tumor.geometry"])
    with pytest.raises(ObservationError, match="unknown file type"):
        cal.load_observations(_write(tmp_path, "x", "obs.txt"))
