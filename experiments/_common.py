"""Shared helpers of the research experiments (not part of the package).

* ``parse_args``: the common command line (``--quick``, ``--out``).
* ``load``: a built-in scenario with overrides, plus the coarse numerics of ``--quick``.
* ``run_batch``: many simulations of one structure in one compiled ``jit(vmap(...))`` call,
  returning every summary metric plus radial profiles (extravascular carriers, tissue drug,
  intracellular drug), the systemic carrier sinks and the fluid solution, as numpy arrays with
  a leading batch axis.  ``nanotransport.scan.batched_metrics`` returns summary metrics only;
  the experiments need the profiles (penetration depth) and the sinks (renal/MPS loss), so the
  batched function is built here from the same public pieces (the study adapter
  ``study.evaluate`` with a readout of ``summary.metrics`` and the profiles, and
  ``simulate.structure``).
* ``penetration_depth``: distance from the tumor rim at which a radial profile falls to a
  fraction of its peak.
* ``write_csv`` (atomic), ``write_json`` (``nanotransport.io.write_json``), ``save_figure``,
  ``print_table`` and ``compare`` (a simulation-vs-literature row with its deviation).
"""
from __future__ import annotations

import argparse
import csv
import io as _io
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nanotransport import io, pk, simulate, study, summary, tissue, units  # noqa: E402
from nanotransport import scenario as sc  # noqa: E402
from nanotransport.model.transport import (carriers_per_tissue_volume,  # noqa: E402
                                     drug_per_tissue_volume, encapsulated_per_tissue_volume,
                                     intracellular_per_tissue_volume)

MW = units.DOXORUBICIN_MOLAR_MASS
#: coarse numerics of ``--quick`` (compile time dominates; 30 radial cells, 24 h, 30-min steps)
QUICK = ("numerics.cells=30", "numerics.t_end_h=24", "numerics.max_dt_min=30")
DEFAULT_OUT = "experiments/results"


# ------------------------------------------------------------------ command line, scenarios
def parse_args(doc: str, argv=None, extra: Callable | None = None) -> argparse.Namespace:
    """``--quick`` and ``--out`` (plus whatever ``extra(parser)`` adds)."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="coarse grid (30 cells), 24 h, fewer points: a smoke test in < 2 min")
    p.add_argument("--out", help=f"output folder (default {DEFAULT_OUT}, or {DEFAULT_OUT}/quick "
                                 "with --quick, so smoke tests never overwrite the full results)")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    if args.out is None:
        args.out = f"{DEFAULT_OUT}/quick" if args.quick else DEFAULT_OUT
    return args


def load(name: str, overrides: Sequence[str] = (), quick: bool = False,
         quick_overrides: Sequence[str] = QUICK) -> sc.Scenario:
    """Built-in scenario ``name`` with ``overrides``; ``quick`` adds the coarse numerics."""
    return sc.load(name, list(quick_overrides if quick else ()) + list(overrides))


# ------------------------------------------------------------------ batched simulations
def _extras(result) -> dict:
    """Per-simulation arrays beyond the summary metrics (1D radial grids)."""
    maps = result.inputs.kinetics.maps
    names = result.species
    fields = result.fields
    per_time = lambda fn: jax.vmap(lambda x: fn(maps, x, names))(fields)  # noqa: E731
    carriers = per_time(carriers_per_tissue_volume)  # all phases, per tissue volume
    vessel = maps.phi_v * fields[:, names.index("carrier_vessel")]
    dose = result.inputs.dose_mol
    fluid = result.inputs.fluid
    return {
        # extravascular carriers (interstitial + bound + internalized), µg/mL of tissue
        "carrier_ev_profile": (carriers - vessel) * MW,
        "drug_profile": per_time(drug_per_tissue_volume) * MW,
        "encapsulated_profile": per_time(encapsulated_per_tissue_volume) * MW,
        "intracellular_profile": per_time(intracellular_per_tissue_volume) * MW,
        # cumulative carrier particles cleared (renal, MPS, other), share of the dose
        "carrier_sinks_fraction": jnp.stack(result.inputs.pk_payload.carrier_fates(
            result.systemic_carrier), axis=-1) / dose,
        # encapsulated and free drug in plasma (µg/mL) at the saved times
        "plasma_encapsulated_ug_per_ml":
            result.systemic[:, pk.I_ENC_CENTRAL] / result.inputs.pk_payload.plasma_volume * MW,
        "plasma_free_ug_per_ml":
            result.systemic[:, pk.I_FREE_CENTRAL] / result.inputs.pk_payload.v1 * MW,
        "pressure_mmhg": fluid.pressure / units.MMHG_PA,
        "velocity_um_per_s": fluid.velocity[0] / units.UM,
    }


def _metrics_and_extras(result) -> dict:
    """Summary metrics and the per-simulation arrays of ``_extras``."""
    return {**summary.metrics(result), **_extras(result)}


_BATCHED: dict = {}


def run_batch(scenarios: Sequence[sc.Scenario], static: tuple | None = None,
              chunk: int = 32, label: str = "") -> dict:
    """Simulate ``scenarios`` (all of one structure) in batches of at most ``chunk`` under one
    compiled ``jit(vmap)``; returns {metric: array (n, ...)}.

    ``static`` overrides the structure (e.g. a wider refined-step window around heating so
    that several heating schedules share one compilation); by default the common
    ``simulate.structure`` of the scenarios, which must all agree.
    """
    scenarios = list(scenarios)
    for s in scenarios:
        simulate._dtype(s)
    if static is None:
        structs = {simulate.structure(s) for s in scenarios}
        if len(structs) != 1:
            raise ValueError(f"{label}: the scenarios have {len(structs)} different structures; "
                             "split them into one batch per structure")
        static = structs.pop()
    n = len(scenarios)
    size = min(n, chunk)
    fn = _BATCHED.get(static)
    if fn is None:
        fn = jax.jit(jax.vmap(lambda p: study.evaluate(p, static, _metrics_and_extras)))
        _BATCHED[static] = fn
    keys = list(scenarios[0].params)
    stacked = {k: np.asarray([float(s.params[k]) for s in scenarios]) for k in keys}
    t0 = time.perf_counter()
    parts = []
    for start in range(0, n, size):
        idx = np.minimum(np.arange(start, start + size), n - 1)  # pad with the last point
        batch = {k: jnp.asarray(v[idx]) for k, v in stacked.items()}
        out = jax.tree_util.tree_map(np.asarray, fn(batch))
        m = min(size, n - start)
        parts.append({k: v[:m] for k, v in out.items()})
    result = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    print(f"  [{label or 'batch'}] {n} simulations in {time.perf_counter() - t0:.1f} s "
          f"(compile included)", flush=True)
    return result


def run_grouped(scenarios: Sequence[sc.Scenario], label: str = "") -> dict:
    """``run_batch`` for scenarios of several structures (e.g. free drug, whose carrier type is
    structure, beside liposomes): one compiled batch per structure, results in input order."""
    scenarios = list(scenarios)
    groups: dict = {}
    for i, s in enumerate(scenarios):
        groups.setdefault(simulate.structure(s), []).append(i)
    out: dict = {}
    for k, (static, idx) in enumerate(groups.items()):
        part = run_batch([scenarios[i] for i in idx], static=static,
                         label=f"{label} ({k + 1}/{len(groups)})")
        for name, v in part.items():
            if name not in out:
                out[name] = np.empty((len(scenarios),) + v.shape[1:], v.dtype)
            out[name][idx] = v
    return out


def radial_grid(scenario: sc.Scenario):
    """(cell centres mm, faces mm, tumor mask, tumor radius mm) of a 1D sphere scenario."""
    lay = tissue.layout(scenario)
    g = lay.grid
    if g.ndim != 1:
        raise ValueError("the experiments use the 1D sphere geometry")
    return (np.asarray(g.centers[0]) / units.MM, np.asarray(g.faces[0]) / units.MM,
            np.asarray(lay.tumor) > 0, float(scenario["tumor.radius_mm"]))


def with_window(scenario: sc.Scenario, start_s: float, end_s: float) -> tuple:
    """The structure of a heated scenario with the refined-step window set to [start, end] s
    (it must cover every heating schedule of the batch: heating start − 5 min to end + 30 min)."""
    return tuple((k, (start_s, end_s) if k == "_heating_window_s" else v)
                 for k, v in simulate.structure(scenario))


# ------------------------------------------------------------------ analysis helpers
def penetration_depth(r_mm: np.ndarray, profile: np.ndarray, tumor: np.ndarray,
                      radius_mm: float, fraction: float) -> float:
    """Distance (mm) from the tumor rim inward at which ``profile`` first falls below
    ``fraction`` × its peak in the tumor, searching inward from the peak (linear interpolation);
    the tumor radius if it never does (uniform penetration), NaN for an empty profile."""
    r, c = r_mm[tumor], np.asarray(profile)[tumor]
    peak = float(np.max(c))
    if not np.isfinite(peak) or peak <= 0:
        return float("nan")
    i_peak = int(np.argmax(c))
    level = fraction * peak
    for i in range(i_peak, 0, -1):  # inward from the peak
        if c[i - 1] < level <= c[i]:
            x = r[i - 1] + (level - c[i - 1]) / (c[i] - c[i - 1]) * (r[i] - r[i - 1])
            return float(radius_mm - x)
    return float(radius_mm)


def tumor_mean(r_mm_faces: np.ndarray, profile: np.ndarray, tumor: np.ndarray) -> float:
    """Volume-weighted tumor mean of a radial profile (sphere)."""
    f = np.asarray(r_mm_faces)
    vol = f[1:] ** 3 - f[:-1] ** 3
    return float(np.sum(vol[tumor] * np.asarray(profile)[tumor]) / np.sum(vol[tumor]))


def time_index(times_h: np.ndarray, t_h: float) -> int:
    """Index of the saved time ``t_h`` (must be saved)."""
    i = int(np.argmin(np.abs(np.asarray(times_h) - t_h)))
    if abs(times_h[i] - t_h) > 1e-9:
        raise ValueError(f"time {t_h} h is not a saved time ({list(times_h)})")
    return i


def compare(quantity: str, model: float, lit: float | tuple, unit: str, source: str,
            note: str = "") -> dict:
    """A simulation-vs-literature row.  ``lit`` is a value or a (lo, hi) range; the deviation
    is (model − lit)/lit for a value, and 0 inside a range / distance to the nearer end
    relative to it outside."""
    if isinstance(lit, tuple):
        lo, hi = lit
        lit_text = f"{lo:g}-{hi:g}"
        dev = 0.0 if lo <= model <= hi else ((model - hi) / hi if model > hi else (model - lo) / lo)
    else:
        lit_text = f"{lit:g}"
        dev = (model - lit) / lit if lit else float("nan")
    return {"quantity": quantity, "model": float(model), "literature": lit_text, "unit": unit,
            "deviation_pct": 100.0 * dev, "source": source, "note": note}


def fmt(x, digits: int = 4) -> str:
    if isinstance(x, str):
        return x
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{x:.{digits}g}"


def print_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None,
                title: str = "") -> str:
    """Print rows as an aligned text table; returns the text."""
    rows = list(rows)
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ([title] if title else []) + [
        "  ".join(c.ljust(w) for c, w in zip(columns, widths)),
        "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_csv(path, rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> Path:
    """Write rows as CSV atomically (temporary file in the folder + rename)."""
    path = Path(path)
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else []))
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, (float, np.floating)) else v)
                    for k, v in r.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, obj) -> Path:
    """Atomic JSON (``nanotransport.io.write_json``); numpy values converted."""
    io.write_json(Path(path), _plain(obj))
    os.chmod(path, 0o644)  # the package's atomic write leaves mkstemp's 0600
    return Path(path)


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically as a small PNG (dpi 100) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    io.atomic_write_bytes(path, buf.getvalue())
    os.chmod(path, 0o644)  # the package's atomic write leaves mkstemp's 0600
    return path


def pyplot():
    """matplotlib.pyplot with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
