"""Vessel network files: Secomb's ``network.dat``, HDF5 and VTK PolyData, and the checks.

The rat mesentery network (NetFlowV2) is read and round-tripped through HDF5 and VTP; a small
network is written by hand in every VTP encoding the reader accepts; and each check of
``VesselNetwork`` and of the readers is shown to fail with the offending segment, node, field
or value named.
"""
from __future__ import annotations

import base64
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

import nanotransport
from nanotransport.model.network_files import read_network
from nanotransport.model.network_hdf5 import read_hdf5, write_hdf5
from nanotransport.model.network_vtp import read_vtp, write_vtp
from nanotransport.model.vessel_network import INFLOW, PRESSURE, NetworkError

MESENTERY = (Path(nanotransport.__file__).parent / "data" / "networks"
             / "rat_mesentery_secomb_netflowv2.dat")
MMHG_PA = 133.322
ARRAY_FIELDS = ("node_position_m", "segment_nodes", "segment_radius_m", "segment_length_m",
                "boundary_node", "boundary_kind", "boundary_value", "boundary_hematocrit")


@pytest.fixture(scope="module")
def mesentery():
    return read_network(MESENTERY)


def _raises(fragments, fn, *args, **kwargs) -> str:
    """Call ``fn``; it must raise ``NetworkError`` whose message holds every fragment."""
    with pytest.raises(NetworkError) as caught:
        fn(*args, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ------------------------------------------------------------------ Secomb's network.dat
def test_mesentery_dat(mesentery):
    net = mesentery
    assert (net.n_segments, net.n_nodes, len(net.boundary_node)) == (1130, 972, 36)
    assert int(np.sum(net.boundary_kind == PRESSURE)) == 1
    assert net.segment_names[0] == 1
    assert net.segment_radius_m[0] == pytest.approx(13.825e-6, rel=1e-12)  # 27.65 µm wide
    boundary = {net.node_names[i]: b for b, i in enumerate(net.boundary_node)}
    b = boundary[825]
    assert net.boundary_kind[b] == PRESSURE
    assert net.boundary_value[b] == pytest.approx(13.8 * MMHG_PA, rel=1e-12)
    b = boundary[830]
    assert net.boundary_kind[b] == INFLOW
    assert net.boundary_value[b] == pytest.approx(362.559998e-12 / 60, rel=1e-12)
    assert net.boundary_hematocrit[b] == pytest.approx(0.4338)
    assert np.array_equal(net.segment_length_m, net.euclidean_length_m())


def _dat(path: Path, segments, nodes, boundary) -> Path:
    """A ``network.dat`` file: segments (name, from, to, diameter µm), nodes (name, x, y, z
    µm), boundary nodes (name, bctype, value, hd)."""
    lines = ["tiny test network", "400. 400. 100. box dimensions in microns",
             "4 4 1 number of tissue points in x,y,z directions", "100. outer bound distance",
             "150. max. segment length", "4 maximum number of segments per node",
             f"{len(segments)} total number of segments",
             "SegName Type StartNode EndNode Diam Flow[nl/min] Hd"]
    lines += [f"{s} 5 {a} {b} {d} 1.0 0.45" for s, a, b, d in segments]
    lines += [f"{len(nodes)} number of nodes", "Name x y z"]
    lines += [" ".join(map(str, n)) for n in nodes]
    lines += [f"{len(boundary)} Total number of boundary nodes", "Node Bctype Press/Flow HD PO2"]
    lines += [" ".join(map(str, b)) + " 40." for b in boundary]
    path.write_text("\n".join(lines) + "\n")
    return path


CHAIN_SEGMENTS = [(1, 1, 2, 10.0), (2, 2, 3, 8.0)]
CHAIN_NODES = [(1, 0.0, 0.0, 0.0), (2, 100.0, 0.0, 0.0), (3, 200.0, 0.0, 0.0)]
CHAIN_BOUNDARY = [(1, 0, 13.8, 0.45), (3, 0, 10.0, 0.45)]


def test_small_dat_reads(tmp_path):
    net = read_network(_dat(tmp_path / "net.dat", CHAIN_SEGMENTS, CHAIN_NODES, CHAIN_BOUNDARY))
    assert net.segment_length_m == pytest.approx([100e-6, 100e-6], rel=1e-12)
    assert net.segment_radius_m == pytest.approx([5e-6, 4e-6], rel=1e-12)


def test_dangling_segment_is_named(tmp_path):
    path = _dat(tmp_path / "net.dat", CHAIN_SEGMENTS + [(3, 2, 4, 6.0)],
                CHAIN_NODES + [(4, 100.0, 80.0, 0.0)], CHAIN_BOUNDARY)
    _raises(["segment 3", "dangling", "node 4", "no boundary condition"], read_network, path)


def test_zero_length_segment_is_named(tmp_path):
    nodes = CHAIN_NODES[:2] + [(3, 100.0, 0.0, 0.0)]  # node 3 where node 2 is
    path = _dat(tmp_path / "net.dat", CHAIN_SEGMENTS, nodes, CHAIN_BOUNDARY)
    _raises(["segment 2", "segment_length_m = 0", "zero-length"], read_network, path)


def test_part_without_pressure_condition_is_named(tmp_path):
    segments = CHAIN_SEGMENTS + [(3, 4, 5, 8.0), (4, 5, 6, 8.0)]
    nodes = CHAIN_NODES + [(4, 0.0, 200.0, 0.0), (5, 100.0, 200.0, 0.0), (6, 200.0, 200.0, 0.0)]
    boundary = CHAIN_BOUNDARY + [(4, 2, 2.0, 0.45), (6, 2, -2.0, 0.45)]
    path = _dat(tmp_path / "net.dat", segments, nodes, boundary)
    _raises(["part containing node 4", "(3 nodes)", "no pressure boundary condition"],
            read_network, path)


def test_unknown_secomb_boundary_type(tmp_path):
    path = _dat(tmp_path / "net.dat", CHAIN_SEGMENTS, CHAIN_NODES,
                [(1, 0, 13.8, 0.45), (3, 7, 10.0, 0.45)])
    _raises(["boundary node 3", "type 7"], read_network, path)


def test_segment_with_unknown_node(tmp_path):
    path = _dat(tmp_path / "net.dat", [(1, 1, 2, 10.0), (2, 2, 99, 8.0)], CHAIN_NODES,
                CHAIN_BOUNDARY)
    _raises(["segment 2", "node 99", "not in the node list"], read_network, path)


def test_unknown_suffix_and_missing_file(tmp_path):
    path = tmp_path / "net.xyz"
    path.write_text("1 2 3\n")
    _raises(["net.xyz", "suffix '.xyz'", ".dat", ".vtp", ".h5"], read_network, path)
    _raises(["missing.dat", "does not exist"], read_network, tmp_path / "missing.dat")


# ------------------------------------------------------------------ HDF5
def test_hdf5_round_trip_is_exact(mesentery, tmp_path):
    path = tmp_path / "mesentery.h5"
    assert write_hdf5(mesentery, path) == path
    write_hdf5(mesentery, path)  # over an existing file
    assert [p.name for p in tmp_path.iterdir()] == ["mesentery.h5"]  # no temporary left
    back = read_network(path)
    for field in ARRAY_FIELDS:
        a, b = getattr(mesentery, field), getattr(back, field)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), field
    assert back.node_names == mesentery.node_names
    assert back.segment_names == mesentery.segment_names
    with h5py.File(path) as f:
        assert f.attrs["format"] == "nanotransport-network" and f.attrs["format_version"] == 1


def _h5_layout() -> dict:
    """A valid three-node chain: pressure at node 10, an outflow at node 12."""
    return {"nodes/position_m": np.array([[0.0, 0, 0], [1e-4, 0, 0], [1e-4, 1e-4, 0]]),
            "nodes/name": np.array([10, 11, 12]),
            "segments/nodes": np.array([[0, 1], [1, 2]]),
            "segments/radius_m": np.array([5e-6, 4e-6]),
            "boundary/node": np.array([0, 2]),
            "boundary/kind": np.array([PRESSURE, INFLOW]),
            "boundary/value": np.array([1500.0, -1e-12]),
            "boundary/hematocrit": np.array([np.nan, np.nan])}


def _h5(path: Path, layout: dict) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "nanotransport-network"
        f.attrs["format_version"] = 1
        for key, value in layout.items():
            f[key] = value
    return path


def test_hdf5_by_hand_lengths_and_names(tmp_path):
    net = read_hdf5(_h5(tmp_path / "net.h5", _h5_layout()))
    assert np.array_equal(net.segment_length_m, [1e-4, 1e-4])  # Euclidean: no length_m
    assert net.node_names == (10, 11, 12) and net.segment_names == (0, 1)
    layout = _h5_layout()
    layout["nodes/name"] = np.array(["in", "mid", "out"], dtype=h5py.string_dtype())
    layout["segments/length_m"] = np.array([2e-4, 3e-4])
    net = read_network(_h5(tmp_path / "named.hdf5", layout))
    assert net.node_names == ("in", "mid", "out")
    assert np.array_equal(net.segment_length_m, [2e-4, 3e-4])
    back = read_hdf5(write_hdf5(net, tmp_path / "again.h5"))
    assert back.node_names == ("in", "mid", "out")


def test_hdf5_inflow_without_hematocrit(tmp_path):
    layout = _h5_layout()
    layout["boundary/value"] = np.array([1500.0, 1e-12])  # node 12 now brings blood in
    path = _h5(tmp_path / "net.h5", layout)
    _raises(["node 12", "brings blood in", "1e-12", "no inflow haematocrit"], read_hdf5, path)


def test_hdf5_segment_with_unknown_node(tmp_path):
    layout = _h5_layout()
    layout["segments/nodes"] = np.array([[0, 1], [1, 99]])
    _raises(["segment 1", "99", "outside 0..2"], read_hdf5, _h5(tmp_path / "net.h5", layout))


def test_hdf5_missing_dataset_and_group(tmp_path):
    layout = _h5_layout()
    del layout["segments/radius_m"]
    path = _h5(tmp_path / "net.h5", layout)
    _raises([str(path), "dataset 'segments/radius_m' is missing", "segments/nodes (2, 2)",
             "nodes/position_m (3, 3)"], read_network, path)
    layout = {k: v for k, v in _h5_layout().items() if not k.startswith("boundary/")}
    _raises(["group 'boundary' is missing", "boundary/node"], read_hdf5,
            _h5(tmp_path / "nobc.h5", layout))


def test_hdf5_wrong_shape_and_type(tmp_path):
    layout = _h5_layout()
    layout["nodes/position_m"] = layout["nodes/position_m"][:, :2]
    _raises(["'nodes/position_m'", "shape (3, 2)", "expected shape (n=3, 3)"], read_hdf5,
            _h5(tmp_path / "a.h5", layout))
    layout = _h5_layout()
    layout["segments/nodes"] = layout["segments/nodes"].astype(float)
    _raises(["'segments/nodes'", "type float64", "type int64"], read_hdf5,
            _h5(tmp_path / "b.h5", layout))
    layout = _h5_layout()
    layout["boundary/value"] = np.array([1500.0])
    _raises(["'boundary/value'", "shape (1,)", "(b=2,)"], read_hdf5,
            _h5(tmp_path / "c.h5", layout))


def test_hdf5_not_ours(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1.0]
    _raises(["format = None", "nanotransport-network", "x (1,)"], read_hdf5, path)
    path = tmp_path / "text.h5"
    path.write_text("not hdf5")
    _raises(["text.h5", "cannot be read as HDF5"], read_network, path)


# ------------------------------------------------------------------ VTK PolyData
def test_vtp_round_trip(mesentery, tmp_path):
    path = tmp_path / "mesentery.vtp"
    assert write_vtp(mesentery, path) == path
    assert [p.name for p in tmp_path.iterdir()] == ["mesentery.vtp"]  # no temporary left
    back = read_network(path)
    assert np.array_equal(back.segment_nodes, mesentery.segment_nodes)
    assert np.array_equal(back.boundary_node, mesentery.boundary_node)
    assert np.array_equal(back.boundary_kind, mesentery.boundary_kind)
    for field in ("node_position_m", "segment_radius_m", "segment_length_m", "boundary_value",
                  "boundary_hematocrit"):
        assert np.allclose(getattr(back, field), getattr(mesentery, field), rtol=1e-12,
                           atol=0, equal_nan=True), field
    assert 'Name="connectivity" NumberOfComponents="1"' in path.read_text()
    metres = read_vtp(write_vtp(mesentery, tmp_path / "m.vtp", length_unit_m=1.0),
                      length_unit_m=1.0)
    assert np.allclose(metres.node_position_m, mesentery.node_position_m, rtol=1e-12, atol=0)


# The small network of the encodings: points in µm, a polyline 0-1-2 and a line 2-3, an
# inflow at point 0 and a pressure at point 3.
POINTS_UM = [[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [200.0, 50.0, 0.0], [300.0, 50.0, 20.0]]
SMALL_ARRAYS = [  # section, name, VTK type, components, values
    ("PointData", "boundary_kind", "Int32", 1, [1, -1, -1, 0]),
    ("PointData", "boundary_value", "Float64", 1, [2e-12, 0.0, 0.0, 1500.0]),
    ("PointData", "boundary_hematocrit", "Float64", 1, [0.45, np.nan, np.nan, np.nan]),
    ("CellData", "radius", "Float32", 1, [5.0, 3.5]),
    ("Points", "points", "Float32", 3, POINTS_UM),
    ("Lines", "connectivity", "Int64", 1, [0, 1, 2, 2, 3]),
    ("Lines", "offsets", "Int32", 1, [3, 5]),
]
_NUMPY = {"Int32": "i4", "Int64": "i8", "Float32": "f4", "Float64": "f8"}


def _block(data: bytes, header: np.dtype, compressed: bool) -> tuple[bytes, bytes]:
    """VTK's block header and body: (size) + data, or zlib blocks of 16 bytes with (count,
    block size, last block size (0 if full), compressed sizes)."""
    if not compressed:
        return np.array([len(data)], header).tobytes(), data
    packed = [zlib.compress(data[i:i + 16]) for i in range(0, len(data), 16)]
    sizes = [len(packed), 16, len(data) % 16, *map(len, packed)]
    return np.array(sizes, header).tobytes(), b"".join(packed)


def _vtp(arrays=SMALL_ARRAYS, fmt="ascii", header="UInt32", compressed=False, order="<",
         encoding="base64", together=False) -> bytes:
    """A ``.vtp`` file of ``arrays`` in one encoding (VTK's own: base64 header on its own)."""
    hdr = np.dtype(order + ("u4" if header == "UInt32" else "u8"))
    appended, sections = b"", {}
    for section, name, type_, components, values in arrays:
        values = np.asarray(values, order + _NUMPY[type_])
        head, body = _block(values.tobytes(), hdr, compressed)
        encoded = base64.b64encode(head + body) if together \
            else base64.b64encode(head) + base64.b64encode(body)
        attributes = f'type="{type_}" Name="{name}" NumberOfComponents="{components}"'
        if fmt == "ascii":
            text = " ".join(map(str, values.ravel().tolist()))
        elif fmt == "binary":
            text = encoded.decode()
        else:
            attributes += f' offset="{len(appended)}"'
            appended += head + body if encoding == "raw" else encoded
            text = ""
        sections.setdefault(section, []).append(
            f'<DataArray {attributes} format="{fmt}">{text}</DataArray>')
    n_points = len(next(a[4] for a in arrays if a[0] == "Points"))
    n_lines = len(next(a[4] for a in arrays if a[1] == "offsets"))
    endian = "LittleEndian" if order == "<" else "BigEndian"
    compressor = ' compressor="vtkZLibDataCompressor"' if compressed else ""
    xml = (f'<?xml version="1.0"?>\n<VTKFile type="PolyData" version="1.0" '
           f'byte_order="{endian}" header_type="{header}"{compressor}>\n<PolyData>\n'
           f'<Piece NumberOfPoints="{n_points}" NumberOfVerts="0" NumberOfLines="{n_lines}" '
           'NumberOfStrips="0" NumberOfPolys="0">\n')
    for section, elements in sections.items():
        xml += f"<{section}>\n" + "\n".join(elements) + f"\n</{section}>\n"
    xml += "</Piece>\n</PolyData>\n"
    if fmt != "appended":
        return (xml + "</VTKFile>\n").encode()
    return (xml + f'<AppendedData encoding="{encoding}">\n   _').encode() + appended \
        + b"\n</AppendedData>\n</VTKFile>\n"


VARIANTS = {
    "ascii": {},
    "binary-uint32": dict(fmt="binary"),
    "binary-uint64": dict(fmt="binary", header="UInt64"),
    "binary-uint64-header-with-data": dict(fmt="binary", header="UInt64", together=True),
    "binary-zlib-uint32": dict(fmt="binary", compressed=True),
    "binary-zlib-uint64-bigendian": dict(fmt="binary", header="UInt64", compressed=True,
                                         order=">"),
    "appended-base64": dict(fmt="appended"),
    "appended-base64-zlib-uint64": dict(fmt="appended", header="UInt64", compressed=True),
    "appended-raw": dict(fmt="appended", encoding="raw"),
    "appended-raw-zlib-uint64-bigendian": dict(fmt="appended", encoding="raw", header="UInt64",
                                               compressed=True, order=">"),
}


def _check_small(net, radius_um=(5.0, 5.0, 3.5)) -> None:
    assert np.array_equal(net.node_position_m, np.array(POINTS_UM) * 1e-6)
    assert np.array_equal(net.segment_nodes, [[0, 1], [1, 2], [2, 3]])
    assert np.allclose(net.segment_radius_m, np.array(radius_um) * 1e-6, rtol=1e-15, atol=0)
    assert np.array_equal(net.boundary_node, [0, 3])
    assert np.array_equal(net.boundary_kind, [INFLOW, PRESSURE])
    assert np.array_equal(net.boundary_value, [2e-12, 1500.0])
    assert np.array_equal(net.boundary_hematocrit, [0.45, np.nan], equal_nan=True)
    assert net.segment_length_m == pytest.approx(net.euclidean_length_m(), rel=1e-15)


@pytest.mark.parametrize("variant", VARIANTS)
def test_vtp_encodings(tmp_path, variant):
    path = tmp_path / "small.vtp"
    path.write_bytes(_vtp(**VARIANTS[variant]))
    _check_small(read_network(path))


def test_vtp_raw_block_ending_in_a_newline_byte(tmp_path):
    """Raw appended data is bytes: its last byte here is b"\\n", which stripping would lose."""
    pressure = np.frombuffer(bytes.fromhex("409770000000000a"), ">f8")[0]  # 1500 + 10 ulp
    arrays = [a for a in SMALL_ARRAYS if a[1] != "boundary_value"]
    arrays.append(("PointData", "boundary_value", "Float64", 1, [2e-12, 0.0, 0.0, pressure]))
    content = _vtp(arrays, fmt="appended", encoding="raw", order=">")
    assert content.endswith(b"\x0a\n</AppendedData>\n</VTKFile>\n")
    path = tmp_path / "small.vtp"
    path.write_bytes(content)
    assert read_vtp(path).boundary_value[1] == pressure


def test_vtp_point_diameter_in_um_and_length_unit(tmp_path):
    """Points in mm (``length_unit_m=1e-3``); a per-point ``diameter_um`` stays in µm."""
    arrays = [a for a in SMALL_ARRAYS if a[1] not in ("radius", "points")]
    arrays += [("Points", "points", "Float64", 3, np.array(POINTS_UM) / 1000),
               ("PointData", "diameter_um", "Float64", 1, [10.0, 10.0, 8.0, 6.0])]
    path = tmp_path / "mm.vtp"
    path.write_bytes(_vtp(arrays, fmt="binary"))
    net = read_vtp(path, length_unit_m=1e-3)
    assert np.allclose(net.node_position_m, np.array(POINTS_UM) * 1e-6, rtol=1e-15, atol=0)
    assert np.allclose(net.segment_radius_m, [5e-6, 4.5e-6, 3.5e-6], rtol=1e-15, atol=0)
    _raises(["length_unit_m = 0", "positive"], read_vtp, path, length_unit_m=0)
    _raises(["length_unit_m = -1.0"], write_vtp, net, tmp_path / "x.vtp", length_unit_m=-1.0)


def test_vtp_without_radius(tmp_path):
    path = tmp_path / "small.vtp"
    path.write_bytes(_vtp([a for a in SMALL_ARRAYS if a[1] != "radius"]))
    _raises(["no radius array", "radius, Radius, radius_um, diameter", "CellData []",
             "'boundary_kind'"], read_network, path)


def test_vtp_without_boundary_conditions(tmp_path):
    """No boundary arrays: a tree fails at a dead end, a ring for want of a pressure."""
    path = tmp_path / "small.vtp"
    path.write_bytes(_vtp([a for a in SMALL_ARRAYS if a[0] != "PointData"]))
    _raises(["small.vtp", "segment 0", "dangling", "node 0"], read_network, path)
    ring = [("CellData", "radius", "Float32", 1, [5.0]),
            ("Points", "points", "Float32", 3, POINTS_UM),
            ("Lines", "connectivity", "Int64", 1, [0, 1, 2, 3, 0]),
            ("Lines", "offsets", "Int32", 1, [5])]
    path.write_bytes(_vtp(ring))
    _raises(["small.vtp", "node 0", "(4 nodes)", "no pressure boundary condition"],
            read_network, path)


def test_vtp_bad_files(tmp_path):
    path = tmp_path / "bad.vtp"
    path.write_bytes(_vtp().replace(b"0 1 2 2 3", b"0 1 2 2 9"))
    _raises(["line 1", "point 9", "points 0..3"], read_network, path)
    path.write_bytes(_vtp(fmt="binary", compressed=True).replace(
        b'compressor="vtkZLibDataCompressor"', b'compressor="vtkLZ4DataCompressor"'))
    _raises(["compressor 'vtkLZ4DataCompressor'"], read_network, path)
    path.write_bytes(b"<VTKFile type='UnstructuredGrid'/>")
    _raises(["'UnstructuredGrid'", "PolyData"], read_network, path)
