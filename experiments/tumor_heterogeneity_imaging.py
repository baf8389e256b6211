"""Tumor heterogeneity and imaging: delivery across tumor types and patients, and imaging-based pre-selection.

Question: how much does delivery of PEG-liposomal doxorubicin differ between tumor types and
between patients, what would a scan of the labelled carrier show of it, and can such a scan
(after a small imaging dose) pick out the patients whose tumors will respond to the therapeutic
dose?  Can a patient's tumor transport parameters be recovered from the time-activity curve of
the scan?

Settings (``doxil`` scenario: 90-nm PEG liposome, 50 mg/m² over 60 min, 1.8 m², a 10-mm-radius
tumor in a 5-mm shell of normal tissue, 72 h; label ¹¹¹In, 185 MBq, SPECT-like isotropic PSF of
10 mm FWHM; image readouts are tumor-ROI means of the blurred, decay-corrected image; the
reference ROI is distant normal tissue):

1. Tumor types: the presets ``high-epr`` (400-nm pores, S_v 200 cm⁻¹), ``low-epr`` (60-nm
   pores, S_v 100 cm⁻¹, lower L_p and perfusion) and ``collagen-rich`` (200-nm pores, dense
   fibre matrix, 10× lower K): tumor ROI of the image (%ID/kg) and the carriers actually in the
   tumor (ideal scanner, every phase) at 24 and 72 h, %ID in the tumor, tumor-to-reference
   ratio, tumor drug AUC and efficacy.  The blood-pool share of the tumor signal is estimated
   from the systemic carrier concentration (``pk.simulate``) times the tumor plasma fraction
   φ_v = 0.07.  Full run only: the high-EPR tumor with a 25-mm radius (65 g), for the size
   dependence of %ID, %ID/kg and partial-volume loss.
2. Virtual cohort (``cohort.run_cohort``): patients whose tumor EPR parameters (vessel
   density, pore radius, wall permeability and conductivity, interstitial conductivity,
   perfusion) are log-normal around the high-EPR values, with the spreads and log-correlations
   of ``cohort.EPR_VARIABILITY`` and ``cohort.EPR_CORRELATIONS`` (listed with their sources in
   the JSON); imaging dose 5 % of the dose, image at 24 h (readout: tumor ROI %ID/g); therapy =
   the doxil dose; responders = efficacy ≥ the cohort median.  Reported: Spearman ρ (readout,
   efficacy), ROC AUC (both with bootstrap 95 % intervals), the efficacy gain of treating the
   top 25/50/75 % by readout.  Mechanism check: the same patients (same seed and normal
   scores) with the perfusion spread set to σ_ln = 1e-6, i.e. perfusion held at its median (a
   spread of exactly 0 would drop the parameter and redraw the other patients).  256 patients
   with the shipped numerics (100 cells, 10-min steps); ``--quick``: 32 patients.
3. Calibration: a synthetic patient (pore radius ×1.5 = 600 nm, everything else at the
   high-EPR values) scanned after the imaging dose at 1, 4, 8, 24, 48, 72 h; 5 % Gaussian noise
   (seeded) with its sd given.  Fitted back with ``calibrate.fit`` (least squares,
   forward-mode Jacobian) twice: pore radius and vessel surface density together (the tumor TAC
   determines only their combination: expect the identifiability warning) and pore radius alone
   (expect recovery); each followed by ``calibrate.predict`` (therapeutic efficacy with
   delta-method uncertainty), compared with the synthetic patient's true efficacy.

Numerics: every simulation that shares the scenario's structure (therapy of the cohorts, the
three presets, the synthetic patient's imaging and therapy) runs through one compiled batched
function (``scan.BatchRunner``; presets and doses differ only in numbers); the 24-h imaging
study of the cohort has its own.  ``--quick``: 30 cells, 30-min steps, 24 h (imaging and
therapy then share one structure; readouts at 24 h, not 72 h), a one-point TAC at 24 h, 32
patients, only the pore-radius fit with its prediction (each forward-mode Jacobian is a
separate compilation of ~20-30 s), and most XLA optimizations off
(``jax_disable_most_optimizations``: cheaper compilation, same results to the printed digits).

Literature compared with: Harrington et al. 2001 (Clin Cancer Res 7:243), ¹¹¹In-labelled PEG
liposomes imaged in patients: tumor uptake 0.5-3.5 %ID at 72 h; 33, 18 and 5 %ID/kg in
head-and-neck, lung and breast tumors.  Lee et al. 2017 (Clin Cancer Res
23:4190), ⁶⁴Cu-MM-302 (HER2-targeted liposomal doxorubicin) PET in metastatic breast cancer:
tumor deposition varied widely between patients and lesions, and high deposition was associated
with favourable treatment outcome (qualitative comparison only).

    python experiments/tumor_heterogeneity_imaging.py [--quick] [--out experiments/results]

Writes ``tumor_heterogeneity_imaging.json`` (tables, cohort reports, calibration reports,
literature comparison, settings, timings) and ``tumor_heterogeneity_imaging.png``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import _common as C
import numpy as np

from nanotransport import calibrate, cohort, pk, scan, simulate, units

PRESETS = ("high-epr", "low-epr", "collagen-rich")
HARRINGTON_PCT_ID_PER_KG = {"head-and-neck": 33.0, "lung": 18.0, "breast": 5.0}
HARRINGTON_PCT_ID = (0.5, 3.5)
PORE = "tissue.tumor.pore_radius_nm"
SV = "tissue.tumor.vessel_surface_density_per_cm"
PERFUSION = "tissue.tumor.perfusion_ml_per_ml_min"
TRUE_PORE_FACTOR = 1.5
NOISE = 0.05
IMAGING_DOSE_FRACTION = 0.05
FIXED_SPREAD = 1e-6  # σ_ln of perfusion in the mechanism check: held at its median
BIG_RADIUS_MM = 25.0

FULL_TIMES_H = [0.0, 1.0, 4.0, 8.0, 24.0, 48.0, 72.0]
QUICK = ["numerics.cells=30", "numerics.max_dt_min=30", "numerics.t_end_h=24",
         "numerics.save_times_h=[0, 24]"]


def base_scenario(quick: bool, preset: str = "high-epr", extra=()):
    over = list(QUICK) if quick else [f"numerics.save_times_h={FULL_TIMES_H}"]
    return C.load("doxil", over + [f"tumor_preset={preset}"] + list(extra))


def run_rows(scenario, paths, size, rows: list[dict]) -> dict:
    """Metrics of ``rows`` ({path: value} for the varied ``paths``) of ``scenario``, through a
    BatchRunner of ``size`` (the compiled function is shared by every scenario of one
    structure, whatever its other numbers)."""
    runner = scan.BatchRunner(scenario, paths, size)
    values = {p: np.asarray([float(r.get(p, scenario[p])) for r in rows]) for p in paths}
    out = {}
    for start in range(0, len(rows), runner.size):
        part = runner({p: v[start:start + runner.size] for p, v in values.items()})
        for k, v in part.items():
            out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def blood_pool_pct_id_per_g(scenario, times_h) -> np.ndarray:
    """Labelled carriers in the tumor's plasma volume: φ_v × systemic carrier concentration
    (no leak, so carrier particles), %ID/g at ``times_h``."""
    p, dose = simulate.systemic_parameters(scenario)
    pc = p.replace(k_leak_plasma=0.0)
    y = pk.simulate(pc, np.asarray(times_h) * units.HOUR, dose,
                    float(scenario["dose.infusion_duration_min"]) * units.MIN, True)
    conc = np.asarray(pk.plasma_concentrations(pc, y).encapsulated)  # mol/m³ of plasma
    phi_v = float(scenario["tissue.tumor.vascular_fraction"])
    return 100.0 * phi_v * conc / float(dose) / 1e6


def provenance() -> dict:
    """Commit of the checkout and whether the package had uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "nanotransport"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
        return {"commit": head or None, "package_modified": bool(dirty.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "package_modified": None}


def spearman(a, b) -> float:
    from scipy import stats

    return float(stats.spearmanr(a, b).statistic)


def cohort_extra(ds, report) -> dict:
    """Rank correlations of the sampled EPR parameters with the readout and with efficacy."""
    out = {}
    for p in report["variability"]:
        name = scan.dim_name(p["parameter"])
        x = np.asarray(ds[name].values)
        if np.ptp(np.log(x)) < 1e-3:
            continue
        out[p["parameter"]] = {"rho_readout": spearman(x, ds.readout.values),
                               "rho_efficacy": spearman(x, ds.efficacy.values),
                               "rho_tumor_drug_auc": spearman(x, ds.tumor_drug_auc_ug_h_per_g
                                                              .values)}
    return out


def short_cohort(report: dict) -> dict:
    keep = ("patients", "readout", "readout_units", "imaging", "responder_efficacy_threshold",
            "responders", "spearman_rho", "spearman_rho_ci95", "spearman_p_value", "roc_auc",
            "roc_auc_ci95", "roc_curve", "selection", "selection_table", "variability",
            "correlations", "seed")
    return {k: report[k] for k in keep if k in report}


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    t_start = time.perf_counter()
    quick = args.quick
    if quick:  # compilation dominates the smoke test; XLA's optimizations cost more than they save
        import jax

        jax.config.update("jax_disable_most_optimizations", True)
    out = Path(args.out)
    timings = {}
    origin = provenance()
    base = base_scenario(quick)
    times_h = simulate.save_times_h(base)
    t_end = float(times_h[-1])
    report_times = [t for t in (24.0, 72.0) if t <= t_end]
    samples, _ = cohort.distributions(base)
    paths = tuple(samples)  # the cohort's varied parameters, in the cohort scan's order
    chunk = 16 if quick else scan.auto_chunk(base)
    patients = 32 if quick else 256
    print(f"tumor_heterogeneity_imaging: {'quick' if quick else 'full'} run, saved times "
          f"{[float(t) for t in times_h]} h, {patients} patients, chunks of {chunk}", flush=True)

    # ------------------------------------------------------------ 1. tumor types
    t0 = time.perf_counter()
    preset_scn = {p: base_scenario(quick, p) for p in PRESETS}
    bp = {}
    per_preset = {}
    for preset in PRESETS:
        s = preset_scn[preset]
        m = run_rows(s, paths, chunk, [{}])
        per_preset[preset] = {k: v[0] for k, v in m.items()}
        bp[preset] = blood_pool_pct_id_per_g(s, times_h)
    big = None
    if not quick:  # size dependence (its own structure: one more compilation)
        s_big = base_scenario(quick, "high-epr", [f"tumor.radius_mm={BIG_RADIUS_MM}"])
        m = scan.batched_metrics(s_big, {PORE: [float(s_big[PORE])]})
        big = {k: v[0] for k, v in m.items()}
    timings["tumor_types_s"] = time.perf_counter() - t0

    def tumor_row(label, m, blood):
        row = {"tumor": label}
        for t in report_times:
            k = C.time_index(times_h, t)
            ideal = 1e3 * m["tumor_carrier_pct_id_per_g"][k]
            image = m["imaging_tumor_pct_id_per_kg"][k]
            row[f"image_pct_id_per_kg_{t:g}h"] = image
            row[f"true_pct_id_per_kg_{t:g}h"] = ideal
            row[f"image_over_true_{t:g}h"] = image / ideal if ideal > 0 else float("nan")
            row[f"tumor_pct_id_{t:g}h"] = m["tumor_carrier_pct_id"][k]
            row[f"tumor_to_reference_{t:g}h"] = m["imaging_tumor_to_reference"][k]
            if blood is not None:
                row[f"blood_pool_share_{t:g}h"] = 1e3 * blood[k] / ideal if ideal > 0 \
                    else float("nan")
        row.update({"tumor_drug_auc_ug_h_per_g": m["tumor_drug_auc_ug_h_per_g"],
                    "tumor_intracellular_auc_ug_h_per_g":
                        m["tumor_intracellular_auc_ug_h_per_g"],
                    "efficacy": m["efficacy"], "mass_balance_error": m["mass_balance_error"]})
        return row

    type_rows = [tumor_row(p, per_preset[p], bp[p]) for p in PRESETS]
    if big is not None:
        type_rows.append(tumor_row(f"high-epr, {BIG_RADIUS_MM:g}-mm radius", big,
                                   blood_pool_pct_id_per_g(s_big, times_h)))

    # ------------------------------------------------------------ 2. virtual cohorts
    t0 = time.perf_counter()
    settings = cohort.CohortSettings(patients=patients, seed=0, imaging_time_h=24.0,
                                     imaging_dose_fraction=IMAGING_DOSE_FRACTION)
    rep_var, ds_var = cohort.run_cohort(base, settings, chunk=chunk, progress=not quick)
    timings["cohort_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fixed = cohort.CohortSettings(patients=patients, seed=0, imaging_time_h=24.0,
                                  imaging_dose_fraction=IMAGING_DOSE_FRACTION,
                                  spreads={PERFUSION: FIXED_SPREAD})
    rep_fix, ds_fix = cohort.run_cohort(base, fixed, chunk=chunk, progress=not quick)
    timings["cohort_perfusion_fixed_s"] = time.perf_counter() - t0
    same_patients = bool(np.allclose(ds_var[scan.dim_name(PORE)].values,
                                     ds_fix[scan.dim_name(PORE)].values))

    # ------------------------------------------------------------ 3. calibration
    t0 = time.perf_counter()
    obs_times = [t for t in times_h if t > 0]
    study = calibrate.imaging_study(base, obs_times, IMAGING_DOSE_FRACTION)
    if simulate.structure(study) != simulate.structure(base):
        print("  note: the imaging study has its own structure (one more compilation)")
    true_pore = TRUE_PORE_FACTOR * float(base[PORE])
    img_true = run_rows(study, paths, chunk, [{PORE: true_pore}])
    ther_true = run_rows(base, paths, chunk, [{PORE: true_pore}])
    y_true = img_true["imaging_tumor_pct_id_per_g"][0][1:]
    rng = np.random.default_rng(2001)
    y_obs = y_true * (1.0 + NOISE * rng.standard_normal(y_true.size))
    obs = calibrate.make_observations({"time_h": obs_times, "tumor_pct_id_per_g": y_obs,
                                       "tumor_pct_id_per_g_sd": NOISE * y_true},
                                      "synthetic patient (pore radius ×1.5, 5 % noise)")
    true_efficacy = float(ther_true["efficacy"][0])
    true_auc = float(ther_true["tumor_drug_auc_ug_h_per_g"][0])
    fits = {}
    plan = [("pore radius", [PORE])] if quick else [("pore radius + vessel density", [PORE, SV]),
                                                    ("pore radius", [PORE])]
    for label, names in plan:
        t1 = time.perf_counter()
        f = calibrate.fit(base, obs, names, dose_fraction=IMAGING_DOSE_FRACTION)
        pred = calibrate.predict(base, f)
        rep = calibrate.report(base, obs, f, pred)
        rep.pop("history", None)
        rep["seconds"] = time.perf_counter() - t1
        fits[label] = rep
        print(f"  fit [{label}]: " + ", ".join(
            f"{scan.dim_name(p)} = {v['value']:.4g} (sd ln {C.fmt(v['sd_ln'], 3)}, "
            f"identifiable {v['identifiable']})" for p, v in rep["parameters"].items())
            + f"; efficacy {pred['efficacy']['value']:.3f} ± {pred['efficacy']['sd']:.3f} "
            f"(true {true_efficacy:.3f}); {rep['seconds']:.0f} s", flush=True)
        for w in rep["warnings"]:
            print(f"    warning: {w}")
    timings["calibration_s"] = time.perf_counter() - t0

    # ------------------------------------------------------------ literature comparison
    t_cmp = report_times[-1]
    note_t = "" if t_cmp == 72.0 else "; --quick: at 24 h, not 72 h"
    hi = type_rows[0]
    comparison = [
        C.compare(f"high-EPR tumor, image ROI at {t_cmp:g} h",
                  hi[f"image_pct_id_per_kg_{t_cmp:g}h"], (5.0, 33.0), "%ID/kg",
                  "Harrington et al. 2001 (breast 5, lung 18, head-and-neck 33)",
                  "10-mm SPECT PSF on a 10-mm-radius tumor: partial-volume loss" + note_t),
        C.compare(f"high-EPR tumor, carriers in tumor (ideal scanner) at {t_cmp:g} h",
                  hi[f"true_pct_id_per_kg_{t_cmp:g}h"], (5.0, 33.0), "%ID/kg",
                  "Harrington et al. 2001", "every phase, blood pool included" + note_t),
        C.compare(f"low-EPR tumor, carriers in tumor at {t_cmp:g} h",
                  type_rows[1][f"true_pct_id_per_kg_{t_cmp:g}h"], (5.0, 33.0), "%ID/kg",
                  "Harrington et al. 2001", "60-nm pores" + note_t),
        C.compare(f"high-EPR tumor (4.2 g), %ID in tumor at {t_cmp:g} h",
                  hi[f"tumor_pct_id_{t_cmp:g}h"], HARRINGTON_PCT_ID, "%ID",
                  "Harrington et al. 2001", "%ID scales with tumor mass; the patients' tumors "
                  "were far larger (0.5-3.5 %ID at 5-33 %ID/kg implies ~15-700 g)" + note_t),
        C.compare("spread between tumor types (max/min of carriers in tumor, %ID/kg)",
                  max(r[f"true_pct_id_per_kg_{t_cmp:g}h"] for r in type_rows[:3])
                  / min(r[f"true_pct_id_per_kg_{t_cmp:g}h"] for r in type_rows[:3]),
                  33.0 / 5.0, "ratio", "Harrington et al. 2001 (head-and-neck / breast)",
                  "model presets vs tumor types of patients" + note_t),
    ]
    if big is not None:
        b = type_rows[-1]
        comparison.append(C.compare(
            f"high-EPR tumor, {BIG_RADIUS_MM:g}-mm radius (65 g), %ID in tumor at 72 h",
            b["tumor_pct_id_72h"], HARRINGTON_PCT_ID, "%ID", "Harrington et al. 2001",
            "larger tumor, same model"))
        comparison.append(C.compare(
            f"high-EPR tumor, {BIG_RADIUS_MM:g}-mm radius, image ROI at 72 h",
            b["image_pct_id_per_kg_72h"], (5.0, 33.0), "%ID/kg", "Harrington et al. 2001",
            "larger tumor: less partial-volume loss, lower mean uptake (rim-dominated)"))

    mech = {"epr_variable": cohort_extra(ds_var, rep_var),
            "perfusion_fixed": cohort_extra(ds_fix, rep_fix)}
    lee = ("Lee et al. 2017 (⁶⁴Cu-MM-302 PET, HER2+ metastatic breast cancer): tumor "
           "deposition varied widely between patients and high deposition was associated with "
           "favourable outcome. Model: Spearman ρ(readout, efficacy) = "
           f"{rep_var['spearman_rho']:.2f} [{rep_var['spearman_rho_ci95'][0]:.2f}, "
           f"{rep_var['spearman_rho_ci95'][1]:.2f}], ROC AUC {rep_var['roc_auc']:.2f}; with "
           f"perfusion held fixed ρ = {rep_fix['spearman_rho']:.2f}, AUC "
           f"{rep_fix['roc_auc']:.2f}.")
    timings["total_s"] = time.perf_counter() - t_start

    # ------------------------------------------------------------ outputs
    report = {
        "question": __doc__.strip().splitlines()[0], "quick": quick, "scenario": "doxil",
        "settings": {"saved_times_h": times_h, "cells": int(base["numerics.cells"]),
                     "max_dt_min": float(base["numerics.max_dt_min"]),
                     "tumor_radius_mm": float(base["tumor.radius_mm"]),
                     "imaging_label": base["imaging.label"],
                     "psf_fwhm_mm": float(base["imaging.psf_fwhm_mm"]),
                     "imaging_dose_fraction": IMAGING_DOSE_FRACTION, "patients": patients,
                     "chunk": chunk, "perfusion_fixed_sigma_ln": FIXED_SPREAD},
        "tumor_types": type_rows,
        "tumor_type_time_activity": {
            p: {"times_h": times_h,
                "image_pct_id_per_kg": per_preset[p]["imaging_tumor_pct_id_per_kg"],
                "true_pct_id_per_kg": 1e3 * per_preset[p]["tumor_carrier_pct_id_per_g"],
                "blood_pool_pct_id_per_kg": 1e3 * bp[p],
                "tumor_to_reference": per_preset[p]["imaging_tumor_to_reference"]}
            for p in PRESETS},
        "cohort": short_cohort(rep_var),
        "cohort_perfusion_fixed": {**short_cohort(rep_fix), "same_patients": same_patients},
        "cohort_rank_correlations": mech,
        "cohort_patients": {
            "epr_variable": {"readout": ds_var.readout.values,
                             "efficacy": ds_var.efficacy.values,
                             "perfusion": ds_var[scan.dim_name(PERFUSION)].values},
            "perfusion_fixed": {"readout": ds_fix.readout.values,
                                "efficacy": ds_fix.efficacy.values}},
        "calibration": {"true": {PORE: true_pore, SV: float(base[SV]),
                                 "efficacy": true_efficacy,
                                 "tumor_drug_auc_ug_h_per_g": true_auc},
                        "noise": NOISE, "fits": fits},
        "comparison": comparison, "lee_2017": lee,
        "max_mass_balance_error": max(float(r["mass_balance_error"]) for r in type_rows),
        "timings_s": timings, "provenance": origin,
    }
    C.write_json(out / "tumor_heterogeneity_imaging.json", report)
    figure(report, out / "tumor_heterogeneity_imaging.png")

    show = [{k: r[k] for k in ("tumor", f"image_pct_id_per_kg_{t_cmp:g}h",
                               f"true_pct_id_per_kg_{t_cmp:g}h", f"tumor_pct_id_{t_cmp:g}h",
                               f"tumor_to_reference_{t_cmp:g}h", f"blood_pool_share_{t_cmp:g}h",
                               "tumor_drug_auc_ug_h_per_g", "efficacy") if k in r}
            for r in type_rows]
    C.print_table(show, title=f"Tumor types at {t_cmp:g} h (image: 10-mm PSF; true: ideal "
                              "scanner)")
    C.print_table([{"cohort": n, "rho": r["spearman_rho"],
                    "rho_ci95": "{:.2f}..{:.2f}".format(*r["spearman_rho_ci95"]),
                    "roc_auc": r["roc_auc"], "auc_ci95": "{:.2f}..{:.2f}".format(
                        *r["roc_auc_ci95"]),
                    "gain_top50%": r["selection"]["efficacy_gain"],
                    "mean_eff": r["selection"]["mean_efficacy_all"]}
                   for n, r in (("EPR variable", rep_var), ("perfusion fixed", rep_fix))],
                  title=f"Virtual cohorts ({patients} patients)")
    C.print_table([{"parameter": scan.dim_name(p), **{k: v for k, v in d.items()}}
                   for p, d in mech["epr_variable"].items()],
                  title="Rank correlation of each EPR parameter (EPR-variable cohort)")
    C.print_table(comparison, ["quantity", "model", "literature", "unit", "deviation_pct"],
                  title="Model vs literature")
    print(lee)
    print(f"wrote {out}/tumor_heterogeneity_imaging.{{json,png}} in "
          f"{time.perf_counter() - t_start:.0f} s")
    return 0


def figure(rep: dict, path: Path):
    plt = C.pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(12.5, 7.4))
    colors = dict(zip(PRESETS, ("C0", "C1", "C2")))

    ax = axes[0, 0]
    for p in PRESETS:
        tac = rep["tumor_type_time_activity"][p]
        t = np.asarray(tac["times_h"])[1:]  # t = 0 (nothing yet) is off the log axis
        ax.plot(t, tac["true_pct_id_per_kg"][1:], "--", color=colors[p], lw=1)
        ax.plot(t, tac["image_pct_id_per_kg"][1:], "-o", color=colors[p], ms=3, label=p)
        ax.plot(t, tac["blood_pool_pct_id_per_kg"][1:], ":", color=colors[p], lw=1)
    for name, v in HARRINGTON_PCT_ID_PER_KG.items():
        ax.plot([72.0], [v], "k_", ms=14, mew=2)
        ax.annotate(name, (72.0, v), xytext=(-4, 3), textcoords="offset points", ha="right",
                    fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("time after start of infusion (h)")
    ax.set_ylabel("tumor uptake (%ID/kg)")
    ax.set_title("Tumor types: image ROI (—o), true (--), blood pool (⋯);\n"
                 "Harrington 2001 at 72 h (black)", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")

    ax = axes[0, 1]
    rows = rep["tumor_types"]
    x = np.arange(len(rows))
    labels = [r["tumor"].replace(", ", "\n") for r in rows]
    ax.bar(x, [r["tumor_drug_auc_ug_h_per_g"] for r in rows],
           color=[colors.get(r["tumor"], "C4") for r in rows], alpha=0.8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("tumor drug AUC (µg·h/g)")
    ax2 = ax.twinx()
    ax2.plot(x, [r["efficacy"] for r in rows], "kD", ms=6)
    ax2.set_ylabel("efficacy (◆)")
    ax2.set_ylim(0, max(0.05, 1.3 * max(r["efficacy"] for r in rows)))
    t_last = rep["settings"]["saved_times_h"][-1]
    tt = [f"{r[f'tumor_to_reference_{t_last:g}h']:.1f}" for r in rows]
    ax.set_title(f"Drug exposure and efficacy ({t_last:g} h); tumor/reference: "
                 + ", ".join(tt), fontsize=8)

    ax = axes[0, 2]
    pts = rep["cohort_patients"]
    c, cf = rep["cohort"], rep["cohort_perfusion_fixed"]
    sc_ = ax.scatter(pts["epr_variable"]["readout"], pts["epr_variable"]["efficacy"], s=9,
                     c=np.log10(pts["epr_variable"]["perfusion"]), cmap="viridis",
                     label=f"EPR variable (ρ = {c['spearman_rho']:.2f})")
    ax.scatter(pts["perfusion_fixed"]["readout"], pts["perfusion_fixed"]["efficacy"], s=9,
               facecolors="none", edgecolors="C3", lw=0.6,
               label=f"perfusion fixed (ρ = {cf['spearman_rho']:.2f})")
    fig.colorbar(sc_, ax=ax, label="log10 perfusion (mL/mL/min)")
    ax.set_xscale("log")
    ax.set_xlabel(f"imaging readout at 24 h ({c['readout_units']})")
    ax.set_ylabel("efficacy of the therapeutic dose")
    ax.set_title(f"Virtual cohort, {c['patients']} patients", fontsize=8)
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    for r, col, name in ((c, "C0", "EPR variable"), (cf, "C3", "perfusion fixed")):
        roc = r["roc_curve"]
        ax.plot(roc["false_positive_rate"], roc["true_positive_rate"], color=col,
                label=f"{name}: AUC {r['roc_auc']:.2f} "
                      f"[{r['roc_auc_ci95'][0]:.2f}, {r['roc_auc_ci95'][1]:.2f}]")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls="--")
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("Responders (efficacy ≥ median) by imaging readout", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")

    ax = axes[1, 1]
    for r, col, name in ((c, "C0", "EPR variable"), (cf, "C3", "perfusion fixed")):
        tab = r["selection_table"]
        f = [100 * s["select_fraction"] for s in tab]
        ax.plot(f, [s["mean_efficacy_selected"] for s in tab], "-o", color=col, ms=4,
                label=f"{name}: selected")
        ax.axhline(tab[0]["mean_efficacy_all"], color=col, lw=0.8, ls=":")
    ax.set_xlabel("share of patients treated, top by readout (%)")
    ax.set_ylabel("mean efficacy (⋯: all patients)")
    ax.set_title("Selection gain", fontsize=8)
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    cal = rep["calibration"]
    first = next(iter(cal["fits"].values()))
    t = np.asarray(first["times_h"])
    ax.errorbar(t, first["observed"], yerr=first["observed_sd"], fmt="ko", ms=4,
                label="synthetic patient (pore ×1.5, 5 % noise)")
    ax.plot(t, first["initial_model"], "--", marker="x", color="grey",
            label="scenario before fit")
    for (label, fr), col, ls in zip(cal["fits"].items(), ("C0", "C1"), ("-", ":")):
        pr = fr["prediction"]["efficacy"]
        par = ", ".join(f"{'r_pore' if p == PORE else 'S_v'} {v['value']:.0f}"
                        + ("" if v["identifiable"] else "*")
                        for p, v in fr["parameters"].items())
        ax.plot(t, fr["fitted"], ls, marker="s", ms=3, color=col,
                label=f"fit {label}: {par};\n  efficacy {pr['value']:.3f} "
                      f"[{pr['ci95'][0]:.3f}, {pr['ci95'][1]:.3f}]")
    ax.plot([], [], " ", label=f"true efficacy {cal['true']['efficacy']:.3f}; "
                               "* not identifiable")
    ax.set_xlabel("time after start of infusion (h)")
    ax.set_ylabel("tumor ROI (%ID/g)")
    ax.set_title(f"Calibration from the image TAC (true r_pore "
                 f"{cal['true'][PORE]:.0f} nm, S_v {cal['true'][SV]:.0f} /cm)", fontsize=8)
    ax.legend(fontsize=6, loc="lower center")
    fig.suptitle("Doxil 50 mg/m², ¹¹¹In label, 10-mm PSF: tumor types, virtual cohort, "
                 "calibration" + (" (--quick)" if rep["quick"] else ""), fontsize=10)
    C.save_figure(fig, path, dpi=80)


if __name__ == "__main__":
    sys.exit(main())
