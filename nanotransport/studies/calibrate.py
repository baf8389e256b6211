"""Calibration of a patient's tumor transport parameters from images of the carrier.

Given an observed time-activity curve of the tumor (times t_i, values y_i, optional standard
deviations s_i), find the parameters p (by default the EPR parameters the cohort varies) that
minimize

    χ²(θ) = Σ_i ((m_i(θ) − y_i) / s_i)²,     p = p₀ · exp(θ)  (θ: log of p relative to the scenario)

where m_i is the simulated imaging readout (``imaging.metrics``: PSF-blurred tumor ROI) of the
imaging study (``cohort.imaging_scenario``).  Minimizer: ``scipy.optimize.least_squares``
(trust-region reflective), with the Jacobian ∂m/∂θ from forward-mode automatic
differentiation through the whole simulation (``jax.jacfwd``; few parameters, so forward mode
is cheapest).  θ stays inside the parameters' schema ranges (the solver's bounds).

Uncertainty: covariance of θ from the Gauss-Newton Hessian, C = σ̂² (JᵀJ)⁻¹ with J the
Jacobian of the residuals scaled by s_i; σ̂² = χ²/(n − k) when no s_i are given (then n > k is
needed), 1 when they are.  Reported: each parameter's value, the standard deviation of ln p,
a 95 % interval p·exp(±1.96 sd) and the correlation matrix.  A parameter is flagged as not
identifiable when the data carry no information on it (it loads a near-null direction of JᵀJ),
when its sd of ln p exceeds ``SD_LN_LIMIT`` (uncertain by more than a factor e), or when it is
correlated beyond ``CORRELATION_LIMIT`` with another (only a combination is identified).

Prediction: the therapeutic scenario at the fitted parameters; its efficacy (and tumor drug AUC)
with the delta-method uncertainty gᵀ C g (g = ∂metric/∂θ, forward mode).  Flagged parameters
enter with the cohort's population spread (``cohort.EPR_VARIABILITY``) instead of C, or, if
they have none, are listed as excluded from the interval.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from ..model.scenario import Scenario, ScenarioError, resolve_name
from ..model.schema import FIELDS_BY_PATH

TIME_COLUMNS = {"time_s": 1.0 / 3600.0, "time_min": 1.0 / 60.0, "time_h": 1.0, "time_d": 24.0}
QUANTITIES = {  # observed column → simulated imaging metric
    "tumor_pct_id_per_g": "imaging_tumor_pct_id_per_g",
    "tumor_pct_id_per_kg": "imaging_tumor_pct_id_per_kg",
    "tumor_kbq_per_ml": "imaging_tumor_kbq_per_ml",
    "tumor_to_reference": "imaging_tumor_to_reference",
}
SD_SUFFIX = "_sd"
SD_LN_LIMIT = 1.0
CORRELATION_LIMIT = 0.95
NULL_TOLERANCE = 1e-8  # eigenvalue of the scaled JᵀJ below this × the largest: no information


class ObservationError(ScenarioError):
    """An observation file that cannot be used; the message names the column, value and rule."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))


@dataclasses.dataclass(frozen=True)
class Observations:
    """A tumor time-activity curve: times (h), values and optional standard deviations."""

    times_h: np.ndarray
    values: np.ndarray
    sd: np.ndarray | None
    quantity: str  # a key of QUANTITIES
    source: str = ""

    @property
    def metric(self) -> str:
        return QUANTITIES[self.quantity]


def _column_roles(columns: list[str], source: str) -> tuple[str, str, str | None]:
    """(time column, value column, sd column or None) from a file's column names."""
    time_cols = [c for c in columns if c in TIME_COLUMNS]
    value_cols = [c for c in columns if c in QUANTITIES]
    sd_cols = [c for c in columns if c.endswith(SD_SUFFIX)]
    unknown = [c for c in columns if c not in time_cols + value_cols + sd_cols]
    problems = []
    for c in unknown:
        kind = "time unit" if c.startswith("time") else "column"
        allowed = (", ".join(TIME_COLUMNS) if c.startswith("time")
                   else ", ".join(list(TIME_COLUMNS) + list(QUANTITIES))
                   + f" and <value column>{SD_SUFFIX}")
        problems.append(f"{source}: {kind} '{c}' is not recognized; allowed: {allowed}")
    if len(time_cols) != 1:
        problems.append(f"{source}: needs exactly one time column with its unit (one of "
                        f"{', '.join(TIME_COLUMNS)}); found {time_cols or 'none'}")
    if len(value_cols) != 1:
        problems.append(f"{source}: needs exactly one observed quantity with its unit (one of "
                        f"{', '.join(QUANTITIES)}); found {value_cols or 'none'}")
    sd = None
    if len(sd_cols) > 1:
        problems.append(f"{source}: at most one standard-deviation column; found {sd_cols}")
    elif sd_cols:
        sd = sd_cols[0]
        if value_cols and sd != value_cols[0] + SD_SUFFIX:
            problems.append(f"{source}: mismatched units: standard-deviation column '{sd}' does "
                            f"not match the value column '{value_cols[0]}'; allowed: "
                            f"'{value_cols[0]}{SD_SUFFIX}' (same quantity and unit)")
    if problems:
        raise ObservationError(problems)
    return time_cols[0], value_cols[0], sd


def _numbers(values, column: str, source: str) -> np.ndarray:
    try:
        out = np.asarray([float(v) for v in values], float)
    except (TypeError, ValueError):
        raise ObservationError([f"{source}: column '{column}' has a value that is not a number; "
                                "allowed: numbers"]) from None
    bad = ~np.isfinite(out)
    if np.any(bad):
        raise ObservationError([f"{source}: column '{column}' has a non-finite value at row "
                                f"{int(np.argmax(bad)) + 1}; allowed: finite numbers"])
    return out


def make_observations(columns: dict, source: str = "observations") -> Observations:
    """Observations from {column name: values}; checks names, units and values."""
    t_col, v_col, sd_col = _column_roles(list(columns), source)
    times = _numbers(columns[t_col], t_col, source) * TIME_COLUMNS[t_col]
    values = _numbers(columns[v_col], v_col, source)
    sd = _numbers(columns[sd_col], sd_col, source) if sd_col else None
    n = times.size
    if n == 0:
        raise ObservationError([f"{source}: no observations; allowed: at least one time point"])
    if values.size != n or (sd is not None and sd.size != n):
        raise ObservationError([f"{source}: columns have different lengths ({t_col}: {n}, "
                                f"{v_col}: {values.size}" + (f", {sd_col}: {sd.size}" if sd
                                                             is not None else "") + ")"])
    if np.any(times <= 0):
        raise ObservationError([f"{source}: {t_col} = {times[times <= 0][0] / TIME_COLUMNS[t_col]:g}"
                                "; allowed: times > 0 after the injection"])
    if np.any(np.diff(times) <= 0):
        i = int(np.argmax(np.diff(times) <= 0))
        raise ObservationError([f"{source}: {t_col} is not increasing (row {i + 2}: "
                                f"{times[i + 1] / TIME_COLUMNS[t_col]:g} after "
                                f"{times[i] / TIME_COLUMNS[t_col]:g}); allowed: strictly "
                                "increasing times"])
    if np.any(values < 0):
        raise ObservationError([f"{source}: {v_col} has a negative value "
                                f"{values[values < 0][0]:g}; allowed: values >= 0"])
    if sd is not None and np.any(sd <= 0):
        raise ObservationError([f"{source}: {sd_col} has a value {sd[sd <= 0][0]:g}; allowed: "
                                "standard deviations > 0"])
    return Observations(times, values, sd, v_col, source)


def load_observations(path) -> Observations:
    """Read a CSV (header row; '#' comment lines skipped) or JSON ({column: [values]}) file.
    Columns: one time column (time_s, time_min, time_h or time_d), one observed quantity
    (tumor_pct_id_per_g, tumor_pct_id_per_kg, tumor_kbq_per_ml or tumor_to_reference) and
    optionally its standard deviation (the quantity's name + '_sd')."""
    from ..model.scenario import read_text_file

    path = Path(path)
    if path.suffix.lower() not in (".json", ".csv") and path.is_file():
        raise ObservationError([f"{path}: unknown file type '{path.suffix}'; allowed: .csv, "
                                ".json"])
    try:  # missing, a folder, unreadable, binary, not UTF-8: named, exit 2
        text = read_text_file(path, "observation file")
    except ScenarioError as e:
        raise ObservationError([str(e)]) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ObservationError([f"{path}: not valid JSON ({e})"]) from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ObservationError([f"{path}: expected an object of columns, e.g. "
                                    '{"time_h": [1, 24], "tumor_pct_id_per_g": [0.002, 0.004]}'])
        return make_observations(data, str(path))
    if path.suffix.lower() == ".csv":
        lines = [ln for ln in text.splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        rows = list(csv.reader(lines))
        if not rows:
            raise ObservationError([f"{path}: empty file; allowed: a header row and data rows"])
        header = [h.strip() for h in rows[0]]
        if any(len(r) != len(header) for r in rows[1:]):
            raise ObservationError([f"{path}: every row needs {len(header)} values"])
        return make_observations({h: [r[i].strip() for r in rows[1:]]
                                  for i, h in enumerate(header)}, str(path))
    raise ObservationError([f"{path}: unknown file type '{path.suffix}'; allowed: .csv, .json"])


# ------------------------------------------------------------------ the model of the data
def imaging_study(scenario: Scenario, times_h, dose_fraction: float = 0.05) -> Scenario:
    """The imaging scenario saved at 0 and at the observation times."""
    from . import cohort

    t = [float(x) for x in np.asarray(times_h)]
    s = cohort.imaging_scenario(scenario, cohort.CohortSettings(
        imaging_time_h=t[-1], imaging_dose_fraction=dose_fraction))
    return s.replace(**{"numerics.save_times_h": [0.0] + t})


def check_parameters(names, flag: str = "--fit") -> list[str]:
    """Dotted paths of the fitted parameters: known, differentiable, positive range (``flag``:
    the option named in messages; also used by ``fit``)."""
    paths = []
    for name in names:
        path = resolve_name(name)
        f = FIELDS_BY_PATH[path]
        if not f.is_param:
            raise ScenarioError(f"{flag} {name}: {path} is not a numeric parameter that can be "
                                 "fitted (it is structure); allowed: numeric scenario parameters"
                                 ", e.g. pore_radius_nm")
        if path in paths:
            raise ScenarioError(f"{flag} {name}: given twice")
        paths.append(path)
    if not paths:
        raise ScenarioError(f"{flag}: no parameters to fit")
    return paths


def _log_bounds(scenario: Scenario, paths) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = [], []
    for p in paths:
        f, v = FIELDS_BY_PATH[p], float(scenario[p])
        if v <= 0:
            raise ScenarioError(f"{p} = {v:g}: a fitted parameter needs a positive value "
                                 "(it is fitted on a log scale)")
        lo.append(math.log(f.lo / v) if f.lo and f.lo > 0 else -30.0)
        hi.append(math.log(f.hi / v) if f.hi is not None else 30.0)
    return np.asarray(lo), np.asarray(hi)


def model_function(scenario: Scenario, paths, metric: str, times_h, dose_fraction=0.05):
    """θ ↦ simulated ``metric`` at ``times_h`` of the imaging study, p = p₀ exp(θ)."""
    import jax.numpy as jnp

    from ..model import imaging
    from . import study

    g = study.model_function(imaging_study(scenario, times_h, dose_fraction), paths,
                             lambda r: imaging.metrics(r)[metric][1:])
    p0 = jnp.asarray([float(scenario[p]) for p in paths])
    return lambda theta: g(p0 * jnp.exp(theta))


@dataclasses.dataclass
class Fit:
    """Result of ``fit``."""

    paths: list
    theta: np.ndarray  # ln(p/p₀)
    covariance: np.ndarray  # of θ (inf on the diagonal where the data carry no information)
    values: dict  # {path: fitted value}
    initial: dict  # {path: p₀}
    sd_ln: dict
    identifiable: dict  # {path: bool}
    warnings: list
    chi2: float
    sigma2: float
    iterations: int
    converged: bool
    fitted: np.ndarray  # model at the observation times
    initial_model: np.ndarray
    history: list


def _covariance(jr: np.ndarray, sigma2: float, paths) -> tuple[np.ndarray, list, dict]:
    """Gauss-Newton covariance σ² (JᵀJ)⁻¹ with null directions detected; warnings; flags."""
    a = jr.T @ jr
    k = a.shape[0]
    scale = np.sqrt(np.maximum(np.diag(a), 0.0))
    informed = scale > NULL_TOLERANCE * max(scale.max(), 1e-300)
    cov = np.full((k, k), np.nan)
    cov[np.diag_indices(k)] = np.inf
    flags = {p: True for p in paths}
    warnings = []
    for i in np.flatnonzero(~informed):
        flags[paths[i]] = False
        warnings.append(f"{paths[i]}: the data carry no information on it (the readout does not "
                        "change with it); held at its scenario value")
    idx = np.flatnonzero(informed)
    if idx.size:
        s = scale[idx]
        an = a[np.ix_(idx, idx)] / np.outer(s, s)  # unit diagonal
        w, v = np.linalg.eigh(an)
        null = w < NULL_TOLERANCE * w.max()
        for j in np.flatnonzero(null):
            for i in np.flatnonzero(np.abs(v[:, j]) > 0.1):
                p = paths[idx[i]]
                if flags[p]:
                    flags[p] = False
                    warnings.append(f"{p}: not identifiable: the readout depends on it only in "
                                    "a combination with other fitted parameters")
        inv = (v[:, ~null] / w[~null]) @ v[:, ~null].T
        sub = sigma2 * inv / np.outer(s, s)
        cov[np.ix_(idx, idx)] = sub
        loaded = np.any(np.abs(v[:, null]) > 0.1, axis=1)
        for i in np.flatnonzero(loaded):
            cov[idx[i], idx[i]] = np.inf
    sd = np.sqrt(np.diag(cov))
    for i, p in enumerate(paths):
        if flags[p] and sd[i] > SD_LN_LIMIT:
            flags[p] = False
            warnings.append(f"{p}: not identifiable from these data: sd of ln = {sd[i]:.2g} "
                            f"(uncertain by more than a factor e^{SD_LN_LIMIT:g})")
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    for i in range(k):
        for j in range(i + 1, k):
            if np.isfinite(corr[i, j]) and abs(corr[i, j]) > CORRELATION_LIMIT:
                for a_, b_ in ((i, j), (j, i)):
                    if flags[paths[a_]]:
                        flags[paths[a_]] = False
                        warnings.append(f"{paths[a_]}: correlated with {paths[b_]} (ρ = "
                                        f"{corr[i, j]:+.3f}): only their combination is "
                                        "identified")
    return cov, warnings, flags


def fit(scenario: Scenario, obs: Observations, names, dose_fraction: float = 0.05,
        max_iter: int = 30, progress=None) -> Fit:
    """Least-squares fit (``scipy.optimize.least_squares``, trust-region reflective within the
    fields' ranges on a log scale) of ``names`` (paths or bare names) to ``obs``."""
    import jax

    from . import design

    paths = check_parameters(names)
    n, k = obs.values.size, len(paths)
    if obs.sd is None and n <= k:
        raise ObservationError([f"{obs.source}: {n} observation(s) for {k} parameter(s) and no "
                                f"{obs.quantity}{SD_SUFFIX} column: the noise cannot be "
                                "estimated; allowed: more observations than fitted parameters, "
                                "or give standard deviations"])
    lo, hi = _log_bounds(scenario, paths)
    f = model_function(scenario, paths, obs.metric, obs.times_h, dose_fraction)
    fj = jax.jit(design.value_and_jacfwd(f))
    w = obs.sd if obs.sd is not None else np.ones(n)

    def evaluate(theta):
        m, jac = (np.asarray(x, float) for x in fj(np.asarray(theta, float)))
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(jac))):
            raise ObservationError([f"the simulation returned non-finite values at "
                                    f"{dict(zip(paths, np.exp(theta)))} (relative to the "
                                    "scenario); check the scenario's numerics"])
        r = (m - obs.values) / w
        return m, r, jac / w[:, None], float(r @ r)

    from scipy.optimize import least_squares

    history: list = []
    best = {}

    def residuals(theta):
        key = np.asarray(theta, float).tobytes()
        if best.get("key") != key:  # one forward-mode pass gives residuals and Jacobian
            best.update(zip(("m", "r", "jr", "cost"), evaluate(theta)), key=key)
        return best["r"]

    def jacobian(theta):  # asked for at the start and at every accepted iterate
        residuals(theta)
        history.append({"iteration": len(history), "chi2": best["cost"],
                        "theta": np.asarray(theta, float).tolist()})
        if progress and len(history) > 1:
            progress(len(history) - 1, best["cost"])
        return best["jr"]

    theta0 = np.zeros(k)
    residuals(theta0)
    initial_model = best["m"]
    # trust-region reflective least squares within the log bounds (scipy), on the compiled
    # residual and forward-mode Jacobian; the stopping rules of the hand-written
    # Levenberg–Marquardt it replaced: relative χ² change 1e-8, step 1e-6 in ln(p)
    fitted = least_squares(residuals, theta0, jac=jacobian, bounds=(lo, hi), method="trf",
                           ftol=1e-8, xtol=1e-6, gtol=1e-10, max_nfev=max_iter)
    theta = np.asarray(fitted.x, float)
    residuals(theta)
    m, jr, cost = best["m"], best["jr"], best["cost"]
    it, converged = len(history) - 1, bool(fitted.status > 0)
    sigma2 = 1.0 if obs.sd is not None else cost / (n - k)
    cov, warnings, flags = _covariance(jr, sigma2, paths)
    sd = np.sqrt(np.diag(cov))
    p0 = {p: float(scenario[p]) for p in paths}
    return Fit(paths, theta, cov, {p: p0[p] * math.exp(theta[i]) for i, p in enumerate(paths)},
               p0, {p: float(sd[i]) for i, p in enumerate(paths)}, flags, warnings, cost,
               float(sigma2), it, converged, m, initial_model, history)


# ------------------------------------------------------------------ prediction
PREDICTED = ("efficacy", "tumor_drug_auc_ug_h_per_g", "tumor_intracellular_auc_ug_h_per_g")


def predict(scenario: Scenario, result: Fit) -> dict:
    """Therapeutic outcome at the fitted parameters with delta-method uncertainty."""
    import jax
    import jax.numpy as jnp

    from . import cohort, design, study
    from ..model import summary

    paths = result.paths
    p0 = jnp.asarray([result.initial[p] for p in paths])
    g = study.model_function(scenario, paths, lambda r: jnp.stack(
        [summary.metrics(r)[k] for k in PREDICTED]))

    def f(theta):
        return g(p0 * jnp.exp(theta))

    value, jac = (np.asarray(x) for x in jax.jit(design.value_and_jacfwd(f))(
        jnp.asarray(result.theta)))
    population = {p: s for p, s, _ in cohort.EPR_VARIABILITY}
    cov = np.array(result.covariance)
    excluded = []
    ident = np.array([result.identifiable[p] for p in paths])
    var_param = np.where(ident, np.diag(cov), 0.0)
    for i, p in enumerate(paths):
        if not ident[i]:
            if p in population:
                var_param[i] = population[p] ** 2
            else:
                excluded.append(p)
    cov_use = np.where(np.outer(ident, ident), np.nan_to_num(cov, nan=0.0, posinf=0.0), 0.0)
    cov_use[np.diag_indices(len(paths))] = var_param
    out = {}
    for i, k in enumerate(PREDICTED):
        g = jac[i]
        sd = float(math.sqrt(max(g @ cov_use @ g, 0.0)))
        out[k] = {"value": float(value[i]), "sd": sd,
                  "ci95": [float(value[i] - 1.96 * sd), float(value[i] + 1.96 * sd)]}
    out["efficacy"]["ci95"] = [max(0.0, out["efficacy"]["ci95"][0]),
                               min(1.0, out["efficacy"]["ci95"][1])]
    out["uncertainty_notes"] = (
        ["non-identifiable parameters enter with the population spread of cohort.EPR_VARIABILITY"]
        + ([f"excluded from the interval (no population spread known): {', '.join(excluded)}"]
           if excluded else []))
    return out


def report(scenario: Scenario, obs: Observations, result: Fit, prediction: dict | None) -> dict:
    """JSON-ready calibration report."""
    sd = result.sd_ln
    k = len(result.paths)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(np.diag(result.covariance))
        corr = result.covariance / np.outer(s, s)
    clean = lambda x: None if not np.isfinite(x) else float(x)  # noqa: E731
    return {
        "scenario": scenario.name, "observations": obs.source, "quantity": obs.quantity,
        "times_h": obs.times_h.tolist(), "observed": obs.values.tolist(),
        "observed_sd": None if obs.sd is None else obs.sd.tolist(),
        "fitted": result.fitted.tolist(), "initial_model": result.initial_model.tolist(),
        "parameters": {p: {
            "value": result.values[p], "initial": result.initial[p],
            "sd_ln": clean(sd[p]),
            "ci95": ([result.values[p] * math.exp(-1.96 * sd[p]),
                      result.values[p] * math.exp(1.96 * sd[p])] if np.isfinite(sd[p])
                     else None),
            "identifiable": result.identifiable[p]} for p in result.paths},
        "correlation": [[clean(corr[i, j]) for j in range(k)] for i in range(k)],
        "warnings": result.warnings,
        "chi2": result.chi2, "noise_variance": result.sigma2,
        "noise": "given (observed_sd)" if obs.sd is not None else "estimated from residuals",
        "iterations": result.iterations, "converged": result.converged,
        "history": result.history,
        **({"prediction": prediction} if prediction is not None else {}),
    }
