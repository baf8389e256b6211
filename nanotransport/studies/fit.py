"""Fit scenario parameters to a tidy study (``observations``): weighted least squares on
log-transformed parameters with the Jacobian from forward-mode AD (docs/manuals/fit.md).

Model: ``model.organs.predict(scenario, times_s, tissue_index, analyte_index) → (mol/m³,
dose_mol)``, or any function with that signature (``model=``).  The prediction is converted
into each row's own unit (so %ID follows a fitted dose), u_i(θ), with p = p₀·exp(θ), p₀ the
scenario's values, θ within the fields' ranges (``calibrate._log_bounds``).

Residuals r_i (``ERROR_MODELS``), s_i = sd_i/√n_i where the row gives an sd:

* ``log`` (default): r_i = (ln u_i − ln y_i)/σ_i, σ_i = √ln(1 + (s_i/y_i)²) (the log-normal
  σ with that coefficient of variation); without sd, σ_i = 1 and a common σ is estimated;
* ``proportional``: r_i = (u_i − y_i)/σ_i, σ_i = s_i, without sd σ_i = y_i (a common CV is
  estimated);
* ``additive``: r_i = (u_i − y_i)/σ_i, σ_i = s_i, without sd 1 (a common sd is estimated).

Either every row gives an sd (σ known: scale 1) or none does (scale σ̂² = χ²/(n − k)); a mix is
refused.  Covariance of θ: σ̂²(JᵀJ)⁻¹ with identifiability checks (``calibrate._covariance``);
95 % Wald intervals p·exp(±1.96 sd); profile-likelihood intervals where the profile
Δχ²/σ̂² (the others re-optimized) crosses χ²₁(0.95) = 3.84 (``profile``).  Goodness of fit:
AAFE = 10^mean|log10(u/y)| overall and per tissue/analyte, share within 2-fold.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..engine import units
from ..model.scenario import Scenario, ScenarioError
from . import observations as obsmod
from .calibrate import ObservationError, _covariance, _log_bounds, check_parameters

ERROR_MODELS = ("log", "proportional", "additive")
CHI2_95 = 3.841458820694124  # χ²₁ quantile 0.95
Z95 = 1.959963984540054
PROFILE_STEPS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.5, 7.5, 10.0, 14.0, 20.0)  # × step


def _default_model():
    from ..model import organs

    return organs.predict


class Problem:
    """The model at the observation rows, θ ↦ (u(θ) in the rows' units, ∂u/∂θ), compiled once;
    ``with_values`` swaps the data without recompiling (synthetic data, repeated seeds)."""

    def __init__(self, scenario: Scenario, obs: obsmod.Observations, names, model=None,
                 error_model: str = "log"):
        import jax
        import jax.numpy as jnp

        from . import design

        if error_model not in ERROR_MODELS:
            raise ScenarioError(f"--error-model {error_model!r}; allowed: "
                                f"{', '.join(ERROR_MODELS)}")
        self.scenario, self.obs, self.error_model = scenario, obs, error_model
        self.paths = check_parameters(names, flag="--param")
        if model is None and scenario.get("patient.systemic_model", "organs") != "organs":
            raise ScenarioError("patient.systemic_model = 'compartments' has no organs to "
                                "compare with tissue data; allowed: 'organs' (--set "
                                "patient.systemic_model=organs)")
        self.model = model or _default_model()
        self.lo, self.hi = _log_bounds(scenario, self.paths)
        self.p0 = np.asarray([float(scenario[p]) for p in self.paths])
        a, b = obs.factors()
        # concrete (numpy) row arrays: the model may branch on the indices (organs: tumor rows)
        args = (np.asarray(obs.times_s, float), obs.tissue_index, obs.analyte_index)
        paths, p0, model_ = self.paths, jnp.asarray(self.p0), self.model

        def scen(theta):
            return dataclasses.replace(scenario, params={
                **scenario.params, **{p: p0[i] * jnp.exp(theta[i]) for i, p in enumerate(paths)}})

        def in_units(theta):  # prediction in each row's unit
            c, dose = model_(scen(theta), *args)
            return c / (jnp.asarray(a) + jnp.asarray(b) * dose)

        self.scenario_at = scen
        self.predict = jax.jit(in_units)
        self.predict_and_jacobian = jax.jit(design.value_and_jacfwd(in_units))
        self._check_data()

    def with_values(self, values, sd=None) -> "Problem":
        new = object.__new__(Problem)
        new.__dict__.update(self.__dict__)
        new.obs = self.obs.with_values(values, sd)
        new._check_data()
        return new

    def _check_data(self):
        obs, k = self.obs, len(self.paths)
        t_end = float(self.scenario["numerics.t_end_h"])
        late = obs.time_h > t_end
        if late.any():
            raise ObservationError([f"{obs.path}: " + "; ".join(
                f"line {ln}: time_h = {t:g}: allowed: times within the run, <= "
                f"numerics.t_end_h = {t_end:g} h" for ln, t in zip(obs.line[late],
                                                                   obs.time_h[late]))])
        has_sd = np.isfinite(obs.sd)
        if has_sd.any() and not has_sd.all():
            lines = ", ".join(str(x) for x in obs.line[~has_sd][:20])
            raise ObservationError([f"{obs.path}: some rows give an sd and some do not (no sd "
                                    f"on line(s) {lines}); allowed: an sd on every row (known "
                                    "noise) or on none (a common noise level is estimated)"])
        self.known_sigma = bool(has_sd.all())
        if not self.known_sigma and len(obs) <= k:
            raise ObservationError([f"{obs.path}: {len(obs)} observation(s) for {k} "
                                    "parameter(s) and no sd: the noise cannot be estimated; "
                                    "allowed: more rows than fitted parameters, or an sd column"])
        if self.error_model == "log" or (self.error_model == "proportional"
                                         and not self.known_sigma):
            zero = obs.value <= 0
            if zero.any():
                raise ObservationError([f"{obs.path}: value = 0 on line(s) "
                                        f"{', '.join(str(x) for x in obs.line[zero][:20])}: the "
                                        f"{self.error_model} error model needs values > 0; "
                                        "allowed: drop the rows (below the limit of "
                                        "quantification) or use --error-model additive"])
        se = obs.standard_error()
        y = obs.value
        if self.error_model == "log":
            self.sigma = (np.sqrt(np.log1p((se / y) ** 2)) if self.known_sigma
                          else np.ones(len(obs)))
        elif self.error_model == "proportional":
            self.sigma = se if self.known_sigma else y.copy()
        else:
            self.sigma = se if self.known_sigma else np.ones(len(obs))

    def residuals(self, u, jac=None):
        """(r, ∂r/∂θ) from the prediction u (and its Jacobian)."""
        y = self.obs.value
        if self.error_model == "log":
            r = (np.log(u) - np.log(y)) / self.sigma
            jr = None if jac is None else jac / (u * self.sigma)[:, None]
        else:
            r = (u - y) / self.sigma
            jr = None if jac is None else jac / self.sigma[:, None]
        return r, jr

    def evaluate(self, theta):
        u, jac = (np.asarray(x, float) for x in self.predict_and_jacobian(
            np.asarray(theta, float)))
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(jac))):
            raise ObservationError([f"the model returned non-finite values at "
                                    f"{dict(zip(self.paths, self.p0 * np.exp(theta)))}"])
        if self.error_model == "log" and np.any(u <= 0):
            bad = self.obs.line[u <= 0]
            raise ObservationError([f"the model predicts 0 on line(s) "
                                    f"{', '.join(str(x) for x in bad[:20])} (e.g. at time 0): "
                                    "the log error model needs a positive prediction; allowed: "
                                    "drop those rows or use --error-model additive"])
        r, jr = self.residuals(u, jac)
        return u, r, jr

    def least_squares(self, theta0, fixed=None, max_nfev=100):
        """Minimize χ² over θ (the entries in ``fixed``, {index: value}, held).  Returns (θ,
        χ², scipy result)."""
        from scipy.optimize import least_squares

        fixed = fixed or {}
        free = [i for i in range(len(self.paths)) if i not in fixed]
        cache = {}

        def full(x):
            t = np.array(theta0, float)
            t[free] = x
            for i, v in fixed.items():
                t[i] = v
            return t

        def ev(x):
            key = np.asarray(x, float).tobytes()
            if cache.get("key") != key:
                u, r, jr = self.evaluate(full(x))
                cache.update(key=key, r=r, jr=jr)
            return cache

        if not free:
            t = full(np.zeros(0))
            r = ev(np.zeros(0))["r"]
            return t, float(r @ r), None
        x0 = np.clip(np.asarray(theta0, float)[free], self.lo[free], self.hi[free])
        res = least_squares(lambda x: ev(x)["r"], x0, jac=lambda x: ev(x)["jr"][:, free],
                            bounds=(self.lo[free], self.hi[free]), method="trf", ftol=1e-10,
                            xtol=1e-10, gtol=1e-10, max_nfev=max_nfev)
        t = full(res.x)
        r = ev(res.x)["r"]
        return t, float(r @ r), res


@dataclasses.dataclass
class FitResult:
    paths: list
    theta: np.ndarray
    values: dict
    initial: dict
    covariance: np.ndarray
    sd_ln: dict
    wald: dict  # {path: [lo, hi] or None}
    profile: dict  # {path: {"ci": [lo|None, hi|None], "theta": [...], "delta_chi2": [...]}}
    identifiable: dict
    warnings: list
    chi2: float
    sigma2: float
    dof: int
    converged: bool
    nfev: int
    predicted: np.ndarray  # in the rows' units
    residuals: np.ndarray
    dose_mol: float
    error_model: str
    known_sigma: bool


def fit(scenario: Scenario, obs: obsmod.Observations, names, model=None,
        error_model: str = "log", profile: bool = True, problem: Problem | None = None,
        max_nfev: int = 200) -> FitResult:
    """Fit ``names`` (dotted paths or unique bare names) to ``obs``; see the module doc."""
    prob = problem or Problem(scenario, obs, names, model, error_model)
    k, n = len(prob.paths), len(prob.obs)
    theta, chi2, res = prob.least_squares(np.zeros(k), max_nfev=max_nfev)
    u, r, jr = prob.evaluate(theta)
    dof = n - k
    sigma2 = 1.0 if prob.known_sigma else chi2 / dof
    cov, warnings, flags = _covariance(jr, sigma2, prob.paths)
    sd = np.sqrt(np.diag(cov))
    values = {p: float(prob.p0[i] * math.exp(theta[i])) for i, p in enumerate(prob.paths)}
    wald = {p: ([values[p] * math.exp(-Z95 * sd[i]), values[p] * math.exp(Z95 * sd[i])]
                if np.isfinite(sd[i]) and Z95 * sd[i] < 300 else None)
            for i, p in enumerate(prob.paths)}
    prof = {}
    if profile:
        for i, p in enumerate(prob.paths):
            prof[p] = profile_parameter(prob, theta, chi2, sigma2, i, sd[i])
            pr = prof[p]
            if pr["open"] == ["lower", "upper"]:
                warnings.append(f"{p}: profile likelihood flat: Δχ² stays below "
                                f"{CHI2_95:.2f} over the scanned range (not identifiable)")
            elif pr["open"]:
                warnings.append(f"{p}: profile likelihood open-ended on the {pr['open'][0]} "
                                "side: no finite 95 % bound there")
            if pr["open"]:
                flags[p] = False
            if pr.get("better") is not None:
                warnings.append(f"{p}: the profile found a lower χ² ({pr['better']:.6g} < "
                                f"{chi2:.6g}): the fit may be a local minimum")
    dose = _dose(prob, theta)
    return FitResult(prob.paths, theta, values, dict(zip(prob.paths, prob.p0.tolist())), cov,
                     {p: float(sd[i]) for i, p in enumerate(prob.paths)}, wald, prof, flags,
                     warnings, chi2, float(sigma2), dof,
                     bool(res is None or res.status > 0), int(0 if res is None else res.nfev),
                     u, r, dose, prob.error_model, prob.known_sigma)


def _dose(prob: Problem, theta) -> float:
    import jax.numpy as jnp

    _, dose = prob.model(prob.scenario_at(jnp.asarray(theta)), np.zeros(1),
                         np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.int32))
    return float(dose)


def profile_parameter(prob: Problem, theta, chi2, sigma2, i, sd_i) -> dict:
    """Profile likelihood of parameter i: Δχ²(θ_i)/σ̂² with the others re-optimized, walked out
    from the optimum in steps of ~sd/2 until it exceeds 3.84 (then the crossing is found by
    Brent's method) or the parameter's range ends ("open")."""
    from scipy.optimize import brentq

    step = min(max(sd_i if np.isfinite(sd_i) else 1.0, 0.05), 1.0)
    grid_t, grid_d, ci, opened = [float(theta[i])], [0.0], [None, None], []
    better = None
    for side, sign in (("lower", -1.0), ("upper", 1.0)):
        bound = prob.lo[i] if sign < 0 else prob.hi[i]
        start, prev_t = np.array(theta, float), float(theta[i])
        found = False

        def delta(t, warm):
            nonlocal better
            th, c, _ = prob.least_squares(warm, fixed={i: t})
            if c < chi2 - 1e-6 * max(chi2, 1.0):
                better = c if better is None else min(better, c)
            return th, (c - chi2) / sigma2

        for m in PROFILE_STEPS:
            t = float(theta[i] + sign * m * step)
            at_bound = (t <= bound) if sign < 0 else (t >= bound)
            t = float(bound) if at_bound else t
            th, d = delta(t, start)
            grid_t.append(t)
            grid_d.append(d)
            if d >= CHI2_95:
                warm = start
                root = brentq(lambda x: delta(x, warm)[1] - CHI2_95, prev_t, t,
                              xtol=1e-4, rtol=1e-8, maxiter=40)
                ci[0 if sign < 0 else 1] = float(prob.p0[i] * math.exp(root))
                found = True
                break
            start, prev_t = th, t
            if at_bound:
                break
        if not found:
            opened.append(side)
    order = np.argsort(grid_t)
    return {"ci": ci, "open": opened, "better": better,
            "theta": [grid_t[j] for j in order], "delta_chi2": [grid_d[j] for j in order],
            "values": [float(prob.p0[i] * math.exp(grid_t[j])) for j in order]}


# ------------------------------------------------------------------ goodness of fit
def aafe(predicted, observed) -> dict:
    """AAFE = 10^mean|log10(pred/obs)|, share within 2-fold, rows used (both > 0)."""
    u, y = np.asarray(predicted, float), np.asarray(observed, float)
    ok = (u > 0) & (y > 0)
    if not ok.any():
        return {"aafe": None, "within_2_fold": None, "n": 0}
    e = np.abs(np.log10(u[ok] / y[ok]))
    return {"aafe": float(10 ** e.mean()), "within_2_fold": float(np.mean(e <= math.log10(2))),
            "n": int(ok.sum())}


def goodness(obs: obsmod.Observations, predicted) -> dict:
    out = {"overall": aafe(predicted, obs.value), "by_group": {}}
    for t, a in obs.groups():
        m = (obs.tissue == t) & (obs.analyte == a)
        out["by_group"][f"{t}/{a}"] = aafe(np.asarray(predicted)[m], obs.value[m])
    return out


# ------------------------------------------------------------------ checks and reports
def jacobian_check(prob: Problem, theta=None, h: float = 1e-5) -> dict:
    """The AD Jacobian of the predictions ∂u/∂θ against central finite differences (step h in
    θ = ln p): {"ad", "fd", "max_rel_error"} (relative to the largest |entry| of each
    column)."""
    k = len(prob.paths)
    theta = np.zeros(k) if theta is None else np.asarray(theta, float)
    _, jad = (np.asarray(x, float) for x in prob.predict_and_jacobian(theta))
    jfd = np.empty_like(jad)
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        jfd[:, j] = (np.asarray(prob.predict(theta + e)) - np.asarray(prob.predict(theta - e))
                     ) / (2 * h)
    scale = np.maximum(np.abs(jad).max(axis=0), 1e-300)
    return {"ad": jad, "fd": jfd, "max_rel_error": float(np.max(np.abs(jad - jfd) / scale))}


def fitted_scenario(scenario: Scenario, result: FitResult) -> Scenario:
    """The scenario with the fitted values (what ``fitted.toml`` holds)."""
    return scenario.replace(**result.values)


def curves(scenario: Scenario, obs: obsmod.Observations, model=None, points: int = 200,
           dose_mol: float | None = None) -> dict:
    """Model time courses of every (tissue, analyte) with data, in the unit of its first row,
    on 0..max(observed time, t_end) ({"tissue/analyte": {"time_h", "value", "unit"}})."""

    model = model or _default_model()
    groups = obs.groups()
    t_end = float(scenario["numerics.t_end_h"])
    t = np.linspace(0.0, max(t_end, float(obs.time_h.max())), points)
    ti = np.repeat([obsmod.TISSUES.index(g[0]) for g in groups], points)
    ai = np.repeat([obsmod.ANALYTES.index(g[1]) for g in groups], points)
    c, dose = model(scenario, np.tile(t, len(groups)) * units.HOUR, ti.astype(np.int32),
                    ai.astype(np.int32))
    c, dose = np.asarray(c, float).reshape(len(groups), points), float(dose)
    out = {}
    for j, (tis, an) in enumerate(groups):
        m = (obs.tissue == tis) & (obs.analyte == an)
        unit = obs.unit[m][0]
        a, b = obsmod.UNITS[unit]
        out[f"{tis}/{an}"] = {"time_h": t.tolist(), "value": (c[j] / (a + b * dose)).tolist(),
                              "unit": unit}
    return out


def report(scenario: Scenario, obs: obsmod.Observations, result: FitResult) -> dict:
    """JSON-ready report (``fit.json``)."""
    k = len(result.paths)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(np.diag(result.covariance))
        corr = result.covariance / np.outer(s, s)
    clean = lambda x: None if x is None or not np.isfinite(x) else float(x)  # noqa: E731
    conv = lambda v: obs.to_mol_per_m3(result.dose_mol, v)  # noqa: E731
    rows = [{"line": int(obs.line[i]), "time_h": float(obs.time_h[i]),
             "tissue": obs.tissue[i], "analyte": obs.analyte[i], "unit": obs.unit[i],
             "subject": obs.subject[i] or None, "observed": float(obs.value[i]),
             "sd": clean(obs.sd[i]), "n": int(obs.n[i]),
             "predicted": float(result.predicted[i]), "residual": float(result.residuals[i]),
             "observed_mol_per_m3": float(conv(obs.value)[i]),
             "predicted_mol_per_m3": float(conv(result.predicted)[i])}
            for i in range(len(obs))]
    params = {}
    for i, p in enumerate(result.paths):
        pr = result.profile.get(p)
        params[p] = {
            "value": result.values[p], "initial": result.initial[p],
            "sd_ln": clean(result.sd_ln[p]), "ci95_wald": result.wald[p],
            "ci95_profile": None if pr is None else pr["ci"],
            "profile_open": None if pr is None else pr["open"],
            "identifiable": bool(result.identifiable[p])}
    return {
        "scenario": scenario.name, "data": obs.path, "source": obs.source,
        "error_model": result.error_model,
        "noise": "given (sd column)" if result.known_sigma else "estimated from residuals",
        "parameters": params,
        "correlation": [[clean(corr[i, j]) for j in range(k)] for i in range(k)],
        "warnings": result.warnings,
        "chi2": result.chi2, "dof": result.dof, "noise_scale": result.sigma2,
        "converged": result.converged, "function_evaluations": result.nfev,
        "dose_mol": result.dose_mol,
        "goodness_of_fit": goodness(obs, result.predicted),
        "profiles": {p: {"value": pr["values"], "theta": pr["theta"],
                         "delta_chi2": pr["delta_chi2"]} for p, pr in result.profile.items()},
        "rows": rows,
    }
