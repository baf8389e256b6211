"""Geometric multigrid preconditioner and preconditioned Krylov solves for the implicit
finite-volume operators on structured 2D/3D grids.

The operator is written in its volume-integrated form  A x = diag ⊙ x + Σ_axes (couplings to
the two neighbours along the axis),  with one coupling per interior face (``Level.off``; A is
symmetric when the couplings are, i.e. for diffusion).  For the implicit stage of
φ ∂c/∂t = L c − k c,  A = Vφ (1 + a k) − a V φ L  (a = γ h), whose couplings are −a T_f with T_f
the face transmissibility A_f D_f/δ_f.

Coarse levels: aggregation of 2 cells per coarsened axis.  The Galerkin product Pᵀ A P of the
piecewise-constant prolongation P is computed face by face (coarse couplings are sums of the fine
couplings across the coarse face; couplings inside a coarse cell fold into its diagonal); any grid
metric (spherical, cylindrical, graded) is carried by the fine couplings, so no geometric
re-discretization is needed.  The couplings across faces normal to a coarsened axis are then
halved, and the diagonal set so that every row keeps the Galerkin row sum (the volume and
boundary terms): with piecewise-constant P the Galerkin couplings are twice those of the
operator re-discretized on the coarse cells (a face of the coarse cell has 2^(d−1) fine faces,
each with the fine transmissibility A_f D/δ, while the coarse one is 2^(d−1) A_f D/(2δ)), so the
plain Galerkin correction of smooth errors is half what it should be, the known weakness of
unsmoothed aggregation.  Braess (1995, Computing 55, 379-393) and Notay's AGMG scale the whole
coarse correction up instead (over-correction); tried here on 2026-12-06 (×1.5-2) it was slower,
because the volume (mass and decay) terms, which aggregation sums exactly, must not be scaled:
only the couplings are.  Measured on the first stage of the 64³ heterogeneous DR3D
of benchmarks/heterogeneous.py (benchmarks/RESULTS.md, docs/architecture.md): 17 → 12 CG
iterations to 1e-10 together with ω 0.8 → 6/7 at 2 sweeps, 9 at 3 sweeps.  The halved level
stays a diagonally dominant M-matrix, so the cycle stays symmetric positive definite.  An axis is
coarsened while it is at least 4 cells long (an odd length leaves its last cell an aggregate of
its own: the default 19³ network tissue had no coarse level at all before, only Jacobi sweeps);
the hierarchy stops when no axis can be, or at ``max_levels``.

V-cycle: damped Jacobi (ω = 6/7, the smoothing optimum for the 7-point stencil), ``sweeps``
(default 3) before and after the coarse correction, and ``coarse_sweeps`` Jacobi sweeps on the
coarsest level; every part is a fixed polynomial in D⁻¹A, so the cycle is a symmetric
positive-definite preconditioner for a symmetric positive-definite A.  ``low_precision`` wraps
the cycle so that it runs in float32 for a float64 solve (half the memory traffic of these
memory-bound passes; the Krylov iteration, its residuals and its stopping test stay in float64,
so the solution's accuracy is unchanged: a preconditioner only has to be an approximate
inverse).  Why hand-written: jax has Krylov solvers but no
multigrid, and the structured grid makes coarsening a reshape; the cycle is a few fused
elementwise passes per level, the same on CPU and GPU, and runs under ``vmap`` (all members
take the same number of iterations).

Krylov: ``jax.scipy.sparse.linalg.cg`` for symmetric operators, ``bicgstab`` otherwise (with
the V-cycle of the symmetric part), both with relative tolerances on the scaled system; the
solve goes through ``jax.lax.custom_linear_solve``, so derivatives use one more solve with the
transposed operator (implicit-function theorem), not the iterations.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

OMEGA = 6.0 / 7.0
SWEEPS = 3
COARSE_COUPLING_SCALE = 0.5  # halved coarse couplings (module docstring)


class Level(NamedTuple):
    """One level of the hierarchy: ``diag`` (ns, *shape); per axis, ``off[a]`` the coupling
    of each interior face normal to axis a (length n_a − 1 along it), ``off_t[a]`` the
    transposed couplings (equal to ``off`` for symmetric operators)."""

    diag: jax.Array
    off: tuple
    off_t: tuple


def apply(level: Level, x):
    """A x on one level (x with a leading species axis, like ``diag``)."""
    y = level.diag * x
    for a, (o, ot) in enumerate(zip(level.off, level.off_t)):
        ax = 1 + a
        n = x.shape[ax]
        lo = jax.lax.slice_in_dim(x, 0, n - 1, axis=ax)
        hi = jax.lax.slice_in_dim(x, 1, n, axis=ax)
        # row i gets o_{i+1/2} x_{i+1}; row i+1 gets ot_{i+1/2} x_i
        up = o * hi
        down = ot * lo
        pad = jnp.zeros_like(jax.lax.slice_in_dim(x, 0, 1, axis=ax))
        y = y + jnp.concatenate([up, pad], axis=ax) + jnp.concatenate([pad, down], axis=ax)
    return y


def transpose(level: Level) -> Level:
    return Level(level.diag, level.off_t, level.off)


def symmetric_part(level: Level) -> Level:
    off = tuple(0.5 * (o + ot) for o, ot in zip(level.off, level.off_t))
    return Level(level.diag, off, off)


def _pad_one(x, ax):
    """x with one zero appended along ``ax``."""
    pad = [(0, 0)] * x.ndim
    pad[ax] = (0, 1)
    return jnp.pad(x, pad)


def _pairs(x, ax):
    """Sum of pairs of neighbours along ``ax`` (length n → ⌈n/2⌉; for odd n the last cell
    is an aggregate of its own)."""
    if x.shape[ax] % 2:
        x = _pad_one(x, ax)
    shape = x.shape
    return x.reshape(shape[:ax] + (shape[ax] // 2, 2) + shape[ax + 1:]).sum(axis=ax + 1)


def _every_other(x, ax, start):
    n = x.shape[ax]
    return jax.lax.slice_in_dim(x, start, n, stride=2, axis=ax)


def galerkin(level: Level, axes) -> Level:
    """Galerkin coarse level Pᵀ A P, coarsening pairs of cells along ``axes``."""
    diag, off, off_t = level.diag, list(level.off), list(level.off_t)
    for a in axes:
        ax = 1 + a
        inside = _every_other(off[a], ax, 0) + _every_other(off_t[a], ax, 0)  # faces 2I+1/2
        if diag.shape[ax] % 2:  # the last, single-cell aggregate has no inside face
            inside = _pad_one(inside, ax)
        diag = _pairs(diag, ax) + inside
        off[a], off_t[a] = _every_other(off[a], ax, 1), _every_other(off_t[a], ax, 1)
        for b in range(len(off)):
            if b != a:
                off[b], off_t[b] = _pairs(off[b], ax), _pairs(off_t[b], ax)
    return Level(diag, tuple(off), tuple(off_t))


def _row_sums_of_couplings(level: Level):
    return apply(Level(jnp.zeros_like(level.diag), level.off, level.off_t),
                 jnp.ones_like(level.diag))


def coarsen(level: Level, axes, scale: float = COARSE_COUPLING_SCALE) -> Level:
    """Coarse level of the V-cycle: the Galerkin level (``galerkin``) with its couplings
    across faces normal to the coarsened ``axes`` multiplied by ``scale`` and the diagonal
    keeping the Galerkin row sums (module docstring); ``scale`` = 1 is Galerkin itself."""
    g = galerkin(level, axes)
    if scale == 1.0:
        return g
    off = tuple(scale * o if a in axes else o for a, o in enumerate(g.off))
    off_t = tuple(scale * o if a in axes else o for a, o in enumerate(g.off_t))
    row_sum = g.diag + _row_sums_of_couplings(g)
    scaled = Level(g.diag, off, off_t)
    return Level(row_sum - _row_sums_of_couplings(scaled), off, off_t)


def coarsenable(shape) -> tuple:
    """The axes a level coarsens: those at least 4 cells long (pairs of cells; an odd length
    leaves its last cell an aggregate of its own)."""
    return tuple(a for a, n in enumerate(shape) if n >= 4)


def hierarchy(fine: Level, max_levels: int = 12) -> list[Level]:
    levels = [fine]
    while len(levels) < max_levels:
        axes = coarsenable(levels[-1].diag.shape[1:])
        if not axes:
            break
        levels.append(coarsen(levels[-1], axes))
    return levels


def _restrict(r, axes):
    for a in axes:
        r = _pairs(r, 1 + a)
    return r


def _prolong(e, axes, shape):
    """Piecewise-constant prolongation onto the fine ``shape`` (ns, *cells)."""
    for a in axes:
        e = jax.lax.slice_in_dim(jnp.repeat(e, 2, axis=1 + a), 0, shape[1 + a], axis=1 + a)
    return e


def _jacobi(level: Level, x, b, sweeps: int):
    inv = OMEGA / level.diag
    return jax.lax.fori_loop(0, sweeps, lambda _, x: x + inv * (b - apply(level, x)), x)


def v_cycle(levels: list[Level], b, sweeps: int = SWEEPS, coarse_sweeps: int = 30):
    """One V-cycle from a zero initial guess: an approximation of A⁻¹ b."""
    def cycle(k, rhs):
        lev = levels[k]
        if k == len(levels) - 1:
            return _jacobi(lev, jnp.zeros_like(rhs), rhs, coarse_sweeps)
        axes = coarsenable(lev.diag.shape[1:])
        x = _jacobi(lev, jnp.zeros_like(rhs), rhs, sweeps)
        r = rhs - apply(lev, x)
        x = x + _prolong(cycle(k + 1, _restrict(r, axes)), axes, rhs.shape)
        return _jacobi(lev, x, rhs, sweeps)

    return cycle(0, b)


def low_precision(levels: list[Level], dtype=jnp.float32):
    """r ↦ ``v_cycle(levels, r)`` computed in ``dtype`` (float32 by default) and returned in
    r's dtype.  The hierarchy is divided by its largest fine diagonal entry and r by its
    largest magnitude before the cast (the cycle is linear, so both factors come back out
    exactly), so SI-sized entries (~1e-14 for a volume-weighted 3D stage) and small residuals
    late in a solve stay far from float32's underflow."""
    scale_a = jnp.max(jnp.abs(levels[0].diag))
    low = jax.tree_util.tree_map(lambda x: (x / scale_a).astype(dtype), levels)

    def precond(r):
        scale_r = jnp.max(jnp.abs(r))
        scale_r = jnp.where(scale_r > 0, scale_r, 1.0)
        y = v_cycle(low, (r / scale_r).astype(dtype)).astype(r.dtype)
        return y * (scale_r / scale_a)

    return precond


class KrylovInfo(NamedTuple):
    solution: jax.Array
    relative_residual: jax.Array


def solve(level: Level, b, symmetric: bool, tol: float, maxiter: int = 500,
          x0=None, preconditioner=None) -> KrylovInfo:
    """Solve A x = b (A from ``level``) by preconditioned CG (symmetric) or BiCGStab,
    differentiable through ``custom_linear_solve``.  The preconditioner is the multigrid
    V-cycle of the symmetric part, in float32 (``low_precision``), unless ``preconditioner``
    (r ↦ ≈ A⁻¹ r, symmetric positive definite for CG) is given.  ``x0``: a starting guess.
    The solve stops at ‖b − A x‖ ≤ tol ‖b‖; derivative systems (``custom_linear_solve``)
    start from zero and stop at tol times their own right-hand side or tol ‖b‖, whichever is
    larger (tangents accurate relative to the primal's scale)."""
    precond = preconditioner
    if precond is None:
        precond = low_precision(hierarchy(symmetric_part(level)))
    matvec = lambda x: apply(level, x)  # noqa: E731

    # stop at ‖r‖ ≤ tol ‖b‖ (b the whole right-hand side, as without a starting guess): a
    # tolerance relative to the correction's small residual could not be reached in float64
    floor = tol * jax.lax.stop_gradient(jnp.linalg.norm(b))

    def krylov(op, rhs):
        if symmetric:
            y, _ = jax.scipy.sparse.linalg.cg(op, rhs, tol=tol, atol=floor, maxiter=maxiter,
                                              M=precond)
        else:
            y, _ = jax.scipy.sparse.linalg.bicgstab(op, rhs, tol=tol, atol=floor,
                                                    maxiter=maxiter, M=precond)
        return y

    def krylov_t(op_t, rhs):  # the transposed system, for reverse-mode derivatives
        if symmetric:
            return krylov(op_t, rhs)
        y, _ = jax.scipy.sparse.linalg.bicgstab(op_t, rhs, tol=tol, atol=0.0, maxiter=maxiter,
                                                M=precond)
        return y

    # a starting guess x0 enters as the correction form A (x − x0) = b − A x0: custom_linear_solve
    # calls the same solve for the derivatives' systems, which must start from zero, not x0
    # (from x0 they returned garbage tangents; tests/test_engine.py)
    start = jnp.zeros_like(b) if x0 is None else x0
    x = start + jax.lax.custom_linear_solve(matvec, b - matvec(start), krylov,
                                            transpose_solve=krylov_t, symmetric=symmetric)
    res = jnp.linalg.norm(matvec(x) - b) / jnp.maximum(jnp.linalg.norm(b),
                                                       jnp.finfo(b.dtype).tiny)
    return KrylovInfo(x, res)
