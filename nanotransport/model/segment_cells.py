"""Where vessel segments run through the tissue grid, and how they exchange with its cells.

**Intersections.**  A straight segment from P₀ to P₁ crosses the planes of a Cartesian
grid's faces at parameters t = (f − P₀)/(P₁ − P₀) along each axis; between two consecutive
crossings it lies in one cell, found from the interval's midpoint.  The pieces' lengths are
exact (|P₁ − P₀| Δt) and sum to the segment's length inside the grid; a piece outside the
box is dropped and counted (``Pieces.outside_m``).  Where a segment's declared length
differs from the straight distance between its nodes (a tortuous vessel drawn straight),
the pieces are scaled by their ratio, so that the wall area stays 2π r L.

**Sub-grid exchange (Peaceman).**  A vessel of radius r thinner than the cell exchanges with
the cell's *average* value, but the tissue value at its wall differs from that average by
the near-field drop of a line source.  Peaceman (1978, SPE J 18:183; 1983, SPE J 23:531)
showed that a cell-centred finite-volume value equals the line source's exact field at the
equivalent radius r_e = 0.14 √(h₁² + h₂²) (= 0.198 h for square cells), h₁, h₂ the cell
widths across the vessel.  Between the lumen and the cell value, the wall and that near
field act in series, per piece of length ℓ::

    1/γ = 1/(L_w 2π r ℓ) + ln(r_e/r)/(2π κ ℓ)        (r < r_e; otherwise the wall alone)

with L_w the wall's conductance per area (hydraulic L_p, m/(Pa·s); or a permeability P,
m/s) and κ the tissue's conductivity for the same quantity (K, m²/(Pa·s); or a diffusivity
times the available volume fraction, m²/s).  The axes across an oblique segment are taken
as the two least aligned with it (exact for vessels along a grid axis; an approximation
otherwise, stated in docs/networks.md).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ..engine.grid import Grid
from .vessel_network import VesselNetwork

PEACEMAN_FACTOR = 0.14  #: r_e = 0.14 √(h₁² + h₂²) (Peaceman 1983, isotropic conductivity)


@dataclasses.dataclass(frozen=True)
class Pieces:
    """The (segment, cell) pieces of a network on a grid: ``segment`` and ``cell`` (flat C
    index) per piece, its ``length_m`` and ``equivalent_radius_m`` (Peaceman r_e of its
    cell across its segment); ``outside_m``: total segment length outside the grid."""

    segment: np.ndarray
    cell: np.ndarray
    length_m: np.ndarray
    equivalent_radius_m: np.ndarray
    outside_m: float


def _crossings(p0, p1, faces):
    """Sorted unique parameters t in [0, 1] where the segment crosses a face plane."""
    ts = [np.array([0.0, 1.0])]
    for axis, f in enumerate(faces):
        delta = p1[axis] - p0[axis]
        if delta != 0.0:
            t = (f - p0[axis]) / delta
            ts.append(t[(t > 0.0) & (t < 1.0)])
    return np.unique(np.concatenate(ts))


def intersect(net: VesselNetwork, grid: Grid) -> Pieces:
    """The exact pieces of every segment in the cells of a ``cartesian3d`` grid."""
    if grid.geometry != "cartesian3d":
        raise ValueError(f"vessel networks need a cartesian3d tissue grid, got "
                         f"{grid.geometry!r}")
    faces = [np.asarray(f) for f in grid.faces]
    widths = [np.diff(f) for f in faces]
    shape = grid.shape
    pos = net.node_position_m
    straight = net.euclidean_length_m()
    stretch = net.segment_length_m / straight
    segs, cells, lengths, radii_e = [], [], [], []
    outside = 0.0
    for k, (a, b) in enumerate(net.segment_nodes):
        p0, p1 = pos[a], pos[b]
        t = _crossings(p0, p1, faces)
        mid = p0 + np.outer(0.5 * (t[1:] + t[:-1]), p1 - p0)
        piece = np.diff(t) * straight[k] * stretch[k]
        index = [np.searchsorted(f, mid[:, ax], side="right") - 1
                 for ax, f in enumerate(faces)]
        inside = np.all([(i >= 0) & (i < n) for i, n in zip(index, shape)], axis=0)
        outside += float(piece[~inside].sum())
        if not inside.any():
            continue
        index = [i[inside] for i in index]
        across = np.argsort(np.abs(p1 - p0))[:2]  # the two axes least aligned with it
        h1, h2 = (widths[ax][index[ax]] for ax in across)
        segs.append(np.full(int(inside.sum()), k))
        cells.append(np.ravel_multi_index(index, shape))
        lengths.append(piece[inside])
        radii_e.append(PEACEMAN_FACTOR * np.sqrt(h1**2 + h2**2))
    cat = lambda xs, dtype: (np.concatenate(xs).astype(dtype) if xs  # noqa: E731
                             else np.zeros(0, dtype))
    return Pieces(cat(segs, np.int64), cat(cells, np.int64), cat(lengths, float),
                  cat(radii_e, float), outside)


def exchange_conductance(wall_per_area, tissue_conductivity, radius_m, length_m,
                         equivalent_radius_m, near_field=True):
    """γ of a piece (module docstring): the wall (``wall_per_area`` × 2π r ℓ) in series with
    the near-field ln(r_e/r)/(2π κ ℓ) where r < r_e (``near_field=False``: the wall alone).
    Works on numpy or JAX arrays (returns JAX)."""
    wall = wall_per_area * 2.0 * np.pi * radius_m * length_m
    if not near_field:
        return wall
    log_ratio = jnp.maximum(jnp.log(equivalent_radius_m / radius_m), 0.0)
    # 1/(1/wall + ln/(2πκℓ)) written without 1/wall (a closed wall, P = 0, or a piece of zero
    # length would give 1/0 and NaN derivatives): ℓ cancels in wall · ln/(2πκℓ)
    return wall / (1.0 + wall_per_area * radius_m * log_ratio / tissue_conductivity)
