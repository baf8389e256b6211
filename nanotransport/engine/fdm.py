"""Fast diagonalization (Lynch, Rice & Thomas 1964): the exact inverse of a separable implicit
stage operator on a tensor-product grid, as a preconditioner for ``multigrid.solve``.

When the coefficients (diffusivity, capacity φ, decay k, velocity, boundary conditions) are
uniform in space, the per-(V φ) transport operator is a sum of one-dimensional operators, one per axis,
each the same on every grid line (true for every geometry of ``grid.py``: the metric factors
of Cartesian, cylindrical, spherical and graded grids are products of one-axis factors):

    L = Σ_a I ⊗ … ⊗ M_a ⊗ … ⊗ I,     M_a tridiagonal (n_a × n_a), 1/s.

Each M_a is similar to a symmetric matrix, S_a = D_a M_a D_a⁻¹ with D_a diagonal
(d_{i+1}/d_i = √(upper_i / lower_{i+1})), so M_a = X_a Λ_a X_a⁻¹ with X_a = D_a⁻¹ Q_a,
X_a⁻¹ = Q_aᵀ D_a from ``eigh(S_a)``, and the SDIRK stage operator B = (1 + a k) I − a L
(a = γ h, s) is inverted exactly by

    B⁻¹ r = (⊗_a X_a) · [ r̂ / ((1 + a k) − a Σ_a λ_a) ] ,   r̂ = (⊗_a X_a⁻¹) r,

one small dense product along each axis and back: O(N · Σ_a n_a) work per application, no
iteration.  Preconditioned CG then converges in one or two iterations.  For coefficients
that vary in space, ``averaged_inverse`` applies the same inverse to the operator of averaged
coefficients, optionally rescaled by the diagonal (an approximate inverse, for CG/BiCGStab).
Why hand-written: no library offers it for JAX; it is a few ``einsum`` calls around
``jnp.linalg.eigh`` of n_a × n_a matrices.
"""
from __future__ import annotations

import string

import jax
import jax.numpy as jnp

from . import fv


def uniform(x, ndim: int) -> bool:
    """True when ``x`` (a coefficient broadcastable to (n_species, *grid.shape)) has the same
    value in every cell: all its spatial axes have length 1."""
    shape = jnp.shape(x)
    return all(s == 1 for s in shape[max(0, len(shape) - ndim):])


#: largest ratio max(d)/min(d) of the symmetrizing similarity kept exact (per dtype); beyond
#: it the similarity is clipped and the inverse is approximate (convection at high Péclet)
SIMILARITY_RANGE = {"float64": 1e8, "float32": 1e3}


def axis_eigen(coef: fv.AxisCoefficients):
    """(λ, X, X⁻¹) of one axis operator M_a, per species: shapes (ns, n), (ns, n, n), (ns, n, n).

    The operator is read off the first grid line (all lines are equal when the problem is
    separable).  With upwind convection M_a is not symmetric but still similar to a symmetric
    matrix (its off-diagonal products are positive): d_{i+1}/d_i = √(upper_i / lower_{i+1}) =
    (1 + Pe_cell)^{∓½} on a uniform grid, so d spans (1 + Pe_cell)^{n/2}.  While that range is
    within ``SIMILARITY_RANGE`` the decomposition is exact; beyond it log d is clipped (centred),
    X X⁻¹ = I still holds and the result is the exact inverse of a nearby operator, so a Krylov
    method preconditioned by it still converges, in more iterations."""
    n = coef.diag.shape[-1]
    ns = coef.diag.shape[0]
    line = lambda x: x.reshape(ns, -1, n)[:, 0]  # noqa: E731
    lower, diag, upper = line(coef.lower), line(coef.diag), line(coef.upper)
    up, lo_next = upper[:, :-1], lower[:, 1:]  # M[i, i+1], M[i+1, i]
    coupled = (up > 0) & (lo_next > 0)
    log_ratio = jnp.where(coupled, 0.5 * (jnp.log(jnp.where(coupled, up, 1.0))
                                          - jnp.log(jnp.where(coupled, lo_next, 1.0))), 0.0)
    log_d = jnp.concatenate([jnp.zeros_like(diag[:, :1]), jnp.cumsum(log_ratio, axis=1)],
                            axis=1)
    log_d = log_d - 0.5 * (jnp.max(log_d, axis=1, keepdims=True)
                           + jnp.min(log_d, axis=1, keepdims=True))
    half_range = 0.5 * jnp.log(SIMILARITY_RANGE[jnp.dtype(diag.dtype).name])
    d = jnp.exp(jnp.clip(log_d, -half_range, half_range))
    off = jnp.sqrt(jnp.maximum(up * lo_next, 0.0))
    s = jax.vmap(lambda d, o: jnp.diag(d) + jnp.diag(o, 1) + jnp.diag(o, -1))(diag, off)
    lam, q = jnp.linalg.eigh(s)
    x = q / d[:, :, None]  # D⁻¹ Q
    x_inv = jnp.swapaxes(q, 1, 2) * d[:, None, :]  # Qᵀ D
    return lam, x, x_inv


def _along(m, r, axis: int):
    """Apply the per-species matrices m (ns, n, n) along spatial ``axis`` of r (ns, *shape)."""
    nd = r.ndim - 1
    letters = string.ascii_letters[: nd]
    src = "s" + letters
    dst = "s" + letters[:axis] + "z" + letters[axis + 1:]
    return jnp.einsum(f"sz{letters[axis]},{src}->{dst}", m, r)


def stage_inverse(coefs, a_h, decay):
    """r ↦ B⁻¹ r for B = (1 + a_h k) I − a_h Σ_a M_a, from the axis coefficients of
    ``fv.axis_coefficients`` (axis last); ``decay`` k uniform (scalar or per species)."""
    eig = [axis_eigen(cf) for cf in coefs]
    nd = len(coefs)
    ns = coefs[0].diag.shape[0]
    dtype = coefs[0].diag.dtype
    k = jnp.broadcast_to(jnp.asarray(decay, dtype).reshape(-1), (ns,))
    denom = (1.0 + a_h * k).reshape((ns,) + (1,) * nd)
    for axis, (lam, _, _) in enumerate(eig):
        shape = [ns] + [1] * nd
        shape[1 + axis] = lam.shape[-1]
        denom = denom - a_h * lam.reshape(shape)

    def apply(r):
        for axis, (_, _, x_inv) in enumerate(eig):
            r = _along(x_inv, r, axis)
        r = r / denom
        for axis, (_, x, _) in enumerate(eig):
            r = _along(x, r, axis)
        return r

    return apply


def _spatial_mean(x, ndim: int, geometric: bool = False):
    """Mean of ``x`` over its trailing ``ndim`` (spatial) axes, kept with length 1: arithmetic,
    or geometric over the positive cells (exp of the mean log; zero if no cell is positive)."""
    x = jnp.asarray(x)
    axes = tuple(range(max(0, x.ndim - ndim), x.ndim))
    if not geometric:
        return jnp.mean(x, axis=axes, keepdims=True)
    positive = x > 0
    logs = jnp.where(positive, jnp.log(jnp.where(positive, x, 1.0)), 0.0)
    count = jnp.sum(positive, axis=axes, keepdims=True)
    mean_log = jnp.sum(logs, axis=axes, keepdims=True) / jnp.maximum(count, 1)
    return jnp.where(count > 0, jnp.exp(mean_log), 0.0)


def averaged_transport(transport: fv.Transport, decay, ndim: int):
    """(transport, decay) of the separable operator nearest a heterogeneous one, for
    ``averaged_inverse``: per species the geometric mean diffusivity over the cells (better than
    the arithmetic mean across jumps, where the face value is a harmonic mean), the arithmetic
    mean capacity, decay and boundary parameters; no velocity (the preconditioner approximates
    the symmetric, diffusive part) and no source."""
    mean = lambda x: _spatial_mean(x, ndim)  # noqa: E731
    boundaries = jax.tree_util.tree_map(mean, transport.boundaries)
    averaged = fv.Transport(diffusivity=_spatial_mean(transport.diffusivity, ndim, True),
                            capacity=mean(transport.capacity), boundaries=boundaries)
    return averaged, mean(decay)


def averaged_inverse(grid, transport: fv.Transport, decay, a_h, diag, scaled: bool = True):
    """An SPD approximate inverse of the volume-weighted stage matrix A = W B (W = V φ,
    B = (1 + a_h k) − a_h L; ``diag`` its diagonal, shape (ns, *grid.shape)) for CG/BiCGStab
    when the coefficients vary in space: the exact inverse of the separable Ā = W̄ B̄ built from
    ``averaged_transport`` (fast diagonalization, ``stage_inverse``),

        P⁻¹ r = B̄⁻¹ (r / W̄)                             (scaled=False),
        P⁻¹ r = S⁻¹ B̄⁻¹ (S⁻¹ r / W̄),  S = (diag A / diag Ā)^½   (scaled=True),

    i.e. P = S Ā S, with Ā's cell-by-cell couplings rescaled by the geometric mean √(s_i s_j) of
    the local-to-average ratios: where D, φ or k are larger than average, P is too, so for
    piecewise-smooth coefficients P⁻¹A differs from the identity mainly at coefficient jumps
    (the CG iterations then grow with the jump, not with the grid).  Both are symmetric
    positive definite (Ā is), as CG needs."""
    ns = diag.shape[0]
    dtype = diag.dtype
    nd = grid.ndim
    tr_bar, k_bar = averaged_transport(transport, decay, nd)
    coefs = [fv.axis_coefficients(grid, tr_bar, a, ns, dtype) for a in range(nd)]
    w_bar = jnp.asarray(grid.volume, dtype)[None] * jnp.broadcast_to(
        jnp.asarray(tr_bar.capacity, dtype), (ns,) + (1,) * nd)
    w_bar = jnp.broadcast_to(w_bar, diag.shape)
    k_bar = jnp.broadcast_to(jnp.asarray(k_bar, dtype), (ns,) + (1,) * nd)
    inverse = stage_inverse(coefs, a_h, k_bar)
    if not scaled:
        return lambda r: inverse(r / w_bar)
    diag_bar = w_bar * (1.0 + a_h * k_bar)
    for axis, cf in enumerate(coefs):
        diag_bar = diag_bar - a_h * w_bar * jnp.moveaxis(cf.diag, -1, 1 + axis)
    s_inv = jnp.sqrt(diag_bar / diag)
    return lambda r: s_inv * inverse(s_inv * r / w_bar)
