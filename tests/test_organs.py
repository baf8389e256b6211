"""The whole-body organ model (model/organs.py): conservation, closed forms, exposures."""
import jax
import numpy as np
import pytest

from nanotransport.engine import units
from nanotransport.model import organs, pk, scenario as sc, simulate

jax.config.update("jax_enable_x64", True)


def params_of(name, sets=()):
    s = sc.load(name, list(sets))
    p, dose = simulate.systemic_parameters(s)
    return s, p, dose


@pytest.mark.parametrize("name", ["doxil", "doxil-mouse", "free-dox", "conjugate"])
def test_columns_sum_to_zero_and_mass_is_conserved(name):
    s, p, dose = params_of(name)
    assert isinstance(p, organs.OrganParameters)
    a = np.asarray(p.matrix())
    assert np.abs(a.sum(axis=0)).max() <= 1e-12 * np.abs(a).max()
    # to a week: the exact step's round-off grows as 2^s ε with s squarings (pk.propagator)
    t = np.asarray([0.01, 1.0, 24.0, 72.0, 168.0]) * units.HOUR
    fe = float(s["formulation.encapsulated_fraction"])
    y = pk.simulate(p, t, dose, float(s["dose.infusion_duration_min"]) * units.MIN, fe)
    given = dose * np.clip(t / (float(s["dose.infusion_duration_min"]) * units.MIN), 0, 1)
    assert np.max(np.abs(np.asarray(y).sum(axis=1) - given)) / dose < 1e-10
    assert np.min(np.asarray(y)) > -1e-12 * dose


def test_steady_state_of_an_infusion_is_the_partition_coefficient():
    """Closed form: under a constant free-drug infusion every organ without elimination reaches
    C_o = K_o C_plasma; the liver C_liver = K_liver C_pl F/(F + CL_h)."""
    _, p, _ = params_of("free-dox", [f"organs.partition_{o}={k}" for o, k in
                                     zip(organs.ORGANS, (30, 40, 50, 20, 10, 35, 15, 25))])
    a = np.asarray(p.matrix())[:p.n_active, :p.n_active]
    b = np.zeros(p.n_active)
    b[organs.I_FREE_CENTRAL] = 1e-9  # mol/s
    y = np.linalg.solve(a, -b)
    c_pl = y[organs.I_FREE_CENTRAL] / float(p.plasma_volume_drug)
    c = y[organs.I_DRUG:organs.I_DRUG + organs.N_ORGANS] / np.asarray(p.volumes)
    k = np.asarray(p.partition)
    liver = organs.ORGANS.index("liver")
    f, clh = float(p.plasma_flows[liver]), float(p.cl_hepatic)
    expected = k * c_pl
    expected[liver] *= f / (f + clh)
    np.testing.assert_allclose(c, expected, rtol=1e-10)
    # and the plasma clearance at steady state is the label's (input / C_pl)
    s, p0, _ = params_of("free-dox")
    assert 1e-9 / c_pl == pytest.approx(float(p0.cl_urine) + f * clh / (f + clh), rel=1e-10)


def test_free_drug_clearance_is_the_species_clearance():
    """The well-stirred liver is set so that total-drug plasma clearance equals the sourced
    clearance of the compartmental set exactly (dose/AUC)."""
    for name in ("free-dox",):
        s = sc.load(name, ["patient.systemic_model=compartments"])
        ref, _ = simulate.systemic_parameters(s)
        _, p, _ = params_of(name)
        assert float(pk.clearance(p, False)) == pytest.approx(float(ref.cl), rel=1e-10)


def test_macrophages_release_into_their_organ():
    """With no leak, every bit of free drug in the body came out of MPS macrophages: at early
    times the liver holds most of it (its share of the uptake)."""
    s, p, dose = params_of("doxil-mouse", ["formulation.leak_rate_per_h=0",
                                           "organs.partition_liver=1000"])
    y = pk.simulate(p.replace(k_leak_plasma=0.0), np.asarray([2.0 * units.HOUR]), dose, 60.0,
                    1.0)[0]
    free = np.asarray(y[organs.I_DRUG:organs.I_DRUG + organs.N_ORGANS])
    assert free.sum() > 0
    assert np.argmax(free) == organs.ORGANS.index("liver")


def test_exposure_auc_is_exact():
    """The augmented-matrix AUC equals a fine trapezoid of the exact trajectory."""
    s, p, dose = params_of("doxil")
    t_end = 72.0 * units.HOUR
    infusion = float(s["dose.infusion_duration_min"]) * units.MIN
    auc = np.asarray(organs.exposure_auc(p, dose, infusion, 1.0, t_end))
    t = np.concatenate([np.linspace(0, infusion, 400), np.geomspace(infusion * 1.001, t_end,
                                                                    6000)])
    series = np.asarray(organs.exposure_series(p, t, dose, infusion, 1.0))
    trap = np.trapezoid(series, t, axis=0)
    np.testing.assert_allclose(auc, trap, rtol=2e-4)


def test_exposure_gradient_matches_finite_differences():
    s, p, dose = params_of("doxil")
    infusion = float(s["dose.infusion_duration_min"]) * units.MIN

    def heart(k):
        return organs.exposure_auc(p.replace(partition=p.partition.at[3].set(k)), dose,
                                   infusion, 1.0, 72.0 * units.HOUR)[0]

    k0 = float(p.partition[3])
    g = float(jax.grad(heart)(k0))
    # central differences at h = 1 % (truncation ~1e-7 here); smaller steps drown in the
    # matrix exponential's round-off (its squaring count also steps with K), ~1e-6 at 1e-4
    h = 1e-2 * k0
    fd = float((heart(k0 + h) - heart(k0 - h)) / (2 * h))
    assert g == pytest.approx(fd, rel=1e-5)


def test_predict_reads_organs_and_rejects_compartments():
    s = sc.load("doxil-mouse", [])
    v, dose = organs.predict(s, np.asarray([60.0]), np.asarray([0]),
                             np.asarray([organs.ANALYTES.index("carrier")]))
    # a minute after a bolus nearly all carriers are in plasma: dose / V_p
    _, p, _ = params_of("doxil-mouse")
    assert float(v[0]) == pytest.approx(float(dose / p.plasma_volume), rel=0.01)
    with pytest.raises(ValueError, match="systemic_model"):
        organs.predict(sc.load("doxil-mouse", ["patient.systemic_model=compartments"]),
                       np.asarray([60.0]), np.asarray([0]), np.asarray([0]))


def test_free_doxorubicin_is_its_own_reference():
    """The organ toxicities of free doxorubicin against the free-doxorubicin reference are 1
    (heart AUC, marrow), and carrier-borne skin exposure is 0."""
    from nanotransport.model import objective

    s = sc.load("free-dox", [])
    dose = simulate.systemic_parameters(s)[1]
    tox = objective.organ_toxicity(s, dose, float(s["dose.infusion_duration_min"]) * units.MIN,
                                   72.0 * units.HOUR)
    assert float(tox["tox_cardiac_auc"]) == pytest.approx(1.0, rel=1e-12)
    assert float(tox["tox_marrow"]) == pytest.approx(1.0, rel=1e-12)
    assert float(tox["tox_cardiac_peak"]) == pytest.approx(1.0, rel=1e-12)
    assert float(tox["tox_hand_foot"]) == 0.0
