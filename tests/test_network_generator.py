"""The synthetic tumor network generator: its rules, its checks, its flow, its speed.

The default network is built once; the tests check that it is a valid ``VesselNetwork``, that
the tumor's vessels are dilated and its necrotic core sparse as specified, that the seed alone
decides the draws, that a bad specification names its field, that every node is a bifurcation
at most (degree ≤ 3), that blood enters at the arterial face and the default rheology (phase
separation on) converges for seeds 0-4, and that a 1e5-segment network takes seconds.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
import pytest

from nanotransport.engine.graph import node_balance
from nanotransport.model import haemodynamics
from nanotransport.model.network_generator import TumorNetworkSpec, generate, lattice_size
from nanotransport.model.vessel_network import PRESSURE, NetworkError, VesselNetwork, check

MM, UM, MMHG_PA = 1e-3, 1e-6, 133.322
SPEC = TumorNetworkSpec()


@pytest.fixture(scope="module")
def net():
    return generate(SPEC)


def _midpoint_radius_m(net: VesselNetwork) -> np.ndarray:
    """Distance of each segment's midpoint from the box centre, m."""
    a, b = net.segment_nodes.T
    mid = 0.5 * (net.node_position_m[a] + net.node_position_m[b])
    return np.linalg.norm(mid - np.asarray(SPEC.box_mm) * MM / 2, axis=1)


def _feeding(net: VesselNetwork) -> np.ndarray:
    boundary = np.zeros(net.n_nodes, bool)
    boundary[net.boundary_node] = True
    return boundary[net.segment_nodes].any(axis=1)


def test_default_network_is_valid(net):
    check(net)
    boundary = np.zeros(net.n_nodes, bool)
    boundary[net.boundary_node] = True
    assert not np.any((net.node_degree() == 1) & ~boundary), "dead ends left"
    np.testing.assert_allclose(net.segment_length_m, net.euclidean_length_m(), rtol=1e-12)
    assert np.all(net.boundary_kind == PRESSURE)
    x = net.node_position_m[net.boundary_node, 0]
    inlet = x == 0.0
    assert inlet.any() and (~inlet).any()
    assert np.all(x[~inlet] == x.max())
    np.testing.assert_allclose(net.boundary_value[inlet], 35 * MMHG_PA)
    np.testing.assert_allclose(net.boundary_value[~inlet], 12 * MMHG_PA)
    np.testing.assert_allclose(net.boundary_hematocrit[inlet], 0.45)
    assert np.all(np.isnan(net.boundary_hematocrit[~inlet]))
    np.testing.assert_allclose(2 * net.segment_radius_m[_feeding(net)], 15 * UM)
    assert f"{net.n_segments} segments, {net.n_nodes} nodes" in net.source
    assert net.source.startswith("generated: TumorNetworkSpec(")
    # lattice_size neglects thinning at nodes of degree <= 3 and clean-up: a few per cent
    assert abs(net.n_segments - lattice_size(SPEC)) < 0.08 * lattice_size(SPEC)
    print(f"default network: {net.describe()}")


@pytest.mark.parametrize("seed", range(5))
def test_nodes_are_bifurcations(seed):
    """No node joins more than 3 segments; inlets and outlets have one each."""
    net = generate(dataclasses.replace(SPEC, seed=seed))
    degree = net.node_degree()
    print(f"seed {seed}: nodes of degree 1, 2, 3: {np.bincount(degree, minlength=4)[1:]}")
    assert degree.max() == 3
    assert np.all(degree[net.boundary_node] == 1)


def test_tumor_vessels_are_dilated(net):
    """Median diameter well inside the tumor ≈ 1.5 × well outside it (moved nodes blur the
    edge, so a shell of ±20 % of the radius is left out)."""
    r, capillary = _midpoint_radius_m(net), ~_feeding(net)
    radius = SPEC.tumor_radius_mm * MM
    d = 2 * net.segment_radius_m
    inside = np.median(d[capillary & (r < 0.8 * radius)])
    outside = np.median(d[capillary & (r > 1.2 * radius)])
    assert inside / outside == pytest.approx(SPEC.tumor_dilation, rel=0.1)
    assert outside == pytest.approx(SPEC.capillary_diameter_um * UM, rel=0.1)


def test_necrotic_core_is_sparse(net):
    """Segments per volume in the necrotic core < in the viable rim."""
    r = _midpoint_radius_m(net)
    core, tumor = SPEC.necrotic_radius_mm * MM, SPEC.tumor_radius_mm * MM
    density_core = np.sum(r < core) / core**3
    density_rim = np.sum((r >= core) & (r < tumor)) / (tumor**3 - core**3)
    assert density_core < 0.6 * density_rim


def test_the_seed_decides(net):
    again = generate(SPEC)
    other = generate(dataclasses.replace(SPEC, seed=1))
    for field in ("node_position_m", "segment_nodes", "segment_radius_m", "boundary_node"):
        np.testing.assert_array_equal(getattr(net, field), getattr(again, field))
    assert other.n_segments != net.n_segments or \
        not np.array_equal(other.segment_radius_m, net.segment_radius_m)


@pytest.mark.parametrize("field, value", [
    ("box_mm", (1.0, 1.0)), ("box_mm", (1.0, -1.0, 1.0)), ("spacing_um", 0.0),
    ("spacing_um", 600.0), ("spacing_um", 1.5), ("connectivity", 1.2),
    ("connectivity", float("nan")), ("capillary_diameter_um", 1.0), ("diameter_spread", 0.9),
    ("tumor_radius_mm", 0.6), ("tumor_dilation", 0.5), ("tumor_tortuosity", 0.5),
    ("necrotic_radius_mm", 0.4), ("core_loss", -0.1), ("inlet_fraction", 0.0),
    ("arterial_pressure_mmHg", 10.0), ("venous_pressure_mmHg", -1.0),
    ("inflow_hematocrit", 1.0), ("feeding_diameter_um", "15"), ("seed", -1), ("seed", 1.5),
])
def test_bad_spec_names_field(field, value):
    with pytest.raises(ValueError) as caught:
        TumorNetworkSpec(**{field: value})
    message = str(caught.value)
    assert f"TumorNetworkSpec.{field} = " in message and "allowed" in message


def test_no_path_is_an_error():
    with pytest.raises(NetworkError, match="no path of segments joins an inlet to an outlet"):
        generate(TumorNetworkSpec(connectivity=0.2))


def _solve(net: VesselNetwork, rheo: haemodynamics.Rheology) -> dict:
    jax.config.update("jax_enable_x64", True)
    start = time.perf_counter()
    state = haemodynamics.solve(net, rheo)
    print(f"solve: {time.perf_counter() - start:.1f} s, {int(state['picard_iterations'])} "
          f"Picard + {int(state['newton_iterations'])} Newton, residual "
          f"{float(state['residual']):.2g}")
    return state


def _check_flow(net: VesselNetwork, state: dict):
    """All inlets take blood in, all outlets let it out, and every free node balances."""
    inflow = state["external_inflow_m3_per_s"][net.boundary_node]
    inlet = net.node_position_m[net.boundary_node, 0] == 0.0
    assert np.all(inflow[inlet] > 0) and np.all(inflow[~inlet] < 0)
    q = state["flow_m3_per_s"]
    balance = np.asarray(node_balance(net.segment_nodes, q, net.n_nodes))
    free = np.ones(net.n_nodes, bool)
    free[net.boundary_node] = False
    assert np.max(np.abs(balance[free])) <= 1e-8 * np.max(np.abs(q))


def test_blood_enters_at_the_arterial_face(net):
    """Without phase separation the haematocrit is the inflow's everywhere."""
    state = _solve(net, haemodynamics.Rheology(phase_separation=False))
    _check_flow(net, state)
    np.testing.assert_allclose(state["hematocrit"], SPEC.inflow_hematocrit, rtol=1e-9)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow),
                                  pytest.param(2, marks=pytest.mark.slow),
                                  pytest.param(3, marks=pytest.mark.slow),
                                  pytest.param(4, marks=pytest.mark.slow)])
def test_default_rheology_converges(seed):
    """With phase separation (the default rheology) the flow converges on the bifurcating
    network of seeds 0-4."""
    net = generate(dataclasses.replace(SPEC, seed=seed))
    state = _solve(net, haemodynamics.Rheology())
    assert state["converged"]
    _check_flow(net, state)


def test_a_large_network_takes_seconds():
    spec = TumorNetworkSpec(box_mm=(1.6, 1.6, 1.6), spacing_um=38.0)
    start = time.perf_counter()
    big = generate(spec)
    elapsed = time.perf_counter() - start
    print(f"large network: {big.n_segments} segments, {big.n_nodes} nodes in {elapsed:.2f} s "
          f"(lattice_size {lattice_size(spec)})")
    assert big.n_segments > 1e5
    assert elapsed < 30.0
