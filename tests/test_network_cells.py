"""Cells in the network model's tissue (``network_delivery.CellUptake``): uptake of free drug
and its binding in the nucleus against an accurate solution of the same ODEs, second order in
the step, drug conserved; bad constants named; the network run's intracellular outputs.
Macrophages and carrier breakdown (``network_delivery.Macrophages``): the exact exponential,
drug conserved with cells, the run's outputs.  Receptor binding (``ReceptorBinding``): its
closed-form equilibrium, second order against the ODE with drug conserved, bad constants; a
targeted network run end to end."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from nanotransport import cli
from nanotransport.engine import grid as grids
from nanotransport.model import haemodynamics as hm
from nanotransport.model import network_delivery as nd
from nanotransport.model.scenario import load
from nanotransport.model.vessel_network import PRESSURE, VesselNetwork
from nanotransport.studies import network_run

PHI_E = 0.4
#: the doxil scenario's tumor cells (``cells.uptake_constants``: φ_c 0.53, 3e8 cells/mL)
REALISTIC = dict(volume_fraction=0.53, unbound_fraction=0.3077, uptake_vmax=4.86e-5,
                 uptake_ke=4.03e-4, uptake_ki=1.427e-2, nuclear_binding_rate=2.78e-4,
                 nuclear_release_rate=7.78e-6, nuclear_capacity=1.979)
F0 = 1.724e-3  # mol/m³ of interstitial fluid: 1 µg/mL of doxorubicin


def _closed_tissue():
    """A 3 × 3 × 1 grid of 100-µm cells crossed by one vessel whose wall passes nothing, so
    the tissue is closed: only the cells act on the free drug."""
    h = 1e-4
    g = grids.cartesian3d((3 * h, 3 * h, h), (3, 3, 1))
    pos = np.array([[0.0, 1.5 * h, 0.5 * h], [3 * h, 1.5 * h, 0.5 * h]])
    net = VesselNetwork(node_position_m=pos, segment_nodes=[[0, 1]], segment_radius_m=[5e-6],
                        segment_length_m=[3 * h], boundary_node=[0, 1],
                        boundary_kind=[PRESSURE, PRESSURE], boundary_value=[2e3, 0.0],
                        boundary_hematocrit=[0.45, np.nan])
    solutes = [nd.Solute("carrier", 0.0, 1e-11, PHI_E), nd.Solute("free", 0.0, 1e-10, PHI_E)]
    return g, nd.assemble(net, g, hm.solve(net, hm.Rheology()), solutes)


def _reference(cells: nd.CellUptake, t_s):
    """(f, a, n, ∫ n dt) at ``t_s`` from SciPy's Radau at rtol 1e-11 (the same right-hand
    side)."""
    rates = jax.jit(lambda y: cells.rates(PHI_E, y[:, None])[:, 0])  # one dispatch a call

    def rhs(_, y):
        return np.asarray(rates(jnp.asarray(y)))

    sol = solve_ivp(rhs, (0.0, t_s[-1]), [F0, 0.0, 0.0, 0.0], method="Radau", t_eval=t_s,
                    rtol=1e-11, atol=1e-16)
    assert sol.success
    return sol.y.T


def _run(cells, t_end_s, dt_s, carrier0=0.0, release=None, macrophages=None):
    g, asm = _closed_tissue()
    c0 = jnp.stack([jnp.full(g.shape, carrier0), jnp.full(g.shape, F0)])
    return nd.run(asm, lambda t: jnp.zeros(2), t_end_s, dt_s, c0=c0, cells=cells,
                  release=release, macrophages=macrophages)


def _generator(k_rel, k_m, k_d, phi0, phi1):
    """d/dt of the amounts (φ₀ c₀, M, φ₁ f) per tissue volume under release, phagocytosis and
    digestion (``network_delivery`` module docstring), as a matrix."""
    return np.array([[-(k_rel + k_m), 0.0, 0.0],
                     [k_m, -k_d, 0.0],
                     [k_rel, k_d, 0.0]])


@pytest.mark.parametrize("k_d_over_k", [0.3, 1.0, 1.0 + 1e-9, 4.0])
def test_interstitial_exchange_is_the_exact_exponential(k_d_over_k):
    """Release, phagocytosis and digestion over one interval against SciPy's matrix
    exponential of the same linear system (digestion slower, equal to, within 1e-9 of, and
    faster than the carrier's loss: the ψ = (1 − e^(−x))/x branch at x = 0)."""
    k_rel, k_m, phi0, phi1, tau = 2e-5, 3e-5, 0.4, 0.35, 900.0
    k_d = k_d_over_k * (k_rel + k_m)
    start = np.array([1.3, 0.2, 0.7])  # c₀, M, f
    c, m, f = nd.interstitial_exchange(*map(jnp.asarray, start), k_rel, k_m, k_d, phi0, phi1,
                                       tau)
    amounts = expm(_generator(k_rel, k_m, k_d, phi0, phi1) * tau) @ (
        start * np.array([phi0, 1.0, phi1]))
    np.testing.assert_allclose([float(c) * phi0, float(m), float(f) * phi1], amounts,
                               rtol=1e-13)


def test_macrophages_in_the_tissue_follow_the_linear_ode_and_conserve_drug():
    """A closed, uniform tissue of carriers: with release and macrophages alone each step is
    exact (the split pieces are exact exponentials and transport leaves a uniform field), so
    the tissue follows expm to round-off; with the cells' uptake as well, φ_e (c + f) + M +
    φ_c (a + n) stays φ_e (c₀ + f₀) every step."""
    k_rel, k_m, k_d = 1e-5, 4e-5, 2e-5
    release = nd.Release(lambda t: jnp.full(1, k_rel), lambda t: k_rel)
    phagocytes = nd.Macrophages(uptake_rate=k_m, digestion_rate=k_d)
    dt, c_start = 900.0, 2 * F0
    out = _run(None, 6 * 3600.0, dt, c_start, release, phagocytes)
    times = out["step_times_s"]
    start = np.array([PHI_E * c_start, 0.0, PHI_E * F0])
    exact = np.stack([expm(_generator(k_rel, k_m, k_d, PHI_E, PHI_E) * t) @ start
                      for t in times])
    got = np.column_stack([out["tissue_mean"][:, 0], out["macrophages_mean"],
                           out["tissue_mean"][:, 1]])
    np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-15 * start.sum())
    assert exact[-1, 1] > 0.1 * start[0]  # the macrophages hold a real share
    with_cells = _run(nd.CellUptake(**REALISTIC), 2 * 3600.0, dt, c_start, release,
                      phagocytes)
    total = (with_cells["tissue_mean"].sum(axis=1) + with_cells["macrophages_mean"]
             + with_cells["cells_mean"].sum(axis=1))
    np.testing.assert_allclose(total, PHI_E * (c_start + F0), rtol=1e-12)


def test_macrophages_need_release_and_valid_rates():
    g, asm = _closed_tissue()
    with pytest.raises(ValueError, match="macrophages need release"):
        nd.run(asm, lambda t: jnp.zeros(2), 900.0, 900.0,
               macrophages=nd.Macrophages(uptake_rate=1e-5, digestion_rate=1e-5))
    with pytest.raises(ValueError, match="digestion_rate = -1.0 1/s; allowed >= 0"):
        nd.Macrophages(uptake_rate=1e-5, digestion_rate=-1.0)


#: saturable binding on the time scale of hours (receptors for 1e-3 mol/m³ of drug-equivalent
#: at 10 drug molecules per particle, against 1.4e-3 of carrier in the fluid)
SLOW_BINDING = dict(receptors=1e-4, payload_per_particle=10.0, on_rate=1.0, off_rate=2e-5,
                    internalization_rate=5e-5, intracellular_release_rate=3e-5,
                    degradation_rate=1e-5, pinocytosis_rate=2e-5)


def _binding_run(binding, cells, t_end_s, dt_s, k_rel, carrier0=2 * F0):
    g, asm = _closed_tissue()
    c0 = jnp.stack([jnp.full(g.shape, carrier0), jnp.full(g.shape, F0)])
    release = nd.Release(lambda t: jnp.full(1, k_rel), lambda t: k_rel)
    return nd.run(asm, lambda t: jnp.zeros(2), t_end_s, dt_s, c0=c0, cells=cells,
                  release=release, binding=binding)


def test_receptor_binding_reaches_its_closed_form_equilibrium():
    """Without internalization, endocytosis or release, the carriers of a closed tissue and
    the receptors settle where k_on c R_free = k_off b with φ₀ c + b = φ₀ c_start, a quadratic
    in b (the smaller root); 24 h is ~100 binding time scales.  Receptors saturate here: the
    bound drug is 65 % of the capacity N R_T."""
    binding = nd.ReceptorBinding(**{**SLOW_BINDING, "on_rate": 10.0, "off_rate": 1e-3,
                                    "internalization_rate": 0.0, "pinocytosis_rate": 0.0})
    cells = nd.CellUptake(**{**REALISTIC, "uptake_vmax": 0.0})
    out = _binding_run(binding, cells, 24 * 3600.0, 900.0, 0.0)
    n, r_t, k = 10.0, 1e-4, 1e-3 / 10.0
    c_start = 2 * F0
    b = np.min(np.roots([1 / (PHI_E * n), -(r_t / PHI_E + c_start / n + k), c_start * r_t]))
    fields = np.asarray(out["binding"][-1]).reshape(4, -1)
    np.testing.assert_allclose(fields[0], b, rtol=1e-8)  # bound carriers
    np.testing.assert_allclose(fields[1], b, rtol=1e-8)  # and their payload (no leak)
    np.testing.assert_allclose(out["tissue_mean"][-1, 0], PHI_E * c_start - b, rtol=1e-8)
    assert 0.6 < b / (n * r_t) < 0.7  # 0.647


def test_receptor_binding_is_second_order_and_conserves_drug():
    """Binding, internalization, endocytosis, release of the bound and internalized payload,
    and the cells' uptake (slowed 100×) together: carrier, free drug, cells' drug and the
    bound and internalized payload converge at second order to SciPy's Radau on the same
    right-hand sides, and φ₀ c₀ + φ₁ f + φ_c (a + n) + e_b + e_q stays put to round-off."""
    k_rel = 1e-5
    binding = nd.ReceptorBinding(**SLOW_BINDING)
    cells = nd.CellUptake(**{**REALISTIC, "uptake_vmax": REALISTIC["uptake_vmax"] / 100})
    phi_c = REALISTIC["volume_fraction"]

    @jax.jit  # one dispatch per call of the reference integrator
    def rates(y):  # y = c₀, f, a, n, b, e_b, q, e_q
        y = y[:, None]
        bind = binding.rates(PHI_E, k_rel, jnp.concatenate([y[:1], y[4:], jnp.zeros((2, 1))]))
        cell = cells.rates(PHI_E, jnp.concatenate([y[1:4], jnp.zeros((1, 1))]))
        return jnp.concatenate([
            bind[:1] - k_rel * y[:1], cell[:1] + (bind[5:6] + k_rel * PHI_E * y[:1]) / PHI_E,
            cell[1:2] + bind[6:7] / phi_c, cell[2:3], bind[1:5]])[:, 0]

    def rhs(_, y):
        return np.asarray(rates(jnp.asarray(y)))

    t_end = 4 * 3600.0
    sol = solve_ivp(rhs, (0.0, t_end), [2 * F0, F0, 0, 0, 0, 0, 0, 0], method="Radau",
                    rtol=1e-11, atol=1e-16)
    assert sol.success
    y = sol.y[:, -1]
    exact = np.array([PHI_E * y[0], PHI_E * y[1], phi_c * (y[2] + y[3]), y[5], y[7]])
    start = PHI_E * 3 * F0
    errors = []
    for dt in (600.0, 300.0):
        out = _binding_run(binding, cells, t_end, dt, k_rel)
        total = (out["tissue_mean"].sum(axis=1) + out["cells_mean"].sum(axis=1)
                 + out["binding_mean"].sum(axis=1))
        np.testing.assert_allclose(total, start, rtol=1e-12)  # every step
        got = np.array([*out["tissue_mean"][-1], out["cells_mean"][-1].sum(),
                        *out["binding_mean"][-1]])
        errors.append(np.abs(got - exact) / np.abs(exact))
    assert exact[3] > 0.05 * start and exact[4] > 0.05 * start  # the pools are not trivial
    assert np.all(errors[1] < 1e-3), errors  # 6e-5, 4.8e-4, 1.5e-6, 1.5e-5, 5e-6 measured
    order = np.log2(errors[0] / errors[1])
    assert np.all((1.8 < order) & (order < 2.2)), (errors, order)  # 1.95-2.01 measured


def test_receptor_binding_is_differentiable():
    """Forward-mode derivatives of the tissue's bound and internalized payload and its free
    drug at 2 h with respect to the receptor density, k_on and k_int (through the binding's
    Newton stages and the positivity guard) against central differences, rtol 1e-6."""
    cells = nd.CellUptake(**{**REALISTIC, "uptake_vmax": REALISTIC["uptake_vmax"] / 100})
    g, asm = _closed_tissue()
    c0 = jnp.stack([jnp.full(g.shape, 2 * F0), jnp.full(g.shape, F0)])
    release = nd.Release(lambda t: jnp.full(1, 1e-5), lambda t: 1e-5)

    def outputs(log_scales):
        scale = jnp.exp(log_scales)
        binding = nd.ReceptorBinding(**{
            **SLOW_BINDING, "receptors": SLOW_BINDING["receptors"] * scale[0],
            "on_rate": SLOW_BINDING["on_rate"] * scale[1],
            "internalization_rate": SLOW_BINDING["internalization_rate"] * scale[2]})
        out = nd.run(asm, lambda t: jnp.zeros(2), 7200.0, 900.0, c0=c0, cells=cells,
                     release=release, binding=binding)
        return jnp.concatenate([out["binding_mean"][-1], out["tissue_mean"][-1, 1:]]) / F0

    jac = np.asarray(jax.jit(jax.jacfwd(outputs))(jnp.zeros(3)))
    f = jax.jit(outputs)
    h = 1e-5
    fd = np.stack([(np.asarray(f(jnp.zeros(3).at[i].set(h)))
                    - np.asarray(f(jnp.zeros(3).at[i].set(-h)))) / (2 * h) for i in range(3)],
                  axis=1)
    assert np.all(np.abs(fd) > 1e-4)  # every output responds to every constant
    np.testing.assert_allclose(jac, fd, rtol=1e-6)


def test_receptor_binding_needs_cells_and_valid_constants():
    g, asm = _closed_tissue()
    with pytest.raises(ValueError, match="binding needs cells"):
        nd.run(asm, lambda t: jnp.zeros(2), 900.0, 900.0,
               binding=nd.ReceptorBinding(**SLOW_BINDING))
    with pytest.raises(ValueError, match="payload_per_particle = 0.0; allowed > 0"):
        nd.ReceptorBinding(**{**SLOW_BINDING, "payload_per_particle": 0.0})
    with pytest.raises(ValueError, match="off_rate = nan; allowed >= 0"):
        nd.ReceptorBinding(**{**SLOW_BINDING, "off_rate": float("nan")})


def test_cell_uptake_is_second_order_and_conserves_drug():
    """Uptake slowed 100× (a 30-min time scale, no stiff transient): the free drug, the drug
    in cells and the nuclear exposure ∫ n dt converge at second order to the ODE solution, and
    φ_e f + φ_c (a + n) stays φ_e f₀ to round-off."""
    cells = nd.CellUptake(**{**REALISTIC, "uptake_vmax": REALISTIC["uptake_vmax"] / 100})
    t_end = 7200.0
    exact = _reference(cells, np.array([t_end]))[-1]
    errors = []
    for dt in (600.0, 300.0):
        out = _run(cells, t_end, dt)
        total = out["tissue_mean"][:, 1] + out["cells_mean"].sum(axis=1)
        np.testing.assert_allclose(total, PHI_E * F0, rtol=1e-12)  # conserved, every step
        fields = np.asarray(out["cells"][-1]).reshape(3, -1)  # uniform: every cell the same
        np.testing.assert_allclose(fields, fields[:, :1] * np.ones((3, 9)), rtol=1e-12)
        got = np.array([out["tissue_mean"][-1, 1] / PHI_E,
                        *(out["cells_mean"][-1] / REALISTIC["volume_fraction"]), fields[2, 0]])
        np.testing.assert_allclose(got[1:3], fields[:2, 0], rtol=1e-12)
        errors.append(np.abs(got - exact) / np.abs(exact))
    assert np.all(errors[1] < 2e-4), errors  # 9e-5, 7e-5, 2e-5, 2e-5 measured
    order = np.log2(errors[0] / errors[1])
    assert np.all((1.9 < order) & (order < 2.1)), (errors, order)  # 2.00-2.01 measured


def test_realistic_uptake_follows_the_ode_through_its_fast_transient():
    """The doxil scenario's constants: free drug enters cells in about 20 s (far below the
    1-min step; the L-stable stages damp it) and then binds DNA over hours; after 2 h the
    free, exchangeable and bound drug agree with the ODE solution to 1e-3 (6e-5, 6e-5 and
    1.2e-5 measured; 1.2e-4 at worst after the first 30 min)."""
    cells = nd.CellUptake(**REALISTIC)
    times = np.arange(1, 121) * 60.0
    exact = _reference(cells, times)
    out = _run(cells, times[-1], 60.0)
    got = np.column_stack([out["tissue_mean"][:, 1] / PHI_E,
                           out["cells_mean"] / REALISTIC["volume_fraction"]])
    np.testing.assert_allclose(float(np.asarray(out["cells"])[-1, 2, 0, 0, 0]), exact[-1, 3],
                               rtol=1e-3)  # the nuclear exposure ∫ n dt
    exact = exact[:, :3]
    assert np.all(got >= 0)
    np.testing.assert_allclose(got[30:], exact[30:], rtol=1e-3)  # after the first 30 min
    assert exact[-1, 0] < 0.1 * F0 and exact[-1, 2] > exact[-1, 1]  # the case is not trivial


@pytest.mark.parametrize("field, value", [("volume_fraction", 1.2), ("uptake_ke", 0.0),
                                          ("uptake_vmax", float("nan")),
                                          ("unbound_fraction", 0.0)])
def test_bad_cell_constants_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        nd.CellUptake(**{**REALISTIC, field: value})


def test_the_network_run_reports_drug_in_cells(tmp_path):
    """The synthetic network (small box, 1 h) with targeted carriers (the targeted scenario's
    ligands and HER2-high receptors in the tumor): the cells hold drug, and receptors hold
    carriers, written to the summary and the dataset (per tissue volume, non-negative, the
    DNA-bound part and the internalized payload within the intracellular drug, bound carriers
    in the tumor only), and the nuclear exposure kills some cells (the continuum model's kill
    model)."""
    out = tmp_path / "net"
    settings = ["network.box_mm=[0.4, 0.4, 0.4]", "network.tumor_radius_mm=0.15",
                "network.core_radius_mm=0.05", "numerics.t_end_h=1", "numerics.max_dt_min=15",
                "outputs.figures=false", "formulation.ligands_per_particle=30",
                "tissue.tumor.receptors_per_cell=1e6", "tissue.normal.receptors_per_cell=0"]
    assert cli.main(["network", "--out", str(out), "--quiet"]
                    + [a for setting in settings for a in ("--set", setting)]) == 0
    summary = json.loads((out / "network_summary.json").read_text())
    assert summary["tissue_final_intracellular_ug_per_ml"] > 0
    assert summary["tissue_final_nuclear_ug_per_ml"] > 0
    assert summary["tissue_auc_intracellular_ug_h_per_ml"] > 0
    assert 0 < summary["tumor_efficacy"] < 1
    # the receptors capture more carrier than the interstitial fluid holds (0.27 against
    # 0.014 µg/mL measured), and internalized carriers' payload is in the intracellular drug
    assert summary["tissue_final_bound_ug_per_ml"] > summary["tissue_final_carrier_ug_per_ml"]
    assert (0 < summary["tissue_final_internalized_ug_per_ml"]
            < summary["tissue_final_intracellular_ug_per_ml"])
    scenario = load("tumor-network", settings)
    grid = network_run.tissue_grid(network_run.network_of(scenario), scenario)
    tumor = network_run.tumor_cells(grid, scenario).reshape(grid.shape)
    with xr.open_dataset(out / "network.nc") as ds:
        for name in ("intracellular_ug_per_ml", "nuclear_ug_per_ml", "bound_payload_ug_per_ml",
                     "internalized_payload_ug_per_ml"):
            assert float(ds[name].min()) >= 0
            assert ds[name].dims == ("time", "x", "y", "z")
        assert float((ds.nuclear_ug_per_ml - ds.intracellular_ug_per_ml).max()) <= 0
        assert float((ds.internalized_payload_ug_per_ml - ds.intracellular_ug_per_ml).max()) <= 0
        bound = ds.bound_payload_ug_per_ml.values[-1]
    assert bound[tumor].min() > 0 and bound[~tumor].max() == 0  # receptors in the tumor only
