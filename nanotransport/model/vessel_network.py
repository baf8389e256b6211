"""A discrete vessel network: nodes, segments and boundary conditions, in SI, checked.

A network is a graph of straight cylindrical segments between nodes (docs/networks.md).  This
module holds its description and the checks every reader applies, so that a bad file fails
with the segment or node named, never deep inside a solve:

* positions finite; radii and lengths finite and positive (a zero length is named);
* every segment joins two different, known nodes;
* a node that only one segment touches (a dead end) must carry a boundary condition: a
  dangling segment has no flow and is an error here, never pruned silently;
* each connected part has at least one pressure condition (otherwise its pressures are not
  defined); and
* a boundary node with a flow condition that brings blood in has an inflow haematocrit.
  (Whether a pressure boundary node is an inlet is known only after the flow solve, which
  repeats this check by name: ``haemodynamics.solve``.)

Names (``node_names``, ``segment_names``) are the file's own labels, kept for messages and
output; the arrays index nodes and segments 0..n-1.
"""
from __future__ import annotations

import dataclasses

import numpy as np

PRESSURE = 0  #: boundary condition kind: pressure, Pa
INFLOW = 1  #: boundary condition kind: volume flow into the network, m³/s (negative: outflow)
KIND_NAMES = {PRESSURE: "pressure", INFLOW: "inflow"}


class NetworkError(ValueError):
    """A network description that cannot be used; the message names the node or segment."""


@dataclasses.dataclass(frozen=True)
class VesselNetwork:
    """Nodes, segments and boundary conditions of a vessel network (SI units).

    ``segment_nodes[k] = (i, j)`` orients segment ``k`` from node ``i`` to node ``j``; a
    positive flow runs from ``i`` to ``j``.  ``boundary_value`` is a pressure (Pa) where
    ``boundary_kind`` is ``PRESSURE`` and an inflow (m³/s, negative for an outflow) where it
    is ``INFLOW``.  ``boundary_hematocrit`` is the discharge haematocrit of blood entering
    there (NaN where none is given: outlets).
    """

    node_position_m: np.ndarray  # (n_nodes, 3)
    segment_nodes: np.ndarray  # (n_segments, 2) int
    segment_radius_m: np.ndarray  # (n_segments,)
    segment_length_m: np.ndarray  # (n_segments,)
    boundary_node: np.ndarray  # (n_boundary,) int
    boundary_kind: np.ndarray  # (n_boundary,) int, PRESSURE or INFLOW
    boundary_value: np.ndarray  # (n_boundary,) Pa or m³/s
    boundary_hematocrit: np.ndarray  # (n_boundary,) discharge haematocrit, NaN if none
    node_names: tuple = ()
    segment_names: tuple = ()
    source: str = ""

    def __post_init__(self):
        arrays = {
            "node_position_m": np.asarray(self.node_position_m, float).reshape(-1, 3),
            "segment_nodes": np.asarray(self.segment_nodes, np.int64).reshape(-1, 2),
            "segment_radius_m": np.asarray(self.segment_radius_m, float).ravel(),
            "segment_length_m": np.asarray(self.segment_length_m, float).ravel(),
            "boundary_node": np.asarray(self.boundary_node, np.int64).ravel(),
            "boundary_kind": np.asarray(self.boundary_kind, np.int64).ravel(),
            "boundary_value": np.asarray(self.boundary_value, float).ravel(),
            "boundary_hematocrit": np.asarray(self.boundary_hematocrit, float).ravel(),
        }
        n_nodes, n_seg = len(arrays["node_position_m"]), len(arrays["segment_nodes"])
        names = {"node_names": tuple(self.node_names) or tuple(range(n_nodes)),
                 "segment_names": tuple(self.segment_names) or tuple(range(n_seg))}
        for key, value in {**arrays, **names}.items():
            object.__setattr__(self, key, value)
        check(self)

    @property
    def n_nodes(self) -> int:
        return len(self.node_position_m)

    @property
    def n_segments(self) -> int:
        return len(self.segment_nodes)

    def node_degree(self) -> np.ndarray:
        """Number of segments that touch each node."""
        return np.bincount(self.segment_nodes.ravel(), minlength=self.n_nodes)

    def euclidean_length_m(self) -> np.ndarray:
        """Straight-line distance between each segment's end nodes, m."""
        a, b = self.segment_nodes.T
        return np.linalg.norm(self.node_position_m[b] - self.node_position_m[a], axis=1)

    def inflow_boundary(self) -> np.ndarray:
        """Mask over boundary conditions: flow conditions that bring blood in."""
        return (self.boundary_kind == INFLOW) & (self.boundary_value > 0)

    def components(self) -> np.ndarray:
        """Connected-part label of every node (scipy's graph search)."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        a, b = self.segment_nodes.T
        adjacency = coo_matrix((np.ones(self.n_segments), (a, b)),
                               shape=(self.n_nodes, self.n_nodes))
        return connected_components(adjacency, directed=False)[1]

    def describe(self) -> str:
        """One line: sizes and the range of radii and lengths."""
        r, length = self.segment_radius_m * 1e6, self.segment_length_m * 1e6
        return (f"{self.n_segments} segments, {self.n_nodes} nodes, "
                f"{len(self.boundary_node)} boundary nodes "
                f"({int(np.sum(self.boundary_kind == PRESSURE))} pressure); "
                f"diameters {2 * r.min():.3g}-{2 * r.max():.3g} µm, "
                f"lengths {length.min():.3g}-{length.max():.3g} µm")


def _where(net: VesselNetwork) -> str:
    return f" in {net.source}" if net.source else ""


def _segment(net: VesselNetwork, k: int) -> str:
    return f"segment {net.segment_names[k]!r}"


def _node(net: VesselNetwork, i: int) -> str:
    return f"node {net.node_names[i]!r}"


def check(net: VesselNetwork) -> None:
    """Raise ``NetworkError`` naming the first segment or node that breaks a rule (above)."""
    where = _where(net)
    if net.n_segments == 0:
        raise NetworkError(f"network{where} has no segments")
    if len(net.node_names) != net.n_nodes or len(net.segment_names) != net.n_segments:
        raise NetworkError(f"network{where}: {len(net.node_names)} node names for "
                           f"{net.n_nodes} nodes, {len(net.segment_names)} segment names for "
                           f"{net.n_segments} segments")
    bad = ~np.all(np.isfinite(net.node_position_m), axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise NetworkError(f"{_node(net, i)}{where}: position {net.node_position_m[i]} m is "
                           "not finite")
    out = (net.segment_nodes < 0) | (net.segment_nodes >= net.n_nodes)
    if out.any():
        k = int(np.argmax(out.any(axis=1)))
        raise NetworkError(f"{_segment(net, k)}{where}: node index {net.segment_nodes[k]} is "
                           f"outside 0..{net.n_nodes - 1}")
    loop = net.segment_nodes[:, 0] == net.segment_nodes[:, 1]
    if loop.any():
        k = int(np.argmax(loop))
        raise NetworkError(f"{_segment(net, k)}{where} starts and ends at "
                           f"{_node(net, int(net.segment_nodes[k, 0]))}")
    for field, allowed in (("segment_radius_m", "> 0 and finite"),
                           ("segment_length_m", "> 0 and finite (a zero-length segment)")):
        values = getattr(net, field)
        if len(values) != net.n_segments:
            raise NetworkError(f"network{where}: {field} has {len(values)} entries for "
                               f"{net.n_segments} segments")
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            k = int(np.argmax(bad))
            raise NetworkError(f"{_segment(net, k)}{where}: {field} = {values[k]:.6g}; "
                               f"allowed {allowed}")
    _check_boundary(net, where)
    degree = net.node_degree()
    is_boundary = np.zeros(net.n_nodes, bool)
    is_boundary[net.boundary_node] = True
    dangling = (degree == 1) & ~is_boundary
    if dangling.any():
        i = int(np.argmax(dangling))
        k = int(np.argmax((net.segment_nodes == i).any(axis=1)))
        raise NetworkError(f"{_segment(net, k)}{where} is dangling: its {_node(net, i)} joins "
                           "no other segment and has no boundary condition (give it one, or "
                           "remove the segment; segments are never pruned silently)")
    isolated = degree == 0
    if isolated.any():
        i = int(np.argmax(isolated))
        raise NetworkError(f"{_node(net, i)}{where} belongs to no segment")
    labels = net.components()
    held = np.zeros(labels.max() + 1, bool)
    held[labels[net.boundary_node[net.boundary_kind == PRESSURE]]] = True
    if not held.all():
        part = int(np.argmin(held))
        members = np.flatnonzero(labels == part)
        raise NetworkError(f"network{where}: the connected part containing "
                           f"{_node(net, int(members[0]))} ({len(members)} nodes) has no "
                           "pressure boundary condition, so its pressures are undefined")


def _check_boundary(net: VesselNetwork, where: str) -> None:
    n = len(net.boundary_node)
    for field in ("boundary_kind", "boundary_value", "boundary_hematocrit"):
        if len(getattr(net, field)) != n:
            raise NetworkError(f"network{where}: {field} has {len(getattr(net, field))} "
                               f"entries for {n} boundary nodes")
    if np.any((net.boundary_node < 0) | (net.boundary_node >= net.n_nodes)):
        raise NetworkError(f"network{where}: a boundary node index is outside "
                           f"0..{net.n_nodes - 1}")
    if len(np.unique(net.boundary_node)) != n:
        twice = net.boundary_node[np.flatnonzero(np.bincount(net.boundary_node) > 1)[0]]
        raise NetworkError(f"{_node(net, int(twice))}{where} has two boundary conditions")
    for b in range(n):
        i, kind, value = int(net.boundary_node[b]), int(net.boundary_kind[b]), \
            net.boundary_value[b]
        if kind not in KIND_NAMES:
            raise NetworkError(f"{_node(net, i)}{where}: boundary kind {kind}; allowed "
                               f"{PRESSURE} (pressure) or {INFLOW} (inflow)")
        if not np.isfinite(value):
            raise NetworkError(f"{_node(net, i)}{where}: boundary {KIND_NAMES[kind]} "
                               f"{value} is not finite")
        h = net.boundary_hematocrit[b]
        if np.isfinite(h) and not 0.0 <= h < 1.0:
            raise NetworkError(f"{_node(net, i)}{where}: inflow haematocrit {h:.6g}; allowed "
                               "0 <= H_D < 1")
    missing = net.inflow_boundary() & ~np.isfinite(net.boundary_hematocrit)
    if missing.any():
        i = int(net.boundary_node[np.argmax(missing)])
        raise NetworkError(f"{_node(net, i)}{where} brings blood in (inflow "
                           f"{net.boundary_value[np.argmax(missing)]:.6g} m³/s) but has no "
                           "inflow haematocrit")
