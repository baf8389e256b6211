"""Solutes in the lumen of a vessel network, and their delivery into the tissue around it.

**In the lumen** (quasi-steady: a transit through a microvessel takes seconds, the tissue
changes over minutes).  Along segment k (volume V, flow |q|, transit time τ = V/|q|) the
species vector c obeys dc/dτ = −M c + s, with

    M = diag(a) + R,   a = PS/V (1/s: exchange with the tissue, PS the sum of the pieces'
    conductances γ, Peaceman-corrected),  s = a ⊙ c_t (c_t: the tissue value along it),

and R a first-order conversion between species (e.g. release of encapsulated drug in the
lumen, row "free" gains what row "encapsulated" loses).  Its exact solution gives the outlet
and the segment mean::

    c(τ) = c_eq + e^(−Mτ) (c₀ − c_eq),   c̄ = c_eq + φ₁(−Mτ) (c₀ − c_eq),   c_eq = M⁻¹ s

with φ₁(Z) = Z⁻¹(e^Z − I) from one matrix exponential of the block matrix [[Z, I], [0, 0]]
(no inverse: exact also where M is singular).  At a node the inflows mix by flux,
c_node = (Σ_in |q| c_out + inflow × c_inlet)/(Σ_in |q| + inflow), and every outflow segment
starts from c_node.  Given the flows this is linear in the segments' inlet values with a
nilpotent coupling on an acyclic flow graph, solved exactly by sweeping (as many passes as
the graph's depth) inside ``jax.lax.custom_linear_solve``, so derivatives with respect to the
flows, PS, conversion rates, inlet and tissue values cost one sweep of the transposed graph.

**Capillary extraction.**  One species, no conversion, c_t = 0: c_out/c_in = e^(−PS/|q|),
E = 1 − e^(−PS/F), whatever the discretization (verify: ``network_extraction``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import linalg


TRANSIT_CAP_S = 1e7  #: transit time used where a segment has no flow (it then equilibrates)


def _exponentials(m, tau):
    """(e^Z, φ₁(Z), φ₂(Z)) with Z = −Mτ per segment, from one exponential of the block matrix
    [[Z, I, 0], [0, 0, I], [0, 0, 0]] (its first block row is [e^Z, φ₁(Z), φ₂(Z)];
    φ₁(Z) = Σ Zᵏ/(k+1)!, φ₂(Z) = Σ Zᵏ/(k+2)!).  m (E, n, n), tau (E,)."""
    n = m.shape[-1]
    z = -m * tau[:, None, None]
    eye = jnp.broadcast_to(jnp.eye(n, dtype=m.dtype), z.shape)
    zero = jnp.zeros_like(z)
    big = jnp.concatenate([jnp.concatenate([z, eye, zero], -1),
                           jnp.concatenate([zero, zero, eye], -1),
                           jnp.concatenate([zero, zero, zero], -1)], -2)
    top = linalg.expm_small(big)[:, :n]
    return top[..., :n], top[..., n:2 * n], top[..., 2 * n:]


def segment_maps(q, volume_m3, ps_m3_per_s, conversion_per_s, c_tissue):
    """Per segment the affine maps c_out = A c₀ + b and c̄ = Ā c₀ + b̄ (module docstring):
    A = e^(−Mτ), b = τ φ₁(−Mτ) s, Ā = φ₁(−Mτ), b̄ = τ φ₂(−Mτ) s.

    ``q`` (E,), ``volume_m3`` (E,), ``ps_m3_per_s`` (E, n) per species, ``conversion_per_s``
    (n, n) or (E, n, n): R (row i: R_ii > 0 what species i loses, R_ij < 0 what it gains from
    j), ``c_tissue`` (E, n).  Returns (A, b, Ā, b̄)."""
    n = ps_m3_per_s.shape[-1]
    tau = jnp.minimum(volume_m3 / jnp.maximum(jnp.abs(q), 1e-300), TRANSIT_CAP_S)
    a = ps_m3_per_s / volume_m3[:, None]
    m = jnp.broadcast_to(conversion_per_s, (q.shape[0], n, n)) + jax.vmap(jnp.diag)(a)
    expo, phi1, phi2 = _exponentials(m, tau)
    s = a * c_tissue
    b = tau[:, None] * jnp.einsum("eij,ej->ei", phi1, s)
    b_mean = tau[:, None] * jnp.einsum("eij,ej->ei", phi2, s)
    return expo, b, phi1, b_mean


def lumen(edges: np.ndarray, n_nodes: int, q, inflow_node, c_inlet_node, maps):
    """Segment inlet, outlet and mean lumen values (each (E, n)) on the directed flow graph.

    ``inflow_node`` (nodes,): blood entering there from outside, m³/s (≥ 0); ``c_inlet_node``
    (nodes, n): its concentration; ``maps`` from ``segment_maps``."""
    expo, b, phi, b_mean = maps
    a, bnode = jnp.asarray(edges[:, 0]), jnp.asarray(edges[:, 1])
    forward = q >= 0
    up, down = jnp.where(forward, a, bnode), jnp.where(forward, bnode, a)
    aq = jnp.abs(q)
    f_in = jax.ops.segment_sum(aq, down, n_nodes) + inflow_node
    f_in = jnp.maximum(f_in, 1e-300)
    weight_out = (aq / f_in[down])[:, None]  # a segment's share of its downstream node

    def carry(c_in):
        """W T c: the segments' outlets (linear part) mixed at their downstream nodes, as the
        inlets of the segments leaving those nodes."""
        node = jax.ops.segment_sum(weight_out * jnp.einsum("eij,ej->ei", expo, c_in), down,
                                   n_nodes)
        return node[up]

    external = (inflow_node / f_in)[:, None] * c_inlet_node
    rhs = external[up]
    # the tissue-driven part of the outlets, carried downstream
    affine = jax.ops.segment_sum(weight_out * b, down, n_nodes)[up]
    carry_transposed = jax.linear_transpose(carry, rhs)

    def sweep(step, r):
        """x = r + step(x) by passes from x = r: exact after as many passes as the graph is
        deep (x at depth k depends only on shallower x), and stopped when a pass changes
        nothing, bit for bit.  (The generic x ← r + x − (x − step(x)) of the matvec form
        never settles to the bit: the round-off of x − (x − s) made every solve run to the
        cap of E + 2 passes, 24× the 75 passes of a 1789-segment network.)"""
        def body(state):
            x, _, it = state
            new = r + step(x)
            return new, jnp.max(jnp.abs(new - x)), it + 1

        def cond(state):
            _, change, it = state
            return (change > 0.0) & (it < edges.shape[0] + 2)

        x, _, _ = jax.lax.while_loop(cond, body, (r, jnp.inf, 0))
        return x

    c_in = jax.lax.custom_linear_solve(
        lambda x: x - carry(x), rhs + affine, lambda _, r: sweep(carry, r),
        transpose_solve=lambda _, r: sweep(lambda y: carry_transposed(y)[0], r))
    c_out = jnp.einsum("eij,ej->ei", expo, c_in) + b
    c_mean = jnp.einsum("eij,ej->ei", phi, c_in) + b_mean
    return c_in, c_out, c_mean


def node_balance_of(edges, n_nodes, q, c_in, c_out):
    """Net solute flux leaving each node (for tests: zero at interior nodes)."""
    forward = (q >= 0)[:, None]
    aq = jnp.abs(q)[:, None]
    start = jnp.where(forward, c_in, c_out) * aq  # flux at the segment's first node
    end = jnp.where(forward, c_out, c_in) * aq
    signed_start = jnp.where(forward, start, -start)
    signed_end = jnp.where(forward, end, -end)
    return (jax.ops.segment_sum(signed_start, jnp.asarray(edges[:, 0]), n_nodes)
            - jax.ops.segment_sum(signed_end, jnp.asarray(edges[:, 1]), n_nodes))


