"""Heating, triggered release and active targeting (issue: model II)."""
import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from nanotransport import cells, fv, grid as grids, heat, linalg, properties as props
from nanotransport import scenario as sc
from nanotransport import simulate as sim, solver, summary, tissue
from nanotransport.model.scenario import ScenarioError

SMALL = ["numerics.cells=40", "numerics.t_end_h=24", "numerics.max_dt_min=30",
         "numerics.save_times_h=[0, 1, 4, 24]"]


def metrics(name, *overrides):
    s = sc.load(name, SMALL + list(overrides))
    r = sim.simulate(s)
    return r, summary.metrics(r)


# ---------------------------------------------------------------- temperature
def test_pennes_transient_slab_mode_decay():
    """ρc ∂θ/∂t = k θ'' − W θ on a zero-flux slab: θ = cos(πx/L) exp(−(W + kπ²/L²) t/ρc)."""
    rho_c, k, w, L = 1056 * 3700.0, 0.57, 22545.0, 0.02
    rate = (w + k * math.pi**2 / L**2) / rho_c
    errs = []
    for n in (25, 50, 100):
        g = grids.slab(L, n)
        x = g.centers[0]
        tr = fv.Transport(diffusivity=jnp.full((1, n), k), capacity=jnp.full((1, n), rho_c))
        step = solver.strang_step(g, tr, lambda t, th: -w / rho_c * th)
        _, th = solver.integrate(step, jnp.asarray(np.cos(np.pi * x / L))[None], [300.0],
                                 max_dt=600.0 / n, steps_per_macro=1)  # exactly uniform steps
        exact = np.cos(np.pi * x / L) * math.exp(-rate * 300.0)
        errs.append(np.max(np.abs(np.asarray(th[-1, 0]) - exact)) / math.exp(-rate * 300.0))
    assert errs[-1] < 2e-3
    assert math.log2(errs[0] / errs[1]) > 1.8 and math.log2(errs[1] / errs[2]) > 1.8, errs


# a convergence study at two heating steps (the closed form: verify pennes_far_field)
@pytest.mark.slow
def test_heated_model_converges_to_steady_pennes_rise():
    """Fixed 1-W focus held for 2 h: the model's temperature rise converges to the steady Pennes
    solution (with the same far-field boundary) as the heating step shrinks (Strang splitting
    error); the tumor centre is within 1% at the default 1-min step."""
    errs = []
    for dt in (1.0, 0.25):
        s = sc.load("thermodox", ["heating.source=ultrasound", "heating.power_w=1.0",
                                  "heating.heating_start_min=0",
                                  "heating.heating_duration_min=180", "numerics.t_end_h=2",
                                  "numerics.save_times_h=[0, 2]", "numerics.cells=60",
                                  f"numerics.heating_max_dt_min={dt}"])
        r = sim.simulate(s)
        lay = tissue.layout(s)
        mp = tissue.tissue_maps(lay, s)
        bcs = heat.deviation_boundaries(heat.far_field_boundaries(
            lay.grid, mp.thermal_conductivity, mp.blood_heat_sink, 37.0))
        tr = fv.Transport(diffusivity=mp.thermal_conductivity[None], boundaries=bcs)
        steady = np.asarray(linalg.solve_steady(lay.grid, tr, r.inputs.heating.deposit,
                                                reaction_rate=mp.blood_heat_sink).solution)
        rise = np.asarray(r.field("temperature")[-1]) - 37.0
        errs.append(np.max(np.abs(rise - steady)))
        if dt == 1.0:
            assert abs(rise[0] - steady[0]) < 1e-2 * steady[0]
    assert errs[1] < errs[0] / 4, errs  # at least first order in the step (measured ≈ 5.9×)


def test_controller_holds_target_at_probe():
    s = sc.load("thermodox", ["numerics.cells=40", "numerics.t_end_h=2",
                              "numerics.save_times_h=[0, 0.5, 0.75, 1.0, 1.25, 2]",
                              "heating.target_region=probe", "heating.control_readout=probe"])
    r = sim.simulate(s)
    t_probe = np.asarray(r.field("temperature"))[:, 0]
    assert np.all(np.abs(t_probe[1:4] - 42.0) < 0.1), t_probe  # heating 15-75 min
    assert abs(t_probe[-1] - 37.0) < 0.05  # cooled down after


def test_cem43_closed_form():
    """R^(43 − T) times the documented cutoff factor σ((T − 39)/0.2) (1 − 2e-9 at 43 °C)."""
    cut = lambda t: 1.0 / (1.0 + math.exp(-(t - 39.0) / 0.2))  # noqa: E731
    assert abs(float(cells.cem43_rate(43.0)) * 60 - cut(43.0)) < 1e-12  # R^0 = 1 whichever R
    assert abs(float(cells.cem43_rate(45.0)) * 60 - 0.5**-2 * cut(45.0)) < 1e-6
    assert abs(float(cells.cem43_rate(41.0)) * 60 - 0.25**2 * cut(41.0)) < 1e-6
    assert abs(cut(43.0) - 1.0) < 1e-8


def test_cem43_not_counted_at_body_temperature():
    """72 h at 37 °C: R = 0.25 alone would give 4320/4096 ≈ 1.05 min; the cutoff < 1e-3 min."""
    assert float(cells.cem43_rate(37.0)) * 72 * 3600 < 1e-3


# ---------------------------------------------------------------- release
def test_thermodox_release_at_constant_temperature():
    s = sc.load("thermodox")
    p = {k.split(".")[1]: v for k, v in s.params.items() if k.startswith("formulation.")}
    k = lambda t_c: props.release_rate(t_c, p["release_temperature_C"],  # noqa: E731
                                       p["release_transition_width_C"],
                                       p["leak_rate_per_h"] / 3600, p["release_max_rate_per_s"])
    released_42 = 1 - math.exp(-float(k(42.0)) * 20.0)
    released_37 = 1 - math.exp(-float(k(37.0)) * 60.0)
    assert abs(released_42 - 0.60) <= 0.05, released_42
    assert released_37 < 0.05, released_37


def test_plasma_leakage_grows_as_release_temperature_lowered():
    leaks = []
    for tm in (43.0, 41.0, 39.5, 38.0):
        params, _ = sim.systemic_parameters(sc.load("thermodox", [f"release_temperature_C={tm}"]))
        leaks.append(float(params.k_leak_plasma))
    assert all(a < b for a, b in zip(leaks, leaks[1:])), leaks
    assert leaks[-1] > 10 * leaks[0]


# ---------------------------------------------------------------- targeting
def test_receptor_binding_constant_ligand_analytic():
    """At constant carrier concentration and k_int = 0: b(t) = b_eq (1 − e^{−(k_on c_p + k_off) t}),
    b_eq = R_T c_p/(c_p + K_d) (particles), to 1e-8."""
    n_payload, r_t = 1e4, 2e-6  # drug per particle; receptors mol/m³
    k_on, k_off = cells.effective_binding_rates(3e5, 1.0, 30.0)
    c = 5e-6 * n_payload  # drug-equivalent carriers; c_p = 5e-6 mol/m³ particles

    def rhs(t, y):
        out = cells.binding_rates(c, c, y[0], y[1], 0.0, 0.0, r_t, n_payload, float(k_on),
                                  float(k_off), 0.0, 0.0, 0.0, 0.0)
        return [float(out["bound"]), float(out["bound_payload"])]

    t = np.linspace(0, 3 * 3600, 7)
    sol = solve_ivp(rhs, (0, t[-1]), [0.0, 0.0], t_eval=t, method="LSODA", rtol=1e-12,
                    atol=1e-20)
    cp = c / n_payload
    kd = float(k_off / k_on)
    b_eq = r_t * cp / (cp + kd)
    exact = b_eq * (1 - np.exp(-(float(k_on) * cp + float(k_off)) * t))
    np.testing.assert_allclose(sol.y[0] / n_payload, exact, rtol=1e-8, atol=1e-8 * b_eq)


def test_avidity_lowers_effective_kd():
    kd = [float(k_off / k_on) for k_on, k_off in
          (cells.effective_binding_rates(3e5, 1.0, n) for n in (1.0, 10.0, 100.0))]
    assert kd[0] > kd[1] > kd[2]


# ---------------------------------------------------------------- whole model
@pytest.mark.parametrize("name", ["thermodox", "targeted"])
def test_conservation_with_new_pathways(name):
    r, m = metrics(name)
    assert float(m["mass_balance_error"]) < 1e-10
    released = sum(float(m[k]) for k in ("released_in_plasma_fraction",
                                         "released_in_tissue_vessels_fraction",
                                         "released_in_interstitium_fraction",
                                         "released_in_cells_fraction"))
    assert abs(released - float(m["fraction_released"])) < 1e-9


def test_heating_helps_thermodox_not_doxil():
    _, heated = metrics("thermodox")
    _, cold = metrics("thermodox-unheated")
    assert float(heated["tumor_drug_peak_ug_per_g"]) > 1.5 * float(cold["tumor_drug_peak_ug_per_g"])
    assert float(heated["tumor_intracellular_auc_ug_h_per_g"]) > 1.3 * float(
        cold["tumor_intracellular_auc_ug_h_per_g"])
    _, doxil_heated = metrics("doxil", "heating.source=controlled",
                              "heating.heating_start_min=15", "heating.heating_duration_min=60")
    _, doxil = metrics("doxil")
    ratio = float(doxil_heated["tumor_drug_auc_ug_h_per_g"]) / float(doxil["tumor_drug_auc_ug_h_per_g"])
    assert abs(ratio - 1) < 0.05, ratio


@pytest.mark.slow  # three heated runs; heating's effect: test_heating_helps_thermodox_not_doxil
def test_longer_heating_delivers_more():
    auc = [float(metrics("thermodox", f"heating.heating_duration_min={d}")[1]
                 ["tumor_intracellular_auc_ug_h_per_g"]) for d in (20, 40, 60)]
    assert auc[0] < auc[1] < auc[2], auc


def test_targeting_raises_intracellular_fraction_more_than_uptake():
    _, passive = metrics("targeted", "formulation.ligands_per_particle=1e-9")
    _, active = metrics("targeted")
    uptake_gain = float(active["tumor_drug_auc_ug_h_per_g"]) / float(passive["tumor_drug_auc_ug_h_per_g"])
    inside_gain = float(active["tumor_intracellular_fraction"]) / float(passive["tumor_intracellular_fraction"])
    assert inside_gain > 3 * uptake_gain, (inside_gain, uptake_gain)
    assert float(active["tumor_bound_internalized_fraction"]) > 0.3


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("override,message", [
    ("heating.power_w=-1", r"heating.power_w = -1 is out of range; allowed: a number in \[0, 1000\] W"),
    ("release_temperature_C=65", r"formulation.release_temperature_C = 65 is out of range; "
                                 r"allowed: a number in \[30, 60\]"),
    ("release_temperature_C=25", r"release_temperature_C = 25 is out of range"),
    ("tissue.tumor.receptors_per_cell=-5", r"tissue.tumor.receptors_per_cell = -5 is out of range"),
    ("heating.source=laser", r"heating.source = 'laser' is not allowed; allowed: one of 'none', "
                             r"'ultrasound', 'protocol', 'controlled', 'regional'"),
])
def test_bad_heating_and_targeting_input(override, message):
    with pytest.raises(ScenarioError, match=message):
        sc.load("thermodox", [override])
