"""Blood flow and haematocrit in a vessel network: Poiseuille, Kirchhoff, Pries and Secomb.

Each segment k (radius r, length L, discharge haematocrit H_k) has the Poiseuille conductance
G_k = π r⁴ / (8 μ_k L) with μ_k = μ_plasma η_vivo(D_k, H_k) (``rheology``); its flow is
q_k = G_k (p_a − p_b) and the node pressures satisfy Kirchhoff's balance with the boundary
pressures and inflows (``engine.graph``).  Red cells follow the flow: at each node the red-cell
flux in, Σ_in |q| H + (external inflow) H_bc, leaves by its outflow segments, shared at a
two-way divergence by the phase-separation law and in proportion to flow otherwise (single
outflow, or three and more, where the law is not defined: Secomb's ``dishem.cpp`` makes the
same choice).  Writing that partition as H = Φ(H), the network state is the root of

    R(H) = H − Φ(H)                                        (one equation per segment)

``solve_state`` finds it in two stages and reports both (docs/networks.md):

1. **Picard**: flows at fixed haematocrit, then the partition swept at fixed flows until the
   haematocrit no longer changes, under-relaxed by ``relaxation`` (Secomb's NetFlow scheme);
2. **damped Newton** on R, with GMRES on the Jacobian I − Φ' applied by forward-mode
   derivatives (each product is one more sparse solve), halving the step until ‖R‖ falls.

Convergence is reported (``converged``, ``residual``, iteration counts), never assumed; a
state that did not converge is an error in ``solve`` unless the caller asks to see it.  The
root is differentiable by the implicit function theorem (``jax.lax.custom_root``): gradients
of anything computed from the state with respect to radii, lengths, boundary values and
inflow haematocrits cost one linear solve with (I − Φ')ᵀ, whatever the iteration count.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import graph, linalg
from ..engine import units
from . import rheology
from .vessel_network import PRESSURE, NetworkError, VesselNetwork

HD_VISCOSITY_CAP = 0.95  #: haematocrit above which the viscosity laws are held (their fit ends)


class HaemodynamicsError(NetworkError):
    """A flow state that did not converge, or a network the flow shows to be incomplete."""


@dataclasses.dataclass(frozen=True)
class Rheology:
    """Settings of the flow and haematocrit solve (SI; ``docs/networks.md``)."""

    viscosity_law: str = "pries1994"
    phase_separation: bool = True
    plasma_viscosity_Pa_s: float = 1.2e-3
    mean_cell_volume_fL: float = rheology.HUMAN_MCV_FL
    separation_width: float = 1e-3
    relaxation: float = 0.5
    picard_iterations: int = 60
    newton_iterations: int = 20
    tolerance: float = 1e-9
    solver: str = "direct"

    def __post_init__(self):
        checks = {
            "viscosity_law": (self.viscosity_law in rheology.LAWS, ", ".join(rheology.LAWS)),
            "plasma_viscosity_Pa_s": (1e-4 <= self.plasma_viscosity_Pa_s <= 1e-2,
                                      "1e-4 to 1e-2 Pa·s"),
            "mean_cell_volume_fL": (10.0 <= self.mean_cell_volume_fL <= 200.0, "10 to 200 fL"),
            "separation_width": (0.0 < self.separation_width <= 0.1, "(0, 0.1]"),
            "relaxation": (0.0 < self.relaxation <= 1.0, "(0, 1]"),
            "picard_iterations": (self.picard_iterations >= 1, ">= 1"),
            "newton_iterations": (self.newton_iterations >= 0, ">= 0"),
            "tolerance": (0.0 < self.tolerance < 1e-2, "(0, 1e-2)"),
            "solver": (self.solver in graph.SOLVERS, ", ".join(graph.SOLVERS)),
        }
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f"Rheology.{name} = {getattr(self, name)!r}; allowed "
                                 f"{allowed}")


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["edges", "boundary_node", "boundary_is_pressure"],
                   meta_fields=["n_nodes"])
@dataclasses.dataclass(frozen=True)
class Topology:
    """The integer part of a network: segment ends and which node carries which condition.
    A pytree (its arrays are leaves, ``n_nodes`` is static): networks of one padded size
    (``pad``) share a compile and batch under ``vmap``."""

    edges: np.ndarray  # (m, 2) int
    n_nodes: int
    boundary_node: np.ndarray  # (b,) int
    boundary_is_pressure: np.ndarray  # (b,) bool

    @classmethod
    def of(cls, net: VesselNetwork) -> "Topology":
        return cls(net.segment_nodes, net.n_nodes, net.boundary_node,
                   net.boundary_kind == PRESSURE)


def parameters(net: VesselNetwork) -> dict:
    """The differentiable inputs of a network: a pytree of arrays (SI).

    An optional key ``separation_width`` (a scalar) overrides ``Rheology.separation_width``
    as a traced value: solves at several widths then share one compile (``solve``'s
    continuation)."""
    return {"radius_m": jnp.asarray(net.segment_radius_m),
            "length_m": jnp.asarray(net.segment_length_m),
            "boundary_value": jnp.asarray(net.boundary_value),
            "boundary_hematocrit": jnp.asarray(np.nan_to_num(net.boundary_hematocrit))}


def pad(topo: Topology, params: dict, n_segments: int, n_nodes: int, n_boundary: int):
    """``(topo, params)`` padded to ``n_segments``, ``n_nodes`` and ``n_boundary`` entries, so
    that networks of different sizes share one compile and one ``vmap`` (``stack``).

    The added nodes are pressure boundaries, the first at 1 Pa, the others at 0 Pa; the
    added segments (radius 5 µm, length 100 µm) join the first two in parallel: a separate
    small network with a small flow of its own (a flow of exactly zero would have no
    derivative of its direction, and Newton's Jacobian would get NaN).  Added boundary
    entries repeat the second added node.  Their inflow haematocrit is the real entries'
    mean, so ``solve_state``'s default start is unchanged.  The real network's flows,
    pressures and haematocrits are unchanged (tests/test_networks.py).  Needs two added nodes
    when segments or boundary entries are added, and room in ``n_boundary`` for every added
    node."""
    m, n, b = topo.edges.shape[0], topo.n_nodes, topo.boundary_node.shape[0]
    extra_nodes = n_nodes - n
    if n_segments < m or extra_nodes < 0 or n_boundary < b + extra_nodes:
        raise ValueError(f"pad to (segments, nodes, boundary entries) = ({n_segments}, "
                         f"{n_nodes}, {n_boundary}); the network has ({m}, {n}, {b}) and "
                         f"needs n_boundary >= {b} + the added nodes")
    if (n_segments > m or n_boundary > b) and extra_nodes < 2:
        raise ValueError(f"pad: added segments or boundary entries need two added nodes "
                         f"(n_nodes = {n_nodes} for a network of {n})")
    added = np.arange(n, n_nodes)
    repeat = np.full(n_boundary - b - extra_nodes, n + 1)
    edges = np.concatenate([np.asarray(topo.edges),
                            np.tile([[n, n + 1]], (n_segments - m, 1))]).astype(np.int32)
    boundary = np.concatenate([np.asarray(topo.boundary_node), added, repeat]).astype(np.int32)
    is_pressure = np.concatenate([np.asarray(topo.boundary_is_pressure),
                                  np.ones(n_boundary - b, bool)])
    grow = lambda x, k, value: jnp.concatenate([x, jnp.full(k, value, x.dtype)])  # noqa: E731
    mean_hd = jnp.mean(params["boundary_hematocrit"])
    padded = {"radius_m": grow(params["radius_m"], n_segments - m, 5e-6),
              "length_m": grow(params["length_m"], n_segments - m, 1e-4),
              "boundary_value": jnp.concatenate([params["boundary_value"], jnp.asarray(
                  np.arange(n_boundary - b) == 0, params["boundary_value"].dtype)]),
              "boundary_hematocrit": grow(params["boundary_hematocrit"], n_boundary - b,
                                          mean_hd)}
    return Topology(edges, n_nodes, boundary, is_pressure), padded


def stack(networks) -> tuple:
    """Networks of any sizes as one batch: ``(topology, parameters, segment_mask)`` with a
    leading axis over the networks, each padded (``pad``) to the largest segment count, the
    largest node count + 2 and the boundary entries that needs.  ``jax.vmap(lambda t, p:
    solve_state(t, p, rheo))(topology, parameters)`` solves them in one compiled call;
    ``segment_mask`` (networks, segments) marks each network's real segments."""
    networks = list(networks)
    if not networks:
        raise ValueError("stack: no networks")
    n_nodes = max(net.n_nodes for net in networks) + 2
    n_segments = max(net.n_segments for net in networks)
    n_boundary = max(len(net.boundary_node) + n_nodes - net.n_nodes for net in networks)
    padded = [pad(Topology.of(net), parameters(net), n_segments, n_nodes, n_boundary)
              for net in networks]
    topo = jax.tree_util.tree_map(lambda *x: np.stack(x), *[t for t, _ in padded])
    params = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[p for _, p in padded])
    mask = np.arange(n_segments)[None, :] < np.array([net.n_segments for net in networks])[:, None]
    return topo, params, mask


def _node_conditions(topo: Topology, params: dict):
    """Per-node arrays: fixed (pressure) mask, fixed pressure, injected inflow, inflow H_D."""
    n, nodes = topo.n_nodes, topo.boundary_node
    is_p = jnp.asarray(topo.boundary_is_pressure)
    value = params["boundary_value"]
    fixed = jnp.zeros(n, bool).at[nodes].set(is_p)
    pressure = jnp.zeros(n, value.dtype).at[nodes].set(jnp.where(is_p, value, 0.0))
    injection = jnp.zeros(n, value.dtype).at[nodes].set(jnp.where(is_p, 0.0, value))
    boundary = jnp.zeros(n, bool).at[nodes].set(True)
    hd_in = jnp.zeros(n, value.dtype).at[nodes].set(params["boundary_hematocrit"])
    return fixed, pressure, injection, boundary, hd_in


def conductance(params: dict, rheo: Rheology, hd):
    """(Poiseuille conductance π r⁴/(8 μ L), m³/(s·Pa); apparent viscosity μ, Pa·s) of each
    segment at haematocrits ``hd``."""
    r, length = params["radius_m"], params["length_m"]
    eta = rheology.relative_viscosity(rheo.viscosity_law, 2.0 * r / units.UM,
                                      jnp.clip(hd, 0.0, HD_VISCOSITY_CAP),
                                      rheo.mean_cell_volume_fL)
    mu = rheo.plasma_viscosity_Pa_s * eta
    return jnp.pi * r**4 / (8.0 * mu * length), mu


def node_conditions(topo: Topology, params: dict):
    """Per-node (fixed mask, fixed pressure Pa, injected inflow m³/s) of the network."""
    return _node_conditions(topo, params)[:3]


def flows(topo: Topology, params: dict, rheo: Rheology, hd):
    """(node pressure Pa, segment flow m³/s, conductance m³/(s·Pa), viscosity Pa·s) at the
    segment haematocrits ``hd``."""
    g, mu = conductance(params, rheo, hd)
    fixed, pressure, injection = node_conditions(topo, params)
    p = graph.kirchhoff_solve(topo.edges, g, fixed, pressure, injection, solver=rheo.solver)
    q = g * (p[topo.edges[:, 0]] - p[topo.edges[:, 1]])
    return p, q, g, mu


def partition(topo: Topology, params: dict, rheo: Rheology, q, hd):
    """Φ: each segment's haematocrit from its upstream node at flows ``q`` (module
    docstring)."""
    n = topo.n_nodes
    a, b = jnp.asarray(topo.edges[:, 0]), jnp.asarray(topo.edges[:, 1])
    d_um = 2.0 * params["radius_m"] / units.UM
    _, _, _, boundary, hd_bc = _node_conditions(topo, params)
    aq = jnp.abs(q)
    forward = q >= 0
    up, down = jnp.where(forward, a, b), jnp.where(forward, b, a)
    external = graph.node_balance(jnp.asarray(topo.edges), q, n)  # blood entering, > 0
    ext_in = jnp.where(boundary, jnp.maximum(external, 0.0), 0.0)
    f_in = jax.ops.segment_sum(aq, down, n) + ext_in
    rbc_in = jax.ops.segment_sum(aq * hd, down, n) + ext_in * hd_bc
    tiny = 1e-300
    h_parent = rbc_in / jnp.maximum(f_in, tiny)
    if not rheo.phase_separation:
        return h_parent[up]
    n_out = jax.ops.segment_sum(jnp.ones_like(aq), up, n)
    f_out = jax.ops.segment_sum(aq, up, n)
    d_out_sum = jax.ops.segment_sum(d_um, up, n)
    d_in_max = jax.ops.segment_max(d_um, down, n)
    d_any_max = jnp.maximum(jax.ops.segment_max(d_um, a, n), jax.ops.segment_max(d_um, b, n))
    d_parent = jnp.where(jnp.isfinite(d_in_max), d_in_max, d_any_max)
    x = aq / jnp.maximum(f_out[up], tiny)
    d_sibling = jnp.maximum(d_out_sum[up] - d_um, 1e-3)
    fqe = rheology.red_cell_fraction(x, d_um, d_sibling, d_parent[up], h_parent[up],
                                     params.get("separation_width", rheo.separation_width))
    split = h_parent[up] * fqe / jnp.maximum(x, tiny)
    two_way = n_out[up] == 2
    return jnp.where(two_way & (x > 1e-12), split, jnp.where(two_way, 0.0, h_parent[up]))


def residual(topo: Topology, params: dict, rheo: Rheology, hd):
    """R(H) = H − Φ(H) (module docstring)."""
    _, q, _, _ = flows(topo, params, rheo, hd)
    return hd - partition(topo, params, rheo, q, hd)


def _sweep(topo, params, rheo, q, hd):
    """The partition repeated at fixed flows until H stops changing (≤ one pass per segment:
    on an acyclic flow graph the sweep is exact after as many passes as its depth).
    Returns (H swept, ‖Φ(H) − H‖∞): the first pass's change is the plain residual
    ‖R(H)‖∞."""
    def body(state):
        h, change, first, it = state
        new = partition(topo, params, rheo, q, h)
        change = jnp.max(jnp.abs(new - h))
        return new, change, jnp.where(it == 0, change, first), it + 1

    def cond(state):
        _, change, _, it = state
        return (change > 0.1 * rheo.tolerance) & (it < topo.edges.shape[0] + 2)

    inf = jnp.asarray(jnp.inf, hd.dtype)
    h, _, first, _ = jax.lax.while_loop(cond, body, (hd, inf, inf, 0))
    return h, first


def _swept_residual(topo, params, rheo, h):
    """(R̃(H) = H − Ψ(H), ‖R(H)‖∞), Ψ the partition swept to its fixed point at the flows
    of H: the same root as R, but its Jacobian holds the flow graph's whole downstream
    propagation, so GMRES on it needs a few iterations instead of one per level of the
    graph's depth."""
    _, q, _, _ = flows(topo, params, rheo, h)
    swept, plain = _sweep(topo, params, rheo, q, h)
    return h - swept, plain


def _newton(topo, params, rheo, hd0):
    """Damped Newton from ``hd0`` on the swept residual R̃ (GMRES with forward-mode
    Jacobian–vector products), stopped on the plain residual R: (H, iterations, ‖R‖∞).
    The residuals are evaluated at two places only (the start and the line search; every
    call site is a copy in the compiled program): the line search starts at λ = 2 with an
    infinite residual, so its first pass tries the full step."""
    swept = lambda h: _swept_residual(topo, params, rheo, h)  # noqa: E731

    def step(state):
        h, r, _, it, _ = state
        jvp = lambda v: jax.jvp(lambda hh: swept(hh)[0], (h,), (v,))[1]  # noqa: E731
        delta, _ = linalg.gmres(jvp, -r, krylov_dim=8, restarts=10,
                                rtol=1e-3 * rheo.tolerance)

        def halve(s):
            lam = 0.5 * s[0]
            trial = h + lam * delta
            return (lam, trial, *swept(trial))

        def worse(s):
            lam, _, r_t, _ = s
            return (jnp.linalg.norm(r_t) >= jnp.linalg.norm(r)) & (lam > 1.0 / 256)

        lam, h_new, r_new, plain_new = jax.lax.while_loop(
            worse, halve, (jnp.asarray(2.0, h.dtype), h, jnp.full_like(r, jnp.inf),
                           jnp.asarray(jnp.inf, h.dtype)))
        return h_new, r_new, plain_new, it + 1, lam

    def cond(state):
        _, _, r_plain, it, lam = state
        return (r_plain > rheo.tolerance) & (it < rheo.newton_iterations) & (lam > 1.0 / 256)

    h, _, r_plain, it, _ = jax.lax.while_loop(
        cond, step, (hd0, *swept(hd0), 0, jnp.asarray(1.0, hd0.dtype)))
    return h, it, r_plain


def _picard(topo, params, rheo, hd0):
    """Relaxed flow–partition iterations from ``hd0``: (H, iterations)."""
    def body(state):
        h, _, it = state
        _, q, _, _ = flows(topo, params, rheo, h)
        target, _ = _sweep(topo, params, rheo, q, h)
        change = jnp.max(jnp.abs(target - h))
        return h + rheo.relaxation * (target - h), change, it + 1

    def cond(state):
        _, change, it = state
        return (change > 1e-3) & (it < rheo.picard_iterations)

    h, _, it = jax.lax.while_loop(cond, body, (hd0, jnp.inf, 0))
    return h, it


def _iterate(topo, params, rheo, hd0):
    """Picard then damped Newton (not differentiated: the root's derivatives come from the
    implicit function theorem).  Diagnostics as floats (custom_root's aux gets tangents)."""
    frozen = jax.lax.stop_gradient(params)
    h, n_picard = _picard(topo, frozen, rheo, hd0)
    h, n_newton, r = _newton(topo, frozen, rheo, h)
    return h, {"picard_iterations": n_picard.astype(h.dtype),
               "newton_iterations": n_newton.astype(h.dtype), "residual": r}


def _gmres(matvec, b):
    x, _ = jax.scipy.sparse.linalg.gmres(matvec, b, tol=1e-12, atol=0.0, restart=60,
                                         maxiter=40)
    return x


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _root_reverse(topo, params, rheo, hd0):
    """The root H* of R(·; θ), with a reverse-mode rule: θ̄ = −(∂R/∂θ)ᵀ λ where
    (∂R/∂H)ᵀ λ = H̄ (one GMRES solve with vector–Jacobian products)."""
    return _iterate(topo, params, rheo, hd0)


def _root_reverse_fwd(topo, params, rheo, hd0):
    hd, info = _iterate(topo, params, rheo, hd0)
    return (hd, info), (topo, hd, params, hd0)


def _root_reverse_bwd(rheo, saved, cotangent):
    topo, hd, params, hd0 = saved
    _, vjp_h = jax.vjp(lambda h: residual(topo, params, rheo, h), hd)
    lam = _gmres(lambda v: vjp_h(v)[0], cotangent[0])
    _, vjp_p = jax.vjp(lambda p: residual(topo, p, rheo, hd), params)
    return None, vjp_p(-lam)[0], jnp.zeros_like(hd0)


_root_reverse.defvjp(_root_reverse_fwd, _root_reverse_bwd)


def _root_forward(topo, params, rheo, hd0):
    """The root H* with forward-mode derivatives (``jax.lax.custom_root``; its tangent solve
    is GMRES on I − Φ' applied by Jacobian–vector products)."""
    return jax.lax.custom_root(lambda h: residual(topo, params, rheo, h), hd0,
                               lambda _, h0: _iterate(topo, params, rheo, h0),
                               lambda g, y: _gmres(g, y), has_aux=True)


GRADIENTS = ("reverse", "forward")


def default_start(topo: Topology, params: dict):
    """The iterations' default start: every segment at the mean inflow haematocrit."""
    return jnp.full(topo.edges.shape[0], jnp.mean(params["boundary_hematocrit"]),
                    params["radius_m"].dtype)


def solve_state(topo: Topology, params: dict, rheo: Rheology, hd0=None,
                gradients: str = "reverse") -> dict:
    """The network's flow state (pure, jittable, differentiable; see the module docstring).

    ``gradients``: "reverse" (``jax.grad``, ``jax.vjp``: many parameters, e.g. every radius)
    or "forward" (``jax.jvp``, ``jax.jacfwd``: a few parameters).  ``hd0``: a starting
    haematocrit per segment (default: the mean inflow haematocrit).

    Returns a dict: ``pressure_Pa`` (nodes), ``flow_m3_per_s``, ``hematocrit``,
    ``viscosity_Pa_s``, ``conductance_m3_per_s_Pa`` (segments), ``external_inflow_m3_per_s``
    (nodes: blood entering there), and the diagnostics ``picard_iterations``,
    ``newton_iterations``, ``residual`` (max |R|), ``converged``.
    """
    if gradients not in GRADIENTS:
        raise ValueError(f"gradients {gradients!r}; allowed {', '.join(GRADIENTS)}")
    if hd0 is None:
        hd0 = default_start(topo, params)
    root = _root_reverse if gradients == "reverse" else _root_forward
    hd, info = root(topo, params, rheo, hd0)
    info = jax.lax.stop_gradient(info)
    info = {**info, "picard_iterations": info["picard_iterations"].astype(jnp.int32),
            "newton_iterations": info["newton_iterations"].astype(jnp.int32)}
    p, q, g, mu = flows(topo, params, rheo, hd)
    external = graph.node_balance(jnp.asarray(topo.edges), q, topo.n_nodes)
    return {"pressure_Pa": p, "flow_m3_per_s": q, "hematocrit": hd, "viscosity_Pa_s": mu,
            "conductance_m3_per_s_Pa": g, "external_inflow_m3_per_s": external,
            **info, "converged": info["residual"] <= rheo.tolerance}


_solve_state_jit = jax.jit(solve_state, static_argnums=(2,))

#: separation widths of the continuation, as multiples of the requested one (``solve``)
CONTINUATION = (10.0, 3.0, 1.0)


def solve(net: VesselNetwork, rheo: Rheology = Rheology(), *, allow_unconverged=False):
    """``solve_state`` on a network, with the checks that need the flow: an error names an
    inlet (a pressure boundary that turned out to bring blood in) without a haematocrit, and
    a state that did not converge (unless ``allow_unconverged``).

    With phase separation, a state that does not converge is solved again by continuation in
    the law's smoothing width: at ``CONTINUATION`` × ``separation_width`` (at most 0.1), each
    from the previous one's haematocrit.  Near its threshold the law at the default width
    1e-3 is almost a kink, where the damped Newton step can stall (4 of 1,000 perturbed
    mesentery variants; docs/networks.md); a wider law is smoother and its root moves
    continuously with the width.  The result is the root at the requested width either way,
    checked against ``tolerance``; ``continuation_widths`` lists the widths solved after the
    first attempt (empty when it converged)."""
    topo, params = Topology.of(net), parameters(net)

    def at_width(width, hd0):
        """The state at smoothing ``width``, traced: every width shares one compile."""
        return _solve_state_jit(topo, {**params, "separation_width": jnp.asarray(
            width, params["radius_m"].dtype)}, rheo, hd0)

    # the default start given explicitly, so that the continuation's calls (from a
    # haematocrit) have the same argument structure as this one
    hd = default_start(topo, params)
    state = at_width(rheo.separation_width, hd)
    widths = []
    if not bool(state["converged"]) and rheo.phase_separation:
        for factor in CONTINUATION:
            width = min(factor * rheo.separation_width, 0.1)
            state = at_width(width, hd)
            hd = state["hematocrit"]
            widths.append(width)
    state = {k: np.asarray(v) for k, v in state.items()}
    state["continuation_widths"] = np.asarray(widths, float)
    inflow = state["external_inflow_m3_per_s"][net.boundary_node]
    scale = np.max(np.abs(state["flow_m3_per_s"]))
    missing = (inflow > 1e-9 * scale) & ~np.isfinite(net.boundary_hematocrit)
    if missing.any():
        b = int(np.argmax(missing))
        raise NetworkError(f"node {net.node_names[net.boundary_node[b]]!r}"
                           f"{' in ' + net.source if net.source else ''} is an inlet "
                           f"({inflow[b]:.4g} m³/s in) with no inflow haematocrit")
    if not state["converged"] and not allow_unconverged:
        raise HaemodynamicsError(
            f"flow and haematocrit did not converge: max |H − Φ(H)| = {state['residual']:.3g}"
            f" > tolerance {rheo.tolerance:g} after {int(state['picard_iterations'])} Picard "
            f"and {int(state['newton_iterations'])} Newton iterations (the rheology can make "
            "the state non-unique or oscillating: try relaxation, separation_width, or "
            "phase_separation=False, and see docs/networks.md)")
    return state

