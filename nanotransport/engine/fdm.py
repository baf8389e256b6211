"""Fast diagonalization (Lynch, Rice & Thomas 1964): the exact inverse of a separable implicit
stage operator on a tensor-product grid, as a preconditioner for ``multigrid.solve``.

When the coefficients (diffusivity, capacity φ, decay k, boundary conditions) are uniform in
space, the per-(V φ) transport operator is a sum of one-dimensional operators, one per axis,
each the same on every grid line (true for every geometry of ``grid.py``: the metric factors
of Cartesian, cylindrical, spherical and graded grids are products of one-axis factors):

    L = Σ_a I ⊗ … ⊗ M_a ⊗ … ⊗ I,     M_a tridiagonal (n_a × n_a), 1/s.

Each M_a is similar to a symmetric matrix, S_a = D_a M_a D_a⁻¹ with D_a diagonal
(d_{i+1}/d_i = √(upper_i / lower_{i+1})), so M_a = X_a Λ_a X_a⁻¹ with X_a = D_a⁻¹ Q_a,
X_a⁻¹ = Q_aᵀ D_a from ``eigh(S_a)``, and the SDIRK stage operator B = (1 + a k) I − a L
(a = γ h, s) is inverted exactly by

    B⁻¹ r = (⊗_a X_a) · [ r̂ / ((1 + a k) − a Σ_a λ_a) ] ,   r̂ = (⊗_a X_a⁻¹) r,

one small dense product along each axis and back: O(N · Σ_a n_a) work per application, no
iteration.  Preconditioned CG then converges in one or two iterations.  Why hand-written: no
library offers it for JAX; it is a few ``einsum`` calls around ``jnp.linalg.eigh`` of
n_a × n_a matrices.
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


def axis_eigen(coef: fv.AxisCoefficients):
    """(λ, X, X⁻¹) of one axis operator M_a, per species: shapes (ns, n), (ns, n, n), (ns, n, n).

    The operator is read off the first grid line (all lines are equal when the problem is
    separable)."""
    n = coef.diag.shape[-1]
    ns = coef.diag.shape[0]
    line = lambda x: x.reshape(ns, -1, n)[:, 0]  # noqa: E731
    lower, diag, upper = line(coef.lower), line(coef.diag), line(coef.upper)
    up, lo_next = upper[:, :-1], lower[:, 1:]  # M[i, i+1], M[i+1, i]
    coupled = (up > 0) & (lo_next > 0)
    ratio = jnp.where(coupled, jnp.sqrt(jnp.where(coupled, up, 1.0)
                                        / jnp.where(coupled, lo_next, 1.0)), 1.0)
    d = jnp.concatenate([jnp.ones_like(diag[:, :1]), jnp.cumprod(ratio, axis=1)], axis=1)
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
