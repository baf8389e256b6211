"""Steady exchange between a vessel network and the tissue around it, solved monolithically.

One linear, symmetric system holds the lumen values at the network's nodes and the tissue
values in the cells of a Cartesian grid (docs/networks.md):

* along segments, the network's conductances (Poiseuille for blood pressure; none for a
  solute whose lumen values are given);
* between neighbouring cells, κ A/δ (κ the tissue conductivity: K for pressure, m²/(Pa·s);
  D φ for a solute, m²/s); to the grid's outer faces (of the axes ``outer_axes``), κ A/(h/2)
  to a fixed outer value, or nothing (``outer = "no_flux"``);
* from each segment to each cell it crosses, the exchange conductance γ of the piece
  (``segment_cells``: exact length, wall in series with Peaceman's near field), lumped half
  on each end node; the flux is γ (value_lumen − value_cell − offset) with ``offset`` =
  σ (π_v − π_i) for Starling filtration (0 for a solute);
* from each cell to a sink, ``sink_rate`` V: lymphatics L_pL S/V (1/(Pa·s)) draining to p_L,
  or first-order uptake k (1/s) to zero.

For blood pressure this is the two-way Starling coupling of the network and the interstitium:
the network loses what the tissue gains, in the same solve (Kirchhoff's balance at each node
includes its leakage).  The solve is ``engine.graph.kirchhoff_solve``, differentiable with
respect to every conductance, boundary value and offset.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import graph
from ..engine.grid import Grid
from . import segment_cells
from .segment_cells import Pieces

OUTER = ("value", "no_flux")


@dataclasses.dataclass(frozen=True)
class TissueExchange:
    """Tissue and wall properties of one steady scalar (SI; see the module docstring).
    ``conductivity`` is uniform; ``wall_per_area`` and ``offset`` may be arrays over the
    pieces, ``sink_rate`` an array over the cells (flat, C order): vessels and tissue of
    different regions."""

    conductivity: float
    wall_per_area: float
    sink_rate: float = 0.0
    sink_value: float = 0.0
    offset: float = 0.0
    outer: str = "value"
    outer_value: float = 0.0
    outer_axes: tuple = (0, 1, 2)
    near_field: bool = True

    def __post_init__(self):
        if self.outer not in OUTER:
            raise ValueError(f"TissueExchange.outer = {self.outer!r}; allowed "
                             f"{', '.join(OUTER)}")
        if any(isinstance(getattr(self, n), jax.core.Tracer)
               for n in ("conductivity", "wall_per_area", "sink_rate", "offset")):
            return  # traced (under grad or jit): the values are checked where they are concrete
        for name in ("conductivity", "wall_per_area"):
            value = np.asarray(getattr(self, name))
            if not (np.all(np.isfinite(value)) and np.all(value > 0)):
                raise ValueError(f"TissueExchange.{name} = {value!r}; allowed > 0 and finite")
        sink = np.asarray(self.sink_rate)
        if not (np.all(np.isfinite(sink)) and np.all(sink >= 0)):
            raise ValueError(f"TissueExchange.sink_rate = {sink!r}; allowed >= 0")
        if not set(self.outer_axes) <= {0, 1, 2}:
            raise ValueError(f"TissueExchange.outer_axes = {self.outer_axes!r}; allowed a "
                             "subset of (0, 1, 2)")


def tissue_faces(grid: Grid, outer_axes=(0, 1, 2)):
    """(cell pairs (F, 2), A/δ per pair in m, boundary cells (B,), A/(h/2) per boundary face
    on the axes ``outer_axes``) of a ``cartesian3d`` grid, cells numbered in C order."""
    widths = [np.diff(np.asarray(f)) for f in grid.faces]
    shape = grid.shape
    index = np.arange(grid.size).reshape(shape)
    pairs, factors, bcells, bfactors = [], [], [], []
    for ax in range(3):
        others = [a for a in range(3) if a != ax]
        area = np.multiply.outer(widths[others[0]], widths[others[1]])  # per (j, k)
        area = np.expand_dims(area, ax)
        w = np.expand_dims(widths[ax], tuple(a for a in range(3) if a != ax))
        lo = np.take(index, np.arange(shape[ax] - 1), axis=ax)
        hi = np.take(index, np.arange(1, shape[ax]), axis=ax)
        delta = 0.5 * (np.take(w, np.arange(shape[ax] - 1), axis=ax)
                       + np.take(w, np.arange(1, shape[ax]), axis=ax))
        pairs.append(np.stack([lo.ravel(), hi.ravel()], axis=1))
        factors.append(np.broadcast_to(area / delta, lo.shape).ravel())
        for end in ((0, shape[ax] - 1) if ax in outer_axes else ()):
            cells = np.take(index, [end], axis=ax)
            half = 0.5 * np.take(w, [end], axis=ax)
            bcells.append(cells.ravel())
            bfactors.append(np.broadcast_to(area / half, cells.shape).ravel())
    return (np.concatenate(pairs), np.concatenate(factors), np.concatenate(bcells),
            np.concatenate(bfactors))


def solve(grid: Grid, pieces: Pieces, segment_nodes: np.ndarray, n_nodes: int,
          segment_radius_m, tissue: TissueExchange, *, segment_conductance=None,
          node_fixed=None, node_value=None, node_injection=None, cell_fixed=None,
          cell_value=None, solver="direct") -> dict:
    """The steady lumen and tissue values (module docstring).

    Network: ``segment_nodes`` (m, 2), ``segment_radius_m`` (m,), ``segment_conductance``
    (m,) or None (no flow along segments: every node then needs ``node_fixed``);
    ``node_fixed``/``node_value``/``node_injection`` per node.  Tissue: ``cell_fixed``/
    ``cell_value`` (flat, C order) pin cells (e.g. to an exact solution in a test).
    Returns ``node`` (n_nodes,), ``cell`` (grid shape), ``piece_flux`` (lumen → tissue per
    piece), ``segment_flux`` (summed per segment), ``residual`` (relative node balance).
    """
    n_cells = grid.size
    sink, outer = n_nodes + n_cells, n_nodes + n_cells + 1
    n_vertices = n_nodes + n_cells + 2
    pairs, factors, bcells, bfactors = tissue_faces(grid, tissue.outer_axes)
    a, b = segment_nodes[pieces.segment, 0], segment_nodes[pieces.segment, 1]
    gamma = segment_cells.exchange_conductance(
        tissue.wall_per_area, tissue.conductivity, jnp.asarray(segment_radius_m)[pieces.segment],
        pieces.length_m, pieces.equivalent_radius_m, tissue.near_field)
    cell_v = n_nodes + pieces.cell
    volume = np.asarray(grid.volume).ravel()
    blocks = [(pairs + n_nodes, tissue.conductivity * jnp.asarray(factors)),
              (np.stack([a, cell_v], 1), 0.5 * gamma), (np.stack([b, cell_v], 1), 0.5 * gamma)]
    if tissue.outer == "value":
        blocks.append((np.stack([bcells + n_nodes, np.full(len(bcells), outer)], 1),
                       tissue.conductivity * jnp.asarray(bfactors)))
    if isinstance(tissue.sink_rate, jax.core.Tracer) or np.any(np.asarray(tissue.sink_rate) > 0):
        blocks.append((np.stack([np.arange(n_cells) + n_nodes, np.full(n_cells, sink)], 1),
                       tissue.sink_rate * jnp.asarray(volume)))
    if segment_conductance is not None:
        blocks.insert(0, (np.asarray(segment_nodes), segment_conductance))
    edges = np.concatenate([e for e, _ in blocks]).astype(np.int64)
    conductance = jnp.concatenate([jnp.broadcast_to(g, (len(e),)) for e, g in blocks])
    fixed = jnp.zeros(n_vertices, bool).at[jnp.array([sink, outer])].set(True)
    value = jnp.zeros(n_vertices).at[sink].set(tissue.sink_value).at[outer].set(
        tissue.outer_value)
    if node_fixed is not None:
        fixed = fixed.at[:n_nodes].set(jnp.asarray(node_fixed))
        value = value.at[:n_nodes].set(jnp.where(jnp.asarray(node_fixed), node_value, 0.0))
    if cell_fixed is not None:
        fixed = fixed.at[n_nodes:n_nodes + n_cells].set(jnp.asarray(cell_fixed))
        value = value.at[n_nodes:n_nodes + n_cells].set(
            jnp.where(jnp.asarray(cell_fixed), cell_value, 0.0))
    injection = jnp.zeros(n_vertices)
    if node_injection is not None:
        injection = injection.at[:n_nodes].set(node_injection)
    # the offset as a source pair: +γ/2·offset at each end node, −γ·offset in the cell
    push = 0.5 * gamma * tissue.offset
    injection = (injection.at[a].add(push).at[b].add(push).at[cell_v].add(-2.0 * push))
    x = graph.kirchhoff_solve(edges, conductance, fixed, value, injection, solver=solver)
    piece_flux = gamma * (0.5 * (x[a] + x[b]) - x[cell_v] - tissue.offset)
    segment_flux = jnp.zeros(len(segment_nodes)).at[pieces.segment].add(piece_flux)
    residual = graph.kirchhoff_residual(edges, conductance, fixed, x, injection)
    return {"node": x[:n_nodes], "cell": x[n_nodes:n_nodes + n_cells].reshape(grid.shape),
            "piece_flux": piece_flux, "segment_flux": segment_flux, "residual": residual}
