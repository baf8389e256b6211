"""Verification of the vessel-network solvers against closed forms and a reference code.

Cases (registered in ``verify.CASES``; docs/networks.md states each one):

* ``network_poiseuille_tree``: Poiseuille flow in a random asymmetric binary tree, solved by
  series–parallel reduction (an independent, exact algorithm), with a pressure inlet and with
  a flow inlet;
* ``network_mesentery_netflow``: the rat mesentery network (546 segments, 1130 pieces) against
  the flows and haematocrits of Secomb's NetFlowV2 written in its ``network.dat``, with that
  program's rheology settings, plus the mass and red-cell balance at every node;
* ``network_gradient_fd``: derivatives of the mesentery's state (through the haematocrit
  root) against central finite differences.
"""
from __future__ import annotations

import dataclasses
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import graph
from ..model import haemodynamics as hm
from ..model import network_files
from ..model.vessel_network import INFLOW, PRESSURE, VesselNetwork

MESENTERY = "rat_mesentery_secomb_netflowv2.dat"
#: NetFlowV2's RheolParams.dat: plasma viscosity 1.0466 cP, rat mean cell volume 55 fL,
#: the 1994 in vivo law with W = 1.1 µm, phase separation on
NETFLOW_RHEOLOGY = hm.Rheology(viscosity_law="pries1994", phase_separation=True,
                               plasma_viscosity_Pa_s=1.0466e-3, mean_cell_volume_fL=55.0)


def mesentery_path():
    """Path of the packaged rat mesentery network (Secomb's NetFlowV2 ``network.dat``)."""
    return resources.files("nanotransport") / "data" / "networks" / MESENTERY


def _check(name, value, tolerance):
    return {"name": name, "value": float(value), "tolerance": float(tolerance),
            "passed": bool(value <= tolerance)}


def _row(case, description, error, tolerance, checks, finest="—"):
    ok = bool(np.isfinite(error) and error <= tolerance and all(c["passed"] for c in checks))
    return {"case": case, "description": description, "finest_grid": finest,
            "error": float(error), "order": None, "expected_order": None,
            "tolerance": float(tolerance), "passed": ok, "errors": [float(error)],
            "spacings": [], "checks": list(checks)}


# ------------------------------------------------------------------ Poiseuille tree
def random_tree(levels: int = 6, seed: int = 0):
    """A binary tree: node 0 is the inlet, node 1 the first branch point; children of
    branch points are appended; leaves are outlets.  Radii 4-30 µm, lengths 50-500 µm."""
    rng = np.random.default_rng(seed)
    edges = [(0, 1)]
    frontier, next_node = [1], 2
    for level in range(2, levels + 1):
        grown = []
        for node in frontier:
            for _ in range(2):
                if level == levels or rng.random() < 0.8:
                    edges.append((node, next_node))
                    grown.append(next_node)
                    next_node += 1
        frontier = grown
    edges = np.array(edges)  # a branch point with one child is a plain joint
    n_nodes = next_node
    position = np.zeros((n_nodes, 3))
    position[:, 0] = np.arange(n_nodes) * 1e-4
    radius = rng.uniform(4e-6, 30e-6, len(edges))
    length = rng.uniform(50e-6, 500e-6, len(edges))
    return edges, n_nodes, position, radius, length


def _tree_network(edges, n_nodes, position, radius, length, inlet_kind, inlet_value):
    degree = np.bincount(edges.ravel(), minlength=n_nodes)
    leaves = np.flatnonzero((degree == 1) & (np.arange(n_nodes) != 0))
    return VesselNetwork(
        node_position_m=position, segment_nodes=edges, segment_radius_m=radius,
        segment_length_m=length, boundary_node=np.concatenate([[0], leaves]),
        boundary_kind=np.array([inlet_kind] + [PRESSURE] * len(leaves)),
        boundary_value=np.concatenate([[inlet_value], np.zeros(len(leaves))]),
        boundary_hematocrit=np.concatenate([[0.45], np.full(len(leaves), np.nan)]))


def series_parallel(edges, conductance, inlet_pressure):
    """Exact flows and pressures of a tree with its leaves at p = 0: resistance of a subtree
    R(n) = 1/Σ_children 1/(R_segment + R(child)); the flow splits by conductance."""
    children = {}
    for k, (a, b) in enumerate(edges):
        children.setdefault(int(a), []).append((k, int(b)))

    def resistance(node):
        kids = children.get(node, [])
        if not kids:
            return 0.0
        return 1.0 / sum(1.0 / (1.0 / conductance[k] + resistance(b)) for k, b in kids)

    flow = np.zeros(len(edges))
    pressure = {0: inlet_pressure}

    def descend(node):
        for k, b in children.get(node, []):
            flow[k] = pressure[node] / (1.0 / conductance[k] + resistance(b))
            pressure[b] = pressure[node] - flow[k] / conductance[k]
            descend(b)

    descend(0)
    return flow, np.array([pressure[i] for i in range(len(pressure))]), resistance(0)


def network_poiseuille_tree():
    """Plasma-viscosity Poiseuille flow (law "constant", no phase separation) in a random
    asymmetric tree of 6 levels, leaves at 0 Pa: (a) inlet at 2 kPa; (b) inlet flow Q such
    that the inlet pressure is 2 kPa.  Exact: series–parallel reduction with G = π r⁴/(8 μ L).
    error = max over segments of |q − q_exact| / max |q_exact|, both cases."""
    edges, n, pos, r, length = random_tree()
    rheo = hm.Rheology(viscosity_law="constant", phase_separation=False)
    g = np.pi * r**4 / (8 * rheo.plasma_viscosity_Pa_s * length)
    q_exact, p_exact, r_total = series_parallel(edges, g, 2000.0)
    errors, checks = [], []
    for label, kind, value in (("pressure inlet", PRESSURE, 2000.0),
                               ("flow inlet", INFLOW, 2000.0 / r_total)):
        state = hm.solve(_tree_network(edges, n, pos, r, length, kind, value), rheo)
        errors.append(np.max(np.abs(state["flow_m3_per_s"] - q_exact)) / np.max(q_exact))
        checks.append(_check(f"{label}: max |p − p_exact| / 2 kPa",
                             np.max(np.abs(state["pressure_Pa"] - p_exact)) / 2000.0, 1e-12))
    return _row("network_poiseuille_tree",
                f"Poiseuille flow in a random binary tree ({len(edges)} segments), pressure "
                "and flow inlets, vs series–parallel reduction. error = max |q − exact| / "
                "max q.", max(errors), 1e-12, checks, f"{len(edges)} segments")


# ------------------------------------------------------------------ mesentery vs NetFlowV2
def node_balances(net: VesselNetwork, state: dict):
    """Max over interior nodes of |Σ ± q| / max |q| and |Σ ± q H| / max |q H|."""
    edges = net.segment_nodes
    interior = np.ones(net.n_nodes, bool)
    interior[net.boundary_node] = False
    q, hd = state["flow_m3_per_s"], state["hematocrit"]
    mass = np.asarray(graph.node_balance(jnp.asarray(edges), jnp.asarray(q), net.n_nodes))
    rbc = np.asarray(graph.node_balance(jnp.asarray(edges), jnp.asarray(q * hd), net.n_nodes))
    return (np.max(np.abs(mass[interior])) / np.max(np.abs(q)),
            np.max(np.abs(rbc[interior])) / np.max(np.abs(q * hd)))


def network_mesentery_netflow():
    """The rat mesentery (Pries et al.; Secomb's NetFlowV2 network.dat, 1130 pieces) with
    NetFlowV2's rheology: 1994 in vivo viscosity, plasma 1.0466 cP, MCV 55 fL, phase
    separation.  Reference: the flows and haematocrits that NetFlowV2 wrote into the file
    (float32 text, converged by NetFlow to 1e-3 nl/min and 1e-3 in H_D).  error = max |q −
    q_ref| / max |q_ref|; checks: max |H_D − H_ref| ≤ 1e-3 (NetFlow's own tolerance), node
    mass and red-cell balance ≤ 1e-8, flow directions all equal."""
    path = mesentery_path()
    net = network_files.read_network(path)
    ref = network_files.read_secomb_solution(path)
    state = hm.solve(net, NETFLOW_RHEOLOGY)
    q, q_ref = state["flow_m3_per_s"], ref["flow_m3_per_s"]
    error = np.max(np.abs(q - q_ref)) / np.max(np.abs(q_ref))
    mass, rbc = node_balances(net, state)
    checks = [
        _check("max |H_D − H_D,ref|", np.max(np.abs(state["hematocrit"] - ref["hematocrit"])),
               1e-3),
        _check("node mass balance (relative)", mass, 1e-8),
        _check("node red-cell balance (relative)", rbc, 1e-8),
        _check("segments with reversed flow", np.sum(np.sign(q) != np.sign(q_ref)), 0),
        _check("Newton residual max |H − Φ(H)|", state["residual"], NETFLOW_RHEOLOGY.tolerance),
    ]
    return _row("network_mesentery_netflow",
                "Rat mesentery network vs Secomb's NetFlowV2 solution (same rheology): "
                "error = max |q − q_ref| / max |q_ref|, with haematocrit, balances and "
                "directions as checks.", error, 1e-5, checks, f"{net.n_segments} segments")


# ------------------------------------------------------------------ gradients
def network_gradient_fd():
    """d/dθ of three outputs of the mesentery state, by reverse- and by forward-mode AD through
    the haematocrit root (implicit function theorem), against five-point central differences
    with relative step 1e-3 (states converged to 1e-13): θ = a scale of one segment's radius, of the outlet pressure and of
    one inflow haematocrit; outputs: the pressure at the largest inlet, the flow in the
    segment of median flow and the mean haematocrit.  error = max relative difference (each
    derivative relative to itself, floored at 1 % of its output's largest)."""
    net = network_files.read_network(mesentery_path())
    topo, base = hm.Topology.of(net), hm.parameters(net)
    # the differences need states converged far below the step's effect: tolerance 1e-13
    rheo = dataclasses.replace(NETFLOW_RHEOLOGY, tolerance=1e-13)
    ref = hm.solve(net, rheo)
    inlet = int(net.boundary_node[np.argmax(np.where(net.inflow_boundary(),
                                                     net.boundary_value, -np.inf))])
    median = int(np.argsort(np.abs(ref["flow_m3_per_s"]))[net.n_segments // 2])
    seg = median
    p_bc = int(np.flatnonzero(net.boundary_kind == PRESSURE)[0])
    hd_bc = int(np.flatnonzero(net.inflow_boundary())[0])

    def perturbed(theta):
        return {**base,
                "radius_m": base["radius_m"].at[seg].multiply(theta[0]),
                "boundary_value": base["boundary_value"].at[p_bc].multiply(theta[1]),
                "boundary_hematocrit": base["boundary_hematocrit"].at[hd_bc].multiply(theta[2])}

    def outputs(theta, gradients="reverse"):
        state = hm.solve_state(topo, perturbed(theta), rheo, jnp.asarray(ref["hematocrit"]),
                               gradients)
        return jnp.stack([state["pressure_Pa"][inlet] / 1e3,
                          state["flow_m3_per_s"][median] * 1e12,
                          jnp.mean(state["hematocrit"])])

    theta0 = jnp.ones(3)
    reverse = np.asarray(jax.jit(jax.jacrev(outputs))(theta0))
    forward = np.asarray(jax.jit(jax.jacfwd(lambda t: outputs(t, "forward")))(theta0))
    f = jax.jit(outputs)
    h = 1e-3

    def at(i, step):
        return np.asarray(f(theta0.at[i].add(step)))

    # five-point central differences: (8 [f(h) − f(−h)] − [f(2h) − f(−2h)]) / 12h, error O(h⁴)
    fd = np.stack([(8 * (at(i, h) - at(i, -h)) - (at(i, 2 * h) - at(i, -2 * h))) / (12 * h)
                   for i in range(3)], axis=1)
    # entries under 1 % of their output's largest derivative are measured on that 1 %: the
    # differences resolve no better (the linear solves carry ~1e-12 relative error, e.g. an
    # outlet flow fixed by flow conditions gets ~1e-11 from pressure changes that cancel)
    scale = np.maximum(np.abs(fd), 1e-2 * np.max(np.abs(fd), axis=1, keepdims=True))
    error = max(np.max(np.abs(reverse - fd) / scale), np.max(np.abs(forward - fd) / scale))
    return _row("network_gradient_fd",
                "Mesentery: reverse- and forward-mode derivatives of the inlet pressure, a "
                "median segment flow and the mean haematocrit w.r.t. a segment radius, the "
                "outlet pressure and an inflow haematocrit, vs central differences. error = "
                "max relative difference.",
                error, 1e-4, [], "3 parameters")


CASES = {
    "network_poiseuille_tree": network_poiseuille_tree,
    "network_mesentery_netflow": network_mesentery_netflow,
    "network_gradient_fd": network_gradient_fd,
}
