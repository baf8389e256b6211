"""Vessel networks in HDF5: ``read_hdf5`` and ``write_hdf5``, SI units, exact round trip.

Layout (every quantity in SI; each dataset's name carries its unit)::

    /                      attributes  format = "nanotransport-network"
                                       format_version = 1
    /nodes/position_m      (n, 3) float64   node positions x, y, z, m
    /nodes/name            (n,)   int64 or UTF-8 strings   the nodes' labels (optional:
                                                           0..n-1 when absent)
    /segments/nodes        (m, 2) int64     indices into /nodes (0..n-1): from, to; a
                                            positive flow runs from -> to
    /segments/radius_m     (m,)   float64   radius, m
    /segments/length_m     (m,)   float64   length, m (optional: the straight-line distance
                                            between the end nodes when absent)
    /segments/name         (m,)   int64 or UTF-8 strings   labels (optional: 0..m-1)
    /boundary/node         (b,)   int64     index into /nodes of each boundary node
    /boundary/kind         (b,)   int64     0 pressure, 1 inflow (``vessel_network.PRESSURE``,
                                            ``INFLOW``)
    /boundary/value        (b,)   float64   pressure, Pa (kind 0); volume flow into the
                                            network, m³/s (kind 1; negative: an outflow)
    /boundary/hematocrit   (b,)   float64   discharge haematocrit of blood entering there;
                                            NaN where none (outlets)

Integer datasets may be of any integer type and float datasets of any float type (they are
read as int64 and float64).  A missing group or dataset is a ``NetworkError`` naming the file,
the missing path and what the file holds; a dataset of the wrong shape or type is one naming
the dataset, the shape and type found and those expected.  The network read is checked by
``VesselNetwork`` (vessel_network.py).

``write_hdf5`` writes this layout (names as int64 when all are integers, otherwise as UTF-8
strings) to a temporary file in the target's folder and renames it over the target
(``os.replace``): a reader never sees a partial file.  ``read_hdf5(write_hdf5(net, p))``
reproduces every array and name of ``net`` exactly.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .network_files import atomic_path
from .vessel_network import NetworkError, VesselNetwork

FORMAT = "nanotransport-network"
FORMAT_VERSION = 1
#: dataset -> (kind: "float", "int" or "name"; shape with "n", "m", "b" for the counts;
#: required)
LAYOUT = {
    "nodes/position_m": ("float", ("n", 3), True),
    "nodes/name": ("name", ("n",), False),
    "segments/nodes": ("int", ("m", 2), True),
    "segments/radius_m": ("float", ("m",), True),
    "segments/length_m": ("float", ("m",), False),
    "segments/name": ("name", ("m",), False),
    "boundary/node": ("int", ("b",), True),
    "boundary/kind": ("int", ("b",), True),
    "boundary/value": ("float", ("b",), True),
    "boundary/hematocrit": ("float", ("b",), True),
}
_COUNTS = {"n": "nodes/position_m", "m": "segments/nodes", "b": "boundary/node"}


def read_hdf5(path) -> VesselNetwork:
    """The network in the HDF5 file ``path`` (layout in the module docstring), checked."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise NetworkError(f"{path}: cannot be read as HDF5 ({e})") from None
    with f:
        _check_format(f, path)
        data = _read_datasets(f, path)
    position = data["nodes/position_m"]
    ends = data["segments/nodes"]
    length = data.get("segments/length_m")
    if length is None:  # clipped: an unknown node is named by VesselNetwork's check
        a, b = (np.take(position, ends[:, k], axis=0, mode="clip") for k in (0, 1))
        length = np.linalg.norm(b - a, axis=1)
    return VesselNetwork(
        node_position_m=position,
        segment_nodes=ends,
        segment_radius_m=data["segments/radius_m"],
        segment_length_m=length,
        boundary_node=data["boundary/node"],
        boundary_kind=data["boundary/kind"],
        boundary_value=data["boundary/value"],
        boundary_hematocrit=data["boundary/hematocrit"],
        node_names=tuple(data.get("nodes/name", ())),
        segment_names=tuple(data.get("segments/name", ())),
        source=str(path))


def write_hdf5(net: VesselNetwork, path) -> Path:
    """Write ``net`` to ``path`` in the layout of the module docstring, atomically; returns
    ``path``."""
    path = Path(path)
    arrays = {
        "nodes/position_m": net.node_position_m,
        "nodes/name": _names_array(net.node_names),
        "segments/nodes": net.segment_nodes,
        "segments/radius_m": net.segment_radius_m,
        "segments/length_m": net.segment_length_m,
        "segments/name": _names_array(net.segment_names),
        "boundary/node": net.boundary_node,
        "boundary/kind": net.boundary_kind,
        "boundary/value": net.boundary_value,
        "boundary/hematocrit": net.boundary_hematocrit,
    }
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            for key, value in arrays.items():
                f.create_dataset(key, data=value)
    return path


def _names_array(names: tuple) -> np.ndarray:
    """Labels as int64 when all are integers, otherwise as UTF-8 strings."""
    if all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in names):
        return np.asarray(names, np.int64).reshape(-1)
    return np.array([str(n) for n in names], dtype=h5py.string_dtype("utf-8"))




def _contents(f: h5py.File) -> str:
    """Every group and dataset in the file, with shapes and types, for messages."""
    found = []
    f.visititems(lambda name, obj: found.append(
        f"{name} {obj.shape} {obj.dtype}" if isinstance(obj, h5py.Dataset) else f"{name}/"))
    return ", ".join(found) or "nothing"


def _check_format(f: h5py.File, path: Path) -> None:
    fmt, version = f.attrs.get("format"), f.attrs.get("format_version")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT:
        raise NetworkError(f"{path}: root attribute format = {fmt!r}; expected {FORMAT!r} "
                           f"(the file holds: {_contents(f)})")
    if version is None or int(version) != FORMAT_VERSION:
        raise NetworkError(f"{path}: root attribute format_version = {version!r}; this "
                           f"reader knows version {FORMAT_VERSION}")


def _read_datasets(f: h5py.File, path: Path) -> dict:
    """The datasets of ``LAYOUT`` present in ``f``, shapes and types checked."""
    counts, data = {}, {}
    for key, (kind, shape, required) in LAYOUT.items():
        obj = f.get(key)
        if obj is None:
            if required:
                group = key.split("/")[0]
                missing = f"group {group!r}" if group not in f else f"dataset {key!r}"
                raise NetworkError(f"{path}: {missing} is missing (needed: {key}); the file "
                                   f"holds: {_contents(f)}")
            continue
        if not isinstance(obj, h5py.Dataset):
            raise NetworkError(f"{path}: {key!r} is a group; expected a dataset")
        if _COUNTS.get(shape[0]) == key and obj.ndim:
            counts[shape[0]] = obj.shape[0]  # this dataset defines the count
        expected = tuple(counts.get(s, s) for s in shape)
        if obj.shape != expected or not _kind_ok(obj, kind):
            raise NetworkError(f"{path}: dataset {key!r} has shape {obj.shape} and type "
                               f"{obj.dtype}; expected shape "
                               f"{_shape_text(shape, expected)} and type {_TYPE_TEXT[kind]}")
        data[key] = _value(obj, kind)
    return data


_TYPE_TEXT = {"float": "float64", "int": "int64", "name": "int64 or UTF-8 strings"}


def _kind_ok(obj: h5py.Dataset, kind: str) -> bool:
    if kind == "float":
        return obj.dtype.kind == "f"
    if kind == "int":
        return obj.dtype.kind in "iu"
    return obj.dtype.kind in "iu" or h5py.check_string_dtype(obj.dtype) is not None


def _shape_text(shape: tuple, expected: tuple) -> str:
    """``(n=972, 3)``: the expected shape with the count names spelled out."""
    parts = [f"{s}={e}" if isinstance(s, str) and s != e else str(e)
             for s, e in zip(shape, expected)]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def _value(obj: h5py.Dataset, kind: str):
    if kind == "float":
        return np.asarray(obj[()], np.float64)
    if kind == "int":
        return np.asarray(obj[()], np.int64)
    if obj.dtype.kind in "iu":
        return np.asarray(obj[()], np.int64).tolist()
    return obj.asstr()[()].tolist()
