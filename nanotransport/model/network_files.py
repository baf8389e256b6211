"""Reading vessel networks from files: Secomb's ``network.dat``, VTK polydata, HDF5.

``read_network(path)`` picks the reader by the file's suffix (``.dat``, ``.vtp``, ``.h5`` or
``.hdf5``) and returns a checked ``VesselNetwork`` in SI units (docs/networks.md gives each
layout, its units and an example).  This module reads Secomb's text format; the others live
in ``network_vtp`` and ``network_hdf5``.

Secomb's ``network.dat`` (NetFlow, Greens; T. W. Secomb, github.com/secomb/NetFlowV2): seven
header lines (the seventh gives the number of segments), a column-title line, one line per
segment ``name type from to diameter_um flow_nl_min hd``, a line with the number of nodes, a
column-title line, one line per node ``name x_um y_um z_um``, a line with the number of
boundary nodes, a column-title line, one line per boundary node ``name bctype value hd ...``
with ``bctype`` 0 (pressure, mmHg) or 2 (flow into the network, nl/min).  Segments of a
``type`` other than 4 or 5 are excluded, as in Secomb's programs.  The segments' flow and
haematocrit columns (a previous solution) are returned by ``read_secomb_solution``.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import numpy as np

from ..engine import units
from .vessel_network import INFLOW, PRESSURE, NetworkError, VesselNetwork

NL_PER_MIN = 1e-12 / 60.0  #: 1 nl/min in m³/s
SECOMB_INCLUDED_TYPES = (4, 5)
SECOMB_BC = {0: PRESSURE, 2: INFLOW}
SUFFIXES = (".dat", ".vtp", ".h5", ".hdf5")


def read_network(path, *, vtp_length_unit_m: float = 1e-6) -> VesselNetwork:
    """The network in ``path``, by suffix: ``.dat`` Secomb, ``.vtp`` VTK, ``.h5``/``.hdf5``.
    ``vtp_length_unit_m``: metres per length unit of a ``.vtp`` file (which carries no units;
    default µm); the other formats state theirs."""
    path = Path(path)
    if not path.is_file():
        raise NetworkError(f"network file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".dat":
        return read_secomb(path)
    if suffix == ".vtp":
        from .network_vtp import read_vtp
        return read_vtp(path, length_unit_m=vtp_length_unit_m)
    if suffix in (".h5", ".hdf5"):
        from .network_hdf5 import read_hdf5
        return read_hdf5(path)
    raise NetworkError(f"network file {str(path)!r}: suffix {suffix!r} is not one of "
                       f"{', '.join(SUFFIXES)}")


@contextlib.contextmanager
def atomic_path(path: Path):
    """A new empty file beside ``path`` (``.NAME.PID.XXXX.tmp``, the mode ``open`` would give),
    renamed over ``path`` on success and removed on any failure.  (``outdir.atomic_path`` is
    the edge's; the model may not import it.)"""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Lines:
    """The file's lines, consumed in order, with the line number kept for messages."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = path.read_text(errors="replace").splitlines()
        self.at = 0

    def next(self, what: str) -> str:
        if self.at >= len(self.lines):
            raise NetworkError(f"{self.path}: the file ends before {what}")
        self.at += 1
        return self.lines[self.at - 1]

    def numbers(self, what: str, count: int, types) -> list:
        line = self.next(what)
        tokens = line.replace(",", " ").split()
        try:
            return [t(tokens[i]) for i, t in zip(range(count), types)]
        except (ValueError, IndexError):
            raise NetworkError(f"{self.path}, line {self.at}: expected {what} "
                               f"({count} numbers), found {line.strip()!r}") from None

    def count(self, what: str) -> int:
        (n,) = self.numbers(what, 1, (int,))
        if n < 0:
            raise NetworkError(f"{self.path}, line {self.at}: {what} = {n} is negative")
        return n


def _parse_secomb(path: Path):
    lines = _Lines(path)
    for what in ("the title", "the box dimensions", "the tissue points", "the outer bound",
                 "the maximum segment length", "the maximum segments per node"):
        lines.next(what)
    n_seg = lines.count("the number of segments")
    lines.next("the segment column titles")
    seg = [lines.numbers("a segment: name type from to diameter flow hd", 7,
                         (int, int, int, int, float, float, float)) for _ in range(n_seg)]
    n_nod = lines.count("the number of nodes")
    lines.next("the node column titles")
    nod = [lines.numbers("a node: name x y z", 4, (int, float, float, float))
           for _ in range(n_nod)]
    n_bc = lines.count("the number of boundary nodes")
    lines.next("the boundary column titles")
    bc = [lines.numbers("a boundary node: name type value hd", 4, (int, int, float, float))
          for _ in range(n_bc)]
    return seg, nod, bc


def read_secomb(path) -> VesselNetwork:
    """A ``network.dat`` file (module docstring): µm, mmHg and nl/min converted to SI."""
    path = Path(path)
    seg, nod, bc = _parse_secomb(path)
    seg = [s for s in seg if s[1] in SECOMB_INCLUDED_TYPES]
    node_names = [n[0] for n in nod]
    index = {name: i for i, name in enumerate(node_names)}
    if len(index) != len(node_names):
        twice = next(n for n in node_names if node_names.count(n) > 1)
        raise NetworkError(f"{path}: node {twice} is listed twice")
    ends = []
    for s in seg:
        for end in s[2:4]:
            if end not in index:
                raise NetworkError(f"{path}: segment {s[0]} joins node {end}, which is not "
                                   "in the node list")
        ends.append((index[s[2]], index[s[3]]))
    kinds, values = [], []
    for b in bc:
        if b[0] not in index:
            raise NetworkError(f"{path}: boundary node {b[0]} is not in the node list")
        if b[1] not in SECOMB_BC:
            raise NetworkError(f"{path}: boundary node {b[0]} has type {b[1]}; allowed 0 "
                               "(pressure, mmHg) or 2 (inflow, nl/min)")
        kinds.append(SECOMB_BC[b[1]])
        values.append(b[2] * (units.MMHG_PA if b[1] == 0 else NL_PER_MIN))
    position = np.array([n[1:4] for n in nod], float).reshape(-1, 3) * units.UM
    # nodes that no included segment touches are left out (excluded types end there)
    used = np.zeros(len(nod), bool)
    used[np.asarray(ends, np.int64).ravel()] = True
    renumber = np.cumsum(used) - 1
    keep_bc = [k for k, b in enumerate(bc) if used[index[b[0]]]]
    segment_nodes = renumber[np.asarray(ends, np.int64).reshape(-1, 2)]
    diameter_m = np.array([s[4] for s in seg], float) * units.UM
    net = VesselNetwork(
        node_position_m=position[used],
        segment_nodes=segment_nodes,
        segment_radius_m=diameter_m / 2,
        segment_length_m=_lengths(position[used], segment_nodes),
        boundary_node=renumber[[index[bc[k][0]] for k in keep_bc]],
        boundary_kind=np.array(kinds, np.int64)[keep_bc],
        boundary_value=np.array(values, float)[keep_bc],
        boundary_hematocrit=np.array([bc[k][3] for k in keep_bc], float),
        node_names=tuple(np.asarray(node_names)[used].tolist()),
        segment_names=tuple(s[0] for s in seg),
        source=str(path))
    return net


def _lengths(position: np.ndarray, segment_nodes: np.ndarray) -> np.ndarray:
    a, b = segment_nodes.T
    return np.linalg.norm(position[b] - position[a], axis=1)


def read_secomb_solution(path) -> dict:
    """The flow (m³/s) and discharge haematocrit columns of a ``network.dat`` file's included
    segments, in file order: the solution of the program that wrote it."""
    seg, _, _ = _parse_secomb(Path(path))
    seg = [s for s in seg if s[1] in SECOMB_INCLUDED_TYPES]
    return {"flow_m3_per_s": np.array([s[5] for s in seg]) * NL_PER_MIN,
            "hematocrit": np.array([s[6] for s in seg])}
