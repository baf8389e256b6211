"""Linear solves: batched tridiagonal lines and steady diffusion-reaction problems.

* ``solve_lines`` solves (I − h M) x = r along the last axis for every line at once with
  ``jax.lax.linalg.tridiagonal_solve`` (Thomas algorithm on CPU, cuSPARSE gtsv on GPU): the
  direct solver of the implicit steps in 1D and of each direction of the split steps in 2D/3D.
* ``solve_steady`` solves the steady problem  −∇·(D∇c) + a c = s  (pressure, steady heat) on
  any grid: a direct tridiagonal solve in 1D, Jacobi-preconditioned conjugate gradients in
  2D/3D.  The system is written in its symmetric, volume-integrated form and scaled by its
  diagonal (entries near 1e-16 in SI units become O(1)), so tolerances are relative.  Both
  paths go through ``jax.lax.custom_linear_solve``: derivatives come from the implicit-function
  theorem (one more solve with the transposed operator), not from differentiating iterations.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import fv
from .grid import Grid


def small_solve(a, b):
    """Solve a x = b for many small systems at once: a (..., n, n), b (..., n) or (..., n, k)
    (``solve_species_first`` with the matrix axes moved to the front)."""
    vector = b.ndim == a.ndim - 1
    am = jnp.moveaxis(a, (-2, -1), (0, 1))
    bm = jnp.moveaxis(b, -1, 0) if vector else jnp.moveaxis(b, (-2, -1), (0, 1))
    x = solve_species_first(am, bm if not vector else bm[:, None])
    return jnp.moveaxis(x[:, 0], 0, -1) if vector else jnp.moveaxis(x, (0, 1), (-2, -1))


def solve_species_first(a, b):
    """Solve a x = b for many small systems with the matrix axes first: a (n, n, *batch),
    b (n, k, *batch) → x (n, k, *batch).

    Gaussian elimination with partial pivoting, one ``fori_loop`` iteration per row (unrolled,
    the n rows made a 10 × 10 solve ~30 % of a heated model's compiled program), every
    operation elementwise over the trailing batch axes, which are contiguous in memory, so
    each row operation is one vectorized pass.  Why hand-written instead of ``jnp.linalg.solve``:
    the systems are tiny (1-12 species per grid cell, the 10 × 10 PK propagator) and there is
    one per cell or batch member; batched LAPACK calls cost ~250× a division for 1 × 1 systems
    and, on a 2-core CPU with jaxlib 0.10, hung in the thread pool (262,144 cells; a vmapped
    batch of 256 PK matrix exponentials).  This runs the same on CPU and GPU."""
    n = a.shape[0]
    m = jnp.concatenate([a, b], axis=1)  # augmented (n, n + k, *batch)
    rows = jnp.arange(n).reshape((n,) + (1,) * (m.ndim - 1))

    def eliminate(k, m):
        column = jax.lax.dynamic_index_in_dim(m, k, axis=1, keepdims=False)  # (n, *batch)
        # partial pivoting: exchange row k with the largest |m[i, k]|, i ≥ k
        p = jnp.argmax(jnp.where(rows[:, 0] >= k, jnp.abs(column), -1.0), axis=0)
        onehot = rows == p[None, None]  # (n, 1, *batch)
        row_p = jnp.sum(jnp.where(onehot, m, 0.0), axis=0)
        row_k = jax.lax.dynamic_index_in_dim(m, k, axis=0, keepdims=False)
        m = jnp.where(onehot, row_k[None], m)
        row = row_p / jax.lax.dynamic_index_in_dim(row_p, k, axis=0, keepdims=True)
        factors = jnp.where(rows[:, 0] == k, 0.0, jnp.where(onehot[:, 0], column[k], column))
        m = m - factors[:, None] * row[None]
        return jnp.where(rows == k, row[None], m)

    m = jax.lax.fori_loop(0, n, eliminate, m)
    return m[:, n:]


def local_lu(a):
    """LU factors, without pivoting, of many small matrices with the matrix axes first:
    a (n, n, *batch) → the factors in one array (L below the diagonal, unit diagonal implied;
    U on and above).

    For the implicit stages of local kinetics, I − a_h J with J the Jacobian of conserving
    exchange and decay rates: a nonsingular M-matrix up to diagonal scaling (non-positive
    diagonal, non-negative couplings of J), for which elimination without pivoting is stable;
    without the pivot search and row exchanges each elimination step is one fused update of
    the trailing block, elementwise over the batch (cell) axes, which are contiguous.  Factor
    once per Newton iteration, solve with ``local_lu_solve``."""
    n = a.shape[0]
    for k in range(n - 1):
        f = a[k + 1:, k] / a[k, k]
        a = a.at[k + 1:, k].set(f).at[k + 1:, k + 1:].add(-f[:, None] * a[k, None, k + 1:])
    return a


def local_lu_solve(lu, b):
    """Solve a x = b with the factors of ``local_lu``; b (n, *batch).

    Forward and back substitution on the n rows held as separate arrays (no row updates in
    place): every operation is elementwise, so XLA fuses the whole solve into a few kernels
    (in-place row updates cost one kernel each: 10 % of a 2-parameter forward gradient)."""
    n = lu.shape[0]
    x = [b[i] for i in range(n)]
    for i in range(1, n):  # L y = b
        for j in range(i):
            x[i] = x[i] - lu[i, j] * x[j]
    for i in reversed(range(n)):  # U x = y
        for j in range(i + 1, n):
            x[i] = x[i] - lu[i, j] * x[j]
        x[i] = x[i] / lu[i, i]
    return jnp.stack(x)


def sparse_lu(entries: dict, n: int) -> dict:
    """LU factors, without pivoting, of many small sparse matrices: ``entries`` maps (i, j) to
    the entry's array over the batch (cells), structural zeros absent, every diagonal present;
    returns the factors in the same form (L below the diagonal, unit diagonal implied; U on and
    above), fill-in included.  The elimination of ``local_lu`` restricted to the nonzeros: for
    the default scenario's 10 × 10 Newton matrix, 25 nonzeros and ~15 multiply-adds instead of
    285; the same conditions on the matrix (an M-matrix up to diagonal scaling)."""
    a = dict(entries)
    for k in range(n - 1):
        below = [i for i in range(k + 1, n) if (i, k) in a]
        right = [j for j in range(k + 1, n) if (k, j) in a]
        for i in below:
            f = a[i, k] / a[k, k]
            a[i, k] = f
            for j in right:
                a[i, j] = a[i, j] - f * a[k, j] if (i, j) in a else -f * a[k, j]
    return a


def sparse_lu_solve(lu: dict, b):
    """Solve a x = b with the factors of ``sparse_lu``; b (n, *batch)."""
    n = b.shape[0]
    x = [b[i] for i in range(n)]
    for i in range(1, n):  # L y = b
        for j in range(i):
            if (i, j) in lu:
                x[i] = x[i] - lu[i, j] * x[j]
    for i in reversed(range(n)):  # U x = y
        for j in range(i + 1, n):
            if (i, j) in lu:
                x[i] = x[i] - lu[i, j] * x[j]
        x[i] = x[i] / lu[i, i]
    return jnp.stack(x)


def solve_lines(lower, diag, upper, rhs, h):
    """Solve (I − h M) x = rhs, M tridiagonal along the last axis (lower, diag, upper)."""
    dl = (-h * lower).at[..., 0].set(0.0)
    du = (-h * upper).at[..., -1].set(0.0)
    d = 1.0 - h * diag
    return _tridiagonal(dl, d, du, rhs)


def _tridiagonal(dl, d, du, rhs):
    """Batched tridiagonal solve over all leading axes (system along the last axis)."""
    batch = rhs.shape[:-1]
    n = rhs.shape[-1]
    flat = lambda x: jnp.broadcast_to(x, batch + (n,)).reshape(-1, n)  # noqa: E731
    x = jax.lax.linalg.tridiagonal_solve(flat(dl), flat(d), flat(du), flat(rhs)[..., None])
    return x[..., 0].reshape(batch + (n,))


class SteadyInfo(NamedTuple):
    """Solution of a steady problem with its relative residual ‖A x − b‖/‖b‖."""

    solution: jax.Array
    relative_residual: jax.Array


def steady_operator(grid: Grid, transport: fv.Transport, reaction_rate):
    """Return (matvec, rhs_bc, diagonal) for  V·(a c − L c)  with L the transport operator.

    ``reaction_rate`` a (1/s, ≥ 0) multiplies c in the volume term.  The operator is symmetric
    when there is no convection.  Fields carry a leading species axis of length 1.
    """
    dtype = jnp.result_type(transport.diffusivity, reaction_rate)
    # a steady state does not depend on the capacity φ of φ ∂c/∂t; the coefficients below are
    # per V φ, so φ = 1 keeps the operator V·(a − L) (and symmetric for any φ)
    transport = dataclasses.replace(transport, capacity=1.0, source=None)  # s is an argument
    vol = jnp.asarray(grid.volume, dtype)[None]
    coefs = [fv.axis_coefficients(grid, transport, a, 1, dtype) for a in range(grid.ndim)]
    a = jnp.broadcast_to(jnp.asarray(reaction_rate, dtype), (1,) + grid.shape)

    def homogeneous(x):
        out = a * x
        for axis, cf in enumerate(coefs):
            xl = jnp.moveaxis(x, 1 + axis, -1)
            lx = cf.lower * _shift(xl, 1) + cf.diag * xl + cf.upper * _shift(xl, -1)
            out = out - jnp.moveaxis(lx, -1, 1 + axis)
        return vol * out

    bc_source = sum(jnp.moveaxis(cf.source, -1, 1 + ax) for ax, cf in enumerate(coefs)) * vol
    diagonal = vol * (a - sum(jnp.moveaxis(cf.diag, -1, 1 + ax) for ax, cf in enumerate(coefs)))
    return homogeneous, bc_source, diagonal, coefs, a


def _shift(x, k):
    pad = jnp.zeros_like(x[..., :1])
    if k == 1:  # value of the previous cell
        return jnp.concatenate([pad, x[..., :-1]], axis=-1)
    return jnp.concatenate([x[..., 1:], pad], axis=-1)


def solve_steady(grid: Grid, transport: fv.Transport, source, reaction_rate=0.0,
                 tol: float | None = None, maxiter: int = 10_000) -> SteadyInfo:
    """Solve  −∇·(D∇c) + a c = s  with the boundary conditions of ``transport``.

    Args:
        grid: any grid.
        transport: coefficients of one field (diffusivity etc. broadcastable to grid.shape).
        source: s, mol/(m³·s) (or the field's units per second), per cell.
        reaction_rate: a ≥ 0, 1/s, per cell.
        tol: relative residual target of the Krylov path (default 1e-10 in float64, 1e-5 in
            float32).
    Returns:
        ``SteadyInfo(solution, relative_residual)`` with the solution of shape grid.shape.
    """
    if transport.velocity is not None and any(v is not None for v in transport.velocity):
        raise ValueError("solve_steady handles symmetric problems (diffusion + reaction); "
                         "transport.velocity must be None")
    dtype = jnp.result_type(transport.diffusivity, source, reaction_rate)
    matvec, bc_src, diag, coefs, a = steady_operator(grid, transport, reaction_rate)
    vol = jnp.asarray(grid.volume, dtype)[None]
    b = vol * jnp.broadcast_to(jnp.asarray(source, dtype), (1,) + grid.shape) + bc_src
    if tol is None:
        tol = 1e-10 if dtype == jnp.float64 else 1e-5

    if grid.ndim == 1:
        cf = coefs[0]

        def solve(_, rhs):
            # (a − L) x = rhs / V  as a tridiagonal system
            return _tridiagonal(-cf.lower, a - cf.diag, -cf.upper, rhs / vol)

        x = jax.lax.custom_linear_solve(matvec, b, solve, transpose_solve=solve, symmetric=True)
    else:
        inv_diag = 1.0 / diag

        def solve(op, rhs):
            y, _ = jax.scipy.sparse.linalg.cg(op, rhs, tol=tol, atol=0.0, maxiter=maxiter,
                                              M=lambda r: inv_diag * r)
            return y

        x = jax.lax.custom_linear_solve(matvec, b, solve, symmetric=True)
    res = jnp.linalg.norm(matvec(x) - b) / jnp.maximum(jnp.linalg.norm(b), jnp.finfo(dtype).tiny)
    return SteadyInfo(x[0], res)


def gmres(matvec, b, x0=None, *, krylov_dim: int = 20, restarts: int = 10, rtol: float = 1e-10):
    """Restarted GMRES(m) for A x = b with A given by ``matvec``, in plain JAX loops.

    Each cycle is one static ``fori_loop`` of m + 1 products: the first gives the residual
    r = b − A x that starts the basis, the others the Arnoldi vectors (Gram–Schmidt, twice);
    the small least-squares problem min ‖β e₁ − H y‖ is solved by ``lstsq``, and its residual
    (‖b − A x‖ after the cycle, in exact arithmetic) decides the restart, until it is
    ≤ rtol ‖b‖ or after ``restarts`` cycles.  ``matvec`` is thus traced once: each call site
    of a Jacobian–vector product through a network solve is a copy of it in the compiled
    program.  Hand-written because ``jax.scipy.sparse.linalg.gmres`` wraps its solve in
    ``custom_linear_solve``, which transposes ``matvec`` when traced: that fails when
    ``matvec`` is a forward-mode derivative through a ``while_loop`` (a Newton step's
    Jacobian–vector product).  This one is never differentiated (use it inside solvers whose
    outputs are differentiated implicitly).
    Returns (x, relative residual estimate of the last cycle)."""
    b = jnp.asarray(b)
    x = jnp.zeros_like(b) if x0 is None else x0
    b_norm = jnp.maximum(jnp.linalg.norm(b), jnp.finfo(b.dtype).tiny)
    m = krylov_dim
    slots = jnp.arange(m + 1)

    def cycle(x):
        def product(j, carry):
            basis, hess, beta = carry
            k = jnp.maximum(j - 1, 0)  # the Arnoldi column of product j ≥ 1
            w = matvec(jnp.where(j == 0, x, basis[k]))
            r = b - w  # product 0: the residual
            r_norm = jnp.linalg.norm(r)
            mask = slots <= k
            coeffs = jnp.where(mask, jnp.tensordot(basis, w, axes=w.ndim), 0.0)
            w = w - jnp.tensordot(coeffs, basis, axes=1)
            # a second pass of Gram–Schmidt (re-orthogonalization) keeps the basis orthogonal
            again = jnp.where(mask, jnp.tensordot(basis, w, axes=w.ndim), 0.0)
            w = w - jnp.tensordot(again, basis, axes=1)
            norm = jnp.linalg.norm(w)
            first = j == 0
            column = hess.at[:, k].set(coeffs + again).at[k + 1, k].set(norm)
            return (jnp.where(first, basis.at[0].set(r / jnp.maximum(r_norm, 1e-300)),
                              basis.at[k + 1].set(w / jnp.maximum(norm, 1e-300))),
                    jnp.where(first, hess, column), jnp.where(first, r_norm, beta))

        basis, hess, beta = jax.lax.fori_loop(
            0, m + 1, product, (jnp.zeros((m + 1,) + b.shape, b.dtype),
                                jnp.zeros((m + 1, m), b.dtype), jnp.zeros((), b.dtype)))
        rhs = jnp.zeros(m + 1, b.dtype).at[0].set(beta)
        y = jnp.linalg.lstsq(hess, rhs)[0]
        return x + jnp.tensordot(y, basis[:m], axes=1), jnp.linalg.norm(rhs - hess @ y) / b_norm

    def cond(state):
        _, res, k = state
        return (res > rtol) & (k < restarts)

    def body(state):
        x, _, k = state
        x, res = cycle(x)
        return x, res, k + 1

    x, res, _ = jax.lax.while_loop(cond, body, (x, jnp.asarray(jnp.inf, b.dtype), 0))
    return x, res



# Padé(13) coefficients b_0..b_13 and the scaling threshold θ_13 of Higham (2005), SIAM J.
# Matrix Anal. Appl. 26:1179, Table 2.3 (backward error below double-precision round-off).
_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
           129060195264000.0, 10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0,
           40840800.0, 960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152
# at most 48 squarings: ‖M t‖₁ up to 5.37·2^48 = 1.5e15 (e.g. a 0.05/s release over 1e9 s)
_MAX_SQUARINGS = 48


def expm_small(m):
    """exp(m) for one or a batch (..., n, n) of small matrices: scaling and squaring with the
    degree-13 Padé approximant, r = (V − U)⁻¹ (V + U) at m/2^s, then squared s times, where
    s = max(0, ⌈log2(‖m‖₁/θ_13)⌉).

    Hand-written instead of ``jax.scipy.linalg.expm`` because that one solves with batched LAPACK
    LU, which deadlocked the CPU thread pool (every thread idle; jaxlib 0.10, 2 cores) for a
    vmapped batch of 256 systemic models and again for the 2972 segments of a heated network
    delivery inside ``lax.scan``; here the solve is ``small_solve``, elementwise and the same on
    CPU and GPU.  The squarings
    run in a loop of ``_MAX_SQUARINGS`` iterations that square only while i < s (a ``cond``; a
    batch of matrices squares while i < max(s), each matrix only while i < its own s; under an
    outer ``vmap`` the ``cond`` becomes a select, as in jax's expm, and all iterations run), and s
    carries no derivative (it is piecewise constant), so reverse and forward mode go through."""
    norm = jnp.max(jnp.sum(jnp.abs(m), axis=-2), axis=-1)
    s = jax.lax.stop_gradient(jnp.clip(jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-300) / _THETA13)),
                                       0, _MAX_SQUARINGS))
    a = m / (2.0 ** s)[..., None, None]
    b = _PADE13
    eye = jnp.broadcast_to(jnp.eye(m.shape[-1], dtype=m.dtype), m.shape)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2
             + b[1] * eye)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * eye
    r = small_solve(v - u, v + u)

    s_max = jnp.max(s)  # a batch squares while any of its matrices needs it

    def square(i, r):
        if s.ndim == 0:  # one matrix: square only when needed
            return jax.lax.cond(i < s, lambda x: x @ x, lambda x: x, r)
        return jax.lax.cond(i < s_max, lambda x: jnp.where((i < s)[..., None, None], x @ x, x),
                            lambda x: x, r)

    return jax.lax.fori_loop(0, _MAX_SQUARINGS, square, r)
