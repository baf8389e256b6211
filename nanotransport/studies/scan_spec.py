"""Scan specifications: what a scan varies and at which points.  Parses and checks grids
(``--grid NAME=LO:HI:N[:log]`` or ``NAME=V1,V2``: ``linspace``/``geomspace`` values in the
field's user units), sampled distributions (``--sample NAME=DIST(a, b)``: uniform, loguniform,
lognormal with median and σ of ln x, normal) with optional Gaussian-copula correlations
(``--correlate``), draws the samples (scrambled Sobol or pseudo-random, seeded) and lays out
the points in C order over the scan dims; refuses with a message naming field, value and
allowed range whatever one compiled batch cannot run: structure fields, values out of range,
points that change the simulation's structure (``check_points``); a scan over heating times
gets one refined-step window covering its whole range (``cover_heating_window``).
"""
from __future__ import annotations

import dataclasses
import math
import re
import warnings
from typing import Mapping

import numpy as np
from scipy import stats
from scipy.stats import qmc

from ..model import simulate, tissue
from ..engine import units
from ..model.scenario import BARE_NAMES, Scenario, ScenarioError, dose_unit_error, resolve_name
from ..model.schema import FIELDS_BY_PATH

MAX_POINTS = 100_000_000
DISTRIBUTIONS = ("uniform", "loguniform", "lognormal", "normal")
# parameters that ``simulate.structure`` reads as concrete numbers
STRUCTURE_PARAMS = ("formulation.ligands_per_particle", "heating.heating_start_min",
                    "heating.heating_duration_min", "heating.cooldown_min")
HEATING_TIMES = STRUCTURE_PARAMS[1:]


class ScanError(ScenarioError):
    """A scan that cannot run; the message names the field, the value and what is allowed."""


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
            with warnings.catch_warnings():  # balance properties need M = 2^k; any M works
                warnings.simplefilter("ignore", UserWarning)
                u = qmc.Sobol(d=d, scramble=True, seed=self.seed).random(m)
        else:
            u = np.random.default_rng(self.seed).random((m, d))
        u = np.clip(u, 1e-12, 1.0 - 1e-12)  # finite inverse CDFs
        if self.correlation:  # Gaussian copula: correlate the normal scores, keep the marginals
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


def cover_heating_window(scenario: Scenario, points: Mapping) -> Scenario:
    """A scan over heating times (start, duration, cool-down) gets one window of refined steps
    that covers the whole scanned range (``numerics.heating_window_min``, from
    ``simulate.heating_window_s``), so the whole scan is one structure and one compilation;
    every point then runs with the refined step over that wider window (slightly more steps
    than alone, the same step size).  Unchanged when no heating time is scanned, without
    heating, or when the scenario sets the window itself."""
    if (scenario["heating.source"] == "none" or not any(k in points for k in HEATING_TIMES)
            or list(scenario["numerics.heating_window_min"])):
        return scenario
    val = lambda k: np.asarray(points[k], float) if k in points else float(scenario.params[k])  # noqa
    start = val(HEATING_TIMES[0]) + np.zeros(len(next(iter(points.values()))))
    end = start + val(HEATING_TIMES[1]) + val(HEATING_TIMES[2])
    a, b = simulate.heating_window_s(float(np.min(start)) * units.MIN,
                                     float(np.max(end)) * units.MIN)
    return scenario.replace(**{"numerics.heating_window_min": [a / units.MIN, b / units.MIN]})


def check_points(scenario: Scenario, spec: ScanSpec, points: dict):
    """Cross-field checks of the points against the scenario; the structure must not change."""
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
        lay = tissue.layout(scenario)
        tissue.check_map_values(scenario["tissue.maps_file"], lay.multipliers, lay.tumor,
                                lay.necrotic, {**scenario.params, **points})
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

