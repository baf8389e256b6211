"""Release in the network model (``network_delivery.Release``), the lumen's bound/unbound
free drug, and the heated tissue's temperature (``network_heating``)."""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erfc

from nanotransport.engine import grid as grids
from nanotransport.model import haemodynamics as hm
from nanotransport.model import network_delivery as nd
from nanotransport.model import network_heating
from nanotransport.model.vessel_network import PRESSURE, VesselNetwork


def _one_vessel(n=3):
    """One straight vessel along x through the middle row of an n × n × 1 grid of 100-µm
    cells, driven by 2 kPa."""
    h = 1e-4
    g = grids.cartesian3d((n * h, n * h, h), (n, n, 1))
    pos = np.array([[0.0, 0.5 * n * h, 0.5 * h], [n * h, 0.5 * n * h, 0.5 * h]])
    net = VesselNetwork(node_position_m=pos, segment_nodes=[[0, 1]], segment_radius_m=[5e-6],
                        segment_length_m=[n * h], boundary_node=[0, 1],
                        boundary_kind=[PRESSURE, PRESSURE], boundary_value=[2e3, 0.0],
                        boundary_hematocrit=[0.45, np.nan])
    return net, g, hm.solve(net, hm.Rheology())


def test_tissue_release_is_exact_and_conserves_drug():
    net, g, state = _one_vessel()
    solutes = [nd.Solute("carrier", 0.0, 1e-11, 0.2), nd.Solute("free", 0.0, 1e-10, 0.4)]
    asm = nd.assemble(net, g, state, solutes)
    k = 2e-3
    release = nd.Release(lambda t: jnp.full(1, k), lambda t: jnp.full(g.shape, k))
    c0 = jnp.stack([jnp.ones(g.shape), jnp.zeros(g.shape)])
    out = nd.run(asm, lambda t: jnp.zeros(2), 600.0, 60.0, c0=c0, release=release)
    t = out["step_times_s"]
    mean = out["tissue_mean"]
    np.testing.assert_allclose(mean[:, 0], 0.2 * np.exp(-k * t), rtol=1e-12)
    np.testing.assert_allclose(mean.sum(axis=1), 0.2, rtol=1e-12)  # drug conserved


def test_time_dependent_tissue_release_is_second_order():
    net, g, state = _one_vessel()
    solutes = [nd.Solute("carrier", 0.0, 1e-11, 0.3), nd.Solute("free", 0.0, 1e-10, 0.3)]
    asm = nd.assemble(net, g, state, solutes)

    def rate(t):
        return 1e-3 * (1.0 + jnp.sin(t / 300.0))

    release = nd.Release(lambda t: rate(t) * jnp.ones(1), lambda t: rate(t) * jnp.ones(g.shape))
    c0 = jnp.stack([jnp.ones(g.shape), jnp.zeros(g.shape)])
    t_end = 1800.0
    exact = math.exp(-1e-3 * (t_end + 300.0 * (1.0 - math.cos(t_end / 300.0))))
    errors = [abs(float(nd.run(asm, lambda t: jnp.zeros(2), t_end, dt, c0=c0,
                               release=release)["tissue_mean"][-1, 0]) / 0.3 - exact)
              for dt in (300.0, 150.0)]
    assert 3.5 < errors[0] / errors[1] < 4.5  # second order
    assert errors[1] < 1e-3


def test_lumen_release_and_unbound_fraction_match_the_closed_form():
    # the tissue a perfect sink (fast decay): what it receives per second is what leaves the
    # lumen, from the exact solution along the vessel of
    #   e' = −(a₀ + k) e,   f' = k e − f_u a₁ f   (τ the transit time, a = PS/V)
    net, g, state = _one_vessel()
    fu, k, sink = 0.25, 0.2, 1e6
    solutes = [nd.Solute("carrier", 3e-7, 1e-11, 0.3, decay_per_s=sink),
               nd.Solute("free", 2e-6, 1e-10, 0.3, decay_per_s=sink, lumen_unbound_fraction=fu)]
    asm = nd.assemble(net, g, state, solutes)
    release = nd.Release(lambda t: jnp.full(1, k), lambda t: jnp.zeros(g.shape))
    e0, f0 = 1.0, 0.3
    out = nd.run(asm, lambda t: jnp.array([e0, f0]), 10.0, 1.0, release=release)
    received = np.asarray(out["tissue_amount_mol"][-1]) * sink  # mol/s
    flow = abs(float(asm.flow[0]))
    volume = float(asm.volume[0])
    tau = volume / flow
    ps = np.asarray(asm.gamma).sum(axis=0)
    a0, b = ps[0] / volume, fu * ps[1] / volume
    c = a0 + k

    def mean_exp(rate):  # (1/τ) ∫₀^τ e^(−rate s) ds
        return (1 - math.exp(-rate * tau)) / (rate * tau)

    mean_e = e0 * mean_exp(c)
    mean_f = f0 * mean_exp(b) + k * e0 * (mean_exp(c) - mean_exp(b)) / (b - c)
    np.testing.assert_allclose(received, [ps[0] * mean_e, fu * ps[1] * mean_f], rtol=1e-4)


def test_release_needs_two_species():
    net, g, state = _one_vessel()
    asm = nd.assemble(net, g, state, [nd.Solute("carrier", 1e-9, 1e-11)])
    release = nd.Release(lambda t: jnp.zeros(1), lambda t: jnp.zeros(g.shape))
    with pytest.raises(ValueError, match="release needs a carrier and a free species"):
        nd.run(asm, lambda t: jnp.ones(1), 60.0, 60.0, release=release)


def test_focus_shape_matches_the_screened_gaussian_closed_form():
    # steady Pennes with a Gaussian focus in uniform tissue, penetration 1/m = 1 mm ≪ the box:
    #   θ(r) = P/(8πkr) e^(m²s²/2) [e^(−mr) erfc((ms² − r)/(√2 s)) − e^(mr) erfc((ms² + r)/(√2 s))]
    n, width = 48, 12e-3
    g = grids.cartesian3d((width,) * 3, (n,) * 3, origin_m=(-width / 2,) * 3)
    k, m = 0.5, 1e3
    thermal = network_heating.Thermal(np.full(g.shape, k), np.full(g.shape, k * m**2),
                                      np.full(g.shape, 4e6))
    fwhm = 2e-3
    theta = np.asarray(network_heating.steady_shape(
        g, thermal, "ultrasound", region=np.ones(g.shape), focus_offset_m=0.0,
        focus_fwhm_m=fwhm, relaxation_per_s=0.05))
    s = fwhm / math.sqrt(8 * math.log(2))
    x = g.centers[0]
    line = theta[:, n // 2, n // 2]
    y0, z0 = g.centers[1][n // 2], g.centers[2][n // 2]
    r = np.sqrt(x**2 + y0**2 + z0**2)
    exact = (np.exp(m**2 * s**2 / 2) / (8 * np.pi * k * r)
             * (np.exp(-m * r) * erfc((m * s**2 - r) / (math.sqrt(2) * s))
                - np.exp(m * r) * erfc((m * s**2 + r) / (math.sqrt(2) * s))))
    near = r < 3e-3
    err = np.max(np.abs(line[near] - exact[near])) / np.max(exact)
    assert err < 2e-2


def test_protocol_temperature_holds_the_readout_at_the_set_point():
    from nanotransport.model.scenario import load
    from nanotransport.studies import network_run
    sc = load("thermodox-network")
    net = network_run.network_of(sc)
    g = network_run.tissue_grid(net, sc)
    tv = network_run.region_values(sc, "tumor")
    nv = network_run.region_values(sc, "normal")
    tumor = network_run.tumor_cells(g, sc)
    temp = network_run.tissue_temperature(sc, g, tumor, tv, nv)
    plateau = 60.0 * (15 + 30)  # inside the plateau
    cells = np.asarray(temp.cells(plateau))
    weights = np.asarray(g.volume).ravel() * tumor
    order = np.argsort(cells.ravel()[tumor])
    share = np.cumsum(weights[tumor][order]) / weights.sum()
    t90 = cells.ravel()[tumor][order][np.searchsorted(share, 0.1)]
    assert abs(t90 - 42.0) < 0.05  # the tumor's T90 at the target (cells of 50 µm)
    assert float(np.asarray(temp.cells(0.0)).max()) < 37.01  # before heating
    assert float(np.asarray(temp.cells(3 * 3600.0)).max()) < 37.01  # after it


def test_heated_capillary_is_the_networks_one_segment_case():
    # capillary.py (2D r-z, upwind lumen) against the network's exact segment map for the same
    # vessel: uniformly heated to 42 °C, tissue a perfect sink, inlet (carriers, encapsulated,
    # free) = (1, 1, 0.2); the capillary's outlet converges to it at first order in Δz
    from nanotransport.model import capillary as cap
    from nanotransport.model import network_transport, properties as props
    p = cap.CapillaryParameters.default().replace(plasma_velocity_m_per_s=5e-5)  # τ = 10 s
    heated = cap.HeatedSegment(0.0, p.length_m, 42.0, edge_width_m=1e-9)
    k = float(props.release_rate(42.0, p.release_temperature_C, p.release_width_C,
                                 p.leak_rate_per_s, p.release_max_rate_per_s))
    area = math.pi * p.capillary_radius_m**2
    wall = 2 * math.pi * p.capillary_radius_m * p.length_m
    ps = wall * np.array([p.carrier_permeability_m_per_s, p.carrier_permeability_m_per_s,
                          p.unbound_fraction * p.free_permeability_m_per_s])
    conversion = np.array([[0.0, 0.0, 0.0], [0.0, k, 0.0], [0.0, -k, 0.0]])
    maps = network_transport.segment_maps(
        jnp.array([p.plasma_velocity_m_per_s * area]), jnp.array([area * p.length_m]),
        jnp.asarray(ps[None]), jnp.asarray(conversion), jnp.zeros((1, 3)))
    inlet = np.array([1.0, 1.0, 0.2])
    exact = np.asarray(maps[0][0] @ inlet)
    assert 0.2 < exact[1] < 0.9  # a real share released in transit
    errors = []
    for shape in ((8, 25), (16, 50)):
        r = cap.simulate_capillary(p, cap.CapillaryInlet(*inlet), 40.0, save_times=[40.0],
                                   grid_shape=shape, max_dt_s=0.25, heated_segment=heated,
                                   initial_lumen=tuple(inlet), perfect_sink=True)
        outlet = np.asarray(r.lumen)[-1, :, -1]
        errors.append(np.max(np.abs(outlet - exact) / exact))
    assert errors[1] < 2e-2
    assert 1.6 < errors[0] / errors[1] < 2.4  # first order (upwind lumen)
