"""Regions of a grid: sources and sinks on them, probes and region averages.

A *region* is a boolean mask over the cells, shape ``grid.shape`` (numpy, static: it is
geometry, not data); ``ball`` and ``cell_mask`` build the common ones.  Points and centres
are given in the grid's own coordinates, one per axis (m): (x) slab, (r) cylinder and sphere,
(x, y) 2D Cartesian, (r, z) axisymmetric, (x, y, z) 3D Cartesian.  A point lies in the cell
whose faces bracket it on every axis (a point on an interior face belongs to the cell above
it); a cell belongs to a ball when its centre does.

With V_i the cell volumes (``grid.volume``: m³, or per m² of cross-section for a slab, per
metre of length or depth for a cylinder and a 2D Cartesian grid; rates in mol/s are then per
that unit too) and m_i ∈ {0, 1} the mask:

* source of total rate Q (mol/s) spread uniformly over a region Ω (``region_source``):

      s_i = Q m_i / Σ_j m_j V_j   (mol/(m³·s)),   so   Σ_i s_i V_i = Q   exactly,

  the ``source`` of ``fv.Transport`` (φ ∂c/∂t = −∇·F + s); Q < 0 is a sink of fixed rate (it
  can drive c negative).  A point source (``point_source``) is the one cell holding the point.
* first-order sink of rate constant k (1/s) on a region (``region_sink``): k_i = k m_i, the
  ``decay`` of ``solver.implicit_step`` (φ ∂c/∂t = … − φ k c), removing Σ_i V_i φ_i k_i c_i
  mol/s;
* probe (``probe``): c at the cell holding the point — the cell value, no interpolation (a
  finite-volume value is the cell's mean; to second order it is also the value at the centre);
* total and average over a region (``region_total``, ``region_average``):

      N = Σ_i V_i φ_i m_i c_i   (mol, φ the capacity: porosity or phase fraction, default 1),
      c̄ = Σ_i V_i m_i c_i / Σ_i V_i m_i   (mol/m³, the volume-weighted mean).

Fields may carry leading axes (species, time): the grid axes are the trailing ones.  Masks and
points are static; rates, rate constants, fields and capacities may be traced, so every
function here works under ``jit`` and ``grad``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .grid import Grid


# ------------------------------------------------------------------ points and masks
def _bounds(grid: Grid) -> str:
    return ", ".join(f"{n} ∈ [{f[0]:g}, {f[-1]:g}] m" for n, f in zip(grid.axis_names, grid.faces))


def _point(grid: Grid, point_m, name: str) -> np.ndarray:
    """``point_m`` as grid.ndim finite coordinates (m), or a ValueError naming ``name``."""
    p = np.atleast_1d(np.asarray(point_m, dtype=float))
    if p.shape != (grid.ndim,) or not np.all(np.isfinite(p)):
        raise ValueError(f"{name} = {point_m!r}; allowed: {grid.ndim} finite coordinate(s) "
                         f"({', '.join(grid.axis_names)}) in metres")
    return p


def cell_index(grid: Grid, point_m) -> tuple[int, ...]:
    """Index of the cell holding the point ``point_m`` (m, the grid's coordinates: faces
    f_i ≤ x ≤ f_{i+1} on every axis; a point on an interior face belongs to the cell above).
    ValueError naming the point and the domain's bounds if it lies outside the grid."""
    p = _point(grid, point_m, "point_m")
    index = []
    for x, f in zip(p, grid.faces):
        f = np.asarray(f)
        if not f[0] <= x <= f[-1]:
            raise ValueError(f"point_m = {tuple(p.tolist())} lies outside the grid; allowed: "
                             f"{_bounds(grid)}")
        index.append(int(min(np.searchsorted(f, x, side="right") - 1, f.size - 2)))
    return tuple(index)


def cell_mask(grid: Grid, point_m) -> np.ndarray:
    """The region made of the one cell holding ``point_m`` (``cell_index``)."""
    mask = np.zeros(grid.shape, dtype=bool)
    mask[cell_index(grid, point_m)] = True
    return mask


def ball(grid: Grid, centre_m, radius_m: float) -> np.ndarray:
    """Cells whose centre x satisfies |x − centre_m| ≤ radius_m (m, Euclidean distance in the
    grid's coordinates).  On a radial axis (cylinder, sphere, the r of axisymmetric) the
    centre must lie on the axis, r = 0, where the ball is a true ball (sphere, axisymmetric) or
    a coaxial cylinder (cylinder, per metre of length); for a shell or a ring build the mask
    from ``grid.mesh()``.  The selected cells' volume approximates the ball's; sources on them
    are normalised by the selected volume, not the ball's (``region_source``)."""
    centre = _point(grid, centre_m, "centre_m")
    if not (np.isfinite(radius_m) and radius_m > 0):
        raise ValueError(f"radius_m = {radius_m!r}; allowed: a finite radius > 0 m")
    for axis, metric in enumerate(grid.metrics):
        if metric != "linear" and centre[axis] != 0.0:
            raise ValueError(
                f"centre_m = {tuple(centre.tolist())} puts the ball off the axis of the "
                f"{grid.geometry} grid ({grid.axis_names[axis]} = {centre[axis]:g} m); allowed: "
                f"{grid.axis_names[axis]} = 0 (a shell or ring: build the mask from grid.mesh())")
    distance2 = sum((x - c) ** 2 for x, c in zip(grid.mesh(), centre))
    mask = distance2 <= radius_m**2
    if not mask.any():
        nearest = float(np.sqrt(distance2.min()))
        raise ValueError(f"ball(centre_m={tuple(centre.tolist())}, radius_m={radius_m:g}) holds "
                         f"no cell centre of {grid!r}; allowed: radius_m >= {nearest:g} m (the "
                         "nearest centre), or a centre inside the grid")
    return mask


def _mask(grid: Grid, region) -> np.ndarray:
    """``region`` as a boolean mask of ``grid.shape`` with at least one cell (None: all)."""
    if region is None:
        return np.ones(grid.shape, dtype=bool)
    mask = np.asarray(region)
    if mask.dtype != bool or mask.shape != grid.shape:
        raise ValueError(f"region has dtype {mask.dtype} and shape {mask.shape}; allowed: a "
                         f"boolean mask of shape {grid.shape} (grid.shape)")
    if not mask.any():
        raise ValueError("region selects no cell; allowed: a mask with at least one True cell")
    return mask


def _float(x):
    """``x`` as a JAX array of a floating dtype (integers become the default float)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _field(grid: Grid, c):
    """``c`` as a floating array whose trailing axes are ``grid.shape``."""
    c = _float(c)
    if c.ndim < grid.ndim or c.shape[c.ndim - grid.ndim:] != grid.shape:
        raise ValueError(f"c has shape {c.shape}; allowed: (..., *{grid.shape}), the grid's "
                         "axes last (species or time axes first)")
    return c


def _cells(grid: Grid, x):
    """``x`` (shape s) with grid.ndim axes appended, to broadcast against (*s, *grid.shape)."""
    return x.reshape(x.shape + (1,) * grid.ndim)


def _nonnegative(name: str, x) -> None:
    if not isinstance(x, jax.core.Tracer) and np.any(np.asarray(x) < 0):
        raise ValueError(f"{name} = {x!r}; allowed: >= 0 1/s")


# ------------------------------------------------------------------ sources and sinks
def region_source(grid: Grid, region, rate_mol_per_s):
    """Per-volume source s (mol/(m³·s)) releasing ``rate_mol_per_s`` = Q (mol/s) uniformly
    over ``region`` (boolean mask): s_i = Q m_i / Σ_j m_j V_j, so Σ_i s_i V_i = Q to round-off.

    Q may be a scalar or carry leading axes (one rate per species: shape (n_species,) gives
    a source of shape (n_species, *grid.shape)); negative Q is a sink of fixed rate.  Use it as
    ``fv.Transport(source=...)``."""
    mask = _mask(grid, region)
    rate = _float(rate_mol_per_s)
    return _cells(grid, rate) * jnp.asarray(mask / np.sum(grid.volume, where=mask), rate.dtype)


def point_source(grid: Grid, point_m, rate_mol_per_s):
    """Source of total rate ``rate_mol_per_s`` (mol/s) in the one cell holding ``point_m``
    (m): s = Q / V_cell there, 0 elsewhere (``region_source`` on ``cell_mask``).  ValueError
    naming the point and the domain's bounds if the point is outside the grid."""
    return region_source(grid, cell_mask(grid, point_m), rate_mol_per_s)


def region_sink(grid: Grid, region, rate_constant_per_s):
    """Per-cell first-order rate constant (1/s): k_i = k m_i, k = ``rate_constant_per_s`` ≥ 0
    (a scalar, or with leading species axes), for ``solver.implicit_step(..., decay=...)``,
    which then removes φ k_i c_i mol/(m³·s) in the region (Σ V φ k c mol/s in all)."""
    _nonnegative("rate_constant_per_s", rate_constant_per_s)
    k = _float(rate_constant_per_s)
    return _cells(grid, k) * jnp.asarray(_mask(grid, region), k.dtype)


# ------------------------------------------------------------------ probes and averages
def probe(grid: Grid, c, point_m):
    """Value of ``c`` (shape (..., *grid.shape)) in the cell holding ``point_m`` (m): the cell
    value, not an interpolation; shape (...), one value per leading index (species, time)."""
    c = _field(grid, c)
    return c[(Ellipsis, *cell_index(grid, point_m))]


def region_total(grid: Grid, c, region=None, capacity=1.0):
    """Amount in ``region`` (mask; None: the whole grid): N = Σ_i V_i φ_i m_i c_i (mol for c in
    mol/m³), φ = ``capacity`` (porosity or phase fraction, broadcastable to c; default 1).
    Sums over the trailing grid axes: shape (...) for c of shape (..., *grid.shape)."""
    c = _field(grid, c)
    weight = jnp.asarray(grid.volume * _mask(grid, region), c.dtype)
    axes = tuple(range(-grid.ndim, 0))
    return jnp.sum(c * capacity * weight, axis=axes)


def region_average(grid: Grid, c, region=None):
    """Volume-weighted mean of ``c`` over ``region`` (mask; None: the whole grid):
    c̄ = Σ_i V_i m_i c_i / Σ_i V_i m_i (units of c).  Shape (...) for c of shape
    (..., *grid.shape)."""
    c = _field(grid, c)
    mask = _mask(grid, region)
    weight = jnp.asarray(grid.volume * mask / np.sum(grid.volume, where=mask), c.dtype)
    return jnp.sum(c * weight, axis=tuple(range(-grid.ndim, 0)))
