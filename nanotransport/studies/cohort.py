"""Virtual-cohort patient pre-selection by imaging of the carrier (docs/model.md §9).

Question: does an image of the labelled carrier, taken after a small imaging dose, pick out the
patients whose tumors will respond to the therapeutic dose?  Each virtual patient is the
scenario's tumor with its EPR parameters drawn from a multivariate log-normal distribution
(medians = the scenario's values, spreads and correlations in ``EPR_VARIABILITY`` and
``EPR_CORRELATIONS``); every patient is simulated twice with the batched scan machinery
(``scan_exec``; the command runs them as resumable folders, same seed so the same patients):

* imaging: the same formulation at ``imaging_dose_fraction`` of the dose, no heating, read at
  ``imaging_time_h`` (tumor ROI of the PSF-blurred image, ``imaging.py``);
* therapy: the scenario as given (efficacy = 1 − mean surviving fraction).

Report: Spearman rank correlation between the imaging readout and efficacy (with a bootstrap
95 % interval); responders (efficacy ≥ threshold; default the cohort median) classified by
the readout: ROC curve and its area (AUC = P(readout of a responder > that of a
non-responder), the Mann-Whitney statistic); the readout threshold that selects a given
fraction of patients, and the outcome of treating only them (mean efficacy and responder rate,
selected vs all).
"""
from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np

from . import scan_exec
from .scan_result import scalar_variables
from .scan_spec import ScanError, ScanSpec, batchable_path, make_spec
from ..model.scenario import Scenario

# (path, σ of ln, why).  Spreads are modelling choices informed by the ranges cited; the
# cohort's uptake spread is checked against imaging studies in experiments/.
EPR_VARIABILITY = (
    ("tissue.tumor.vessel_surface_density_per_cm", 0.5,
     "vascular density varies 2-3× within and between tumor types (Jain 1988 Cancer Res "
     "48:2641) (verify)"),
    ("tissue.tumor.pore_radius_nm", 0.6,
     "pore cutoffs 200 nm-1.2 µm across tumor models (Hobbs et al. 1998 PNAS 95:4607)"),
    ("tissue.tumor.carrier_permeability_scale_per_m", 1.0,
     "vessel permeability to liposomes differs ~10× between tumor lines (Yuan et al. 1995 "
     "Cancer Res 55:3752) and ⁶⁴Cu-liposome uptake >35× between lesions (Lee et al. 2017 Clin "
     "Cancer Res 23:4190); the diffusive pore area, the leakiness that defines EPR (verify)"),
    ("tissue.tumor.vessel_hydraulic_conductivity_cm_per_mmhg_s", 0.7,
     "L_p of tumor vessels spans an order of magnitude (Baxter & Jain 1989; Jain 1987) "
     "(verify)"),
    ("tissue.tumor.interstitial_hydraulic_conductivity_cm2_per_mmhg_s", 0.7,
     "K varies with collagen content over ~1 decade (Netti et al. 2000 Cancer Res 60:2497) "
     "(verify)"),
    ("tissue.tumor.perfusion_ml_per_ml_min", 0.5,
     "tumor blood flow 0.1-0.5 mL/(mL·min) and more across human tumors (Vaupel et al. 1989 "
     "Cancer Res 49:6449)"),
)
# correlations of the logarithms (Gaussian copula), with the physical reason
EPR_CORRELATIONS = (
    ("tissue.tumor.pore_radius_nm", "tissue.tumor.vessel_hydraulic_conductivity_cm_per_mmhg_s",
     0.7, "wall hydraulic conductivity grows with pore size (Poiseuille flow in pores, L_p ∝ "
     "r²·pore area; Jain 2005 Science 307:58: leaky vessels have large pores and high L_p)"),
    ("tissue.tumor.carrier_permeability_scale_per_m",
     "tissue.tumor.vessel_hydraulic_conductivity_cm_per_mmhg_s", 0.5,
     "more pore area per wall area conducts more fluid as well as more particles (both scale "
     "with the open wall fraction)"),
    ("tissue.tumor.vessel_surface_density_per_cm", "tissue.tumor.perfusion_ml_per_ml_min",
     0.5, "denser vasculature carries more blood flow (Vaupel et al. 1989)"),
)
READOUTS = ("tumor_pct_id_per_g", "tumor_to_reference", "tumor_kbq_per_ml")


@dataclasses.dataclass
class CohortSettings:
    """What to simulate and how to read it."""

    patients: int = 256
    seed: int = 0
    imaging_time_h: float = 24.0
    imaging_dose_fraction: float = 0.05
    readout: str = "tumor_pct_id_per_g"
    responder_efficacy: float | None = None  # None: the cohort median
    select_fraction: float = 0.5
    spreads: dict = dataclasses.field(default_factory=dict)  # {path or name: σ of ln}

    def check(self) -> None:
        errors = []
        if not isinstance(self.patients, int) or self.patients < 4:
            errors.append(f"--patients {self.patients}: allowed: an integer >= 4")
        if not (0.0 < self.imaging_time_h <= 2000.0):
            errors.append(f"--imaging-time-h {self.imaging_time_h:g}: allowed: a number in "
                          "(0, 2000] h")
        if not (0.0 < self.imaging_dose_fraction <= 1.0):
            errors.append(f"--imaging-dose-fraction {self.imaging_dose_fraction:g}: allowed: "
                          "a number in (0, 1] (share of the therapeutic dose)")
        if self.readout not in READOUTS:
            errors.append(f"--readout {self.readout!r}: allowed: one of "
                          + ", ".join(READOUTS))
        if self.responder_efficacy is not None and not (0.0 < self.responder_efficacy < 1.0):
            errors.append(f"--responder-efficacy {self.responder_efficacy:g}: allowed: a "
                          "number in (0, 1)")
        if not (0.0 < self.select_fraction < 1.0):
            errors.append(f"--select-fraction {self.select_fraction:g}: allowed: a number in "
                          "(0, 1)")
        for name, sd in self.spreads.items():
            if not (isinstance(sd, (int, float)) and math.isfinite(sd) and 0.0 <= sd <= 3.0):
                errors.append(f"--spread {name}={sd}: allowed: σ of ln in [0, 3]")
        if errors:
            raise ScanError("; ".join(errors))


def distributions(scenario: Scenario, spreads: dict | None = None) -> tuple[dict, dict]:
    """({path: "lognormal(median, σ)"}, {(path_a, path_b): ρ}) of the EPR parameters, medians
    from the scenario; ``spreads`` overrides σ by path or bare name (0 drops the parameter)."""
    sd = {p: s for p, s, _ in EPR_VARIABILITY}
    for name, value in (spreads or {}).items():
        path = batchable_path(name, "--spread")
        if path not in sd:
            raise ScanError(f"--spread {name}: not an EPR parameter of the cohort; allowed: "
                            + ", ".join(p for p, _, _ in EPR_VARIABILITY))
        sd[path] = float(value)
    samples = {p: f"lognormal({float(scenario[p])!r}, {s!r})" for p, s in sd.items() if s > 0}
    corr = {(a, b): r for a, b, r, _ in EPR_CORRELATIONS if a in samples and b in samples}
    if not samples:
        raise ScanError("--spread: every EPR spread is 0; nothing varies between patients")
    return samples, corr


def imaging_scenario(scenario: Scenario, settings: CohortSettings) -> Scenario:
    """The imaging study: same formulation and patient, a fraction of the dose, no heating,
    saved up to the imaging time."""
    t = float(settings.imaging_time_h)
    f = float(settings.imaging_dose_fraction)
    s = scenario.replace(**{
        "dose.dose_mg_per_m2": float(scenario["dose.dose_mg_per_m2"]) * f,
        "dose.dose_mg_per_kg": float(scenario["dose.dose_mg_per_kg"]) * f,
        "heating.source": "none",
        "numerics.t_end_h": t,
        "numerics.save_times_h": [0.0, t],
    })
    return dataclasses.replace(s, description=f"imaging study of {scenario.name}: {100 * f:g}% "
                                              f"of the dose, image at {t:g} h")


# ------------------------------------------------------------------ statistics
def roc_curve(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) selecting score ≥ threshold, thresholds from
    above the highest score down to the lowest (ties as one step)."""
    order = np.argsort(-score, kind="stable")
    s, y = score[order], positive[order].astype(float)
    last = np.r_[np.diff(s) != 0, True]  # end of each run of tied scores
    tp, fp = np.cumsum(y)[last], np.cumsum(1.0 - y)[last]
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """AUC = U / (n₊ n₋), U the Mann-Whitney statistic of the positives' scores (ties ½)."""
    from scipy import stats

    pos, neg = score[positive], score[~positive]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
                 / (pos.size * neg.size))


def _bootstrap(fn, n: int, seed: int, reps: int = 1000) -> list:
    """95 % percentile interval of ``fn(indices)`` over bootstrap resamples."""
    rng = np.random.default_rng(seed)
    vals = np.array([fn(rng.integers(0, n, n)) for _ in range(reps)])
    vals = vals[np.isfinite(vals)]
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))] if vals.size \
        else [float("nan")] * 2


def analyse(readout: np.ndarray, efficacy: np.ndarray, settings: CohortSettings) -> dict:
    """Everything the report says about how well ``readout`` predicts ``efficacy``."""
    from scipy import stats

    n = readout.size
    threshold = (float(np.median(efficacy)) if settings.responder_efficacy is None
                 else float(settings.responder_efficacy))
    responders = efficacy >= threshold
    rho = float(stats.spearmanr(readout, efficacy).statistic)
    fpr, tpr = roc_curve(readout, responders)
    auc = roc_auc(readout, responders)

    def selection(fraction):
        cut = float(np.quantile(readout, 1.0 - fraction))
        sel = readout >= cut
        rest = ~sel
        return {
            "select_fraction": fraction, "readout_threshold": cut,
            "patients_selected": int(sel.sum()),
            "mean_efficacy_selected": float(efficacy[sel].mean()),
            "mean_efficacy_not_selected": float(efficacy[rest].mean()) if rest.any()
            else float("nan"),
            "mean_efficacy_all": float(efficacy.mean()),
            "efficacy_gain": float(efficacy[sel].mean() - efficacy.mean()),
            "responder_rate_selected": float(responders[sel].mean()),
            "responder_rate_all": float(responders.mean()),
            "responders_missed": int((responders & rest).sum()),
        }

    fractions = sorted({0.25, 0.5, 0.75, float(settings.select_fraction)})
    return {
        "patients": int(n),
        "responder_efficacy_threshold": threshold,
        "responder_threshold_rule": "cohort median" if settings.responder_efficacy is None
        else "given",
        "responders": int(responders.sum()),
        "spearman_rho": rho,
        "spearman_rho_ci95": _bootstrap(
            lambda i: stats.spearmanr(readout[i], efficacy[i]).statistic, n, settings.seed),
        "spearman_p_value": float(stats.spearmanr(readout, efficacy).pvalue),
        "roc_auc": auc,
        "roc_auc_ci95": _bootstrap(lambda i: roc_auc(readout[i], responders[i]), n,
                                   settings.seed + 1),
        "roc_curve": {"false_positive_rate": fpr.tolist(), "true_positive_rate": tpr.tolist()},
        "selection": selection(float(settings.select_fraction)),
        "selection_table": [selection(f) for f in fractions],
    }


# ------------------------------------------------------------------ the study
def in_memory_scan(chunk: int | None = None, progress: bool = True):
    """The cohort's default scan runner: ``scan(scenario, spec, part) -> Dataset`` in memory
    (``scan_exec``); ``part`` ("imaging" or "therapy") names the scan."""
    def scan(scenario: Scenario, spec: ScanSpec, part: str):
        scenario, points = scan_exec.prepare(scenario, spec, chunk)
        ds, stats = scan_exec.run(scenario, spec, points, None, chunk, progress)
        if progress:
            print(stats.line(), file=sys.stderr)
        return ds

    return scan


def run_cohort(scenario: Scenario, settings: CohortSettings, chunk: int | None = None,
               progress: bool = True, scan=None):
    """Simulate the cohort (imaging and therapy) and analyse it.

    Returns (report dict, xarray Dataset with one row per patient: EPR parameters, imaging
    readouts at the imaging time, efficacy and the other therapy metrics).  ``scan(scenario,
    spec, part) -> Dataset`` runs each of the two scans (default: ``in_memory_scan``; the
    ``cohort`` command passes one that keeps them as resumable folders ``DIR/imaging`` and
    ``DIR/therapy``).  Float64 scenarios need ``jax.config.update("jax_enable_x64", True)``
    first.
    """
    import xarray as xr

    settings.check()
    samples, corr = distributions(scenario, settings.spreads)
    img_scenario = imaging_scenario(scenario, settings)
    scan = scan or in_memory_scan(chunk, progress)
    spec = make_spec(samples=samples, n_samples=settings.patients, seed=settings.seed,
                     sampler="random", correlation=corr)
    img = scan(img_scenario, spec, "imaging")
    ther = scan(scenario, spec, "therapy")
    readout_name = f"imaging_{settings.readout}"
    readout = np.asarray(img[readout_name].isel(time=-1).values)
    efficacy = np.asarray(ther["efficacy"].values)
    report = analyse(readout, efficacy, settings)
    report = {
        "scenario": scenario.name, "description": scenario.description,
        "readout": readout_name, "readout_units": img[readout_name].attrs.get("units", ""),
        "imaging": {"time_h": settings.imaging_time_h,
                    "dose_fraction": settings.imaging_dose_fraction,
                    "label": scenario["imaging.label"],
                    "psf_fwhm_mm": float(scenario["imaging.psf_fwhm_mm"])},
        "variability": [{"parameter": p, "median": float(scenario[p]),
                         "log_sd": float(samples[p].split(",")[1].rstrip(")")), "source": why}
                        for p, _, why in EPR_VARIABILITY if p in samples],
        "correlations": [{"parameters": [a, b], "rho": r, "reason": why}
                         for a, b, r, why in EPR_CORRELATIONS if (a, b) in corr],
        "seed": settings.seed,
        **report,
    }
    data = {"readout": ("sample", readout, {"long_name": readout_name,
                                            "units": report["readout_units"]}),
            "imaging_tumor_to_reference": ("sample", np.asarray(
                img["imaging_tumor_to_reference"].isel(time=-1).values)),
            "selected": ("sample", (readout >= report["selection"]["readout_threshold"])
                         .astype(np.int8)),
            "responder": ("sample", (efficacy >= report["responder_efficacy_threshold"])
                          .astype(np.int8))}
    for k in scalar_variables(ther):
        data[k] = ("sample", np.asarray(ther[k].values), dict(ther[k].attrs))
    coords = {c: ther[c] for c in ther.coords if ther[c].dims == ("sample",)}
    ds = xr.Dataset(data, coords=coords, attrs={"title": "nanotransport virtual cohort"})
    return report, ds


def summary_lines(report: dict) -> list[str]:
    s = report["selection"]
    lo, hi = report["spearman_rho_ci95"]
    alo, ahi = report["roc_auc_ci95"]
    return [
        f"cohort: {report['patients']} patients of {report['scenario']}, readout "
        f"{report['readout']} at {report['imaging']['time_h']:g} h",
        f"  Spearman ρ(readout, efficacy)   {report['spearman_rho']:.3f} (95% CI {lo:.3f} to "
        f"{hi:.3f})",
        f"  responders (efficacy ≥ {report['responder_efficacy_threshold']:.3g}, "
        f"{report['responder_threshold_rule']}): {report['responders']}",
        f"  ROC AUC                         {report['roc_auc']:.3f} (95% CI {alo:.3f} to "
        f"{ahi:.3f})",
        f"  select top {100 * s['select_fraction']:g}% (readout ≥ {s['readout_threshold']:.4g}):"
        f" mean efficacy {s['mean_efficacy_selected']:.3f} vs {s['mean_efficacy_all']:.3f} for "
        f"all (gain {s['efficacy_gain']:+.3f}); responder rate "
        f"{s['responder_rate_selected']:.2f} vs {s['responder_rate_all']:.2f}",
    ]
