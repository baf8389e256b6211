"""Vessel networks: rheology laws, Kirchhoff solves, haemodynamics, segment-cell pieces, lumen
transport and delivery (the closed-form and reference checks are verify cases, run by
test_verify.py).  float64: conftest switches x64 on for the test process."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nanotransport.engine import graph, grid as grids
from nanotransport.model import haemodynamics as hm
from nanotransport.model import network_delivery as nd
from nanotransport.model import network_files, rheology, segment_cells
from nanotransport.model.vessel_network import PRESSURE, NetworkError, VesselNetwork
from nanotransport.studies import validate, verify_network as vn


@pytest.fixture(scope="module")
def mesentery():
    return network_files.read_network(vn.mesentery_path())


# ------------------------------------------------------------------ rheology
def test_in_vitro_law_limits():
    # Pries 1992: η_rel = 1 without cells; at H_D = 0.45, 220e^(−1.3D) + 3.2 − 2.44e^(−0.06D^0.645)
    d = np.array([5.0, 20.0, 100.0, 1000.0])
    np.testing.assert_allclose(rheology.in_vitro_relative_viscosity(d, 0.0), 1.0, atol=1e-12)
    eta45 = 220 * np.exp(-1.3 * d) + 3.2 - 2.44 * np.exp(-0.06 * d**0.645)
    np.testing.assert_allclose(rheology.in_vitro_relative_viscosity(d, 0.45), eta45, rtol=1e-12)
    assert abs(float(rheology.in_vitro_relative_viscosity(1e5, 0.45)) - 3.2) < 1e-3


def test_in_vivo_1994_without_cells_is_the_plasma_layer_factor():
    # Pries 1994: η_vivo = [1 + (η* − 1) f(H_D) (D/(D − 1.1))²] (D/(D − 1.1))², f(0) = 0
    d = np.array([4.0, 8.0, 30.0])
    np.testing.assert_allclose(rheology.in_vivo_relative_viscosity_1994(d, 0.0),
                               (d / (d - 1.1))**2, rtol=1e-12)


def test_surface_layer_2005_limits_and_continuity():
    w_ph, w_eff = rheology.surface_layer_um(np.array([1.0, 2.4]), 0.45)
    np.testing.assert_allclose([w_ph, w_eff], 0.0, atol=1e-15)  # no layer below D_off
    dc = rheology.ESL["D_crit"]
    lo, hi = rheology.surface_layer_um(np.array([dc - 1e-9, dc + 1e-9]), 0.45)[1]
    assert abs(lo - hi) < 1e-8  # W_peak is continuous at D_crit
    big = 1e5
    eta = float(rheology.in_vivo_relative_viscosity_2005(big, 0.45))
    assert abs(eta - float(rheology.in_vitro_relative_viscosity(big, 0.45))) < 1e-3


def test_phase_separation_conserves_cells_and_matches_the_sharp_law():
    x = np.linspace(0.0, 1.0, 201)
    args = (9.0, 6.0, 10.0, 0.45)
    fa = np.asarray(rheology.red_cell_fraction(x, *args))
    fb = np.asarray(rheology.red_cell_fraction(1 - x, args[1], args[0], *args[2:]))
    np.testing.assert_allclose(fa + fb, 1.0, atol=1e-12)
    sharp = np.asarray(rheology.red_cell_fraction(x, *args, width=0.0))
    assert np.max(np.abs(sharp - fa)) < 2e-3
    x0 = 0.964 * (1 - 0.45) / 10.0
    assert np.all(sharp[x <= x0] == 0.0) and np.all(sharp[x >= 1 - x0] == 1.0)
    g = jax.vmap(jax.grad(lambda f: rheology.red_cell_fraction(f, *args)))(jnp.asarray(x))
    assert np.all(np.isfinite(np.asarray(g)))


def test_in_vivo_resistance_of_10um_rat_vessels_is_about_four_glass_tubes():
    """Pries et al. 1994's abstract: ≈4× a glass tube at 10 µm and normal haematocrit (the
    validate target, band ×/÷ 1.5 for an unspread value)."""
    target = next(t for t in validate.targets()
                  if t.id == "network-rat-10um-in-vivo-over-glass")
    value = target.model(None)
    assert target.low <= value <= target.high


def test_rheology_settings_are_checked():
    with pytest.raises(ValueError, match="viscosity_law"):
        hm.Rheology(viscosity_law="pries1992")
    with pytest.raises(ValueError, match="plasma_viscosity_Pa_s = 1.2"):
        hm.Rheology(plasma_viscosity_Pa_s=1.2)


# ------------------------------------------------------------------ solves
def test_cg_and_direct_agree_and_vmap(mesentery):
    topo, params = hm.Topology.of(mesentery), hm.parameters(mesentery)
    rheo = vn.NETFLOW_RHEOLOGY
    hd = jnp.full(mesentery.n_segments, 0.4)
    p_direct = hm.flows(topo, params, rheo, hd)[0]
    p_cg = hm.flows(topo, params, dataclasses.replace(rheo, solver="cg"), hd)[0]
    assert float(jnp.max(jnp.abs(p_cg - p_direct)) / jnp.max(p_direct)) < 1e-9
    scales = jnp.array([0.9, 1.0, 1.1])

    def inlet_pressure(scale):
        return hm.flows(topo, {**params, "radius_m": params["radius_m"] * scale}, rheo, hd)[0]

    batched = jax.vmap(inlet_pressure)(scales)
    for i, s in enumerate(scales):
        np.testing.assert_allclose(batched[i], inlet_pressure(s), rtol=1e-12)


def test_unconverged_state_is_reported(mesentery):
    rheo = dataclasses.replace(vn.NETFLOW_RHEOLOGY, picard_iterations=1, newton_iterations=0)
    with pytest.raises(hm.HaemodynamicsError, match="did not converge"):
        hm.solve(mesentery, rheo)
    state = hm.solve(mesentery, rheo, allow_unconverged=True)
    assert not state["converged"] and state["residual"] > rheo.tolerance


def test_continuation_in_the_separation_width_rescues_a_stalled_newton(mesentery):
    """Mesentery variant 102 of ``benchmarks/networks.py`` (every radius × e^(0.1 ξ), seed 0):
    at the default smoothing width 1e-3 the damped Newton step stalls (5.4e-4 after 17 Picard
    and 2 Newton iterations); ``solve`` then continues through widths 1e-2 and 3e-3 and
    converges at 1e-3 itself, cells and blood balanced at every node.  The four solves (the
    first attempt and three widths) share one compiled program: the width is traced."""
    xi = np.random.default_rng(0).standard_normal((103, mesentery.n_segments))[102]
    net = dataclasses.replace(mesentery, segment_radius_m=mesentery.segment_radius_m
                              * np.exp(0.1 * xi))
    rheo = vn.NETFLOW_RHEOLOGY
    compiled = hm._solve_state_jit._cache_size()
    state = hm.solve(net, rheo)
    assert hm._solve_state_jit._cache_size() - compiled <= 1
    assert state["residual"] <= rheo.tolerance
    # continuation_widths not empty: the first attempt did not converge (the case still
    # needs the continuation)
    np.testing.assert_allclose(state["continuation_widths"], [1e-2, 3e-3, 1e-3])
    assert max(vn.node_balances(net, state)) < 1e-8


def test_pressure_inlet_without_hematocrit_is_named():
    edges, n, pos, r, length = vn.random_tree(levels=3)
    net = vn._tree_network(edges, n, pos, r, length, PRESSURE, 2000.0)
    net = dataclasses.replace(net, boundary_hematocrit=np.full(len(net.boundary_node), np.nan))
    with pytest.raises(NetworkError, match="node 0 .*inlet.*no inflow haematocrit"):
        hm.solve(net, hm.Rheology())


def test_batch_of_variants_matches_single_solves(mesentery):
    topo, params = hm.Topology.of(mesentery), hm.parameters(mesentery)
    rheo = vn.NETFLOW_RHEOLOGY

    def mean_hd(scale):
        p = {**params, "radius_m": params["radius_m"] * scale}
        return jnp.mean(hm.solve_state(topo, p, rheo)["hematocrit"])

    scales = jnp.array([0.95, 1.05])
    batched = jax.jit(jax.vmap(mean_hd))(scales)
    single = [float(jax.jit(mean_hd)(s)) for s in scales]
    np.testing.assert_allclose(batched, single, rtol=1e-9)


# ------------------------------------------------------------------ pieces
def test_oblique_segment_pieces_are_exact():
    g = grids.cartesian3d((3e-4, 3e-4, 1e-4), (3, 3, 1))
    pos = np.array([[0.5e-4, 0.2e-4, 0.5e-4], [2.9e-4, 2.6e-4, 0.5e-4], [4e-4, 2.6e-4, 0.5e-4]])
    net = VesselNetwork(node_position_m=pos, segment_nodes=[[0, 1], [1, 2]],
                        segment_radius_m=[3e-6, 3e-6],
                        segment_length_m=np.linalg.norm(np.diff(pos, axis=0), axis=1),
                        boundary_node=[0, 2], boundary_kind=[PRESSURE, PRESSURE],
                        boundary_value=[1.0, 0.0], boundary_hematocrit=[0.45, np.nan])
    pieces = segment_cells.intersect(net, g)
    total = np.bincount(pieces.segment, pieces.length_m, minlength=2)
    inside_second = 3e-4 - 2.9e-4
    np.testing.assert_allclose(total, [net.segment_length_m[0], inside_second], rtol=1e-12)
    assert abs(pieces.outside_m - (4e-4 - 3e-4)) < 1e-15
    # the first segment: direction (2.4, 2.4)/|·| in x, y; it crosses x = 1e-4 at t = 0.5/2.4
    d = pos[1] - pos[0]
    t = np.sort(np.unique(np.concatenate([[0, 1], (np.array([1e-4, 2e-4]) - pos[0, 0]) / d[0],
                                          (np.array([1e-4, 2e-4]) - pos[0, 1]) / d[1]])))
    expected = np.diff(t) * np.linalg.norm(d)
    np.testing.assert_allclose(np.sort(pieces.length_m[pieces.segment == 0]), np.sort(expected),
                               rtol=1e-12)


# ------------------------------------------------------------------ delivery
@pytest.mark.slow  # a convergence study (three step sizes, three compiles)
def test_delivery_converges_in_time_and_stays_positive(mesentery):
    state = hm.solve(mesentery, vn.NETFLOW_RHEOLOGY)
    g = grids.cartesian3d((4.6e-3, 7.1e-3, 20e-6), (23, 36, 1))
    solutes = [nd.Solute("carrier", 1e-9, 1e-11, 0.3), nd.Solute("free", 3e-6, 1.5e-10, 0.3)]
    asm = nd.assemble(mesentery, g, state, solutes)

    def plasma(t):
        return jnp.array([1.0, 0.1]) * jnp.exp(-t / 7200.0)

    runs = {dt: nd.run(asm, plasma, 7200.0, dt, save_every=int(3600 / dt))
            for dt in (1200.0, 600.0, 300.0)}
    means = [np.asarray(out["tissue_mean"][-1]) for out in runs.values()]
    d1, d2 = np.abs(means[0] - means[1]), np.abs(means[1] - means[2])
    assert np.all(d2 < 0.6 * d1)  # converges as the step shrinks (order ≥ ~0.7)
    assert np.all(d2 / means[2] < 2e-2)
    out = runs[600.0]
    assert float(out["tissue"].min()) >= -1e-12
    np.testing.assert_allclose(out["tissue_amount_mol"] / out["tissue_mean"],
                               np.prod([4.6e-3, 7.1e-3, 20e-6]), rtol=1e-10)


def _vessel_chains(g, xy_m, pieces_per_vessel):
    """Straight vessels along z through the points ``xy_m`` of the grid ``g``, each a chain of
    ``pieces_per_vessel`` segments, driven by 2 kPa from their lower ends."""
    z = np.linspace(g.faces[2][0], g.faces[2][-1], pieces_per_vessel + 1)
    pos = np.array([[x, y, zz] for x, y in xy_m for zz in z])
    n = pieces_per_vessel + 1
    segs = np.array([[v * n + k, v * n + k + 1] for v in range(len(xy_m))
                     for k in range(pieces_per_vessel)])
    ends = np.array([[v * n, v * n + n - 1] for v in range(len(xy_m))]).ravel()
    return VesselNetwork(node_position_m=pos, segment_nodes=segs,
                         segment_radius_m=np.full(len(segs), 5e-6),
                         segment_length_m=np.full(len(segs), z[1] - z[0]), boundary_node=ends,
                         boundary_kind=[PRESSURE] * len(ends),
                         boundary_value=np.tile([2e3, 0.0], len(xy_m)),
                         boundary_hematocrit=np.tile([0.45, np.nan], len(xy_m)))


def _hot_spot(g):
    """T(x, t), °C: a Gaussian hot spot (+5 K) off the box's centre, switched on over the
    first 30 min."""
    x, y, z = np.meshgrid(*g.centers, indexing="ij")
    spot = jnp.asarray(np.exp(-((x - 1.2e-4)**2 + (y - 2.6e-4)**2 + (z - 1e-4)**2) / 2e-4**2))
    return lambda t: 37.0 + 5.0 * jnp.minimum(t / 1800.0, 1.0) * spot


def test_networks_of_different_sizes_share_one_compiled_delivery():
    """Three networks (2, 6 and 12 segments) in one tissue grid, padded to one program
    (``nd.run_batch``, ``lax.map`` and ``vmap``) with heated release (``nd.HeatedRelease``:
    each network's lumen at its own segments' tissue temperature): the same tissue,
    macrophage payload and step means as each run alone (the padding adds exact zeros), and
    the model traced once for the three, not three times."""
    g = grids.cartesian3d((4e-4, 4e-4, 3e-4), (4, 4, 3))
    layouts = (([(1e-4, 1e-4)], 2), ([(1e-4, 1e-4), (3e-4, 2.2e-4)], 3),
               ([(1.5e-4, 2.5e-4), (2.5e-4, 1.5e-4), (3.1e-4, 3.3e-4)], 4))
    nets = [_vessel_chains(g, xy, m) for xy, m in layouts]
    solutes = [nd.Solute("carrier", 1e-9, 1e-11, 0.3), nd.Solute("free", 3e-6, 1.5e-10, 0.3)]
    asms = [nd.assemble(net, g, hm.solve(net, hm.Rheology()), solutes) for net in nets]
    traced = []

    def plasma(t):
        traced.append(t)
        return jnp.array([1.0, 0.1]) * jnp.exp(-t / 7200.0)

    release = nd.HeatedRelease(_hot_spot(g), lambda temp: 1e-5 + 1e-3 * jax.nn.sigmoid(
        (temp - 39.0) / 0.5), blood_temperature_C=37.0, breakdown_rate=1e-5)
    options = dict(save_every=2, release=release,
                   macrophages=nd.Macrophages(uptake_rate=3e-5, digestion_rate=2e-5))
    singles = [nd.run(a, plasma, 3600.0, 900.0, **options) for a in asms]
    per_run = len(traced) / 3
    for vectorize in (False, True):
        traced.clear()
        batch = nd.run_batch(asms, plasma, 3600.0, 900.0, vectorize=vectorize, **options)
        assert len(traced) == per_run  # one trace for the three networks
        for i, single in enumerate(singles):
            for key in ("tissue", "tissue_mean", "macrophages", "macrophages_mean"):
                np.testing.assert_allclose(batch[key][i], single[key], rtol=1e-12,
                                           atol=1e-12 * float(np.max(single[key])))
        np.testing.assert_array_equal(batch["times_s"], singles[0]["times_s"])
    assert float(np.min(singles[0]["tissue_mean"][-1])) > 0
    with pytest.raises(ValueError, match="release.segment_rate gives one rate per segment"):
        nd.run_batch(asms, plasma, 3600.0, 900.0,
                     release=nd.Release(lambda t: jnp.zeros(2), lambda t: 0.0))
    other = grids.cartesian3d((4e-4, 4e-4, 3e-4), (4, 4, 4))
    with pytest.raises(ValueError, match=r"assembly 1: tissue grid \(4, 4, 4\) differs"):
        nd.run_batch([asms[0], nd.assemble(nets[0], other, hm.solve(nets[0], hm.Rheology()),
                                           solutes)], plasma, 3600.0, 900.0)


def test_heated_release_takes_each_segments_length_weighted_tissue_temperature():
    """``nd.HeatedRelease``: a segment's lumen rate is the law at Σ L_p T_p / Σ L_p over the
    cells it crosses (pieces of unequal length here), the same for the network padded (its
    added segments, crossing no cell, at the blood's temperature)."""
    g = grids.cartesian3d((4e-4, 4e-4, 3e-4), (4, 4, 3))
    net = _vessel_chains(g, [(1.5e-4, 2.5e-4), (2.5e-4, 1.5e-4), (3.1e-4, 3.3e-4)], 4)
    asm = nd.assemble(net, g, hm.solve(net, hm.Rheology()),
                      [nd.Solute("carrier", 1e-9, 1e-11, 0.3),
                       nd.Solute("free", 3e-6, 1.5e-10, 0.3)])
    temperature = _hot_spot(g)
    release = nd.HeatedRelease(temperature, lambda temp: 2.0 * temp, blood_temperature_C=36.5)
    pieces = segment_cells.intersect(net, g)
    assert len(set(np.round(pieces.length_m, 12))) > 1
    t = 900.0
    cell_temp = np.asarray(temperature(t)).ravel()[pieces.cell]
    expected = np.array([np.average(cell_temp[pieces.segment == e],
                                    weights=pieces.length_m[pieces.segment == e])
                         for e in range(net.n_segments)])
    assert np.ptp(expected) > 0.5  # the segments see different temperatures
    np.testing.assert_allclose(release.lumen_rate(t, asm), 2.0 * expected, rtol=1e-14)
    np.testing.assert_allclose(release.cell_rate(t), 2.0 * np.asarray(temperature(t)))
    padded = nd.pad(asm, net.n_segments + 3, net.n_nodes + 1, len(pieces.cell) + 5)
    rates = np.asarray(release.lumen_rate(t, padded))
    np.testing.assert_allclose(rates[:net.n_segments], 2.0 * expected, rtol=1e-14)
    np.testing.assert_array_equal(rates[net.n_segments:], 2.0 * 36.5)
    flat = nd.HeatedRelease(lambda t: jnp.full(g.size, 37.0), lambda temp: 1e-5)
    with pytest.raises(ValueError, match=r"temperature_C\(t\) has shape \(48,\); allowed: "
                                         r"the tissue grid's shape \(4, 4, 3\)"):
        nd.run(asm, lambda t: jnp.ones(2), 900.0, 900.0, release=flat)


def test_kirchhoff_residual_is_small_after_solve(mesentery):
    state = hm.solve(mesentery, vn.NETFLOW_RHEOLOGY)
    fixed = np.zeros(mesentery.n_nodes, bool)
    fixed[mesentery.boundary_node[mesentery.boundary_kind == PRESSURE]] = True
    injection = np.zeros(mesentery.n_nodes)
    flow_bc = mesentery.boundary_kind != PRESSURE
    injection[mesentery.boundary_node[flow_bc]] = mesentery.boundary_value[flow_bc]
    res = graph.kirchhoff_residual(mesentery.segment_nodes,
                                   jnp.asarray(state["conductance_m3_per_s_Pa"]),
                                   jnp.asarray(fixed), jnp.asarray(state["pressure_Pa"]),
                                   jnp.asarray(injection))
    assert float(res) < 1e-10


def test_starling_leak_gradients_match_differences():
    # one vessel in a 7 × 7 × 1 grid, lumen at 2 kPa, box at 0: d(leak)/d(L_p) and d/d(K)
    from nanotransport.model import network_exchange
    g = grids.cartesian3d((7e-4, 7e-4, 1e-4), (7, 7, 1), origin_m=(-3.5e-4, -3.5e-4, 0.0))
    pos, segs = vn._line_vessel(g, [0.0], [0.0])
    pieces = vn._vessel_pieces(g, pos, segs, 5e-6)

    def leak(theta):
        lp, k = theta
        tissue = network_exchange.TissueExchange(k, lp, outer="value", outer_axes=(0, 1))
        out = network_exchange.solve(g, pieces, segs, 2, np.array([5e-6]), tissue,
                                     node_fixed=np.ones(2, bool), node_value=np.full(2, 2e3))
        return out["segment_flux"][0] * 1e15

    theta = jnp.array([2e-11, 3e-14])
    grad = np.asarray(jax.grad(leak)(theta))
    fd = [(float(leak(theta.at[i].multiply(1 + 1e-6))) - float(leak(theta.at[i].multiply(
        1 - 1e-6)))) / (2e-6 * float(theta[i])) for i in range(2)]
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


def test_networks_of_different_sizes_share_one_compile():
    rheo = vn.NETFLOW_RHEOLOGY
    nets = [vn._tree_network(*vn.random_tree(levels=lv, seed=lv), PRESSURE, 4000.0)
            for lv in (6, 7, 8)]
    assert len({net.n_segments for net in nets}) == 3
    topo, params, mask = hm.stack(nets)
    solve = jax.jit(lambda t, p: hm.solve_state(t, p, rheo))
    batch = jax.jit(jax.vmap(lambda t, p: hm.solve_state(t, p, rheo)))(topo, params)
    for i, net in enumerate(nets):
        single = hm.solve(net, rheo)
        one = solve(*jax.tree_util.tree_map(lambda x: x[i], (topo, params)))
        m = net.n_segments
        assert mask[i].sum() == m and bool(batch["converged"][i])
        for state in (batch, one):
            hd = np.asarray(state["hematocrit"])[i] if state is batch else one["hematocrit"]
            q = np.asarray(state["flow_m3_per_s"])[i] if state is batch else one["flow_m3_per_s"]
            np.testing.assert_allclose(hd[:m], single["hematocrit"], rtol=0, atol=1e-9)
            np.testing.assert_allclose(q[:m], single["flow_m3_per_s"], rtol=0,
                                       atol=1e-9 * np.abs(single["flow_m3_per_s"]).max())
    assert solve._cache_size() == 1  # three networks, one compiled solve
    # the padding carries a flow of its own, so derivatives stay finite
    g = jax.grad(lambda r: jnp.sum(hm.solve_state(
        jax.tree_util.tree_map(lambda x: x[0], topo),
        {**jax.tree_util.tree_map(lambda x: x[0], params), "radius_m": r}, rheo)["hematocrit"]))(
        params["radius_m"][0])
    assert np.all(np.isfinite(np.asarray(g)))
    with pytest.raises(ValueError, match="two added nodes"):
        hm.pad(hm.Topology.of(nets[0]), hm.parameters(nets[0]), nets[0].n_segments + 1,
               nets[0].n_nodes + 1, len(nets[0].boundary_node) + 1)
