"""Scans: design spaces and virtual cohorts as batches of simulations (``nanotransport scan``).

A scan runs ``simulate.run`` under ``jax.vmap`` over a batch of parameter sets, sharded over
every device, chunk by chunk, and writes one xarray Dataset.  Two ways to choose the points,
alone or together:

* **grids** (full factorial): ``--grid NAME=LO:HI:N`` is ``numpy.linspace(LO, HI, N)``;
  ``NAME=LO:HI:N:log`` is log-spaced (``geomspace``, LO > 0); ``NAME=V1,V2,V3`` lists values.
  Each grid is a dimension of the result, named by the field's bare name where that is unique
  (``diameter_nm``), else by its dotted path (``tissue.tumor.pore_radius_nm``).
* **samples** (random or quasi-random cohorts): ``--sample NAME=DIST(...)`` with ``--samples M``
  draws M points, by default from a scrambled Sobol sequence (``scipy.stats.qmc.Sobol``, seeded
  by ``--seed``; ``--sampler random`` for plain pseudo-random numbers), mapped through each
  distribution's inverse CDF:

  ====================  =====================================================================
  uniform(lo, hi)       lo < hi
  loguniform(lo, hi)    0 < lo < hi; uniform in ln
  lognormal(m, s)       median m > 0, s > 0 the standard deviation of ln(x)
  normal(mean, sd)      sd > 0
  ====================  =====================================================================

  The result has a ``sample`` dimension; each sampled field is a coordinate over it.  With grids
  too, the same M draws are used at every grid point (a product): dims (grid dims..., sample).

Names are those of ``--set`` (dotted paths or unique bare names, ``scenario.resolve_name``).
Only numeric *parameters* (schema kind 'param', float leaves of the scenario) can be scanned in
one compiled batch; structure (grid size, tumor radius, geometry, saved times, strings) changes
shapes and is refused with a message naming the field (use ``--set`` and separate scans).
Every value must lie in the field's allowed range (samples too: a distribution whose draws
leave the range is refused, not clipped).  Parameters that switch structure on their value
(``formulation.ligands_per_particle`` crossing 0 switches targeting on) must keep one
structure over the whole scan; heating start, duration and cool-down would move the window of
refined steps, so a scan over them widens that window to cover the scanned range
(``cover_heating_window``: one compilation for the whole scan).

Batches and devices.  The batch axis is sharded over a 1D ``Mesh`` of ``jax.devices()``
(``NamedSharding(mesh, P('batch'))``); each chunk is padded to a multiple of the device count
(with copies of its last point, dropped afterwards).  The chunk size comes from a per-simulation
memory estimate (saved and macro-step states, per-cell Newton Jacobians and temporaries, ×4 for
safety) against half the free device memory, at most 8192 per GPU; ``--chunk N`` overrides
it.  On the CPU a single simulation of the default scenario is already compute-bound and wider
batches slow down once their working set leaves the cache (``benchmarks/RESULTS.md``, "Scans"),
so CPU chunks hold what fits in about 8 MB per device (estimate without safety; 5 simulations of
the default scenario, 32 at most for small grids); the gains of batching are on GPUs.  (Large
CPU chunks once deadlocked jaxlib 0.10's thread pool in batched LAPACK solves; the model now
uses no LAPACK call in its time loop: ``linalg.local_lu`` and ``pk._expm``.)

Several hosts.  With JAX's distributed runtime the same code runs on a cluster: every process
calls ``jax.distributed.initialize()`` before the scan (``nanotransport scan --distributed``
does; on SLURM, Open MPI or Cloud TPU it finds the coordinator itself, else pass
``coordinator_address``, ``num_processes`` and ``process_id`` in Python).  ``jax.devices()``
then lists every device of every host, the mesh spans them all and each process feeds and runs
the part of every chunk that lies on its own devices (the batch is split by process index);
results are gathered to process 0, which alone reads and writes the output folder (a local
disk of host 0 is enough).  For example, on SLURM with one process per node::

    srun --nodes=4 --ntasks-per-node=1 nanotransport scan doxil --distributed \\
         --grid diameter_nm=20:200:64 --grid release_temperature_C=39:45:32 --out /scratch/s1

or in Python: ``jax.distributed.initialize(); scan.run_scan("doxil", grid=..., out=...)`` in
every process.

Output folder (resumable).  The scan owns ``DIR`` while it runs (``outdir.folder_lock``: a
second scan into it is refused, naming the holder; a lock left by a killed scan is taken
over).  ``DIR/scan.json`` (the manifest: scan spec, resolved scenario TOML and its SHA-256,
hash of the points, chunk size, totals, and the SHA-256 of every finished chunk) is written
first; every finished chunk is written atomically (temporary file + rename) as
``DIR/chunks/chunk-NNNNN.nc`` holding the flat indices it covers, its SHA-256 recorded in the
manifest just before the rename; at the end every chunk is verified against the manifest and
``DIR/scan.nc`` is assembled atomically from the chunks (and figures drawn).  Killed at any
moment (SIGKILL included), the same command resumes: finished chunks whose content matches the
manifest are skipped, so no result is lost or computed twice; a chunk that does not match
(changed, corrupted) is recomputed with a warning.  A folder that holds a different scan (other
spec, other scenario, other points) is refused and nothing in it is overwritten.

Dataset: every scalar summary metric (units in the names, as in ``summary.py``) over the scan
dims; the % ID series over (scan dims..., ``time`` h); the design objective ``objective`` (J of
``optimize``) and each of its terms (``efficacy``, ``tox_cardiac_auc``, ``tox_cardiac_peak``,
``tox_hand_foot``, ``tox_thermal``: ``objective.py``), ``toxicity`` = Σ weight·tox_* =
efficacy − objective, and ``pareto_front`` (1 where no other point has both higher efficacy
and lower toxicity); with
``--fields`` also the final tissue drug (µg/g) and surviving fraction per grid cell; attributes
``scan_spec`` (JSON), ``scenario_toml`` and ``scenario_sha256``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .scenario import BARE_NAMES, Scenario, ScenarioError, resolve_name
from .schema import FIELDS_BY_PATH

FORMAT = "nanotransport-scan/1"
MANIFEST = "scan.json"
RESULT = "scan.nc"
CHUNK_DIR = "chunks"
MAX_POINTS = 100_000_000
CPU_MAX_PER_DEVICE = 32
CPU_CACHE_BYTES = 8 << 20  # per-device working set (estimate without safety) of a CPU chunk
GPU_MAX_PER_DEVICE = 8192
SAFETY = 4.0
DISTRIBUTIONS = ("uniform", "loguniform", "lognormal", "normal")
# parameters that ``simulate.structure`` reads as concrete numbers
STRUCTURE_PARAMS = ("formulation.ligands_per_particle", "heating.heating_start_min",
                    "heating.heating_duration_min", "heating.cooldown_min")
HEATING_TIMES = STRUCTURE_PARAMS[1:]


def cover_heating_window(scenario: Scenario, points: Mapping) -> Scenario:
    """A scan over heating times (start, duration, cool-down) gets one window of refined steps
    that covers the whole scanned range (``numerics.heating_window_min``, from
    ``simulate.heating_window_s``), so the whole scan is one structure and one compilation;
    every point then runs with the refined step over that wider window (slightly more steps
    than alone, the same step size).  Unchanged when no heating time is scanned, without
    heating, or when the scenario sets the window itself."""
    from . import simulate, units

    if (scenario["heating.source"] == "none" or not any(k in points for k in HEATING_TIMES)
            or list(scenario["numerics.heating_window_min"])):
        return scenario
    val = lambda k: np.asarray(points[k], float) if k in points else float(scenario.params[k])  # noqa
    start = val(HEATING_TIMES[0]) + np.zeros(len(next(iter(points.values()))))
    end = start + val(HEATING_TIMES[1]) + val(HEATING_TIMES[2])
    a, b = simulate.heating_window_s(float(np.min(start)) * units.MIN,
                                     float(np.max(end)) * units.MIN)
    return scenario.replace(**{"numerics.heating_window_min": [a / units.MIN, b / units.MIN]})


class ScanError(ScenarioError):
    """A scan that cannot run; the message names the field, the value and what is allowed."""


# ================================================================== specification
@dataclasses.dataclass(frozen=True)
class Axis:
    """One grid dimension: a field (dotted path) and its values."""

    path: str
    values: tuple
    text: str = ""  # as given ("20:200:10:log"), for messages and the spec

    @property
    def dim(self) -> str:
        return dim_name(self.path)


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A one-dimensional distribution, sampled through its inverse CDF."""

    kind: str
    args: tuple

    def __post_init__(self):
        _check_distribution(self.kind, self.args, f"{self.kind}{self.args}")

    def ppf(self, u: np.ndarray) -> np.ndarray:
        from scipy import stats

        a, b = self.args
        if self.kind == "uniform":
            return a + (b - a) * u
        if self.kind == "loguniform":
            return np.exp(np.log(a) + (np.log(b) - np.log(a)) * u)
        if self.kind == "lognormal":
            return a * np.exp(b * stats.norm.ppf(u))
        return a + b * stats.norm.ppf(u)  # normal

    def __str__(self) -> str:
        return f"{self.kind}({self.args[0]!r}, {self.args[1]!r})"


def _check_distribution(kind, args, text, name=""):
    where = f"--sample {name}={text}: " if name else f"distribution {text}: "
    if kind not in DISTRIBUTIONS:
        raise ScanError(f"{where}unknown distribution '{kind}'; allowed: "
                        + ", ".join(f"{d}(a, b)" for d in DISTRIBUTIONS))
    if len(args) != 2 or not all(isinstance(a, (int, float)) and math.isfinite(a) for a in args):
        raise ScanError(f"{where}{kind} takes two finite numbers, got {len(args)}")
    a, b = args
    if kind == "uniform" and not a < b:
        raise ScanError(f"{where}uniform(lo, hi) needs lo < hi; got lo = {a!r}, hi = {b!r}")
    if kind == "loguniform" and not 0 < a < b:
        raise ScanError(f"{where}loguniform(lo, hi) needs 0 < lo < hi; got lo = {a!r}, "
                        f"hi = {b!r}")
    if kind == "lognormal" and not (a > 0 and b > 0):
        raise ScanError(f"{where}lognormal(median, sigma) needs median > 0 and sigma > 0 (sigma "
                        f"is the standard deviation of ln x); got median = {a!r}, sigma = {b!r}")
    if kind == "normal" and not b > 0:
        raise ScanError(f"{where}normal(mean, sd) needs sd > 0; got sd = {b!r}")


def dim_name(path: str) -> str:
    """Name of a scan dimension: the bare name where unique, else the dotted path."""
    key = path.rsplit(".", 1)[-1]
    return key if BARE_NAMES.get(key) == [path] else path


def batchable_path(name: str, flag: str = "--grid") -> str:
    """Dotted path of a scannable field, or a clear error."""
    try:
        path = resolve_name(name)
    except ScenarioError as e:
        raise ScanError(f"{flag} {name}: {e}") from None
    field = FIELDS_BY_PATH[path]
    if not field.is_param:
        raise ScanError(
            f"{flag} {name}: {path} is structure ({field.kind}: it fixes shapes or switches), "
            "not a parameter, and cannot be batched in one compiled scan; set it with "
            f"--set {path}=VALUE and run one scan per value")
    return path


def _number(text: str, what: str, spec: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ScanError(f"{spec}: {what} = {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ScanError(f"{spec}: {what} = {text!r}; allowed: a finite number")
    return v


def parse_grid(text: str) -> Axis:
    """``NAME=LO:HI:N``, ``NAME=LO:HI:N:log`` or ``NAME=V1,V2,...`` → Axis."""
    spec = f"--grid {text}"
    if "=" not in text:
        raise ScanError(f"{spec}: expected NAME=LO:HI:N (e.g. diameter_nm=20:200:10, add :log "
                        "for log spacing) or NAME=V1,V2,...")
    name, rhs = (s.strip() for s in text.split("=", 1))
    return make_axis(name, rhs)


def make_axis(name: str, values) -> Axis:
    """An Axis from a name and either a spec string (``LO:HI:N[:log]``, ``V1,V2``) or values."""
    path = batchable_path(name)
    spec = f"--grid {name}={values}" if isinstance(values, str) else f"grid {name}"
    if isinstance(values, str):
        text = values.strip()
        parts = text.split(":")
        if len(parts) in (3, 4):
            lo = _number(parts[0], "lo", spec)
            hi = _number(parts[1], "hi", spec)
            try:
                n = int(parts[2])
            except ValueError:
                raise ScanError(f"{spec}: n = {parts[2]!r} must be an integer >= 1") from None
            log = len(parts) == 4
            if log and parts[3].strip().lower() != "log":
                raise ScanError(f"{spec}: the 4th part must be 'log' (log spacing), got "
                                f"{parts[3]!r}")
            if n < 1:
                raise ScanError(f"{spec}: n = {n} points; allowed: n >= 1")
            if lo > hi:
                raise ScanError(f"{spec}: lo = {lo:g} > hi = {hi:g}; allowed: lo <= hi")
            if n == 1 and lo != hi:
                raise ScanError(f"{spec}: n = 1 needs lo = hi (one value); use n >= 2 for a "
                                "range")
            if log and lo <= 0:
                raise ScanError(f"{spec}: log spacing needs lo > 0, got lo = {lo:g}")
            vals = np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)
            if n >= 2:  # exact end points
                vals[0], vals[-1] = lo, hi
        elif len(parts) == 1:
            items = [s for s in text.split(",") if s.strip()]
            if not items:
                raise ScanError(f"{spec}: no values")
            vals = np.asarray([_number(s.strip(), "value", spec) for s in items])
        else:
            raise ScanError(f"{spec}: expected LO:HI:N, LO:HI:N:log or V1,V2,...")
    else:
        text = ""
        vals = np.atleast_1d(np.asarray(values, dtype=float))
        if vals.ndim != 1 or vals.size < 1:
            raise ScanError(f"{spec}: values must be a non-empty 1D sequence of numbers")
        if not np.all(np.isfinite(vals)):
            raise ScanError(f"{spec}: values contain NaN or inf")
    _check_range(path, vals, spec)
    return Axis(path, tuple(float(v) for v in vals), text)


def parse_sample(text: str) -> tuple[str, Distribution]:
    """``NAME=DIST(a, b)`` → (dotted path, Distribution)."""
    if "=" not in text:
        raise ScanError(f"--sample {text}: expected NAME=DIST(a, b), e.g. "
                        "pore_radius_nm=lognormal(400, 0.5); distributions: "
                        + ", ".join(DISTRIBUTIONS))
    name, rhs = (s.strip() for s in text.split("=", 1))
    return make_sample(name, rhs)


def make_sample(name: str, dist) -> tuple[str, Distribution]:
    """(path, Distribution) from a name and a ``"kind(a, b)"`` string, a (kind, a, b) tuple or a
    Distribution."""
    path = batchable_path(name, "--sample")
    if isinstance(dist, Distribution):
        _check_distribution(dist.kind, dist.args, str(dist), name)
        return path, dist
    if isinstance(dist, str):
        m = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", dist)
        if not m:
            raise ScanError(f"--sample {name}={dist}: expected DIST(a, b), e.g. lognormal(400, "
                            "0.5); distributions: " + ", ".join(DISTRIBUTIONS))
        kind = m.group(1).lower()
        raw = [s.strip() for s in m.group(2).split(",") if s.strip()]
        if kind not in DISTRIBUTIONS:
            _check_distribution(kind, (), dist, name)
        args = tuple(_number(s, "argument", f"--sample {name}={dist}") for s in raw)
        _check_distribution(kind, args, dist, name)
        return path, Distribution(kind, args)
    try:
        kind, *args = dist
    except (TypeError, ValueError):
        raise ScanError(f"sample {name}: give a distribution as 'kind(a, b)', (kind, a, b) or "
                        "scan.Distribution") from None
    _check_distribution(str(kind).lower(), tuple(args), f"{kind}{tuple(args)}", name)
    return path, Distribution(str(kind).lower(), tuple(float(a) for a in args))


def _check_range(path: str, values: np.ndarray, spec: str):
    f = FIELDS_BY_PATH[path]
    lo = -np.inf if f.lo is None else f.lo
    hi = np.inf if f.hi is None else f.hi
    bad = (values < lo) | (values > hi) | ~np.isfinite(values)
    if np.any(bad):
        v = values[bad]
        unit = f" {f.unit}" if f.unit else ""
        raise ScanError(f"{spec}: {int(bad.sum())} value(s) of {path} out of range (e.g. "
                        f"{v[0]:g}; drawn/given from {values.min():g} to {values.max():g}); "
                        f"allowed: {f.allowed()}{unit}")


@dataclasses.dataclass(frozen=True)
class ScanSpec:
    """What to scan: grid axes, sampled distributions, M, seed, sampler, optional fields."""

    grid: tuple = ()  # (Axis, ...)
    samples: tuple = ()  # ((path, Distribution), ...)
    n_samples: int = 0
    seed: int = 0
    sampler: str = "sobol"
    fields: bool = False
    correlation: tuple = ()  # ((path_a, path_b, rho), ...) between sampled fields

    def __post_init__(self):
        if not self.grid and not self.samples:
            raise ScanError("nothing to scan: give at least one --grid NAME=LO:HI:N or "
                            "--sample NAME=DIST(a, b) with --samples M")
        if self.samples and self.n_samples < 1:
            raise ScanError(f"--samples {self.n_samples}: sampling needs the number of samples "
                            "M >= 1 (--samples M)")
        if self.n_samples and not self.samples:
            raise ScanError(f"--samples {self.n_samples} given but no --sample NAME=DIST(a, b)")
        if self.sampler not in ("sobol", "random"):
            raise ScanError(f"--sampler {self.sampler!r}; allowed: 'sobol', 'random'")
        seen = set()
        for p in [a.path for a in self.grid] + [p for p, _ in self.samples]:
            if p in seen:
                raise ScanError(f"{p} is scanned twice; give each field once (one --grid or "
                                "one --sample)")
            seen.add(p)
        if self.total > MAX_POINTS:
            raise ScanError(f"{self.total} simulations; allowed: at most {MAX_POINTS} in one "
                            "scan")
        self.correlation_matrix()  # validates

    def correlation_matrix(self) -> np.ndarray:
        """Correlation of the sampled fields' normal scores (Gaussian copula: for log-normal
        fields, the correlation of their logarithms); identity unless ``correlation`` says."""
        paths = [p for p, _ in self.samples]
        c = np.eye(len(paths))
        for a, b, rho in self.correlation:
            for p in (a, b):
                if p not in paths:
                    raise ScanError(f"--correlate {dim_name(a)}:{dim_name(b)}={rho}: {p} is not "
                                    "a sampled field; allowed: fields given with --sample ("
                                    + ", ".join(dim_name(q) for q in paths) + ")")
            if a == b or not (isinstance(rho, (int, float)) and -1.0 < rho < 1.0):
                raise ScanError(f"--correlate {dim_name(a)}:{dim_name(b)}={rho}: allowed: two "
                                "different sampled fields and a correlation in (-1, 1)")
            i, j = paths.index(a), paths.index(b)
            c[i, j] = c[j, i] = rho
        if np.any(np.linalg.eigvalsh(c) <= 1e-10):
            raise ScanError("--correlate: the correlations given do not form a valid "
                            "(positive-definite) correlation matrix; allowed: a set of "
                            "correlations that some joint distribution can have")
        return c

    @property
    def shape(self) -> tuple:
        return tuple(len(a.values) for a in self.grid) + ((self.n_samples,) if self.samples
                                                          else ())

    @property
    def dims(self) -> tuple:
        return tuple(a.dim for a in self.grid) + (("sample",) if self.samples else ())

    @property
    def total(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def paths(self) -> tuple:
        return tuple(a.path for a in self.grid) + tuple(p for p, _ in self.samples)

    def to_json(self) -> dict:
        return {
            "grid": [{"name": a.path, "spec": a.text, "values": list(a.values)}
                     for a in self.grid],
            "samples": [{"name": p, "distribution": d.kind, "args": list(d.args)}
                        for p, d in self.samples],
            "n_samples": self.n_samples, "seed": self.seed,
            "sampler": self.sampler if self.samples else None, "fields": self.fields,
            **({"correlation": [[a, b, r] for a, b, r in self.correlation]}
               if self.correlation else {}),
        }

    def sample_values(self) -> dict:
        """{path: (M,) drawn values} of the sampled fields."""
        if not self.samples:
            return {}
        d, m = len(self.samples), self.n_samples
        if self.sampler == "sobol":
            from scipy.stats import qmc

            with warnings.catch_warnings():  # balance properties need M = 2^k; any M works
                warnings.simplefilter("ignore", UserWarning)
                u = qmc.Sobol(d=d, scramble=True, seed=self.seed).random(m)
        else:
            u = np.random.default_rng(self.seed).random((m, d))
        u = np.clip(u, 1e-12, 1.0 - 1e-12)  # finite inverse CDFs
        if self.correlation:  # Gaussian copula: correlate the normal scores, keep the marginals
            from scipy import stats

            z = stats.norm.ppf(u) @ np.linalg.cholesky(self.correlation_matrix()).T
            u = np.clip(stats.norm.cdf(z), 1e-12, 1.0 - 1e-12)
        out = {}
        for j, (path, dist) in enumerate(self.samples):
            vals = dist.ppf(u[:, j])
            _check_range(path, vals, f"--sample {dim_name(path)}={dist}")
            out[path] = vals
        return out

    def points(self) -> dict:
        """{path: (total,) values} in C order over ``dims`` (last dimension fastest)."""
        cols = [np.asarray(a.values) for a in self.grid]
        samples = self.sample_values()
        if samples:
            cols.append(np.arange(self.n_samples))
        mesh = np.meshgrid(*cols, indexing="ij") if cols else []
        out = {a.path: m.reshape(-1) for a, m in zip(self.grid, mesh)}
        if samples:
            idx = mesh[-1].reshape(-1).astype(np.int64)
            for path, vals in samples.items():
                out[path] = vals[idx]
        return out


def make_spec(grid: Mapping | None = None, samples: Mapping | None = None, n_samples: int = 0,
              seed: int = 0, sampler: str = "sobol", fields: bool = False,
              correlation: Mapping | None = None) -> ScanSpec:
    """A ScanSpec from {name: values or "lo:hi:n[:log]"}, {name: "dist(a, b)"} and
    {(name_a, name_b): rho} correlations of sampled fields (Gaussian copula)."""
    axes = tuple(make_axis(k, v) for k, v in (grid or {}).items())
    dists = tuple(make_sample(k, v) for k, v in (samples or {}).items())
    corr = tuple((batchable_path(a, "--correlate"), batchable_path(b, "--correlate"), float(r))
                 for (a, b), r in (correlation or {}).items())
    return ScanSpec(axes, dists, int(n_samples or 0), int(seed), sampler, bool(fields), corr)


def parse_correlation(text: str) -> tuple[tuple[str, str], float]:
    """``NAME_A:NAME_B=RHO`` → ((name_a, name_b), rho)."""
    m = re.fullmatch(r"\s*([^:=\s]+)\s*:\s*([^:=\s]+)\s*=\s*(\S+)\s*", text)
    if not m:
        raise ScanError(f"--correlate {text}: expected NAME_A:NAME_B=RHO, e.g. "
                        "pore_radius_nm:vessel_hydraulic_conductivity_cm_per_mmhg_s=0.7")
    return (m.group(1), m.group(2)), _number(m.group(3), "correlation", f"--correlate {text}")


def check_points(scenario: Scenario, spec: ScanSpec, points: dict):
    """Cross-field checks of the points against the scenario; the structure must not change."""
    from .scenario import dose_unit_error

    for path in points:  # the rule of scenario.build: a dose in the other unit is refused
        msg = dose_unit_error(scenario["patient.species"], path, "scan: ")
        if msg:
            raise ScanError(msg)
    for region in ("tumor", "normal"):
        keys = [f"tissue.{region}.vascular_fraction", f"tissue.{region}.interstitial_fraction"]
        if any(k in points for k in keys):
            total = sum(points.get(k, scenario.params[k]) for k in keys)
            worst = float(np.max(total))
            if worst >= 0.99:
                raise ScanError(f"tissue.{region}: vascular_fraction + interstitial_fraction "
                                f"reaches {worst:g} in the scan; allowed: < 0.99 (cells take "
                                "the rest)")
    if scenario["tissue.maps_file"]:  # map-multiplied fields stay in range at every point
        from . import tissue

        lay = tissue.layout(scenario)
        tissue.check_map_values(scenario["tissue.maps_file"], lay.multipliers, lay.tumor,
                                lay.necrotic, {**scenario.params, **points})
    from . import simulate

    scanned = [p for p in STRUCTURE_PARAMS if p in points]
    if scanned:
        base = simulate.structure(scenario)
        combos = np.unique(np.stack([points[p] for p in scanned], axis=1), axis=0)
        for row in combos:
            other = simulate.structure(scenario.replace(**dict(zip(scanned, map(float, row)))))
            if other != base:
                diff = ", ".join(f"{p} = {v:g}" for p, v in zip(scanned, row))
                raise ScanError(
                    f"the scan changes the structure of the simulation at {diff} (e.g. "
                    "ligands_per_particle crossing 0 switches targeting on, heating times move "
                    "the window of refined steps); one compiled batch needs one structure: "
                    "split the scan so that these fields keep it (e.g. "
                    "ligands_per_particle > 0 only)")


# ================================================================== batched runs
def _mesh(devices=None):
    import jax
    from jax.sharding import Mesh

    return Mesh(np.asarray(list(devices) if devices is not None else jax.devices()), ("batch",))


def _readout(result, with_fields: bool) -> dict:
    """What a scan records of one simulation: every summary metric (imaging included), the
    design objective J and each of its terms (``study.objective_readout``: ``objective``,
    ``tox_*`` and ``toxicity`` = Σ w·Tox), and optionally the final fields."""
    from . import study, summary, units
    from .transport import drug_per_tissue_volume

    out = dict(summary.metrics(result, with_imaging=True))
    out.update(study.objective_readout(result))
    if with_fields:
        maps = result.inputs.kinetics.maps
        out["final_tissue_drug_ug_per_g"] = drug_per_tissue_volume(
            maps, result.fields[-1], result.species) * units.DOXORUBICIN_MOLAR_MASS
        out["final_surviving_fraction"] = summary.surviving_fraction(result)
    return out


@functools.lru_cache(maxsize=16)
def _batched_fn(static: tuple, with_fields: bool, mesh):
    """jit(vmap(_readout ∘ run)) with the batch sharded over ``mesh`` (cached per structure
    and mesh)."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P

    batch = NamedSharding(mesh, P("batch"))
    repl = NamedSharding(mesh, P())

    from . import study

    def fn(varied, fixed):
        return jax.vmap(lambda v: study.evaluate(
            {**fixed, **v}, static, lambda r: _readout(r, with_fields)))(varied)

    return jax.jit(fn, in_shardings=(batch, repl), out_shardings=batch)


def _float_dtype():
    import jax

    return np.float64 if jax.config.jax_enable_x64 else np.float32


def _global(host: np.ndarray, sharding):
    """A (possibly multi-process) global array from a host array every process holds."""
    import jax

    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def _to_host(x) -> np.ndarray:
    if x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


_COMPILED: dict = {}  # (structure, fields, mesh, batch size, paths, dtype) -> executable


class BatchRunner:
    """Runs batches of one scenario with the ``paths`` fields varied, ``size`` simulations per
    call (a multiple of the device count), compiled once.

    ``runner.device_call(values)`` returns the metrics as sharded jax arrays (padded rows at the
    end); ``runner(values)`` returns them as numpy arrays of exactly len(values) rows.
    """

    def __init__(self, scenario: Scenario, paths, size: int, fields: bool = False,
                 devices=None):
        from jax.sharding import NamedSharding, PartitionSpec as P

        from . import simulate

        simulate._dtype(scenario)  # float64 needs jax_enable_x64: a clear error first
        self.scenario, self.paths, self.fields = scenario, tuple(paths), fields
        self.mesh = _mesh(devices)
        self.n_devices = self.mesh.devices.size
        self.size = -(-max(1, int(size)) // self.n_devices) * self.n_devices
        self.static = simulate.structure(scenario)
        self.fn = _batched_fn(self.static, fields, self.mesh)
        self._batch = NamedSharding(self.mesh, P("batch"))
        self._repl = NamedSharding(self.mesh, P())
        dt = _float_dtype()
        self._fixed = {k: _global(np.asarray(v, dt), self._repl)
                       for k, v in scenario.params.items() if k not in self.paths}
        self._compiled = None
        self.compile_seconds = 0.0

    def _inputs(self, values: Mapping):
        n = len(next(iter(values.values())))
        if not 1 <= n <= self.size:
            raise ValueError(f"batch of {n} simulations; this runner takes 1 to {self.size}")
        idx = np.minimum(np.arange(self.size), n - 1)  # pad with the last point
        dt = _float_dtype()
        return {p: _global(np.asarray(values[p], dt)[idx], self._batch) for p in self.paths}, n

    def compile(self, values: Mapping):
        if self._compiled is None:
            t0 = time.perf_counter()
            key = (self.static, self.fields, self.mesh, self.size, self.paths, _float_dtype())
            self._compiled = _COMPILED.get(key)
            if self._compiled is None:
                varied, _ = self._inputs(values)
                self._compiled = self.fn.lower(varied, self._fixed).compile()
                if len(_COMPILED) >= 8:
                    _COMPILED.pop(next(iter(_COMPILED)))
                _COMPILED[key] = self._compiled
            self.compile_seconds = time.perf_counter() - t0
        return self._compiled

    def device_call(self, values: Mapping) -> dict:
        varied, _ = self._inputs(values)
        return self.compile(values)(varied, self._fixed)

    def __call__(self, values: Mapping) -> dict:
        n = len(next(iter(values.values())))
        out = self.device_call(values)
        return {k: _to_host(v)[:n] for k, v in out.items()}


def batched_metrics(scenario: Scenario, values: Mapping, fields: bool = False,
                    devices=None) -> dict:
    """Metrics of len(values) simulations of ``scenario`` with the given fields varied (names or
    paths → 1D arrays), in one batch sharded over ``devices`` (default all); numpy arrays."""
    values = {batchable_path(k): np.asarray(v, float) for k, v in values.items()}
    scenario = cover_heating_window(scenario, values)
    n = len(next(iter(values.values())))
    return BatchRunner(scenario, list(values), n, fields, devices)(values)


def bytes_per_simulation(scenario: Scenario, fields: bool = False) -> int:
    """Estimated device memory of one simulation in a batch (bytes), safety factor included:
    saved states (at every macro-interval and saved time), per-cell Newton Jacobians and the
    temporaries of their forward-mode products, times ``SAFETY``."""
    from . import simulate, solver, tissue, units
    from .transport import n_state, species_names

    st = dict(simulate.structure(scenario))
    lay = tissue.layout(scenario)
    cells = int(np.prod(lay.grid.shape))
    names = species_names(st["_heating"], st["_targeting"])
    ns, nst = len(names), n_state(names)
    times = simulate.save_times_h(scenario) * units.HOUR
    fine = ()
    if st["_heating_window_s"] is not None:
        a, b = st["_heating_window_s"]
        fine = ((a, b, float(scenario["numerics.heating_max_dt_min"]) * units.MIN),)
    lengths, _, _ = solver.macro_schedule(times, 0.0, float(scenario["numerics.max_dt_min"])
                                          * units.MIN, fine_windows=fine)
    saved = (len(lengths) + 1 + len(times)) * (ns * cells + 18)
    work = cells * (4 * nst * nst + 8 * nst * ns + 16 * ns)
    extra = 2 * cells * len(times) if fields else 0
    item = 8 if scenario["numerics.precision"] == "float64" else 4
    return int(SAFETY * item * (saved + work + extra))


def auto_chunk(scenario: Scenario, fields: bool = False, devices=None) -> int:
    """Simulations per chunk that fit the devices' memory (a multiple of the device count)."""
    import jax

    devices = list(devices) if devices is not None else jax.devices()
    per_sim = bytes_per_simulation(scenario, fields)
    dev = devices[0]
    stats = None
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = None
    if dev.platform == "cpu" or not stats or "bytes_limit" not in stats:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 4 << 30
        budget = 0.25 * free / max(1, len([d for d in devices
                                           if d.process_index == jax.process_index()]))
        cap = GPU_MAX_PER_DEVICE
        if dev.platform == "cpu":  # wider batches than the cache holds run slower per simulation
            cap = int(np.clip(CPU_CACHE_BYTES * SAFETY // per_sim, 1, CPU_MAX_PER_DEVICE))
    else:
        budget = 0.5 * (stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        cap = GPU_MAX_PER_DEVICE
    per_device = int(max(1, min(cap, budget // per_sim)))
    return per_device * len(devices)


# ================================================================== output folder
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _points_hash(points: dict, paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode())
        h.update(np.ascontiguousarray(points[p], dtype=np.float64).tobytes())
    return h.hexdigest()


def _chunk_path(out: Path, c: int) -> Path:
    return out / CHUNK_DIR / f"chunk-{c:05d}.nc"


def _manifest(spec: ScanSpec, scenario: Scenario, points_hash: str, chunk: int) -> dict:
    toml = scenario.to_toml()
    total = spec.total
    return {"format": FORMAT, "spec": spec.to_json(), "scenario_sha256": _sha256(toml.encode()),
            "points_sha256": points_hash, "chunk": int(chunk), "total": total,
            "n_chunks": -(-total // chunk), "dims": list(spec.dims), "shape": list(spec.shape),
            "scenario_toml": toml}


def _describe_difference(old: dict, new: dict) -> str:
    for key in ("grid", "samples", "n_samples", "seed", "sampler", "fields"):
        if old["spec"].get(key) != new["spec"].get(key):
            return (f"its {key} is {json.dumps(old['spec'].get(key))[:300]}, this scan's is "
                    f"{json.dumps(new['spec'].get(key))[:300]}")
    if old.get("scenario_sha256") != new["scenario_sha256"]:
        return ("it was made from another scenario (the resolved scenario TOML differs; the "
                "folder's is in its scan.json)")
    if old.get("points_sha256") != new["points_sha256"]:
        return ("its sampled points differ from this scan's (another scipy version draws other "
                "Sobol points?)")
    return "its format differs"


def prepare_folder(out: Path, spec: ScanSpec, scenario: Scenario, points_hash: str,
                   chunk: int | None, chunk_given: bool) -> tuple[dict, list[bool]]:
    """Create or check the output folder; returns (manifest, done flags per chunk).

    Refuses (ScanError, nothing written) a folder that holds another scan or scan files without
    a manifest."""
    out = Path(out)
    mpath = out / MANIFEST
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ScanError(f"{mpath} cannot be read ({e}); it is not a scan manifest: choose "
                            "another --out") from None
        new = _manifest(spec, scenario, points_hash, old.get("chunk", 1) or 1)
        same = (old.get("format") == FORMAT and old.get("spec") == new["spec"]
                and old.get("scenario_sha256") == new["scenario_sha256"]
                and old.get("points_sha256") == new["points_sha256"])
        if not same:
            raise ScanError(f"output folder {out} belongs to a different scan: "
                            f"{_describe_difference(old, new)}; nothing was overwritten. Use "
                            "another --out, or delete the folder to start over")
        if chunk_given and chunk is not None and int(chunk) != int(old["chunk"]):
            raise ScanError(f"--chunk {chunk}: the scan in {out} was started with chunks of "
                            f"{old['chunk']} simulations; resume with --chunk {old['chunk']} "
                            "(or without --chunk)")
        manifest = old
    else:
        clash = [p for p in (out / RESULT, out / CHUNK_DIR) if p.exists()]
        if clash:
            raise ScanError(f"output folder {out} holds {clash[0].name} but no {MANIFEST}: it "
                            "is not a resumable scan of this version; nothing was overwritten. "
                            "Use another --out")
        manifest = _manifest(spec, scenario, points_hash, chunk)
        from . import io

        io.write_json(mpath, manifest)
    (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    done = [_chunk_ok(out, c, manifest) for c in range(manifest["n_chunks"])]
    return manifest, done


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _chunk_ok(out: Path, c: int, manifest: dict, warn: bool = True) -> bool:
    """True if chunk ``c`` exists and its SHA-256 is the one the manifest recorded when it was
    written; a chunk file that does not match (corrupted, from another run, or written but not
    yet recorded when the scan was killed) is reported (warning) and will be recomputed."""
    path = _chunk_path(out, c)
    if not path.exists():
        return False
    recorded = (manifest.get("chunks") or {}).get(str(c))
    try:
        actual = _file_sha256(path)
    except OSError as e:
        actual, recorded = None, recorded or f"unreadable ({e})"
    if recorded is not None and actual == recorded:
        return True
    if warn:
        why = ("is not recorded in the manifest (the scan stopped between writing it and "
               "recording it)" if recorded is None else
               f"does not match the manifest (sha256 {str(actual)[:12]}..., recorded "
               f"{recorded[:12]}...: the file was changed or corrupted)")
        warnings.warn(f"scan chunk {path} {why}; it is recomputed", stacklevel=2)
    return False


def _write_chunk(out: Path, c: int, start: int, host: dict, times_h, space: dict,
                 manifest: dict) -> None:
    """Write one finished chunk atomically (temporary file + rename), its SHA-256 recorded in
    the manifest (rewritten atomically) just before the rename: resume and assembly trust only
    chunks whose content matches the record."""
    from . import io, outdir

    ds = _chunk_dataset(start, host, times_h, space)
    ds.attrs.update(chunk=c, points_sha256=manifest["points_sha256"])
    with outdir.atomic_path(_chunk_path(out, c)) as tmp:
        ds.to_netcdf(tmp)
        # recorded before the chunk appears: a visible chunk always has its hash on record
        manifest.setdefault("chunks", {})[str(c)] = _file_sha256(tmp)
        io.write_json(out / MANIFEST, manifest)


# ================================================================== assembly
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


TOXICITY_LONG_NAME = ("weighted toxicity of the design objective, efficacy - objective = "
                      "sum of objective weight x tox_* term")


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


def assemble(out: Path | None, manifest: dict, spec: ScanSpec, points: dict,
             chunks: list | None = None, times_h=None, space: dict | None = None):
    """The scan Dataset from the chunk files in ``out`` (or from in-memory chunks)."""
    import xarray as xr

    if chunks is None:
        parts = []
        for c in range(manifest["n_chunks"]):
            if not _chunk_ok(out, c, manifest, warn=False):
                raise ScanError(f"scan chunk {_chunk_path(out, c)} is missing or does not match "
                                f"the SHA-256 recorded in {out / MANIFEST}; rerun the same "
                                "command to recompute it")
            with xr.open_dataset(_chunk_path(out, c)) as ds:
                parts.append(ds.load())
        flat = xr.concat(parts, dim="index", data_vars="all", coords="minimal",
                         compat="override", join="outer", combine_attrs="drop")
    else:
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


# ================================================================== the scan
@dataclasses.dataclass
class ScanStats:
    total: int = 0
    run_now: int = 0
    resumed: int = 0
    seconds: float = 0.0
    compile_seconds: float = 0.0
    chunk: int = 0
    devices: int = 1
    processes: int = 1

    run_seconds: float = 0.0  # the chunk loop alone (simulations and chunk files)

    @property
    def rate(self) -> float:
        busy = self.run_seconds
        return self.run_now / busy if busy > 0 and self.run_now else float("nan")

    def line(self) -> str:
        speed = (f"{self.rate:.3g} simulations/s ({self.run_now} in {self.run_seconds:.1f} s "
                 f"after {self.compile_seconds:.1f} s compiling)" if self.run_now
                 else "nothing left to run")
        return (f"scan: {self.total} simulations ({self.run_now} run now, {self.resumed} "
                f"resumed) in {self.seconds:.1f} s, {speed}; chunks of {self.chunk} on "
                f"{self.devices} device(s), {self.processes} process(es)")


def _broadcast(values: np.ndarray) -> np.ndarray:
    import jax

    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.broadcast_one_to_all(values))


def _run(scenario: Scenario, spec: ScanSpec, out=None, chunk: int | None = None,
         progress: bool = True, devices=None):
    """(Dataset, ScanStats).  Process 0 owns ``out`` for the whole scan (``outdir`` lock: a
    second scan into the same folder is refused, naming the holder)."""
    import jax

    from . import outdir, simulate

    simulate._dtype(scenario)
    points = spec.points()
    scenario = cover_heating_window(scenario, points)
    check_points(scenario, spec, points)
    if chunk is not None and int(chunk) < 1:
        raise ScanError(f"--chunk {chunk}; allowed: an integer >= 1")
    if out is None or jax.process_index() != 0:
        return _run_owned(scenario, spec, points, None if out is None else Path(out), chunk,
                          progress, devices)
    out = Path(out)
    with outdir.folder_lock(out, "nanotransport scan " + " ".join(sys.argv[1:])):
        outdir.remove_stale_temps(out / CHUNK_DIR)  # left by a killed scan (SIGKILL)
        return _run_owned(scenario, spec, points, out, chunk, progress, devices)


def _run_owned(scenario: Scenario, spec: ScanSpec, points: dict, out, chunk, progress,
               devices):
    """The scan proper (``_run`` after the checks, with the folder's lock held)."""
    import jax

    from . import simulate, tissue, units

    t_start = time.perf_counter()
    phash = _points_hash(points, spec.paths)
    total = spec.total
    devices = list(devices) if devices is not None else jax.devices()
    chunk_given = chunk is not None
    writer = jax.process_index() == 0

    # process 0 checks the folder; the others learn the outcome (chunk size, finished chunks)
    status = np.zeros(2, np.int64)
    manifest, done, error = None, None, None
    if writer:
        try:
            size = int(chunk) if chunk_given else auto_chunk(scenario, spec.fields, devices)
            size = max(1, min(size, total))
            if out is not None:
                manifest, done = prepare_folder(out, spec, scenario, phash, size, chunk_given)
                size = manifest["chunk"]
            status[:] = (1, size)
        except Exception as e:  # noqa: BLE001 - the other processes must not wait forever
            error = e
    status = _broadcast(status)
    if not status[0]:
        raise error if error is not None else ScanError(
            "process 0 refused the output folder (see its message)")
    size = int(status[1])
    n_chunks = -(-total // size)
    if manifest is None:
        manifest = _manifest(spec, scenario, phash, size)
    flags = _broadcast(np.asarray(done if done is not None else [False] * n_chunks, np.int8))
    pending = [c for c in range(n_chunks) if not flags[c]]

    times_h = simulate.save_times_h(scenario)
    space = {}
    if spec.fields:
        g = tissue.layout(scenario).grid
        space = {n: np.asarray(g.centers[a]) / units.MM for a, n in enumerate(g.axis_names)}
    stats = ScanStats(total=total, chunk=size, devices=len(devices),
                      processes=jax.process_count())
    stats.resumed = sum(min(size, total - c * size) for c in range(n_chunks) if flags[c])
    in_memory: list = []
    runner = None
    show = progress and writer

    def values_of(c):
        start, stop = c * size, min((c + 1) * size, total)
        return start, {p: points[p][start:stop] for p in spec.paths}

    def run_chunks(todo):
        nonlocal runner
        if runner is None:
            runner = BatchRunner(scenario, spec.paths, size, spec.fields, devices)
            if show:
                print(f"scan: {total} simulations ({stats.resumed} already done) in chunks of "
                      f"{size} on {len(devices)} device(s); compiling ...", file=sys.stderr,
                      flush=True)
            runner.compile(values_of(todo[0])[1])
            stats.compile_seconds = runner.compile_seconds
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=total - sum(min(size, total - c * size)
                                                        for c in todo),
                       unit="sim", desc="scan", file=sys.stderr, dynamic_ncols=True,
                       smoothing=0.1)
        queued = None  # one chunk in flight while the previous one is written

        def finish(item):
            c, start, n, out_dev = item
            host = {k: _to_host(v)[:n] for k, v in out_dev.items()}
            if writer:
                if out is not None:
                    _write_chunk(out, c, start, host, times_h, space, manifest)
                else:
                    in_memory.append(_chunk_dataset(start, host, times_h, space))
            stats.run_now += n
            if bar is not None:
                bar.update(n)

        t_loop = time.perf_counter()
        try:
            for c in todo:
                start, vals = values_of(c)
                item = (c, start, len(vals[spec.paths[0]]), runner.device_call(vals))
                if queued is not None:
                    finish(queued)
                queued = item
            finish(queued)
        finally:
            stats.run_seconds += time.perf_counter() - t_loop
            if bar is not None:
                bar.close()

    if pending:
        run_chunks(pending)
    if out is not None:  # verify every chunk against the manifest; recompute the bad ones
        for _ in range(2):
            bad = np.zeros(n_chunks, np.int8)
            if writer:
                bad[:] = [not _chunk_ok(out, c, manifest) for c in range(n_chunks)]
            bad = _broadcast(bad)
            if not bad.any():
                break
            run_chunks([c for c in range(n_chunks) if bad[c]])
    ds = None
    manifest = {**manifest, "times_h": [float(t) for t in times_h]}
    if writer:
        if out is not None:
            ds = assemble(out, manifest, spec, points, times_h=times_h, space=space)
            from . import io

            io.write_netcdf(ds, out / RESULT)
        else:
            ds = assemble(None, manifest, spec, points, chunks=in_memory, times_h=times_h,
                          space=space)
        _warn_undefined(ds)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("nanotransport scan done")
    stats.seconds = time.perf_counter() - t_start
    return ds, stats


def _warn_undefined(ds) -> None:
    """Warn where efficacy is undefined (no viable tumor cells): those points are NaN in the
    Dataset and never on the Pareto front."""
    eff = np.asarray(ds["efficacy"].values)
    n_bad = int(np.sum(~np.isfinite(eff)))
    if n_bad:
        warnings.warn(f"efficacy is undefined (no viable tumor cells, NaN) at {n_bad} of "
                      f"{eff.size} scan point(s); they are not on the Pareto front", stacklevel=3)


def _chunk_dataset(start: int, host: dict, times_h, space: dict):
    import xarray as xr

    from . import summary

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


def run_scan(scenario, grid: Mapping | None = None, samples: Mapping | None = None,
             n_samples: int | None = None, seed: int = 0, out=None, chunk: int | None = None,
             progress: bool = True, fields: bool = False, sampler: str = "sobol",
             overrides=(), devices=None, correlation: Mapping | None = None):
    """Run a scan and return it as an xarray Dataset.

    Args:
        scenario: a Scenario, or a built-in name / TOML path (with ``overrides`` "key=value").
        grid: {name: values (sequence) or "lo:hi:n", "lo:hi:n:log", "v1,v2"}; full factorial.
        samples: {name: "lognormal(400, 0.5)" | ("normal", 1, 0.1) | Distribution}.
        n_samples: M draws (Sobol by default, ``sampler="random"`` for pseudo-random).
        correlation: {(name_a, name_b): rho} between sampled fields (Gaussian copula; for
            log-normal fields the correlation of their logarithms).
        seed: seed of the sampler.
        out: folder for the resumable files (scan.json, chunks/, scan.nc); None keeps it all
            in memory.
        chunk: simulations per compiled call (default: from the memory estimate).
        progress: tqdm bar (simulations/s, ETA) and a final summary line on stderr.
        fields: also keep final tissue drug and surviving fraction per grid cell.
        devices: devices to shard over (default ``jax.devices()``).

    Float64 scenarios need ``jax.config.update("jax_enable_x64", True)`` first.  Under
    ``jax.distributed`` every process calls this with the same arguments; process 0 gets the
    Dataset, the others None.
    """
    if not isinstance(scenario, Scenario):
        from . import scenario as sc

        scenario = sc.load(scenario, list(overrides))
    spec = make_spec(grid, samples, n_samples or 0, seed, sampler, fields, correlation)
    ds, stats = _run(scenario, spec, out, chunk, progress, devices)
    if progress and ds is not None:
        print(stats.line(), file=sys.stderr)
    return ds


# ================================================================== figures
def plot_heatmap(ds, metric: str, path: Path, dims: tuple | None = None) -> Path | None:
    """Heat map of ``metric`` over two scan dimensions (others averaged); a line over one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if metric not in ds:
        raise ScanError(f"--plot-metric {metric}: not a scan variable; allowed: "
                        + ", ".join(scalar_variables(ds)))
    grid_dims = [d for d in str(ds.attrs.get("dims", "")).split() if d != "sample"]
    dims = tuple(dims or grid_dims[:2])
    if not dims:
        return None
    da = ds[metric]
    rest = [d for d in da.dims if d not in dims]
    note = f" (mean over {', '.join(rest)})" if rest else ""
    da = da.mean(rest) if rest else da
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if len(dims) == 1:
        x = ds[dims[0]]
        ax.plot(x, da.values, "o-")
        ax.set_xlabel(_label(ds, dims[0]))
        ax.set_ylabel(metric)
        _maybe_log(ax, x.values, "x")
    else:
        da = da.transpose(dims[1], dims[0])
        x, y = ds[dims[0]].values, ds[dims[1]].values
        mesh = ax.pcolormesh(_edges(x), _edges(y), da.values, shading="flat", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=metric)
        ax.set_xlabel(_label(ds, dims[0]))
        ax.set_ylabel(_label(ds, dims[1]))
        _maybe_log(ax, x, "x")
        _maybe_log(ax, y, "y")
    ax.set_title(f"{metric}{note}", fontsize=9)
    return _save(fig, path)


def scalar_variables(ds) -> list[str]:
    """Variables with one value per scan point (what heat maps can show)."""
    dims = set(str(ds.attrs.get("dims", "")).split())
    return [k for k, v in ds.data_vars.items() if set(v.dims) == dims]


def plot_distributions(ds, path: Path, metrics=("efficacy", "toxicity",
                                                "tumor_drug_auc_ug_h_per_g")) -> Path | None:
    """Histograms of responses over the samples (one per grid point when there are ≤ 5)."""
    if "sample" not in ds.dims:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if m in ds]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    grid_dims = [d for d in ds["efficacy"].dims if d != "sample"]
    n_grid = int(np.prod([ds.sizes[d] for d in grid_dims])) if grid_dims else 1
    for ax, m in zip(axes, metrics):
        da = ds[m]
        if grid_dims and n_grid <= 5:
            stacked = da.stack(point=grid_dims).transpose("point", "sample")
            for i in range(n_grid):
                key = np.atleast_1d(np.asarray(stacked["point"].values[i], dtype=object))
                label = ", ".join(f"{d}={float(v):.3g}" for d, v in zip(grid_dims, key))
                ax.hist(stacked.values[i], bins="auto", alpha=0.5, label=label)
            ax.legend(fontsize=7)
        else:
            ax.hist(np.asarray(da.values).reshape(-1), bins="auto", color="C0")
        ax.set_xlabel(m + (" (Σ weight·tox_*)" if m == "toxicity" else ""), fontsize=8)
        ax.set_ylabel("count")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.suptitle(f"responses over {ds.sizes['sample']} samples", fontsize=9)
    return _save(fig, path)


def plot_pareto(ds, path: Path) -> Path:
    """Efficacy against toxicity of every point; the non-dominated ones highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = np.asarray(ds["efficacy"].values).reshape(-1)
    t = np.asarray(ds["toxicity"].values).reshape(-1)
    front = np.asarray(ds["pareto_front"].values).reshape(-1).astype(bool)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(t, e, s=8, c="0.6", label="scan points")
    order = np.argsort(t[front])
    ax.plot(t[front][order], e[front][order], "o-", color="C3", ms=5,
            label=f"Pareto front ({int(front.sum())})")
    ax.set_xlabel("toxicity: Σ weight·tox_* of the design objective (efficacy − J)", fontsize=8)
    ax.set_ylabel("efficacy (1 − mean SF)")
    _maybe_log(ax, t[np.isfinite(t)], "x")
    ax.legend(fontsize=8)
    ax.set_title("efficacy vs toxicity (higher efficacy, lower toxicity is better)", fontsize=9)
    return _save(fig, path)


def plot_scan(ds, out: Path, metric: str = "efficacy") -> list[Path]:
    """All scan figures into ``out``: heat map, distributions (samples), Pareto front."""
    out = Path(out)
    paths = [plot_heatmap(ds, metric, out / f"scan_{_safe(metric)}.png"),
             plot_distributions(ds, out / "scan_distributions.png"),
             plot_pareto(ds, out / "scan_pareto.png")]
    return [p for p in paths if p is not None]


def check_plot_metric(scenario: Scenario, metric: str) -> None:
    """Refuse, before anything runs, a heat-map metric that a scan will not have."""
    if metric in ("efficacy", "objective", "toxicity", "pareto_front"):
        return
    import jax

    from . import simulate, study

    static = simulate.structure(scenario)
    shapes = jax.eval_shape(lambda p: study.evaluate(p, static, lambda r: _readout(r, False)),
                            scenario.params)
    scalars = sorted(k for k, v in shapes.items() if v.shape == ())
    if metric not in scalars:
        raise ScanError(f"--plot-metric {metric}: not a scalar metric of this scan; allowed: "
                        + ", ".join(scalars + ["pareto_front"]))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _label(ds, dim: str) -> str:
    unit = ds[dim].attrs.get("units", "")
    return f"{dim} ({unit})" if unit and unit != "1" else dim


def _edges(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5]) if x[0] == 0 else x[0] * np.array([0.9, 1.1])
    if np.all(x > 0) and x[-1] / x[0] > 20:  # log-spaced: geometric midpoints
        mid = np.sqrt(x[1:] * x[:-1])
        return np.concatenate([[x[0] ** 2 / mid[0]], mid, [x[-1] ** 2 / mid[-1]]])
    mid = 0.5 * (x[1:] + x[:-1])
    return np.concatenate([[2 * x[0] - mid[0]], mid, [2 * x[-1] - mid[-1]]])


def _maybe_log(ax, values, axis):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size > 1 and np.all(v > 0) and v.max() / v.min() > 50:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _save(fig, path: Path) -> Path:
    """Write a figure (the one PNG writer of the package: ``plots._save``)."""
    from .plots import _save as save_figure

    return save_figure(fig, path)


# ================================================================== command line
def cli_scan(args) -> int:
    """``nanotransport scan``: parse, run, write, plot, print the totals."""
    import jax

    if getattr(args, "distributed", False):
        jax.distributed.initialize()
    from . import scenario as sc

    scenario = sc.load(args.scenario, args.set or [])
    if scenario["numerics.precision"] == "float64":
        jax.config.update("jax_enable_x64", True)
    sc.check_memory(scenario)
    if scenario["tissue.maps_file"]:
        from . import tissue

        tissue.layout(scenario)  # maps checked against the grid before anything runs
    axes = tuple(parse_grid(g) for g in (args.grid or []))
    dists = tuple(parse_sample(s) for s in (args.sample or []))
    corr = tuple((batchable_path(a, "--correlate"), batchable_path(b, "--correlate"), rho)
                 for (a, b), rho in map(parse_correlation, args.correlate or []))
    spec = ScanSpec(axes, dists, int(args.samples or 0), int(args.seed), args.sampler,
                    bool(args.fields), corr)
    if not args.no_figures:
        check_plot_metric(scenario, args.plot_metric)
    out = Path(args.out)
    ds, stats = _run(scenario, spec, out, args.chunk, not args.quiet)
    if ds is None:  # not process 0
        return 0
    figures = []
    if scenario["outputs.figures"] and not args.no_figures:
        figures = plot_scan(ds, out, args.plot_metric)
    print(stats.line())
    print(f"wrote {out / RESULT}" + (f" and {len(figures)} figure(s)" if figures else ""))
    return 0
