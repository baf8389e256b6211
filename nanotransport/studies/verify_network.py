"""Verification of the vessel-network solvers against closed forms and a reference code.

Cases (registered in ``verify.CASES``; docs/networks.md states each one):

* ``network_poiseuille_tree``: Poiseuille flow in a random asymmetric binary tree, solved by
  series–parallel reduction (an independent, exact algorithm), with a pressure inlet and with
  a flow inlet;
* ``network_mesentery_netflow``: the rat mesentery network (546 segments, 1130 pieces) against
  the flows and haematocrits of Secomb's NetFlowV2 written in its ``network.dat``, with that
  program's rheology settings, plus the mass and red-cell balance at every node;
* ``network_gradient_fd``: derivatives of the mesentery's state (through the haematocrit
  root) against central finite differences;
* ``network_extraction``: capillary extraction E = 1 − e^(−PS/F) composed along a tree;
* ``network_vessel_annulus``: a leaky vessel (log profile) and a Krogh cylinder with uptake
  (Bessel functions) around a vessel thinner than its cell, with Peaceman's correction;
* ``network_homogenization``: parallel vessels at spacing √(2πa/S_v) against the continuum
  Baxter–Jain pressure.
"""
from __future__ import annotations

import dataclasses
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np

from scipy import special

from ..engine import graph, grid as grids
from ..engine.units import MMHG_PA
from ..model import haemodynamics as hm
from ..model import network_exchange, network_files, network_transport, segment_cells
from ..model.vessel_network import INFLOW, PRESSURE, VesselNetwork
from .verify_rows import check as _check, row

MESENTERY = "rat_mesentery_secomb_netflowv2.dat"
#: NetFlowV2's RheolParams.dat: plasma viscosity 1.0466 cP, rat mean cell volume 55 fL,
#: the 1994 in vivo law with W = 1.1 µm, phase separation on
NETFLOW_RHEOLOGY = hm.Rheology(viscosity_law="pries1994", phase_separation=True,
                               plasma_viscosity_Pa_s=1.0466e-3, mean_cell_volume_fL=55.0)


def mesentery_path():
    """Path of the packaged rat mesentery network (Secomb's NetFlowV2 ``network.dat``)."""
    return resources.files("nanotransport") / "data" / "networks" / MESENTERY


def _row(case, description, error, tolerance, checks, finest="—"):
    """A verify row without a convergence study (one error, no observed order)."""
    return row(case, description, finest, [error], [], None, tolerance, checks, order=False)


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


# ------------------------------------------------------------------ lumen transport
def network_extraction():
    """Capillary extraction on a network: the random tree of ``network_poiseuille_tree`` with
    its Poiseuille flows, random wall conductances PS per segment, tissue at 0, inlet value
    1.  Exact: each outlet sees Π over its path of e^(−PS_k/|q_k|) (E = 1 − e^(−PS/F) per
    segment, composed); mixing is trivial on a tree's diverging branches.  error = max over
    outlets of |c − exact|; checks: segment-mean values against (1 − e^(−x))/x, node solute
    balance."""
    edges, n, pos, r, length = random_tree(seed=3)
    rheo = hm.Rheology(viscosity_law="constant", phase_separation=False)
    net = _tree_network(edges, n, pos, r, length, PRESSURE, 2000.0)
    state = hm.solve(net, rheo)
    q = jnp.asarray(state["flow_m3_per_s"])
    rng = np.random.default_rng(4)
    x = rng.uniform(0.05, 0.6, len(edges))  # PS/F per segment
    ps = x * np.abs(np.asarray(q))
    volume = np.pi * r**2 * length
    maps = network_transport.segment_maps(q, jnp.asarray(volume), jnp.asarray(ps)[:, None],
                                          jnp.zeros((1, 1)), jnp.zeros((len(edges), 1)))
    inflow = jnp.maximum(jnp.asarray(state["external_inflow_m3_per_s"]), 0.0)
    c_in, c_out, c_mean = network_transport.lumen(edges, n, q, inflow, jnp.ones((n, 1)), maps)
    exact_out = np.ones(len(edges))
    for k, (a, b) in enumerate(edges):  # edges are listed parent before child
        parent = np.flatnonzero(edges[:, 1] == a)
        exact_out[k] = (exact_out[parent[0]] if len(parent) else 1.0) * np.exp(-x[k])
    exact_in = exact_out * np.exp(x)
    error = float(np.max(np.abs(np.asarray(c_out[:, 0]) - exact_out)))
    mean_exact = exact_in * (1 - np.exp(-x)) / x
    balance = network_transport.node_balance_of(edges, n, q, c_in, c_out)
    interior = np.ones(n, bool)
    interior[net.boundary_node] = False
    loss = np.asarray(ps)[:, None] * np.asarray(c_mean)  # what the wall takes per segment
    flux_scale = float(np.max(np.abs(np.asarray(q))))
    checks = [
        _check("max |c̄ − c_in (1 − e^(−x))/x|",
               np.max(np.abs(np.asarray(c_mean[:, 0]) - mean_exact)), 1e-12),
        _check("segment balance |q| (c_in − c_out) − PS c̄, relative",
               np.max(np.abs(np.abs(np.asarray(q)) * (np.asarray(c_in[:, 0] - c_out[:, 0]))
                             - loss[:, 0])) / flux_scale, 1e-12),
        _check("node solute balance (relative, interior nodes)",
               np.max(np.abs(np.asarray(balance)[interior, 0])) / flux_scale, 1e-12),
    ]
    return _row("network_extraction",
                "Capillary extraction E = 1 − e^(−PS/F) composed along the paths of a random "
                "tree with Poiseuille flows: outlet values vs the exact product. error = max "
                "|c − exact|.", error, 1e-12, checks, f"{len(edges)} segments")


# ------------------------------------------------------------------ vessel in tissue
def _line_vessel(grid, x_m, y_m):
    """Straight vessels along z through (x, y), spanning the grid: (VesselNetwork-like
    arrays) nodes (2 per vessel), segments."""
    z0, z1 = grid.faces[2][0], grid.faces[2][-1]
    pos = np.array([[x, y, z] for x, y in zip(x_m, y_m) for z in (z0, z1)])
    segs = np.arange(len(pos)).reshape(-1, 2)
    return pos, segs


def _vessel_pieces(grid, pos, segs, radius):
    net = VesselNetwork(node_position_m=pos, segment_nodes=segs,
                        segment_radius_m=np.full(len(segs), radius),
                        segment_length_m=np.linalg.norm(pos[segs[:, 1]] - pos[segs[:, 0]],
                                                        axis=1),
                        boundary_node=np.arange(len(pos)),
                        boundary_kind=np.full(len(pos), PRESSURE),
                        boundary_value=np.ones(len(pos)),
                        boundary_hematocrit=np.full(len(pos), np.nan))
    return segment_cells.intersect(net, grid)


def _annulus(a, h, n, conductivity, wall, sink_rate, exact, flux_exact, near_field=True):
    """One vessel (radius a) along z through the centre cell of an n × n × 1 grid (cells h);
    cells beyond r ≥ 0.35 n h pinned to the exact field.  Returns (relative error of the
    leak per length, max |value − exact| over cells with 2h ≤ r < 0.35 n h)."""
    width = n * h
    grid = grids.cartesian3d((width, width, h), (n, n, 1), origin_m=(-width / 2, -width / 2, 0))
    pos, segs = _line_vessel(grid, [0.0], [0.0])
    pieces = _vessel_pieces(grid, pos, segs, a)
    x, y = np.meshgrid(*grid.centers[:2], indexing="ij")
    r = np.hypot(x, y).ravel()
    pinned = r >= 0.35 * width
    tissue = network_exchange.TissueExchange(conductivity, wall, sink_rate=sink_rate,
                                             outer="no_flux", near_field=near_field)
    out = network_exchange.solve(
        grid, pieces, segs, len(pos), np.array([a]), tissue, node_fixed=np.ones(2, bool),
        node_value=np.ones(2), cell_fixed=pinned, cell_value=np.where(pinned, exact(
            np.maximum(r, a)), 0.0))
    leak = float(out["segment_flux"][0]) / h
    cells = np.asarray(out["cell"]).ravel()
    ring = (r >= 2 * h) & ~pinned
    return (abs(leak - flux_exact) / flux_exact,
            float(np.max(np.abs(cells[ring] - exact(r[ring])))), float(out["residual"]))


def network_vessel_annulus():
    """A leaky vessel in tissue, steady (value 1 in the lumen, the tissue field pinned to
    the exact one beyond r = 0.35 n h).  (a) Starling filtration, no sink: p(r) = C ln(R/r),
    C = a L_p/(K + a L_p ln(R/a)) (p(R) = 0), leak per length 2π K C.  (b) Krogh cylinder
    with wall permeability P and uptake k: c = A I0(βr) + B K0(βr), β = √(k/D), c'(R) = 0,
    −D c'(a) = P (1 − c(a)).  Vessel radius 5 µm in cells of 100 µm (r_e = 19.8 µm, so the
    near field matters: a L_p/K = 0.5).  error = max over (a), (b) of the leak's relative
    error with Peaceman's correction; checks: tissue values at 2h ≤ r, and the error without
    the correction (must be worse by 5×: the test can tell)."""
    a, h, n = 5e-6, 100e-6, 21
    K, radius_out = 1e-14, 0.5 * n * h
    lp = 0.5 * K / a
    c_fluid = a * lp / (K + a * lp * np.log(radius_out / a))

    def p_exact(r):
        return c_fluid * np.log(radius_out / r)

    D, P, k = 1e-10, 0.5 * 1e-10 / a, 1e-10 / (0.6e-3)**2
    beta = np.sqrt(k / D)
    rk = 1.2e-3  # the Krogh radius (beyond the grid's half-width: the zero-flux circle)
    m = np.array([[special.i1(beta * rk), -special.k1(beta * rk)],
                  [-D * beta * special.i1(beta * a) + P * special.i0(beta * a),
                   D * beta * special.k1(beta * a) + P * special.k0(beta * a)]])
    coef_a, coef_b = np.linalg.solve(m, [0.0, P])

    def c_exact(r):
        return coef_a * special.i0(beta * r) + coef_b * special.k0(beta * r)

    flux_krogh = 2 * np.pi * a * P * (1.0 - c_exact(a))
    rows = {}
    for label, kappa, wall, sink, exact, flux in (
            ("Starling", K, lp, 0.0, p_exact, 2 * np.pi * K * c_fluid),
            ("Krogh", D, P, k, c_exact, flux_krogh)):
        rows[label] = (_annulus(a, h, n, kappa, wall, sink, exact, flux),
                       _annulus(a, h, n, kappa, wall, sink, exact, flux, near_field=False))
    error = max(rows[l][0][0] for l in rows)
    checks = []
    for label, (corrected, plain) in rows.items():
        checks.append(_check(f"{label}: max |value − exact| at 2h ≤ r (lumen value 1)",
                             corrected[1], 5e-3))
        checks.append(_check(f"{label}: corrected leak error × 5 − uncorrected (< 0: the "
                             "correction matters)", 5 * corrected[0] - plain[0], 0.0))
        checks.append(_check(f"{label}: relative balance residual", corrected[2], 1e-10))
    return _row("network_vessel_annulus",
                "A vessel thinner than its cell (5 µm in 100 µm) exchanging with tissue: "
                "Starling filtration (log profile) and a Krogh cylinder with uptake (Bessel), "
                "with Peaceman's sub-grid correction. error = max relative error of the leak.",
                error, 2e-2, checks, f"{n}x{n} cells")


def network_homogenization():
    """Parallel vessels (radius a, spacing s = √(2πa/S_v), lumen pressure p_v) in a slab
    |x| ≤ L with p(±L) = 0, no flux in y and z, versus the continuum Baxter–Jain slab with
    L_p S_v: p/p_v = 1 − cosh(α x/L)/cosh α, α = L √(L_p S_v/K).  Tumor L_p and K
    (2.8e-7 cm/(mmHg·s), 4.13e-8 cm²/(mmHg·s)), a = 5 µm, S_v = 200 /cm, α = 3; 3 × 3 cells
    per vessel.  error = max over vessel columns of |mean p − p_continuum| / p_v."""
    lp = 2.8e-7 * 1e-2 / MMHG_PA
    K = 4.13e-8 * 1e-4 / MMHG_PA
    a, sv, alpha = 5e-6, 2e4, 3.0
    s = np.sqrt(2 * np.pi * a / sv)
    half = alpha / np.sqrt(lp * sv / K)
    n_vessels = int(round(2 * half / s))
    half = 0.5 * n_vessels * s
    alpha = half * np.sqrt(lp * sv / K)
    per = 3
    xv = -half + s * (np.arange(n_vessels) + 0.5)
    grid = grids.cartesian3d((2 * half, s, s / per), (n_vessels * per, per, 1),
                             origin_m=(-half, 0.0, 0.0))
    pos, segs = _line_vessel(grid, xv, np.full(n_vessels, 0.5 * s))
    pieces = _vessel_pieces(grid, pos, segs, a)
    # p = 0 on the x faces; y and z no-flux (the symmetry planes of the vessel lattice)
    tissue = network_exchange.TissueExchange(K, lp, outer="value", outer_axes=(0,))
    out = network_exchange.solve(grid, pieces, segs, len(pos), np.full(n_vessels, a), tissue,
                                 node_fixed=np.ones(len(pos), bool),
                                 node_value=np.ones(len(pos)))
    cells = np.asarray(out["cell"])[:, :, 0].reshape(n_vessels, per, per)
    column = cells.mean(axis=(1, 2))
    exact = 1.0 - np.cosh(alpha * xv / half) / np.cosh(alpha)
    error = float(np.max(np.abs(column - exact)))
    return _row("network_homogenization",
                f"{n_vessels} parallel vessels at spacing √(2πa/S_v) = {s * 1e6:.1f} µm in a "
                f"slab (α = {alpha:.2f}) vs the continuum Baxter–Jain profile. error = max "
                "|column mean − continuum| / p_v.", error, 0.05,
                [_check("relative balance residual", out["residual"], 1e-10)],
                f"{grid.shape[0]}x{per}x1 cells")


CASES = {
    "network_poiseuille_tree": network_poiseuille_tree,
    "network_mesentery_netflow": network_mesentery_netflow,
    "network_gradient_fd": network_gradient_fd,
    "network_extraction": network_extraction,
    "network_vessel_annulus": network_vessel_annulus,
    "network_homogenization": network_homogenization,
}
