"""``nanotransport fit`` (``studies.fit``): recovery of known parameters from noisy synthetic
data within their intervals, 95 % coverage over repeated seeds, profile ≈ Wald on a near-linear
problem, AD Jacobian against finite differences, the command's files.

Most checks use ``toy_model``, a closed-form model with ``organs.predict``'s signature (cheap:
a fit is milliseconds once compiled); ``test_real_organ_model_recovery`` fits the organ model.
"""
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from nanotransport import scenario as sc
from nanotransport.engine import units
from nanotransport.studies import fit as fm, observations as ob

CL = "patient.carrier_clearance_scale"
UPTAKE = "formulation.surface_factor"
TIMES_H = np.array([0.5, 2.0, 6.0, 24.0, 48.0, 72.0])
TISSUES = ("plasma", "liver", "tumor")
SIGMA_LN = 0.2


def toy_model(scenario, times_s, tissue_index, analyte_index):
    """Plasma C = D/V e^{−k t}, tissue j: D/V K_j k_j/(k_j − k)(e^{−k t} − e^{−k_j t}), with
    k = 0.1/h × carrier_clearance_scale, k_j = 0.4/h × surface_factor × (1 + 0.25 j)."""
    p = scenario.params
    dose = units.mg_to_mol(p["dose.dose_mg_per_kg"] * p["patient.body_mass_kg"])
    k = 0.1 / 3600 * p[CL]
    j = jnp.asarray(tissue_index, float)
    kj = 0.4 / 3600 * p[UPTAKE] * (1 + 0.25 * j)
    t = jnp.asarray(times_s)
    c0 = dose / 1e-6
    tissue = c0 * (0.5 + 0.1 * j) * kj / (kj - k) * (jnp.exp(-k * t) - jnp.exp(-kj * t))
    frac = jnp.asarray([1.0, 0.1, 0.9, 1.2])[analyte_index]
    return frac * jnp.where(tissue_index == 0, c0 * jnp.exp(-k * t), tissue), dose


def design(units_=("ug/mL", "%ID/g", "ng/g")):
    rows = ["time_h,tissue,analyte,value,unit,sd"]
    for tis, u in zip(TISSUES, units_):
        rows += [f"{t:g},{tis},drug,1,{u},0.1" for t in TIMES_H]
    return ob.parse("\n".join(rows) + "\n", "design.csv")


@pytest.fixture(scope="module")
def base():
    return sc.load("doxil-mouse")


@pytest.fixture(scope="module")
def problem(base):
    """The design with data from the truth (CL × 1.5, uptake × 0.7), noise-free."""
    truth = np.log([1.5, 0.7])
    prob = fm.Problem(base, design(), [CL, UPTAKE], model=toy_model)
    return prob, truth, np.asarray(prob.predict(truth))


def synthetic(problem, seed, sigma=SIGMA_LN):
    prob, truth, clean = problem
    noisy = clean * np.exp(sigma * np.random.default_rng(seed).normal(size=clean.size))
    sd = noisy * math.sqrt(math.expm1(sigma ** 2))  # so σ_ln = √ln(1 + (sd/y)²) = sigma
    return prob.with_values(noisy, sd)


def test_jacobian_matches_finite_differences(problem):
    """∂u/∂θ from forward-mode AD against central differences (h = 1e-5 in ln p): agree to
    1e-7 of each column's largest entry (the differences' own error is O(h²) ≈ 1e-10 plus
    round-off ε/h ≈ 1e-11)."""
    prob, truth, _ = problem
    chk = fm.jacobian_check(prob, truth)
    assert chk["max_rel_error"] < 1e-7, chk["max_rel_error"]
    assert np.abs(chk["ad"]).max() > 0


def test_recovery_within_intervals_and_profile(base, problem):
    """One noisy data set (20 % log-normal noise; seed fixed: about 1 seed in 20 misses a 95 %
    interval by design, the rate is checked by ``test_coverage_over_seeds``)."""
    prob, truth, _ = problem
    p = synthetic(problem, 0)
    r = fm.fit(base, p.obs, None, problem=p)
    assert r.converged and not r.warnings
    true_values = {CL: float(base[CL]) * 1.5, UPTAKE: float(base[UPTAKE]) * 0.7}
    for path in (CL, UPTAKE):
        lo, hi = r.wald[path]
        assert lo < true_values[path] < hi, (path, lo, true_values[path], hi)
        plo, phi = r.profile[path]["ci"]
        assert plo < r.values[path] < phi and r.identifiable[path]
    # χ² ~ χ²(n − k): n − k = 16, mean 16, sd 5.7
    assert r.chi2 < 16 + 4 * 5.7
    rep = fm.report(base, p.obs, r)
    assert rep["goodness_of_fit"]["overall"]["aafe"] < 1.5
    assert set(rep["goodness_of_fit"]["by_group"]) == {f"{t}/drug" for t in TISSUES}
    json.dumps(rep)  # JSON-ready


def test_coverage_over_seeds(base, problem):
    """Over 40 seeds, the true value lies in the 95 % Wald interval for ≥ 34 (85 %) of them,
    per parameter.  If the intervals are right the count is Binomial(40, 0.95) (mean 38,
    sd 1.4); P(count ≤ 33) = 0.0034, so a correct method fails this 0.3 % of the time for a
    fresh seed set (the seeds here are fixed: the test is deterministic); intervals that
    really covered 80 % would pass only with P(count ≥ 34) = 0.29."""
    prob, truth, _ = problem
    hits = np.zeros(2, int)
    for seed in range(40):
        p = synthetic(problem, 1000 + seed)
        r = fm.fit(base, p.obs, None, problem=p, profile=False)
        sd = np.array([r.sd_ln[CL], r.sd_ln[UPTAKE]])
        hits += np.abs(r.theta - truth) <= fm.Z95 * sd
    assert np.all(hits >= 34) and np.all(hits <= 40), hits


def test_profile_close_to_wald_on_near_linear_problem(base, problem):
    """With 2 % noise the model is nearly linear in ln p over the interval, so the profile
    interval matches the Wald interval to 3 % of its half-width."""
    p = synthetic(problem, 7, sigma=0.02)
    r = fm.fit(base, p.obs, None, problem=p)
    for i, path in enumerate((CL, UPTAKE)):
        wlo, whi = np.log(r.wald[path])
        plo, phi = np.log(r.profile[path]["ci"])
        half = (whi - wlo) / 2
        assert abs(plo - wlo) < 0.03 * half and abs(phi - whi) < 0.03 * half, (wlo, plo, whi, phi)


def test_unidentifiable_parameter_flagged(base):
    """Plasma only: the uptake rate does not change plasma in the toy: no information."""
    rows = ["time_h,tissue,analyte,value,unit"] + [
        f"{t:g},plasma,drug,{50 * math.exp(-0.15 * t) * (1 + 0.05 * (-1) ** i):g},ug/mL"
        for i, t in enumerate(TIMES_H)]
    obs = ob.parse("\n".join(rows), "plasma.csv")
    r = fm.fit(base, obs, [CL, UPTAKE], model=toy_model)
    assert r.identifiable[CL] and not r.identifiable[UPTAKE]
    assert any(UPTAKE in w and "no information" in w for w in r.warnings)
    assert r.wald[CL] is not None and r.wald[UPTAKE] is None


def test_error_models_and_data_checks(base, problem):
    prob, truth, clean = problem
    for em in ("proportional", "additive"):
        p = fm.Problem(base, design(), [CL, UPTAKE], model=toy_model, error_model=em)
        p = p.with_values(clean * (1 + 0.05 * np.cos(np.arange(clean.size))), 0.05 * clean)
        r = fm.fit(base, p.obs, None, problem=p, profile=False)
        assert r.converged and np.all(np.abs(r.theta - truth) < 0.1), (em, r.theta)
    mixed = design().with_values(clean, np.where(np.arange(clean.size) < 3, np.nan, 1.0))
    with pytest.raises(fm.ObservationError, match="some rows give an sd"):
        fm.Problem(base, mixed, [CL], model=toy_model)
    zero = design().with_values(np.where(np.arange(clean.size) == 0, 0.0, clean))
    with pytest.raises(fm.ObservationError, match="value = 0 on line"):
        fm.Problem(base, zero, [CL], model=toy_model)
    late = ob.parse("time_h,tissue,analyte,value,unit\n1,plasma,drug,1,ug/mL\n"
                    "80,plasma,drug,1,ug/mL\n3,plasma,drug,1,ug/mL\n")
    with pytest.raises(fm.ObservationError, match="line 3: time_h = 80: allowed: times within"):
        fm.Problem(base, late, [CL], model=toy_model)
    with pytest.raises(sc.ScenarioError, match="--error-model"):
        fm.Problem(base, design(), [CL], model=toy_model, error_model="poisson")


def test_command_writes_files_and_fitted_toml_loads(tmp_path, monkeypatch, base, problem):
    from nanotransport import cli

    monkeypatch.setattr(fm, "_default_model", lambda: toy_model)
    p = synthetic(problem, 5)
    data = tmp_path / "study.csv"
    data.write_text("# synthetic study from the toy model\n" + ob.to_csv(p.obs))
    out = tmp_path / "out"
    rc = cli.main(["fit", "doxil-mouse", str(data), "--param", "carrier_clearance_scale",
                   "--param", UPTAKE, "--out", str(out), "--no-compile-cache"])
    assert rc == 0
    for f in ("fit.json", "fitted.toml", "fit_observed_vs_predicted.png", "fit_time_courses.png"):
        assert (out / f).is_file(), f
    rep = json.loads((out / "fit.json").read_text())
    assert len(rep["rows"]) == len(p.obs) and rep["parameters"][CL]["ci95_profile"][0]
    back = sc.load(str(out / "fitted.toml"))
    assert back[CL] == pytest.approx(rep["parameters"][CL]["value"], rel=1e-12)
    assert back["formulation.name"] == base["formulation.name"]
    assert back.static == base.static


def test_command_reports_bad_rows(tmp_path, capsys):
    from nanotransport import cli

    data = tmp_path / "bad.csv"
    data.write_text("time_h,tissue,analyte,value,unit\n1,plasma,drug,1,ug/mL\n1,lung,drug,1,"
                    "ug/mL\n")
    rc = cli.main(["fit", "doxil-mouse", str(data), "--param", CL, "--out",
                   str(tmp_path / "o"), "--no-compile-cache"])
    assert rc == 2 and "line 3: tissue = 'lung'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_real_organ_model_recovery_and_jacobian():
    """The organ model (``organs.predict``) of doxil-mouse: data from K_liver twice the
    scenario's (plasma drug, liver free and total drug; 15 % log-normal noise): the AD Jacobian
    matches central differences to 1e-5 of each column's largest entry, and the fit recovers
    K_liver within both 95 % intervals."""
    organs = pytest.importorskip("nanotransport.model.organs")
    if not hasattr(organs, "predict"):
        pytest.skip("organs.predict not there yet")
    base = sc.load("doxil-mouse")
    k = "organs.partition_liver"
    rows = ["time_h,tissue,analyte,value,unit,sd"] + [
        f"{t:g},{tis},{an},1,ug/g,0.1" for tis, an in (("plasma", "drug"),
                                                      ("liver", "free_drug"), ("liver", "drug"))
        for t in (1, 4, 24, 48)]
    prob = fm.Problem(base, ob.parse("\n".join(rows)), [k])
    truth = np.log([2.0])
    chk = fm.jacobian_check(prob, truth)
    assert chk["max_rel_error"] < 1e-5, chk["max_rel_error"]
    clean = np.asarray(prob.predict(truth))
    noisy = clean * np.exp(0.15 * np.random.default_rng(1).normal(size=clean.size))
    p = prob.with_values(noisy, noisy * math.sqrt(math.expm1(0.15 ** 2)))
    r = fm.fit(base, p.obs, None, problem=p)
    true_k = 2.0 * float(base[k])
    assert r.converged and r.identifiable[k], r.warnings
    assert r.wald[k][0] < true_k < r.wald[k][1], (r.wald[k], true_k)
    assert r.profile[k]["ci"][0] < true_k < r.profile[k]["ci"][1], (r.profile[k], true_k)


@pytest.mark.slow
def test_fits_shipped_datasets():
    """Each dataset in nanotransport/data/ fits on doxil-mouse (one parameter the rows
    inform); tumor rows run the whole simulation inside the Jacobian (minutes)."""
    from pathlib import Path

    import nanotransport

    base = sc.load("doxil-mouse")
    for f in sorted((Path(nanotransport.__file__).parent / "data").glob("*.csv")):
        obs = ob.load(f, t_end_h=float(base["numerics.t_end_h"]))
        r = fm.fit(base, obs, ["organs.mps_share_spleen"], profile=False)
        assert r.converged and np.isfinite(r.chi2), f
