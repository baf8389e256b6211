"""The scan's result as an xarray Dataset (studies layer, no files): the table of one chunk
of simulations (``index``), and the assembly of all chunks onto the scan dims with
coordinates in the fields' user units, units of every variable (from the name suffix:
``ug/g``, ``%ID``, ``min``, ``degC``, ``1`` ...), the scan's metadata (spec, resolved scenario
TOML and SHA-256: the manifest dict, ``FORMAT``) and the efficacy-toxicity Pareto front
(``pareto_front``: 1 where no other point has both higher efficacy and lower toxicity).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from typing import Any

import numpy as np
import xarray as xr

from ..model import summary
from .scan_spec import ScanError, ScanSpec, dim_name
from ..model.scenario import Scenario
from ..model.schema import FIELDS_BY_PATH

FORMAT = "nanotransport-scan/1"
TOXICITY_LONG_NAME = ("weighted toxicity of the design objective, efficacy - objective = "
                      "sum of objective weight x tox_* term")


def points_hash(points: dict, paths) -> str:
    """SHA-256 of the scanned values (float64, in the order of ``paths``)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode())
        h.update(np.ascontiguousarray(points[p], dtype=np.float64).tobytes())
    return h.hexdigest()


def manifest(spec: ScanSpec, scenario: Scenario, points_sha256: str, chunk: int) -> dict:
    """The scan's metadata (``scan.json`` of a folder; the attributes of its Dataset)."""
    toml = scenario.to_toml()
    total = spec.total
    return {"format": FORMAT, "spec": spec.to_json(),
            "scenario_sha256": hashlib.sha256(toml.encode()).hexdigest(),
            "points_sha256": points_sha256, "chunk": int(chunk), "total": total,
            "n_chunks": -(-total // chunk), "dims": list(spec.dims), "shape": list(spec.shape),
            "scenario_toml": toml}


def chunk_dataset(start: int, host: dict, times_h, space: dict) -> xr.Dataset:
    """One chunk's results (host arrays) as a Dataset over the flat ``index`` from ``start``."""
    n = len(next(iter(host.values())))
    data = {}
    for k, v in host.items():
        if v.ndim == 1:
            data[k] = (("index",), v)
        elif k in summary.TIME_SERIES:
            data[k] = (("index", "time"), v)
        else:
            data[k] = (("index",) + tuple(space), v)
    return xr.Dataset(data, coords={"index": np.arange(start, start + n)})


def _units(name: str) -> str:
    for suffix, unit in (("_ug_h_per_ml", "ug h/mL"), ("_ug_per_ml", "ug/mL"),
                         ("_ug_h_per_g", "ug h/g"), ("_ug_per_g", "ug/g"),
                         ("_pct_id_per_g", "%ID/g"), ("_pct_id_per_kg", "%ID/kg"),
                         ("_pct_id", "%ID"), ("_kbq_per_ml", "kBq/mL"), ("_min", "min"),
                         ("_c", "degC"), ("_fraction", "1"), ("efficacy", "1"),
                         ("_error", "1"), ("objective", "1"), ("toxicity", "1")):
        if name.startswith("tox_"):
            return "1"
        if name.endswith(suffix):
            return unit
    return ""


def pareto_mask(efficacy: np.ndarray, toxicity_: np.ndarray) -> np.ndarray:
    """True where no other point has efficacy ≥ and toxicity ≤ with one of them strict
    (maximize efficacy, minimize toxicity); NaN points are never on the front."""
    e = np.asarray(efficacy, float).reshape(-1)
    t = np.asarray(toxicity_, float).reshape(-1)
    ok = np.isfinite(e) & np.isfinite(t)
    mask = np.zeros(e.shape, bool)
    order = np.lexsort((-e, t))  # by toxicity, then efficacy descending
    best = -np.inf
    for i in order:
        if ok[i] and e[i] > best:
            mask[i] = True
            best = e[i]
    return mask.reshape(np.shape(efficacy))


def to_dataset(chunks: list, manifest: dict, spec: ScanSpec, points: dict, times_h=None,
               space: dict | None = None) -> xr.Dataset:
    """The scan Dataset from its chunk Datasets (``chunk_dataset``): every variable over the
    scan dims (grid dims..., ``sample``), coordinates with units, ``toxicity`` named and the
    ``pareto_front``; attributes from ``manifest``."""
    flat = xr.concat(chunks, dim="index", data_vars="all", coords="minimal",
                     compat="override", join="outer", combine_attrs="drop")
    idx = np.asarray(flat["index"].values)
    if not np.array_equal(idx, np.arange(spec.total)):
        raise ScanError(f"scan chunks cover indices {idx[:5]}... ({idx.size} of {spec.total}); "
                        "expected each simulation exactly once")
    shape, dims = spec.shape, spec.dims
    coords: dict[str, Any] = {}
    for a in spec.grid:
        f = FIELDS_BY_PATH[a.path]
        coords[a.dim] = (a.dim, np.asarray(a.values), {"path": a.path, "units": f.unit,
                                                       "grid": a.text or "values"})
    if spec.samples:
        coords["sample"] = ("sample", np.arange(spec.n_samples))
        sample_idx = (np.arange(spec.total) % spec.n_samples)
        for path, dist in spec.samples:
            vals = np.empty(spec.n_samples)
            vals[sample_idx] = points[path]
            coords[dim_name(path)] = ("sample", vals, {"path": path, "units":
                                                       FIELDS_BY_PATH[path].unit,
                                                       "distribution": str(dist)})
    if "time" in flat.coords or "time" in flat.dims:
        th = times_h if times_h is not None else manifest.get("times_h")
        coords["time"] = ("time", np.asarray(th), {"units": "h"})
    for name, vals in (space or {}).items():
        coords[name] = (name, np.asarray(vals), {"units": "mm"})
    data = {}
    for k, v in flat.data_vars.items():
        arr = np.asarray(v.values)
        extra_dims = tuple(d for d in v.dims if d != "index")
        data[k] = (dims + extra_dims, arr.reshape(shape + arr.shape[1:]), {"units": _units(k)})
    data["toxicity"][2]["long_name"] = TOXICITY_LONG_NAME
    data["pareto_front"] = (dims, pareto_mask(data["efficacy"][1], data["toxicity"][1])
                            .astype(np.int8),
                            {"long_name": "1 where no other point has both higher efficacy and "
                                          "lower toxicity"})
    attrs = {"title": "nanotransport scan", "format": FORMAT,
             "scan_spec": json.dumps(manifest["spec"]),
             "scenario_toml": manifest["scenario_toml"],
             "scenario_sha256": manifest["scenario_sha256"], "simulations": spec.total,
             "dims": " ".join(dims)}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def scalar_variables(ds) -> list[str]:
    """Variables with one value per scan point (what heat maps can show)."""
    dims = set(str(ds.attrs.get("dims", "")).split())
    return [k for k, v in ds.data_vars.items() if set(v.dims) == dims]


def warn_undefined(ds) -> None:
    """Warn where efficacy is undefined (no viable tumor cells): those points are NaN in the
    Dataset and never on the Pareto front."""
    eff = np.asarray(ds["efficacy"].values)
    n_bad = int(np.sum(~np.isfinite(eff)))
    if n_bad:
        warnings.warn(f"efficacy is undefined (no viable tumor cells, NaN) at {n_bad} of "
                      f"{eff.size} scan point(s); they are not on the Pareto front", stacklevel=3)

