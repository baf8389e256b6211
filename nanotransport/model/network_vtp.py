"""Vessel networks in VTK XML PolyData (``.vtp``): ``read_vtp`` and ``write_vtp``.

UNITS: A ``.vtp`` FILE CARRIES NONE.  Point coordinates and radii (or diameters) are in the
length unit given to the reader and writer as ``length_unit_m`` (metres per file unit), by
default 1e-6: THE FILE IS READ AS MICROMETRES unless told otherwise (``length_unit_m=1.0`` for
metres, ``1e-3`` for millimetres).  Arrays whose name ends in ``_um`` are micrometres whatever
``length_unit_m`` says.  Boundary values are SI (Pa, m³/s).

What is read, from the file's single ``Piece``:

* ``Points``: the nodes, in order.  Points are never merged by position: lines are joined by
  sharing a point.
* ``Lines`` (``connectivity``, ``offsets``): a polyline through k points gives k-1 segments,
  in order, each oriented along the line.  Verts, polys and strips are ignored.
* the radius: the first array named ``radius``, ``Radius``, ``radius_um``, ``diameter``,
  ``Diameter`` or ``diameter_um`` (diameters are halved) found in ``CellData`` (one value per
  line, given to each of its segments) or else in ``PointData`` (one value per point; a
  segment's radius is the mean of its two end points' values).  None: ``NetworkError`` listing
  the arrays found.
* boundary conditions, ``PointData`` (optional): ``boundary_kind`` (integer: -1 none,
  0 pressure, 1 inflow, as ``vessel_network.PRESSURE``/``INFLOW``), ``boundary_value`` (Pa for
  pressure, m³/s into the network for inflow, negative: outflow; required with
  ``boundary_kind``) and ``boundary_hematocrit`` (discharge haematocrit of inflowing blood,
  NaN for none; all NaN when absent).  A file without ``boundary_kind`` has no boundary
  conditions, which ``VesselNetwork``'s check rejects (no pressure condition).
* segment lengths: the straight-line distance between the end points, m.

Encodings: ``DataArray`` ``format="ascii"``, ``"binary"`` (inline base64, with the block
header of the ``VTKFile``'s ``header_type``, ``UInt32`` by default or ``UInt64``, and zlib
blocks when ``compressor="vtkZLibDataCompressor"``) and ``"appended"`` (``AppendedData`` with
``encoding="base64"`` or ``"raw"``, the data after its leading ``_``); ``byte_order``
``LittleEndian`` (default) or ``BigEndian``.  Base64 headers are accepted encoded on their own
(as VTK writes them) or together with the data.

The reader is hand-written with ``xml.etree.ElementTree`` rather than built on the ``vtk``
package: that is a ~100 MB dependency for reading a handful of arrays.

``write_vtp`` writes ASCII: ``Points`` (in ``length_unit_m``), one 2-point line per segment,
``CellData`` ``radius`` (in ``length_unit_m``) and the three ``PointData`` boundary arrays, to
a temporary file in the target's folder renamed over the target (``os.replace``).  Reading it
back with the same ``length_unit_m`` reproduces positions, segment nodes, radii and boundary
conditions (to ~1e-16 relative: the unit conversion rounds); lengths are recomputed
straight-line distances, names become 0..n-1.
"""
from __future__ import annotations

import base64
import dataclasses
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np

from ..engine import units
from .network_files import atomic_path
from .vessel_network import NetworkError, VesselNetwork

RADIUS_NAMES = ("radius", "Radius", "radius_um", "diameter", "Diameter", "diameter_um")
NO_BOUNDARY = -1  #: ``boundary_kind`` of a point without a boundary condition
ZLIB = "vtkZLibDataCompressor"
_TYPES = {"Int8": "i1", "UInt8": "u1", "Int16": "i2", "UInt16": "u2", "Int32": "i4",
          "UInt32": "u4", "Int64": "i8", "UInt64": "u8", "Float32": "f4", "Float64": "f8"}
_BYTE_ORDER = {"LittleEndian": "<", "BigEndian": ">"}


@dataclasses.dataclass(frozen=True)
class _Encoding:
    """How the file's binary arrays are stored (``VTKFile`` and ``AppendedData``)."""

    path: Path
    byte_order: str  # "<" or ">"
    header: np.dtype  # block header integer, byte order included
    compressed: bool
    appended: bytes | str | None  # raw bytes or base64 text after the "_"; None: no block


def read_vtp(path, length_unit_m: float = units.UM) -> VesselNetwork:
    """The network in the ``.vtp`` file ``path``, checked; coordinates and radii in the file
    are in units of ``length_unit_m`` metres (default 1e-6: micrometres; module docstring)."""
    path = Path(path)
    _check_unit(length_unit_m, path)
    piece, enc = _parse(path)
    point_data = _arrays(piece, "PointData")
    points = _points(piece, enc)
    ends, line_of = _segments(piece, enc, len(points))
    kind, value, hct = _boundary(point_data, enc, len(points))
    position = points * length_unit_m
    has_bc = kind != NO_BOUNDARY
    return VesselNetwork(
        node_position_m=position,
        segment_nodes=ends,
        segment_radius_m=_radius(piece, enc, ends, line_of, length_unit_m),
        segment_length_m=np.linalg.norm(position[ends[:, 1]] - position[ends[:, 0]], axis=1),
        boundary_node=np.flatnonzero(has_bc),
        boundary_kind=kind[has_bc],
        boundary_value=value[has_bc],
        boundary_hematocrit=hct[has_bc],
        source=str(path))


def write_vtp(net: VesselNetwork, path, length_unit_m: float = units.UM) -> Path:
    """Write ``net`` to ``path`` as ASCII VTK PolyData, lengths in units of ``length_unit_m``
    metres (default micrometres), atomically; returns ``path``."""
    path = Path(path)
    _check_unit(length_unit_m, path)
    n, m = net.n_nodes, net.n_segments
    kind = np.full(n, NO_BOUNDARY, np.int64)
    value, hct = np.zeros(n), np.full(n, np.nan)
    kind[net.boundary_node] = net.boundary_kind
    value[net.boundary_node] = net.boundary_value
    hct[net.boundary_node] = net.boundary_hematocrit
    root = ET.Element("VTKFile", type="PolyData", version="1.0", byte_order="LittleEndian",
                      header_type="UInt64")
    piece = ET.SubElement(ET.SubElement(root, "PolyData"), "Piece", NumberOfPoints=str(n),
                          NumberOfVerts="0", NumberOfLines=str(m), NumberOfStrips="0",
                          NumberOfPolys="0")
    point_data = ET.SubElement(piece, "PointData")
    _ascii(point_data, "boundary_kind", kind)
    _ascii(point_data, "boundary_value", value)
    _ascii(point_data, "boundary_hematocrit", hct)
    _ascii(ET.SubElement(piece, "CellData"), "radius", net.segment_radius_m / length_unit_m)
    _ascii(ET.SubElement(piece, "Points"), "points", net.node_position_m / length_unit_m)
    lines = ET.SubElement(piece, "Lines")
    _ascii(lines, "connectivity", net.segment_nodes.ravel())
    _ascii(lines, "offsets", 2 * np.arange(1, m + 1))
    ET.indent(root)
    with atomic_path(path) as tmp:
        tmp.write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
    return path


def _check_unit(length_unit_m: float, path: Path) -> None:
    if not (np.isfinite(length_unit_m) and length_unit_m > 0):
        raise NetworkError(f"{path}: length_unit_m = {length_unit_m!r}; it must be a positive "
                           "number of metres per file unit (1e-6 for micrometres)")


def _ascii(parent: ET.Element, name: str, values: np.ndarray) -> None:
    """A ``DataArray`` of ``values`` (Int64 or Float64, shortest exact decimals)."""
    values = np.asarray(values)
    integer = values.dtype.kind in "iu"
    el = ET.SubElement(parent, "DataArray", type="Int64" if integer else "Float64", Name=name,
                       NumberOfComponents=str(values.shape[1] if values.ndim == 2 else 1),
                       format="ascii")
    el.text = " ".join(map(repr, values.ravel().tolist()))




# ------------------------------------------------------------------ the file
def _parse(path: Path) -> tuple[ET.Element, _Encoding]:
    """The file's ``Piece`` element and its encoding.  The file is read as bytes: raw
    appended data is not text, and is cut out before the XML is parsed."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise NetworkError(f"{path}: cannot be read ({e})") from None
    xml, block = _split_appended(raw, path)
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise NetworkError(f"{path}: not a VTK XML file ({e})") from None
    if root.tag != "VTKFile" or root.get("type") != "PolyData":
        raise NetworkError(f"{path}: root element {root.tag!r} of type {root.get('type')!r}; "
                           "expected VTKFile of type 'PolyData'")
    order = _choice(root, "byte_order", "LittleEndian", _BYTE_ORDER, path)
    header = _choice(root, "header_type", "UInt32", ("UInt32", "UInt64"), path)
    compressor = root.get("compressor", "")
    if compressor not in ("", ZLIB):
        raise NetworkError(f"{path}: compressor {compressor!r}; this reader knows {ZLIB!r}")
    pieces = root.findall("PolyData/Piece")
    if len(pieces) != 1:
        raise NetworkError(f"{path}: {len(pieces)} PolyData pieces; this reader reads one")
    enc = _Encoding(path, _BYTE_ORDER[order],
                    np.dtype(_TYPES[header]).newbyteorder(_BYTE_ORDER[order]),
                    compressor == ZLIB, _appended(root.find("AppendedData"), block, path))
    return pieces[0], enc


def _choice(el: ET.Element, attribute: str, default: str, allowed, path: Path) -> str:
    value = el.get(attribute, default)
    if value not in allowed:
        raise NetworkError(f"{path}: {attribute} = {value!r}; allowed {', '.join(allowed)}")
    return value


def _split_appended(raw: bytes, path: Path) -> tuple[bytes, bytes]:
    """The file without the contents of its ``AppendedData`` element, and those contents."""
    start = raw.find(b"<AppendedData")
    if start < 0:
        return raw, b""
    body = raw.find(b">", start) + 1
    end = raw.rfind(b"</AppendedData>")
    if body == 0 or end < body:
        raise NetworkError(f"{path}: AppendedData has no closing </AppendedData>")
    return raw[:body] + raw[end:], raw[body:end]


def _appended(el: ET.Element | None, block: bytes, path: Path) -> bytes | str | None:
    """The appended data after its ``_`` marker: bytes (raw) or base64 text."""
    if el is None:
        return None
    encoding = _choice(el, "encoding", "", ("raw", "base64"), path)
    block = block.lstrip()
    if not block.startswith(b"_"):
        raise NetworkError(f"{path}: AppendedData does not start with '_'")
    if encoding == "raw":
        return block[1:]  # not stripped at the end: the last array may end in b" " or b"\n"
    return block[1:].decode("ascii", errors="replace").strip()


# ------------------------------------------------------------------ arrays
def _arrays(piece: ET.Element, section: str) -> dict[str, ET.Element]:
    return {el.get("Name", ""): el for el in piece.findall(f"{section}/DataArray")}


def _decode(el: ET.Element, enc: _Encoding, what: str) -> np.ndarray:
    """The values of a ``DataArray``: shape (count, NumberOfComponents), native byte order."""
    name = el.get("Name") or what
    type_ = el.get("type")
    if type_ not in _TYPES:
        raise NetworkError(f"{enc.path}: DataArray {name!r} has type {type_!r}; allowed "
                           f"{', '.join(_TYPES)}")
    dtype = np.dtype(_TYPES[type_])
    fmt = el.get("format", "ascii")
    try:
        if fmt == "ascii":
            values = np.array((el.text or "").split(), dtype)
        elif fmt == "binary":
            data = _base64_array("".join((el.text or "").split()), enc)
            values = np.frombuffer(data, dtype.newbyteorder(enc.byte_order)).astype(dtype)
        elif fmt == "appended":
            values = np.frombuffer(_appended_array(el, enc),
                                   dtype.newbyteorder(enc.byte_order)).astype(dtype)
        else:
            raise NetworkError(f"{enc.path}: DataArray {name!r} has format {fmt!r}; allowed "
                               "ascii, binary, appended")
    except (ValueError, zlib.error) as e:  # binascii.Error is a ValueError
        raise NetworkError(f"{enc.path}: DataArray {name!r} ({fmt}, {type_}) cannot be "
                           f"decoded: {e}") from None
    components = int(el.get("NumberOfComponents", "1"))
    if components < 1 or values.size % components:
        raise NetworkError(f"{enc.path}: DataArray {name!r} has {values.size} values, not a "
                           f"multiple of its {components} components")
    return values.reshape(-1, components)


def _appended_array(el: ET.Element, enc: _Encoding) -> bytes:
    if enc.appended is None:
        raise NetworkError(f"{enc.path}: DataArray {el.get('Name')!r} is appended but the "
                           "file has no AppendedData")
    offset = int(el.get("offset", "0"))
    if isinstance(enc.appended, bytes):
        return _raw_array(enc.appended[offset:], enc)
    return _base64_array(enc.appended[offset:], enc)


def _raw_array(data: bytes, enc: _Encoding) -> bytes:
    """One array's bytes from raw appended data starting at its block header."""
    size = enc.header.itemsize
    count = int(np.frombuffer(data[:size], enc.header)[0])
    if not enc.compressed:
        return data[size:size + count]
    header = np.frombuffer(data[:(3 + count) * size], enc.header)
    start = len(header) * size
    return _inflate(data[start:start + int(header[3:].sum())], header)


def _base64_array(text: str, enc: _Encoding) -> bytes:
    """One array's bytes from base64 text starting at its block header; the header encoded
    on its own (VTK's way: it ends in '=' padding) or together with the data."""
    size = enc.header.itemsize
    count = int(np.frombuffer(_b64(text[:_chars(size)])[:size], enc.header)[0])
    header_bytes = (3 + count) * size if enc.compressed else size
    head = _b64(text[:_chars(header_bytes)])
    header = np.frombuffer(head[:header_bytes], enc.header)
    body_bytes = int(header[3:].sum()) if enc.compressed else count
    if len(head) == header_bytes:  # encoded on its own (or ending on a 3-byte boundary)
        start = _chars(header_bytes)
        body = _b64(text[start:start + _chars(body_bytes)])
    else:
        body = _b64(text[:_chars(header_bytes + body_bytes)])[header_bytes:]
    body = body[:body_bytes]
    return _inflate(body, header) if enc.compressed else body


def _chars(n_bytes: int) -> int:
    """Length of the base64 text of ``n_bytes`` bytes."""
    return -(-n_bytes // 3) * 4


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _inflate(body: bytes, header: np.ndarray) -> bytes:
    """The zlib blocks of ``body`` (sizes in ``header[3:]``) decompressed and joined."""
    count, block, last = (int(h) for h in header[:3])
    out, at = [], 0
    for size in header[3:].tolist():
        out.append(zlib.decompress(body[at:at + size]))
        at += size
    data = b"".join(out)
    expected = (count - 1) * block + (last or block) if count else 0
    if len(data) != expected:
        raise ValueError(f"{len(data)} bytes decompressed, the header says {expected}")
    return data


# ------------------------------------------------------------------ the network
def _points(piece: ET.Element, enc: _Encoding) -> np.ndarray:
    """Point coordinates (n, 3) in file units."""
    el = piece.find("Points/DataArray")
    if el is None:
        raise NetworkError(f"{enc.path}: no Points")
    points = _decode(el, enc, "Points").astype(float)
    if points.shape[1] != 3:
        raise NetworkError(f"{enc.path}: Points have {points.shape[1]} components; expected 3")
    return points


def _segments(piece: ET.Element, enc: _Encoding, n_points: int):
    """Segment end points (m, 2) and the line of each segment (m,), from ``Lines``."""
    lines = _arrays(piece, "Lines")
    missing = [k for k in ("connectivity", "offsets") if k not in lines]
    if missing:
        raise NetworkError(f"{enc.path}: Lines has no {' or '.join(missing)} array (found "
                           f"{sorted(lines) or 'no Lines'})")
    conn = _decode(lines["connectivity"], enc, "connectivity").ravel().astype(np.int64)
    offsets = _decode(lines["offsets"], enc, "offsets").ravel().astype(np.int64)
    if np.any(np.diff(offsets) < 0) or (len(offsets) and offsets[-1] != len(conn)) \
            or np.any(offsets < 0):
        raise NetworkError(f"{enc.path}: Lines offsets must rise to the connectivity's "
                           f"length {len(conn)}; found {offsets.tolist()}")
    bad = (conn < 0) | (conn >= n_points)
    if bad.any():
        k = int(np.argmax(bad))
        raise NetworkError(f"{enc.path}: line {int(np.searchsorted(offsets, k, 'right'))} "
                           f"refers to point {conn[k]}; the file has points 0..{n_points - 1}")
    line = np.searchsorted(offsets, np.arange(len(conn)), side="right")
    within = np.flatnonzero(line[:-1] == line[1:])  # consecutive points of one line
    return np.stack([conn[within], conn[within + 1]], axis=1), line[within]


def _radius(piece: ET.Element, enc: _Encoding, ends: np.ndarray, line_of: np.ndarray,
            length_unit_m: float) -> np.ndarray:
    """Segment radii, m, from the first radius or diameter array found (module docstring)."""
    cell, point = _arrays(piece, "CellData"), _arrays(piece, "PointData")
    for section, arrays in (("CellData", cell), ("PointData", point)):
        name = next((n for n in RADIUS_NAMES if n in arrays), None)
        if name is None:
            continue
        values = _scalar(arrays[name], enc)
        scale = (units.UM if name.endswith("_um") else length_unit_m) \
            * (0.5 if name.lower().startswith("diameter") else 1.0)
        if section == "CellData":
            first = int(piece.get("NumberOfVerts", "0"))  # cell data: verts, then lines
            n_lines = int(line_of.max()) + 1 if len(line_of) else 0
            _expect_length(values, first + n_lines, f"CellData {name!r}", enc)
            return values[first + line_of] * scale
        _expect_length(values, int(ends.max()) + 1 if len(ends) else 0, f"PointData {name!r}",
                       enc)
        return values[ends].mean(axis=1) * scale
    raise NetworkError(f"{enc.path}: no radius array: expected a CellData or PointData array "
                       f"named one of {', '.join(RADIUS_NAMES)}; found CellData "
                       f"{sorted(cell)}, PointData {sorted(point)}")


def _scalar(el: ET.Element, enc: _Encoding) -> np.ndarray:
    values = _decode(el, enc, el.get("Name", ""))
    if values.shape[1] != 1:
        raise NetworkError(f"{enc.path}: DataArray {el.get('Name')!r} has {values.shape[1]} "
                           "components; expected 1")
    return values[:, 0].astype(float)


def _expect_length(values: np.ndarray, at_least: int, what: str, enc: _Encoding) -> None:
    if len(values) < at_least:
        raise NetworkError(f"{enc.path}: {what} has {len(values)} values; the lines need "
                           f"{at_least}")


def _boundary(point_data: dict, enc: _Encoding, n_points: int):
    """Per point: boundary kind (-1 none), value (SI) and inflow haematocrit (NaN: none)."""
    if "boundary_kind" not in point_data:
        return np.full(n_points, NO_BOUNDARY), np.zeros(n_points), np.full(n_points, np.nan)
    if "boundary_value" not in point_data:
        raise NetworkError(f"{enc.path}: PointData has boundary_kind but no boundary_value")
    arrays = {key: _scalar(point_data[key], enc)
              for key in ("boundary_kind", "boundary_value", "boundary_hematocrit")
              if key in point_data}
    for key, values in arrays.items():
        if len(values) != n_points:
            raise NetworkError(f"{enc.path}: PointData {key!r} has {len(values)} values for "
                               f"{n_points} points")
    kind = arrays["boundary_kind"]
    if not np.all(kind == np.round(kind)):
        raise NetworkError(f"{enc.path}: PointData 'boundary_kind' has a value that is not an "
                           f"integer: {kind[kind != np.round(kind)][0]!r}")
    hct = arrays.get("boundary_hematocrit", np.full(n_points, np.nan))
    return kind.astype(np.int64), arrays["boundary_value"], hct
