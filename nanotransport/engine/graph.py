"""Linear algebra on graphs: Kirchhoff's balance on a network of conductances, differentiable.

Nodes joined by edges ``(a_k, b_k)`` with conductances ``g_k`` carry the flux
``q_k = g_k (p_a − p_b)``; conservation at every free node is the graph Laplacian system::

    Σ_k∋i ± q_k = s_i          (i free: s_i injected into the node, + where q_k leaves i)
    p_i = p̄_i                 (i fixed)

The fixed rows are eliminated symmetrically (their columns move to the right-hand side), so
the matrix is symmetric positive definite on each connected part that holds a fixed node.

``kirchhoff_solve`` solves it with ``jax.lax.custom_linear_solve``: derivatives with respect
to the conductances, the injections and the fixed values follow by the implicit function
theorem (one more solve with the same matrix, forward or reverse mode), never by
differentiating the solver's iterations.  Two solvers:

* ``"direct"`` (default): SciPy's sparse LU (SuperLU) on the host through
  ``jax.pure_callback``: exact and fast on the CPU for 1e5 edges, sequential under ``vmap``;
* ``"cg"``: conjugate gradients with a Jacobi preconditioner in JAX itself, for accelerators
  and batches (iterations grow with the network's diameter).

The matrix is scaled by the mean conductance before either solve (SI conductances of
microvessels are ~1e-18 m³/(s·Pa)), and ``kirchhoff_residual`` gives the relative balance error
that tests check after every solve.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

SOLVERS = ("direct", "cg")


def node_balance(edges, flux, n_nodes: int):
    """Net flux leaving every node: Σ over its edges of ±q (+ where the edge starts there)."""
    a, b = edges[:, 0], edges[:, 1]
    return (jax.ops.segment_sum(flux, a, n_nodes) - jax.ops.segment_sum(flux, b, n_nodes))


def laplacian_apply(edges, conductance, x):
    """L x for the graph Laplacian of ``conductance`` on ``edges``."""
    flux = conductance * (x[edges[:, 0]] - x[edges[:, 1]])
    return node_balance(edges, flux, x.shape[0])


def _host_lu_solve(edges, g, fixed, rhs):
    """The eliminated system solved on the host by SciPy's sparse LU (SuperLU)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    edges = np.asarray(edges)
    g, fixed, rhs = np.asarray(g, float), np.asarray(fixed, bool), np.asarray(rhs, float)
    a, b, n_nodes = edges[:, 0], edges[:, 1], fixed.shape[0]
    keep = ~(fixed[a] | fixed[b])  # couplings between two free nodes
    diag = np.bincount(a, g, n_nodes) + np.bincount(b, g, n_nodes)
    diag = np.where(fixed, 1.0, diag)
    rows = np.concatenate([a[keep], b[keep], np.arange(n_nodes)])
    cols = np.concatenate([b[keep], a[keep], np.arange(n_nodes)])
    vals = np.concatenate([-g[keep], -g[keep], diag])
    matrix = coo_matrix((vals, (rows, cols)), shape=(n_nodes, n_nodes)).tocsc()
    return spsolve(matrix, rhs).astype(rhs.dtype)


def kirchhoff_solve(edges, conductance, fixed, fixed_value, injection, *, solver="direct",
                    cg_tol=1e-12, cg_maxiter=100_000):
    """Node values p with ``g (p_a − p_b)`` balanced by ``injection`` at free nodes and
    ``p = fixed_value`` where ``fixed``.  ``edges`` is an int array (m, 2), numpy or traced
    (networks padded to one size share a compile: ``haemodynamics.pad``)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r}; allowed {', '.join(SOLVERS)}")
    n = fixed.shape[0]
    fixed = jnp.asarray(fixed, bool)
    free = (~fixed).astype(conductance.dtype)
    scale = jax.lax.stop_gradient(jnp.mean(conductance))
    g = conductance / scale
    edges_j = jnp.asarray(edges)
    pinned = jnp.where(fixed, fixed_value, 0.0)

    def matvec(x):
        return free * laplacian_apply(edges_j, g, free * x) + (1.0 - free) * x

    rhs = free * (injection / scale - laplacian_apply(edges_j, g, pinned)) + (1 - free) * pinned

    if solver == "direct":
        def solve(_, r):
            shape = jax.ShapeDtypeStruct(r.shape, r.dtype)
            return jax.pure_callback(_host_lu_solve, shape, edges_j, jax.lax.stop_gradient(g),
                                     fixed, r, vmap_method="sequential")
    else:
        diag = jnp.where(fixed, 1.0, _degree_weight(edges_j, g, n))

        def solve(mv, r):
            x, _ = jax.scipy.sparse.linalg.cg(mv, r, tol=cg_tol, maxiter=cg_maxiter,
                                              M=lambda v: v / diag)
            return x

    return jax.lax.custom_linear_solve(matvec, rhs, solve, symmetric=True)


def _degree_weight(edges, g, n):
    """Σ of the conductances at each node: the Laplacian's diagonal."""
    return jax.ops.segment_sum(g, edges[:, 0], n) + jax.ops.segment_sum(g, edges[:, 1], n)


def kirchhoff_residual(edges, conductance, fixed, p, injection):
    """max over free nodes of |net outflow − injection|, relative to the largest edge flux."""
    flux = conductance * (p[edges[:, 0]] - p[edges[:, 1]])
    balance = node_balance(jnp.asarray(edges), flux, p.shape[0]) - injection
    return jnp.max(jnp.where(fixed, 0.0, jnp.abs(balance))) / jnp.max(jnp.abs(flux))
