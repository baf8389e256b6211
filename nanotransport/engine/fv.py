"""Finite-volume fluxes, boundary conditions and the transport operator.

Conservation law per species s, integrated over cell i of volume V_i:

    V_i φ_i dc_i/dt = Σ_faces A_f F_f·n_in + V_i R_i,      F = −D ∇c + u c       (mol/(m²·s))

with φ the capacity (phase volume fraction), D the flux diffusion coefficient (m²/s, already
multiplied by any phase fraction) and u the superficial face-normal velocity (m/s, already
multiplied by any retardation factor).

* Diffusion: two-point flux with the distance-weighted harmonic mean of the cell values,
  D_f = (δ_L + δ_R)/(δ_L/D_L + δ_R/D_R), which makes the flux continuous across coefficient jumps
  (tumor margin) and second-order on smooth grids.
* Convection: first-order upwind (an M-matrix for any cell Péclet number, so unconditionally
  positive in an implicit step), or a limited second-order MUSCL face value (van Leer limiter,
  TVD, positive for Courant number ≤ 1/2 in explicit steps).  Implicit steps use the limited
  scheme by deferred correction: the upwind matrix stays on the left and the anti-diffusive
  flows (``anti_diffusive_flux``) enter the right-hand side, limited (``bounded_correction``)
  so that they create no new local extremum there (``solver.transport_step``).
* Boundary conditions are small pytrees, chosen per domain side and per species: ``Value``,
  ``Flux`` (zero by default: the symmetry condition at r = 0 and walls), ``Robin``
  (inward flux h (c_ext − c)), ``Outflow`` (zero diffusive flux, convective outflow) and
  ``Inflow`` (zero diffusive flux, convective inflow at c_in).  All reduce to one affine form of
  the inward boundary flux, so no kernel branches on the type:

      F_in/A = κ (c_ext − c_P) + q + conv · [u_in⁺ (w c_ext + (1−w) c_P) − u_in⁻ c_P]

  where δ is the centre-to-face distance, κ = D_P/δ (Value), 1/(1/h + δ/D_P) (Robin), 0 (others).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .grid import Grid


# ------------------------------------------------------------------ boundary conditions
def _pytree(cls):
    fields = [f.name for f in dataclasses.fields(cls)]
    return jax.tree_util.register_dataclass(cls, data_fields=fields, meta_fields=[])


@_pytree
@dataclasses.dataclass(frozen=True)
class Value:
    """Dirichlet condition c = value on the face (mol/m³)."""

    value: float = 0.0


@_pytree
@dataclasses.dataclass(frozen=True)
class Flux:
    """Prescribed total inward flux density (mol/(m²·s)); zero is a wall or symmetry plane."""

    flux: float = 0.0


@_pytree
@dataclasses.dataclass(frozen=True)
class Robin:
    """Transfer condition: inward flux h (c_ext − c_face), h in m/s."""

    h: float
    c_ext: float = 0.0


@_pytree
@dataclasses.dataclass(frozen=True)
class Outflow:
    """Zero diffusive flux; convection carries the cell value out."""


@_pytree
@dataclasses.dataclass(frozen=True)
class Inflow:
    """Zero diffusive flux; fluid entering the domain carries concentration ``c_in``."""

    c_in: float = 0.0


Symmetry = Flux  # zero flux: r = 0 in radial geometries, mirror planes
BOUNDARY_TYPES = (Value, Flux, Robin, Outflow, Inflow)


class BoundaryTerms(NamedTuple):
    """Affine inward boundary flux per unit area: kappa·(c_ext − c_P) + q + convective part."""

    kappa: jax.Array
    c_ext: jax.Array
    q: jax.Array
    conv: jax.Array  # 1 where convection crosses the face, else 0
    w_ext: jax.Array  # weight of c_ext in the inflow value (1 − w_ext on c_P)


def _terms(bc, d_cell, delta):
    z = jnp.zeros_like(d_cell)
    one = jnp.ones_like(d_cell)
    if isinstance(bc, Value):
        return BoundaryTerms(d_cell / delta, z + bc.value, z, one, one)
    if isinstance(bc, Flux):
        return BoundaryTerms(z, z, z + bc.flux, z, z)
    if isinstance(bc, Robin):
        kappa = 1.0 / (1.0 / bc.h + delta / d_cell)
        return BoundaryTerms(kappa, z + bc.c_ext, z, one, one)
    if isinstance(bc, Outflow):
        return BoundaryTerms(z, z, z, one, z)
    if isinstance(bc, Inflow):
        return BoundaryTerms(z, z + bc.c_in, z, one, one)
    raise TypeError(
        f"boundary condition {bc!r} has an unknown type; allowed: "
        f"{[t.__name__ for t in BOUNDARY_TYPES]}"
    )


def boundary_terms(side, d_cell, delta) -> BoundaryTerms:
    """Terms for one domain side. ``side`` is one condition for all species or a sequence with
    one per species; ``d_cell`` has shape (n_species, *face_shape)."""
    if isinstance(side, BOUNDARY_TYPES):
        return _terms(side, d_cell, delta)
    if isinstance(side, (list, tuple)):
        if len(side) != d_cell.shape[0]:
            raise ValueError(
                f"boundary condition list has {len(side)} entries for {d_cell.shape[0]} species; "
                "give one condition, or exactly one per species"
            )
        per = [_terms(bc, d_cell[s], delta) for s, bc in enumerate(side)]
        return BoundaryTerms(*(jnp.stack(x) for x in zip(*per)))
    raise TypeError(
        f"boundary condition {side!r} has an unknown type; allowed: "
        f"{[t.__name__ for t in BOUNDARY_TYPES]} or a list of them (one per species)"
    )


# ------------------------------------------------------------------ transport coefficients
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Transport:
    """Transport coefficients of ``n_species`` fields on a grid (a pytree of arrays).

    Attributes:
        diffusivity: flux diffusion coefficient per cell, shape (n_species, *grid.shape) or
            broadcastable, m²/s.
        capacity: φ in ``φ ∂c/∂t``, same broadcasting, dimensionless (> 0).
        velocity: per axis, the superficial velocity normal to the faces of that axis, shape
            broadcastable to (n_species, *face_shape) (n + 1 along that axis), m/s; or None.
        boundaries: per axis, a pair (low side, high side) of boundary conditions.
        source: optional zero-order source per cell, mol/(m³·s) (per tissue volume, i.e. the
            ``s`` of φ ∂c/∂t = −∇·F + s), broadcastable to (n_species, *grid.shape).  It is
            integrated inside the implicit transport solve (shared equally by the direction
            sweeps), so it causes no splitting error, unlike a source in the reaction step.
    """

    diffusivity: jax.Array
    capacity: jax.Array | float = 1.0
    velocity: tuple | None = None
    boundaries: tuple | None = None
    source: jax.Array | None = None


def _expand_to(x, n_species, grid: Grid):
    x = jnp.asarray(x)
    return jnp.broadcast_to(x, (n_species,) + grid.shape) if x.ndim <= grid.ndim + 1 else x


def face_velocity(grid: Grid, transport: Transport, axis: int, n_species: int, dtype):
    """Face-normal velocities of ``axis`` broadcast to (n_species, *face_shape); zero if unset."""
    fshape = (n_species,) + grid.face_area(axis).shape
    if transport.velocity is None or transport.velocity[axis] is None:
        return jnp.zeros(fshape, dtype)
    return jnp.broadcast_to(jnp.asarray(transport.velocity[axis], dtype), fshape)


class AxisCoefficients(NamedTuple):
    """Flux coefficients of the faces normal to one axis, that axis last (n + 1 faces).

    The axis part of the operator is  (L c)_i = lower_i c_{i−1} + diag_i c_i + upper_i c_{i+1}
    + source_i, already divided by V_i φ_i (units 1/s and mol/(m³·s))."""

    lower: jax.Array
    diag: jax.Array
    upper: jax.Array
    source: jax.Array


def _face_shape_vector(v, axis, ndim):
    """Reshape a 1D array along ``axis`` to broadcast against (n_species, *shape)."""
    shape = [1] * (ndim + 1)
    shape[1 + axis] = v.shape[0]
    return jnp.asarray(v).reshape(shape)


def axis_coefficients(grid: Grid, transport: Transport, axis: int, n_species: int,
                      dtype=None) -> AxisCoefficients:
    """Tridiagonal coefficients of diffusion + first-order upwind convection along ``axis``."""
    nd = grid.ndim
    dtype = dtype or jnp.result_type(transport.diffusivity)
    D = _expand_to(transport.diffusivity, n_species, grid).astype(dtype)
    phi = _expand_to(transport.capacity, n_species, grid).astype(dtype)
    area = jnp.asarray(grid.face_area(axis), dtype)[None]  # (1, ..., n+1, ...)
    vol_phi = jnp.asarray(grid.volume, dtype)[None] * phi

    # interior faces: harmonic mean of D weighted by the centre-face distances
    dl, dr = grid.face_split(axis)
    dl = _face_shape_vector(jnp.asarray(dl, dtype), axis, nd)
    dr = _face_shape_vector(jnp.asarray(dr, dtype), axis, nd)
    D_lo = jax.lax.slice_in_dim(D, 0, D.shape[1 + axis] - 1, axis=1 + axis)
    D_hi = jax.lax.slice_in_dim(D, 1, D.shape[1 + axis], axis=1 + axis)
    # T = A D_f / (δ_L + δ_R) = A / (δ_L/D_L + δ_R/D_R); zero where either side has D = 0
    both = (D_lo > 0) & (D_hi > 0)
    safe_lo, safe_hi = jnp.where(both, D_lo, 1.0), jnp.where(both, D_hi, 1.0)
    a_int = jax.lax.slice_in_dim(area, 1, area.shape[1 + axis] - 1, axis=1 + axis)
    T = jnp.where(both, a_int / (dl / safe_lo + dr / safe_hi), 0.0)

    n = grid.shape[axis]
    zeros_face = jnp.zeros_like(jax.lax.slice_in_dim(D, 0, 1, axis=1 + axis))
    # pad T with zeros at boundary faces: boundary fluxes enter through BoundaryTerms below
    T_full = jnp.concatenate([zeros_face, T, zeros_face], axis=1 + axis)

    u = face_velocity(grid, transport, axis, n_species, dtype)
    up = jnp.maximum(u, 0.0) * area
    um = jnp.maximum(-u, 0.0) * area
    inner = lambda x: jax.lax.slice_in_dim(x, 1, n, axis=1 + axis)  # noqa: E731
    up_int = jnp.concatenate([zeros_face, inner(up), zeros_face], axis=1 + axis)
    um_int = jnp.concatenate([zeros_face, inner(um), zeros_face], axis=1 + axis)

    f_lo = lambda x: jax.lax.slice_in_dim(x, 0, n, axis=1 + axis)  # noqa: E731  faces i−1/2
    f_hi = lambda x: jax.lax.slice_in_dim(x, 1, n + 1, axis=1 + axis)  # noqa: E731  faces i+1/2
    lower = f_lo(T_full) + f_lo(up_int)
    upper = f_hi(T_full) + f_hi(um_int)
    diag = -(f_hi(T_full) + f_hi(up_int) + f_lo(T_full) + f_lo(um_int))
    source = jnp.zeros_like(diag)

    # boundary faces: inward flux = alpha c_P + beta
    bcs = transport.boundaries[axis] if transport.boundaries is not None else (Flux(), Flux())
    delta = grid.face_distance(axis)
    for side, idx, sign in ((bcs[0], 0, 1.0), (bcs[1], n - 1, -1.0)):
        face = 0 if idx == 0 else n
        d_p = jax.lax.slice_in_dim(D, idx, idx + 1, axis=1 + axis)
        a_f = jax.lax.slice_in_dim(area, face, face + 1, axis=1 + axis)
        u_in = sign * jax.lax.slice_in_dim(u, face, face + 1, axis=1 + axis)
        bt = boundary_terms(side, d_p, jnp.asarray(delta[face], dtype))
        bt = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, d_p.shape), bt)
        u_p, u_m = jnp.maximum(u_in, 0.0), jnp.maximum(-u_in, 0.0)
        alpha = a_f * (-bt.kappa + bt.conv * ((1.0 - bt.w_ext) * u_p - u_m))
        beta = a_f * (bt.kappa * bt.c_ext + bt.q + bt.conv * u_p * bt.w_ext * bt.c_ext)
        diag = _add_at(diag, idx, alpha, axis)
        source = _add_at(source, idx, beta, axis)

    if transport.source is not None:
        cell_source = jnp.broadcast_to(jnp.asarray(transport.source, dtype), D.shape)
        source = source + jnp.asarray(grid.volume, dtype)[None] * cell_source / grid.ndim
    return AxisCoefficients(*(jnp.moveaxis(x / vol_phi, 1 + axis, -1)
                              for x in (lower, diag, upper, source)))


def _add_at(x, idx, val, axis):
    index = [slice(None)] * x.ndim
    index[1 + axis] = slice(idx, idx + 1)
    return x.at[tuple(index)].add(val)


def apply_axis(coef: AxisCoefficients, c_last):
    """(L c) along one axis for fields with that axis last."""
    pad = jnp.zeros_like(c_last[..., :1])
    c_prev = jnp.concatenate([pad, c_last[..., :-1]], axis=-1)
    c_next = jnp.concatenate([c_last[..., 1:], pad], axis=-1)
    return coef.lower * c_prev + coef.diag * c_last + coef.upper * c_next + coef.source


def divergence(grid: Grid, transport: Transport, c, scheme: str = "upwind"):
    """Transport rate dc/dt (mol/(m³·s)) of fields ``c`` (n_species, *grid.shape).

    ``scheme='upwind'`` is the operator the implicit steps invert; ``scheme='limited'`` adds the
    TVD (van Leer) anti-diffusive correction to convection, for explicit steps.
    """
    if scheme not in ("upwind", "limited"):
        raise ValueError(f"convection scheme = {scheme!r}; allowed: 'upwind', 'limited'")
    ns = c.shape[0]
    rate = jnp.zeros_like(c)
    for axis in range(grid.ndim):
        coef = axis_coefficients(grid, transport, axis, ns, c.dtype)
        c_last = jnp.moveaxis(c, 1 + axis, -1)
        r = apply_axis(coef, c_last)
        if scheme == "limited" and transport.velocity is not None \
                and transport.velocity[axis] is not None:
            faces = convection_faces(grid, transport, axis, ns, c.dtype)
            r = r + flux_rate(anti_diffusive_flux(faces, c_last), faces.vol_phi)
        rate = rate + jnp.moveaxis(r, -1, 1 + axis)
    return rate


def van_leer(r):
    """Van Leer limiter ψ(r) = (r + |r|)/(1 + |r|): TVD, second order where smooth."""
    return (r + jnp.abs(r)) / (1.0 + jnp.abs(r))


class ConvectionFaces(NamedTuple):
    """What the limited convection correction needs along one axis, that axis last: the
    volumetric flows A u⁺ and A u⁻ (m³/s, u⁺ = max(u, 0), u⁻ = max(−u, 0)) through the n − 1
    interior faces and the cell capacities V φ (m³)."""

    flow_pos: jax.Array
    flow_neg: jax.Array
    vol_phi: jax.Array


def convection_faces(grid: Grid, transport: Transport, axis: int, n_species: int,
                     dtype=None) -> ConvectionFaces:
    """``ConvectionFaces`` of ``axis`` (time-invariant: compute once outside a time loop)."""
    dtype = dtype or jnp.result_type(transport.diffusivity)
    area = jnp.moveaxis(jnp.asarray(grid.face_area(axis), dtype)[None], 1 + axis, -1)
    u = jnp.moveaxis(face_velocity(grid, transport, axis, n_species, dtype), 1 + axis, -1)
    vol_phi = jnp.moveaxis(jnp.asarray(grid.volume, dtype)[None]
                           * _expand_to(transport.capacity, n_species, grid).astype(dtype),
                           1 + axis, -1)
    flow = area[..., 1:-1] * u[..., 1:-1]
    return ConvectionFaces(jnp.maximum(flow, 0.0), jnp.maximum(-flow, 0.0), vol_phi)


def anti_diffusive_flux(faces: ConvectionFaces, c_last):
    """Anti-diffusive flows (mol/s, positive along the axis) on all n + 1 faces of fields
    ``c_last`` (axis last): the van Leer MUSCL face value minus the upwind one, times the flow,

        G_{j+½} = A u⁺ ψ(r⁺) (c_{j+1} − c_j)/2 + A u⁻ ψ(r⁻) (c_{j+1} − c_j)/2,
        r⁺ = (c_j − c_{j−1})/(c_{j+1} − c_j),   r⁻ = (c_{j+2} − c_{j+1})/(c_{j+1} − c_j),

    zero on boundary faces and on the upwind side of faces next to them (no second upstream
    cell there: first order).  Upwind flux + G is second order where the data are smooth and
    monotone (ψ(1) = 1) and TVD (0 ≤ ψ ≤ 2, ψ(r)/r ≤ 2)."""
    dtype = c_last.dtype
    cL, cR = c_last[..., :-1], c_last[..., 1:]
    dc = cR - cL
    pad = jnp.zeros_like(c_last[..., :1])
    cLL = jnp.concatenate([pad, c_last[..., :-2]], axis=-1)  # upstream of L for u > 0
    cRR = jnp.concatenate([c_last[..., 2:], pad], axis=-1)  # upstream of R for u < 0
    tiny = jnp.finfo(dtype).tiny
    nonzero = jnp.abs(dc) > tiny
    safe = jnp.where(nonzero, dc, tiny)
    r_pos = jnp.where(nonzero, (cL - cLL) / safe, 0.0)
    r_neg = jnp.where(nonzero, (cRR - cR) / safe, 0.0)
    n = c_last.shape[-1]
    j = jnp.arange(n - 1)
    psi_pos = jnp.where(j >= 1, van_leer(r_pos), 0.0)
    psi_neg = jnp.where(j <= n - 3, van_leer(r_neg), 0.0)
    g = 0.5 * dc * (faces.flow_pos * psi_pos + faces.flow_neg * psi_neg)
    zero = jnp.zeros_like(g[..., :1])
    return jnp.concatenate([zero, g, zero], axis=-1)


def flux_rate(flux, vol_phi):
    """Rate −(G_{i+½} − G_{i−½})/(V φ)_i (mol/(m³·s)) of face flows G (n + 1 faces, axis last)."""
    return -(flux[..., 1:] - flux[..., :-1]) / vol_phi


def bounded_correction(q, flux, vol_phi):
    """q − (G_{i+½} − G_{i−½})/(V φ)_i with the face amounts G (mol, n + 1 faces, axis last)
    scaled face by face so that the result stays within the local bounds of q,

        min(q_{i−1}, q_i, q_{i+1}) ≤ result_i ≤ max(q_{i−1}, q_i, q_{i+1}),

    by Zalesak's (1979) flux-corrected-transport limiter: per cell, P⁺ and P⁻ are the amounts
    the faces would bring in and take out, Q⁺ = max − q and Q⁻ = q − min the room left,
    R^± = min(1, Q^±/P^±); a face is scaled by min(R⁺ of the cell it enters, R⁻ of the cell it
    leaves).  Conservative (every face keeps one amount), the identity where the bounds are
    not reached (smooth data), and the result is non-negative wherever the neighbourhood of q
    is."""
    edge = lambda x: (jnp.concatenate([x[..., :1], x[..., :-1]], axis=-1),  # noqa: E731
                      jnp.concatenate([x[..., 1:], x[..., -1:]], axis=-1))
    q_prev, q_next = edge(q)
    hi = jnp.maximum(jnp.maximum(q_prev, q), q_next)
    lo = jnp.minimum(jnp.minimum(q_prev, q), q_next)
    left, right = flux[..., :-1], flux[..., 1:]  # faces i−½ and i+½ of cell i
    p_in = (jnp.maximum(left, 0.0) - jnp.minimum(right, 0.0)) / vol_phi
    p_out = (jnp.maximum(right, 0.0) - jnp.minimum(left, 0.0)) / vol_phi

    def ratio(room, amount):
        return jnp.where(amount > room, room / jnp.where(amount > 0, amount, 1.0), 1.0)

    r_in, r_out = ratio(hi - q, p_in), ratio(q - lo, p_out)
    # interior face j+½ between cells j (left) and j+1 (right)
    g = flux[..., 1:-1]
    scale = jnp.where(g >= 0, jnp.minimum(r_in[..., 1:], r_out[..., :-1]),
                      jnp.minimum(r_in[..., :-1], r_out[..., 1:]))
    zero = jnp.zeros_like(g[..., :1])
    limited = jnp.concatenate([zero, scale * g, zero], axis=-1)
    return q + flux_rate(limited, vol_phi)


def validate_transport(grid: Grid, transport: Transport, n_species: int) -> None:
    """Raise ValueError naming the field for NaN/negative/mis-shaped coefficients.

    Call outside ``jit`` (on concrete arrays) before a run."""
    def check(name, x, positive=False, allow_negative=False):
        x = np.asarray(x)
        target = (n_species,) + grid.shape
        try:
            np.broadcast_to(x, target)
        except ValueError:
            raise ValueError(f"{name} has shape {x.shape}; allowed: broadcastable to {target} "
                             "(n_species, *grid.shape)") from None
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or inf; allowed: finite values")
        if positive and np.any(x <= 0):
            raise ValueError(f"{name} has value {x.min():g}; allowed: > 0")
        if not allow_negative and np.any(x < 0):
            raise ValueError(f"{name} has value {x.min():g}; allowed: >= 0")

    check("transport.diffusivity", transport.diffusivity)
    check("transport.capacity", transport.capacity, positive=True)
    if transport.velocity is not None:
        if len(transport.velocity) != grid.ndim:
            raise ValueError(f"transport.velocity has {len(transport.velocity)} axes; the grid "
                             f"has {grid.ndim}")
        for a, v in enumerate(transport.velocity):
            if v is None:
                continue
            v = np.asarray(v)
            fshape = grid.face_area(a).shape
            try:
                np.broadcast_to(v, (n_species,) + fshape)
            except ValueError:
                raise ValueError(f"transport.velocity[{a}] has shape {v.shape}; allowed: "
                                 f"broadcastable to {(n_species,) + fshape}") from None
            if not np.all(np.isfinite(v)):
                raise ValueError(f"transport.velocity[{a}] contains NaN or inf")
    if transport.boundaries is not None:
        if len(transport.boundaries) != grid.ndim:
            raise ValueError(f"transport.boundaries has {len(transport.boundaries)} axes; the "
                             f"grid has {grid.ndim}")
        for a, pair in enumerate(transport.boundaries):
            if len(pair) != 2:
                raise ValueError(f"transport.boundaries[{a}] must be a (low, high) pair")
            for side in pair:
                for bc in (side if isinstance(side, (list, tuple)) else (side,)):
                    if not isinstance(bc, BOUNDARY_TYPES):
                        raise TypeError(
                            f"transport.boundaries[{a}] holds {bc!r}; allowed types: "
                            f"{[t.__name__ for t in BOUNDARY_TYPES]}")
                    if isinstance(bc, Robin) and not float(bc.h) > 0:
                        raise ValueError(f"Robin.h = {bc.h!r} on axis {a}; allowed: h > 0 m/s")


def face_fluxes(grid: Grid, transport: Transport, c):
    """Diffusive flux density −D ∇c on every face, per axis (n + 1 faces along it), including
    boundary faces from the boundary conditions (outward-positive along the axis), mol/(m²·s).

    With D = K (hydraulic conductivity) and c = p this is the Darcy velocity u = −K ∇p."""
    ns = c.shape[0]
    out = []
    for axis in range(grid.ndim):
        no_flow = dataclasses.replace(transport, velocity=None, source=None)
        coef = axis_coefficients(grid, no_flow, axis, ns, c.dtype)
        vol_phi = jnp.moveaxis(jnp.asarray(grid.volume, c.dtype)[None]
                               * _expand_to(transport.capacity, ns, grid).astype(c.dtype),
                               1 + axis, -1)
        area = jnp.moveaxis(jnp.asarray(grid.face_area(axis), c.dtype)[None], 1 + axis, -1)
        cl = jnp.moveaxis(c, 1 + axis, -1)
        # interior: T (c_L − c_R)/A with T = upper_L·Vφ_L (the coupling of L to its right cell)
        t_int = coef.upper[..., :-1] * vol_phi[..., :-1]
        f_int = t_int * (cl[..., :-1] - cl[..., 1:]) / area[..., 1:-1]
        # boundary: inward flux = (diag_P − interior couplings) c_P + source, per area
        lo_in = ((coef.diag[..., :1] + coef.upper[..., :1]) * cl[..., :1]
                 + coef.source[..., :1]) * vol_phi[..., :1]
        hi_in = ((coef.diag[..., -1:] + coef.lower[..., -1:]) * cl[..., -1:]
                 + coef.source[..., -1:]) * vol_phi[..., -1:]
        a_lo, a_hi = area[..., :1], area[..., -1:]
        safe = lambda a: jnp.where(a > 0, a, 1.0)  # noqa: E731  (r = 0 has no area, no flux)
        f_lo = jnp.where(a_lo > 0, lo_in / safe(a_lo), 0.0)
        f_hi = jnp.where(a_hi > 0, -hi_in / safe(a_hi), 0.0)
        out.append(jnp.moveaxis(jnp.concatenate([f_lo, f_int, f_hi], axis=-1), -1, 1 + axis))
    return tuple(out)
