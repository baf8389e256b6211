"""A synthetic tumor vessel network: a perturbed cubic lattice, fed from one face.

``generate(spec)`` builds a ``VesselNetwork`` (SI, checked) from a ``TumorNetworkSpec`` by
the rules below, all vectorized with NumPy (a 1e5-segment network takes seconds).  The
construction is deliberately simple: a statistical stand-in for a tumor's capillary bed with
the features that matter for transport (dilated, tortuous vessels in the tumor, a poorly
perfused necrotic core, arterial and venous sides), not a model of angiogenesis.

**Lattice.**  Nodes sit on a cubic lattice of pitch ``spacing_um`` filling the box
``box_mm`` from the origin: ``n = floor(side / spacing) + 1`` planes per axis, the last at
``(n − 1)·spacing ≤ side``.  Each pair of lattice neighbours is joined by a segment that
survives the first draw with probability ``connectivity``.

**Bifurcations.**  A capillary bed branches by bifurcations: its nodes join at most three
segments (Pries & Secomb 2008, Handbook of Physiology, Microcirculation; tumor networks too,
Baish & Jain 2000), and the haemodynamics' phase-separation law is written for two-way
divergences.  So after the draw, nodes of more than ``MAX_DEGREE`` = 3 segments are thinned,
in passes until none is left: each pass draws a random key per segment, lowered by the
smaller degree of its two ends (so segments between the most crowded nodes go first).  While
some segment joins two nodes that both have a surplus, only such segments are candidates,
and one is dropped when it is among the ``surplus`` lowest-keyed candidates at both of its
ends (so no node falls below 3 by a neighbour's choice, and no dead end is made); otherwise
each node with a surplus drops its ``surplus`` lowest-keyed segments, feeding segments
excepted.  A node drawn with more than 3 segments thus ends with exactly 3.

**Diameters.**  Log-normal: ``d = capillary_diameter_um · diameter_spread^z`` with z standard
normal, so ``capillary_diameter_um`` is the median and ``diameter_spread`` the geometric
standard deviation.

**Tumor.**  A sphere of radius ``tumor_radius_mm`` centred in the box (0: no tumor).  A
segment is in the tumor when the midpoint of its lattice position is; its diameter is
multiplied by ``tumor_dilation``.  A node in the tumor is moved by an independent uniform
displacement in [−t, t]·spacing along each axis (t = ``tumor_tortuosity`` < 0.5, so no
segment shrinks to zero length), which makes the paths through the tumor irregular and
tortuous; nodes of the first and last x plane are never moved (they hold the inlets and
outlets).  A segment whose lattice midpoint lies in the necrotic core (radius
``necrotic_radius_mm``, same centre) is removed, beyond the lattice's own loss, with
probability ``core_loss``.

**Feeding.**  The nodes of the plane x = 0 whose y and z both lie in the middle
``inlet_fraction`` of the box's y and z extents (a centred square patch, inlet_fraction² of
the face's area) are arterial inlets: pressure ``arterial_pressure_mmHg``, inflow haematocrit
``inflow_hematocrit``.  The nodes of the last x plane in the same patch are venous outlets at
``venous_pressure_mmHg`` (no haematocrit: blood only leaves there, since they hold the lowest
pressure).  A segment joining a boundary node to a neighbour in its own x plane is dropped, so
every inlet and outlet has one segment, normal to its face (if drawn): its feeding segment,
of diameter ``feeding_diameter_um``, which the thinning keeps.

**Clean-up.**  (1) Only nodes that a path of non-boundary nodes links to at least one inlet
AND at least one outlet are kept: connected components (``scipy.sparse.csgraph``) are taken
over the non-boundary nodes, and those that touch no inlet or no outlet are removed with
their segments.  This is the rule "keep the components holding an inlet and an outlet",
strengthened so that a cluster reaching the outlets only through an inlet node (all at the
inlet's pressure, no flow) goes too; with it, every inlet has a strictly positive inflow and
every outlet a strictly positive outflow (maximum principle).  (2) Segments that carry no
flow are removed: those whose end pressures differ by at most ``NO_FLOW`` = 1e-12 of the
inlet–outlet drop in a Poiseuille solve with conductance d⁴/L (idle at any viscosity: dead-end
trees, and loops that hang from the network by a single node, which (3) cannot see; left in,
their round-off flows flip sign and the haematocrit solve cannot converge).  (3) Dead ends,
non-boundary nodes that one segment touches, are removed with their segment, repeatedly, until
none remain (each pass removes all current ones; this catches a node that (2) left with one
segment by round-off).  (4) Nodes that no segment touches are dropped and the rest renumbered
in lattice order.  Lengths are the Euclidean distances between the (moved) end nodes.  Counts
before and after are written in the network's ``source``.

**Random numbers.**  All draws come from ``numpy.random.default_rng(seed)`` in a fixed order
(keep, diameter, core loss per lattice segment; displacement per lattice node), whatever the
parameters, then the thinning's keys (one per drawn segment per pass), so the same seed gives
the same network.

**Defaults** (the value, and its source where one exists; otherwise illustrative):

* ``capillary_diameter_um`` 7: a mammalian capillary is 5–10 µm wide (e.g. Pries & Secomb
  2008, Handbook of Physiology, Microcirculation); ``diameter_spread`` 1.2 is illustrative.
* ``spacing_um`` 80: illustrative, within the intercapillary distances of normal tissue
  (~40–100 µm); tumors have larger and more variable ones, up to ~200 µm (Vaupel, Kallinowski
  & Okunieff 1989 Cancer Res 49:6449 *(verify)*).  ``connectivity`` 0.8 is illustrative: a
  node draws 4.8 segments on average, so most end with 3 after the thinning.
* ``tumor_dilation`` 1.5, ``tumor_tortuosity`` 0.25: illustrative magnitudes for the dilated,
  tortuous, irregular tumor vessels described by Jain 1988 (Cancer Res 48:2641), Baish & Jain
  2000 (Cancer Res 60:3683) and Carmeliet & Jain 2000 (Nature 407:249); they report the
  features, not these numbers.
* ``tumor_radius_mm`` 0.35, ``necrotic_radius_mm`` 0.15, ``core_loss`` 0.7: illustrative; a
  sparsely vascularised, poorly perfused necrotic centre is described by Jain 1988.
* ``arterial_pressure_mmHg`` 35, ``venous_pressure_mmHg`` 12: the classical pressures at the
  arterial and venous ends of a capillary bed (Landis 1930 *(verify)*), illustrative for a
  tumor, whose microvascular pressures are lower and more uniform (Boucher & Jain 1992 Cancer
  Res 52:5110 *(verify)*).
* ``inflow_hematocrit`` 0.45: a normal systemic haematocrit.
* ``feeding_diameter_um`` 15: illustrative, a terminal arteriole or collecting venule.
* ``box_mm`` (1, 1, 1), ``inlet_fraction`` 0.5: illustrative.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ..engine import units
from .vessel_network import PRESSURE, NetworkError, VesselNetwork

MAX_LATTICE_NODES = 20_000_000  #: a guard against a box and pitch that exhaust memory
MAX_DEGREE = 3  #: segments per node at most: every branch point is a bifurcation


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        math.isfinite(value)


def _within(value, low, high, *, low_open=False, high_open=False) -> bool:
    """``value`` real and in the interval from ``low`` to ``high`` (closed unless open)."""
    if not _real(value):
        return False
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


@dataclasses.dataclass(frozen=True)
class TumorNetworkSpec:
    """How to build a synthetic tumor network (units in the names; module docstring)."""

    box_mm: tuple = (1.0, 1.0, 1.0)
    spacing_um: float = 80.0
    connectivity: float = 0.8  # probability that a lattice segment survives the first draw
    capillary_diameter_um: float = 7.0
    diameter_spread: float = 1.2
    tumor_radius_mm: float = 0.35
    tumor_dilation: float = 1.5
    tumor_tortuosity: float = 0.25
    necrotic_radius_mm: float = 0.15
    core_loss: float = 0.7
    inlet_fraction: float = 0.5
    arterial_pressure_mmHg: float = 35.0
    venous_pressure_mmHg: float = 12.0
    inflow_hematocrit: float = 0.45
    feeding_diameter_um: float = 15.0
    seed: int = 0

    def __post_init__(self):
        box = tuple(self.box_mm) if isinstance(self.box_mm, (tuple, list, np.ndarray)) else ()
        if len(box) != 3 or not all(_within(b, 0.0, 1000.0, low_open=True) for b in box):
            self._fail("box_mm", "three side lengths in (0, 1000] mm")
        object.__setattr__(self, "box_mm", tuple(float(b) for b in box))
        for name, ok, allowed in self._checks():
            if not ok():
                self._fail(name, allowed)

    def _fail(self, name: str, allowed: str):
        raise ValueError(f"TumorNetworkSpec.{name} = {getattr(self, name)!r}; allowed "
                         f"{allowed}")

    def _checks(self):
        """(field, test, allowed range) in order: later tests may use earlier fields."""
        half_box = min(self.box_mm) / 2
        return [
            ("spacing_um", lambda: _within(self.spacing_um, 1.0, 0.5e3 * min(self.box_mm)),
             f"1 to half the smallest box side ({0.5e3 * min(self.box_mm):g} µm)"),
            ("spacing_um", lambda: _lattice_nodes(self) <= MAX_LATTICE_NODES,
             f"a lattice of at most {MAX_LATTICE_NODES:.0e} nodes in box_mm {self.box_mm}"),
            ("connectivity", lambda: _within(self.connectivity, 0.0, 1.0, low_open=True),
             "(0, 1]"),
            ("capillary_diameter_um", lambda: _within(self.capillary_diameter_um, 2.5, 200.0),
             "2.5 to 200 µm"),
            ("diameter_spread", lambda: _within(self.diameter_spread, 1.0, 3.0), "1 to 3"),
            ("tumor_radius_mm", lambda: _within(self.tumor_radius_mm, 0.0, half_box),
             f"0 to half the smallest box side ({half_box:g} mm)"),
            ("tumor_dilation", lambda: _within(self.tumor_dilation, 1.0, 5.0), "1 to 5"),
            ("tumor_tortuosity", lambda: _within(self.tumor_tortuosity, 0.0, 0.5,
                                                 high_open=True), "[0, 0.5)"),
            ("necrotic_radius_mm", lambda: _within(self.necrotic_radius_mm, 0.0,
                                                   self.tumor_radius_mm),
             f"0 to tumor_radius_mm ({self.tumor_radius_mm!r})"),
            ("core_loss", lambda: _within(self.core_loss, 0.0, 1.0), "0 to 1"),
            ("inlet_fraction", lambda: _within(self.inlet_fraction, 0.0, 1.0, low_open=True),
             "(0, 1]"),
            ("venous_pressure_mmHg", lambda: _within(self.venous_pressure_mmHg, 0.0, 200.0,
                                                     high_open=True), "[0, 200) mmHg"),
            ("arterial_pressure_mmHg", lambda: _within(
                self.arterial_pressure_mmHg, self.venous_pressure_mmHg, 250.0, low_open=True),
             f"above venous_pressure_mmHg ({self.venous_pressure_mmHg!r}) up to 250 mmHg"),
            ("inflow_hematocrit", lambda: _within(self.inflow_hematocrit, 0.0, 0.8),
             "0 to 0.8"),
            ("feeding_diameter_um", lambda: _within(self.feeding_diameter_um, 2.5, 500.0),
             "2.5 to 500 µm"),
            ("seed", lambda: isinstance(self.seed, numbers.Integral)
             and not isinstance(self.seed, bool) and self.seed >= 0, "an integer >= 0"),
        ]


@dataclasses.dataclass(frozen=True)
class _Lattice:
    """The full lattice before any random draw: SI positions, neighbour pairs, and masks."""

    position_m: np.ndarray  # (n, 3) lattice positions
    edges: np.ndarray  # (m, 2) int, lattice neighbours
    inlet: np.ndarray  # (n,) bool
    outlet: np.ndarray  # (n,) bool
    node_in_tumor: np.ndarray  # (n,) bool, movable nodes inside the tumor
    edge_in_tumor: np.ndarray  # (m,) bool, by lattice midpoint
    edge_in_core: np.ndarray  # (m,) bool, by lattice midpoint


def _shape(spec: TumorNetworkSpec) -> tuple:
    """Lattice planes per axis: floor(side / spacing) + 1."""
    return tuple(int(math.floor(b * units.MM / (spec.spacing_um * units.UM) + 1e-9)) + 1
                 for b in spec.box_mm)


def _lattice_nodes(spec: TumorNetworkSpec) -> int:
    return math.prod(_shape(spec))


def _edges(shape: tuple) -> np.ndarray:
    """Neighbour pairs (i, j), i < j, of a lattice of ``shape`` numbered in C order."""
    index = np.arange(math.prod(shape)).reshape(shape)
    pairs = []
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        pairs.append(np.stack([index[tuple(lo)].ravel(), index[tuple(hi)].ravel()], axis=1))
    return np.concatenate(pairs)


def _lattice(spec: TumorNetworkSpec) -> _Lattice:
    """Positions, neighbour pairs, the feeding patch and the tumor's regions (no randomness)."""
    shape = _shape(spec)
    spacing = spec.spacing_um * units.UM
    grid = np.indices(shape).reshape(3, -1).T
    position = grid * spacing
    edges = _edges(shape)
    box = np.asarray(spec.box_mm) * units.MM
    centre = box / 2
    half_patch = spec.inlet_fraction * box[1:] / 2
    in_patch = np.all(np.abs(position[:, 1:] - centre[1:]) <= half_patch * (1 + 1e-12), axis=1)
    inlet = in_patch & (grid[:, 0] == 0)
    outlet = in_patch & (grid[:, 0] == shape[0] - 1)
    node_r = np.linalg.norm(position - centre, axis=1)
    edge_r = np.linalg.norm(0.5 * (position[edges[:, 0]] + position[edges[:, 1]]) - centre,
                            axis=1)
    movable = (grid[:, 0] > 0) & (grid[:, 0] < shape[0] - 1)
    return _Lattice(position, edges, inlet, outlet,
                    node_in_tumor=movable & (node_r < spec.tumor_radius_mm * units.MM),
                    edge_in_tumor=edge_r < spec.tumor_radius_mm * units.MM,
                    edge_in_core=edge_r < spec.necrotic_radius_mm * units.MM)


def _in_face(lat: _Lattice) -> np.ndarray:
    """Mask over lattice segments: a boundary node joined to a neighbour in its own x plane
    (dropped, so that each inlet and outlet has one segment, normal to its face)."""
    a, b = lat.edges.T
    boundary = lat.inlet | lat.outlet
    return (boundary[a] | boundary[b]) & (lat.position_m[a, 0] == lat.position_m[b, 0])


def _degree_distribution(lat: _Lattice, p_keep: np.ndarray) -> np.ndarray:
    """(n, 7): the probability that each lattice node keeps 0..6 of its segments when each
    segment is kept independently with probability ``p_keep``.  A node has at most one
    segment per axis and side (the low or high end of a neighbour pair along that axis)."""
    n = len(lat.position_m)
    a, b = lat.edges.T
    axis = np.argmax(np.abs(lat.position_m[b] - lat.position_m[a]), axis=1)
    dist = np.zeros((n, 7))
    dist[:, 0] = 1.0
    for ax in range(3):
        for end in (a, b):
            p = np.zeros(n)
            p[end[axis == ax]] = p_keep[axis == ax]
            shifted = np.zeros_like(dist)
            shifted[:, 1:] = dist[:, :-1]
            dist = dist * (1 - p[:, None]) + shifted * p[:, None]
    return dist


def lattice_size(spec: TumorNetworkSpec) -> int:
    """The expected number of segments after the draw and the thinning, before clean-up:
    half the sum over nodes of E[min(D, 3)], D a node's drawn segments (each lattice segment
    not in a feeding face kept with probability ``connectivity``, in the necrotic core then
    with probability 1 − ``core_loss``).  It neglects the segments the thinning takes from
    nodes of degree ≤ 3 (module docstring; a few per cent) and clean-up's losses; ``generate``
    reports the counts."""
    lat = _lattice(spec)
    p_keep = spec.connectivity * np.where(lat.edge_in_core, 1.0 - spec.core_loss, 1.0)
    p_keep = np.where(_in_face(lat), 0.0, p_keep)
    dist = _degree_distribution(lat, p_keep)
    capped = np.minimum(np.arange(7), MAX_DEGREE)
    return int(round(0.5 * np.sum(dist @ capped)))


def _feeding(lat: _Lattice) -> np.ndarray:
    """Mask over lattice segments: one end a boundary node (an inlet's or outlet's segment)."""
    boundary = lat.inlet | lat.outlet
    return boundary[lat.edges[:, 0]] | boundary[lat.edges[:, 1]]


def _draw(spec: TumorNetworkSpec, lat: _Lattice, rng: np.random.Generator):
    """(drawn segments mask, diameters m, node positions m): the lattice's random part, in a
    fixed order of draws from ``rng`` (module docstring)."""
    m, n = len(lat.edges), len(lat.position_m)
    kept_draw = rng.random(m)
    z = rng.standard_normal(m)
    core_draw = rng.random(m)
    shift = rng.uniform(-1.0, 1.0, (n, 3))
    keep = (kept_draw < spec.connectivity) & ~(lat.edge_in_core & (core_draw < spec.core_loss))
    keep &= ~_in_face(lat)
    diameter = spec.capillary_diameter_um * units.UM * spec.diameter_spread ** z
    diameter = np.where(lat.edge_in_tumor, spec.tumor_dilation * diameter, diameter)
    diameter = np.where(_feeding(lat), spec.feeding_diameter_um * units.UM, diameter)
    jitter = spec.tumor_tortuosity * spec.spacing_um * units.UM * shift
    position = lat.position_m + np.where(lat.node_in_tumor[:, None], jitter, 0.0)
    return keep, diameter, position


def _rank_at_ends(edges: np.ndarray, candidate: np.ndarray, key: np.ndarray,
                  n: int) -> np.ndarray:
    """(m, 2) int: each candidate edge's rank, by ascending ``key``, among the candidate
    edges at each of its two ends (0 for the lowest key there); ``n`` for non-candidates."""
    chosen = np.flatnonzero(candidate)
    node = edges[chosen].ravel()
    order = np.lexsort((np.repeat(key[chosen], 2), node))
    in_order = node[order]
    rank = np.empty(len(node), np.int64)
    rank[order] = np.arange(len(node)) - np.searchsorted(in_order, in_order, side="left")
    out = np.full(edges.shape, n, np.int64)
    out[chosen] = rank.reshape(-1, 2)
    return out


def _to_bifurcations(edges: np.ndarray, n: int, feeding: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """Mask over ``edges``: the edges kept when nodes of more than ``MAX_DEGREE`` segments
    are thinned (module docstring, **Bifurcations**).  Each pass draws one key per edge from
    ``rng``; a node sheds its surplus among its lowest keys, an edge shared by two nodes
    with a surplus only when both choose it, so no node falls below ``MAX_DEGREE`` by
    another's choice.  Feeding segments are never dropped."""
    a, b = edges.T
    alive = np.ones(len(edges), bool)
    while True:
        degree = np.bincount(edges[alive].ravel(), minlength=n)
        excess = np.maximum(degree - MAX_DEGREE, 0)
        over_a, over_b = excess[a] > 0, excess[b] > 0
        if not (over_a | over_b)[alive].any():
            return alive
        candidate = alive & over_a & over_b
        if not candidate.any():
            candidate = alive & (over_a | over_b) & ~feeding
        key = rng.random(len(edges)) - np.minimum(degree[a], degree[b])
        rank = _rank_at_ends(edges, candidate, key, n)
        chosen = np.all((excess[edges] == 0) | (rank < excess[edges]), axis=1)
        alive &= ~(candidate & chosen)


def _fed_from_both_sides(edges: np.ndarray, n: int, inlet: np.ndarray,
                         outlet: np.ndarray) -> np.ndarray:
    """Mask over ``edges`` (none joining two boundary nodes): those whose non-boundary
    end belongs to a component of non-boundary nodes touching an inlet and an outlet."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = edges.T
    free = ~(inlet | outlet)
    inner = free[a] & free[b]
    adjacency = coo_matrix((np.ones(int(inner.sum())), (a[inner], b[inner])), shape=(n, n))
    n_parts, label = connected_components(adjacency, directed=False)
    free_end = np.where(free[a], a, b)
    fixed_end = np.where(free[a], b, a)
    touching = ~inner
    reaches_inlet = np.zeros(n_parts, bool)
    reaches_outlet = np.zeros(n_parts, bool)
    reaches_inlet[label[free_end[touching & inlet[fixed_end]]]] = True
    reaches_outlet[label[free_end[touching & outlet[fixed_end]]]] = True
    return (reaches_inlet & reaches_outlet)[label[free_end]]


def _without_dead_ends(edges: np.ndarray, n: int, boundary: np.ndarray) -> np.ndarray:
    """Mask over ``edges``: what remains after removing dead ends (non-boundary nodes of
    degree 1) with their segment, pass after pass, until there are none."""
    alive = np.ones(len(edges), bool)
    while True:
        degree = np.bincount(edges[alive].ravel(), minlength=n)
        dead = (degree == 1) & ~boundary
        drop = alive & (dead[edges[:, 0]] | dead[edges[:, 1]])
        if not drop.any():
            return alive
        alive &= ~drop


NO_FLOW = 1e-12  #: |Δp| / (inlet − outlet pressure) at or below which a segment is idle


def _carrying_flow(edges: np.ndarray, n: int, inlet: np.ndarray, outlet: np.ndarray,
                   conductance: np.ndarray) -> np.ndarray:
    """Mask over ``edges``: segments whose end pressures differ by more than ``NO_FLOW`` of
    the inlet–outlet drop in a Poiseuille solve (inlets at 1, outlets at 0, ``conductance``
    per segment, any units).  The idle ones hang from the network by a single node (a loop
    with no way out): they carry no flow at any viscosity."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    used = np.zeros(n, bool)
    used[edges.ravel()] = True
    index = np.cumsum(used) - 1
    a, b = index[edges].T
    g = conductance / conductance.max()
    m = int(used.sum())
    lap = coo_matrix((np.r_[g, g, -g, -g], (np.r_[a, b, a, b], np.r_[a, b, b, a])),
                     shape=(m, m)).tocsr()
    fixed = (inlet | outlet)[used]
    p = inlet[used].astype(float)
    free = ~fixed
    p[free] = spsolve(lap[free][:, free].tocsc(), -(lap[free][:, fixed] @ p[fixed]))
    return np.abs(p[a] - p[b]) > NO_FLOW


def generate(spec: TumorNetworkSpec = TumorNetworkSpec()) -> VesselNetwork:
    """A checked ``VesselNetwork`` (SI) built from ``spec`` by the module docstring's rules.
    Raises ``NetworkError`` when no path of segments joins an inlet to an outlet."""
    lat = _lattice(spec)
    n = len(lat.position_m)
    rng = np.random.default_rng(spec.seed)
    keep, diameter, position = _draw(spec, lat, rng)
    edges, diameter = lat.edges[keep], diameter[keep]
    thin = _to_bifurcations(edges, n, _feeding(lat)[keep], rng)
    edges, diameter = edges[thin], diameter[thin]
    fed = _fed_from_both_sides(edges, n, lat.inlet, lat.outlet)
    edges, diameter = edges[fed], diameter[fed]
    if len(edges):
        length = np.linalg.norm(position[edges[:, 1]] - position[edges[:, 0]], axis=1)
        flowing = _carrying_flow(edges, n, lat.inlet, lat.outlet, diameter**4 / length)
        edges, diameter = edges[flowing], diameter[flowing]
    alive = _without_dead_ends(edges, n, lat.inlet | lat.outlet)
    edges, diameter = edges[alive], diameter[alive]
    if len(edges) == 0:
        raise NetworkError(f"generated network: no path of segments joins an inlet to an "
                           f"outlet for {spec!r} (raise connectivity or inlet_fraction, or "
                           "lower core_loss)")
    used = np.zeros(n, bool)
    used[edges.ravel()] = True
    renumber = np.cumsum(used) - 1
    edges = renumber[edges]
    position = position[used]
    inlet, outlet = lat.inlet[used], lat.outlet[used]
    boundary = np.flatnonzero(inlet | outlet)
    pressure_mmHg = np.where(inlet[boundary], spec.arterial_pressure_mmHg,
                             spec.venous_pressure_mmHg)
    length = np.linalg.norm(position[edges[:, 1]] - position[edges[:, 0]], axis=1)
    source = (f"generated: {spec!r}: {len(edges)} segments, {len(position)} nodes, "
              f"{int(inlet.sum())} inlets, {int(outlet.sum())} outlets, from "
              f"{len(lat.edges)} lattice segments ({int(keep.sum())} drawn, "
              f"{int(thin.sum())} after thinning to degree <= {MAX_DEGREE})")
    return VesselNetwork(
        node_position_m=position,
        segment_nodes=edges,
        segment_radius_m=diameter / 2,
        segment_length_m=length,
        boundary_node=boundary,
        boundary_kind=np.full(len(boundary), PRESSURE),
        boundary_value=pressure_mmHg * units.MMHG_PA,
        boundary_hematocrit=np.where(inlet[boundary], spec.inflow_hematocrit, np.nan),
        source=source)


__all__ = ["TumorNetworkSpec", "generate", "lattice_size", "MAX_LATTICE_NODES", "MAX_DEGREE",
           "NO_FLOW"]
