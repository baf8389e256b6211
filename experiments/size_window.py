"""Size window: tumor accumulation, penetration and systemic loss vs carrier diameter.

Question: over carrier diameters from 2 to 500 nm, where does the model put the window between
renal loss (small) and MPS loss and poor extravasation/penetration (large), and does the
optimum shift to smaller carriers in poorly permeable, collagen-rich tumors?

Settings: the ``doxil`` scenario (PEG liposome surface, 50 mg/m² over 60 min, 1-cm tumor in a
5-mm shell of normal tissue, 72 h) with only ``formulation.diameter_nm`` varied (log-spaced,
25 points; 10 with ``--quick``), in the three tumor presets ``high-epr`` (400-nm pores),
``low-epr`` (60-nm pores, fewer and less leaky vessels, lower perfusion) and ``collagen-rich``
(200-nm pores, dense fibre matrix, 10× lower hydraulic conductivity).  The presets change
numbers only, so all diameters × presets run in one compiled, batched (vmap) call.  Every other
parameter (leak, breakdown, dose in drug) is kept: a 2-nm "carrier" is a thought experiment
that isolates size.  Metrics: carriers in the tumor (% of dose, and per kg) at 24 and 72 h,
tumor drug AUC, efficacy; penetration depth = distance from the tumor rim inward at which the
extravascular carrier concentration (interstitial + bound + internalized, per tissue volume)
falls to 1/e (and 1/2) of its peak, at the last time (the tumor radius if it never does);
systemic loss = carrier particles cleared by the kidney / MPS by the end (simulation) and as
t → ∞ (closed form ``pk.elimination_fractions``).

Literature compared with: renal filtration cut-off ≈ 5.5 nm hydrodynamic diameter (Choi et al.
2007 Nat Biotechnol 25:1165); MPS clearance rising above ~150-200 nm (docs/model.md §3, a law put
into the model); interior optimum that shifts smaller for collagen-rich tumors and superior
penetration of ~12-nm particles (Chauhan et al. 2012 Nat Nanotechnol 7:383; Pluen et al. 2001
PNAS 98:4628); human tumor uptake of 111In-PEG-liposomes 5-33 %ID/kg at 72 h (Harrington et al.
2001 Clin Cancer Res 7:243).

    python experiments/size_window.py [--quick] [--out experiments/results]

Writes ``size_window.csv`` (one row per preset and diameter), ``size_window.json`` (the
literature comparison, optima and settings) and ``size_window.png``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import _common as C
import numpy as np

from nanotransport import pk, simulate

PRESETS = ("high-epr", "low-epr", "collagen-rich")
RENAL_CUTOFF_NM = 5.5  # Choi et al. 2007


def loss_closed_form(base, diameters):
    """(renal, MPS, other) share of the carrier particles eliminated as t → ∞ and the
    encapsulated-drug plasma AUC∞ (µg·h/mL) for each diameter (systemic model only)."""
    frac, auc = [], []
    for d in diameters:
        p, dose = simulate.systemic_parameters(base.replace(diameter_nm=float(d)))
        pc = p.replace(k_leak_plasma=0.0)  # carrier particles (no leak)
        frac.append(np.asarray(pk.elimination_fractions(pc, 1.0))[:3])
        auc.append(float(pk.auc(p, dose, 1.0).encapsulated) * C.MW / 3600.0)
    return np.asarray(frac), np.asarray(auc)


def crossing(x, y, level):
    """First x (log-interpolated) where y crosses ``level`` (NaN if never)."""
    for i in range(len(x) - 1):
        if (y[i] - level) * (y[i + 1] - level) <= 0 and y[i] != y[i + 1]:
            w = (level - y[i]) / (y[i + 1] - y[i])
            return float(np.exp(np.log(x[i]) + w * (np.log(x[i + 1]) - np.log(x[i]))))
    return float("nan")


def optimum(d, y):
    """Argmax of y over log d, refined by a parabola through the best point and its
    neighbours (log-spaced grid)."""
    i = int(np.argmax(y))
    if 0 < i < len(d) - 1:
        x = np.log(d[i - 1:i + 2])
        a, b, _ = np.polyfit(x, y[i - 1:i + 2], 2)
        if a < 0:
            return float(np.exp(np.clip(-b / (2 * a), x[0], x[2])))
    return float(d[i])


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    t_start = time.perf_counter()
    n = 10 if args.quick else 25
    diameters = np.geomspace(2.0, 500.0, n)
    scenarios, labels = [], []
    for preset in PRESETS:
        base = C.load("doxil", [f"tumor_preset={preset}"], quick=args.quick)
        for d in diameters:
            scenarios.append(base.replace(diameter_nm=float(d)))
            labels.append((preset, float(d)))
    sim = C.run_batch(scenarios, chunk=25, label=f"{len(PRESETS)} presets × {n} diameters")
    times_h = simulate.save_times_h(scenarios[0])
    t_end = float(times_h[-1])
    report_times = [t for t in (24.0, 72.0) if t <= t_end]
    r, faces, tumor, radius = C.radial_grid(scenarios[0])
    i_end = len(times_h) - 1
    fine_d = np.geomspace(1.0, 1000.0, 241)
    frac_inf, auc_inf = loss_closed_form(scenarios[0], fine_d)

    rows = []
    for j, (preset, d) in enumerate(labels):
        prof = sim["carrier_ev_profile"][j, i_end]
        row = {"preset": preset, "diameter_nm": d}
        for t in report_times:
            k = C.time_index(times_h, t)
            row[f"tumor_carrier_pct_id_{t:g}h"] = sim["tumor_carrier_pct_id"][j, k]
            row[f"tumor_carrier_pct_id_per_kg_{t:g}h"] = \
                1000 * sim["tumor_carrier_pct_id_per_g"][j, k]
        row.update({
            "tumor_drug_auc_ug_h_per_g": sim["tumor_drug_auc_ug_h_per_g"][j],
            "tumor_intracellular_auc_ug_h_per_g": sim["tumor_intracellular_auc_ug_h_per_g"][j],
            "efficacy": sim["efficacy"][j],
            "plasma_auc_encapsulated_ug_h_per_ml": sim["plasma_auc_encapsulated_ug_h_per_ml"][j],
            "penetration_1_over_e_mm": C.penetration_depth(r, prof, tumor, radius, np.exp(-1)),
            "penetration_half_mm": C.penetration_depth(r, prof, tumor, radius, 0.5),
            "extravascular_mean_over_peak": C.tumor_mean(faces, prof, tumor)
            / max(float(np.max(prof[tumor])), 1e-300),
            "renal_loss_fraction_t_end": sim["carrier_sinks_fraction"][j, -1, 0],
            "mps_loss_fraction_t_end": sim["carrier_sinks_fraction"][j, -1, 1],
            "other_loss_fraction_t_end": sim["carrier_sinks_fraction"][j, -1, 2],
            "mass_balance_error": sim["mass_balance_error"][j],
        })
        rows.append(row)

    # ---------------------------------------------------------------- analysis
    t_acc = report_times[-1]
    key_acc = f"tumor_carrier_pct_id_{t_acc:g}h"
    per_preset = {}
    for preset in PRESETS:
        sel = [row for row in rows if row["preset"] == preset]
        acc = np.asarray([row[key_acc] for row in sel])
        auc = np.asarray([row["tumor_drug_auc_ug_h_per_g"] for row in sel])
        eff = np.asarray([row["efficacy"] for row in sel])
        pen = np.asarray([row["penetration_1_over_e_mm"] for row in sel])
        near100 = int(np.argmin(np.abs(np.log(diameters / 100.0))))
        per_preset[preset] = {
            **{f"optimum_diameter_accumulation_{t:g}h_nm": optimum(
                diameters, np.asarray([row[f"tumor_carrier_pct_id_{t:g}h"] for row in sel]))
               for t in report_times},
            "optimum_diameter_drug_auc_nm": optimum(diameters, auc),
            "optimum_diameter_efficacy_nm": optimum(diameters, eff),
            f"max_accumulation_{t_acc:g}h_pct_id": float(acc.max()),
            # the optimum is flat: the diameters within 90 % of the best accumulation
            f"window_90pct_accumulation_{t_acc:g}h_nm":
                [float(diameters[acc >= 0.9 * acc.max()].min()),
                 float(diameters[acc >= 0.9 * acc.max()].max())],
            "largest_diameter_penetrating_whole_tumor_nm":
                float(diameters[pen >= radius - 1e-9].max()) if np.any(pen >= radius - 1e-9)
                else float("nan"),
            "accumulation_at_~100nm_pct_id_per_kg":
                float(sel[near100][f"tumor_carrier_pct_id_per_kg_{t_acc:g}h"]),
            "diameter_near_100_nm": float(diameters[near100]),
        }
    renal_50 = crossing(fine_d, frac_inf[:, 0], 0.5)
    plateau = auc_inf[np.argmin(np.abs(np.log(fine_d / 50.0)))]
    mps_half_auc = crossing(fine_d[fine_d > 50], auc_inf[fine_d > 50], 0.5 * plateau)
    comparison = [
        C.compare("diameter at which renal loss = 50 % of carrier elimination", renal_50,
                  RENAL_CUTOFF_NM, "nm", "Choi et al. 2007",
                  "cut-off put into the model as a logistic at 5.5 nm; the 50 % point lies "
                  "above it because GFR (7.2 L/h) dwarfs the other clearances (0.058 L/h)"),
        C.compare("diameter at which encapsulated plasma AUC halves (MPS)", mps_half_auc,
                  (150.0, 200.0), "nm", "docs/model.md §3 (MPS above ~150-200 nm)",
                  "MPS law CL ∝ 1 + (d/175 nm)³ is an input; its effect on AUC is delayed "
                  "because 20 % of the reference clearance is size-independent"),
        C.compare(f"high-EPR: carriers in tumor at {t_acc:g} h, d ≈ 100 nm",
                  per_preset["high-epr"]["accumulation_at_~100nm_pct_id_per_kg"], (5.0, 33.0),
                  "%ID/kg", "Harrington et al. 2001 (breast 5, lung 18, head-and-neck 33)",
                  "1-cm model tumor; patients' tumors differ in size and vascularity"
                  + ("; --quick: 24 h, not 72 h" if t_acc != 72.0 else "")),
    ]
    step = float(diameters[1] / diameters[0])
    smaller = (0.0, 0.8)  # clearly smaller: about one grid step (full: a factor 1.26) or more
    for t in report_times:
        key = f"optimum_diameter_accumulation_{t:g}h_nm"
        hi, lo, col = (per_preset[p][key] for p in PRESETS)  # order of PRESETS
        comparison += [
            C.compare(f"optimum diameter ({t:g}-h accumulation), collagen-rich / high-EPR",
                      col / hi, smaller, "ratio", "Chauhan et al. 2012; docs/model.md §10",
                      f"clearly smaller expected (< 0.8; grid step ×{step:.2f})"),
            C.compare(f"optimum diameter ({t:g}-h accumulation), low-EPR / high-EPR",
                      lo / hi, smaller, "ratio", "Hobbs et al. 1998 (small pores)",
                      "clearly smaller expected"),
        ]
    key = "largest_diameter_penetrating_whole_tumor_nm"
    comparison.append(C.compare(
        "largest diameter reaching the tumor centre (1/e), collagen-rich / high-EPR",
        per_preset["collagen-rich"][key] / per_preset["high-epr"][key], smaller, "ratio",
        "Chauhan et al. 2012; Pluen et al. 2001", "penetration-limited window: smaller "
        "expected"))

    out = Path(args.out)
    columns = list(rows[0].keys())
    C.write_csv(out / "size_window.csv", rows, columns)
    C.write_json(out / "size_window.json", {
        "question": __doc__.strip().splitlines()[0], "quick": args.quick,
        "scenario": "doxil", "presets": PRESETS, "diameters_nm": diameters,
        "saved_times_h": times_h, "tumor_radius_mm": radius,
        "per_preset": per_preset, "comparison": comparison,
        "closed_form_loss": {"diameter_nm": fine_d, "renal_mps_other_fraction": frac_inf,
                             "plasma_auc_encapsulated_inf_ug_h_per_ml": auc_inf},
        "max_mass_balance_error": float(np.max(sim["mass_balance_error"])),
        "seconds": time.perf_counter() - t_start,
    })

    # ---------------------------------------------------------------- figure
    plt = C.pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.6))
    colors = dict(zip(PRESETS, ("C0", "C1", "C2")))

    def series(preset, key):
        return np.asarray([row[key] for row in rows if row["preset"] == preset])

    ax = axes[0, 0]
    for preset in PRESETS:
        for t, ls in zip(report_times, ("--", "-")):
            ax.plot(diameters, series(preset, f"tumor_carrier_pct_id_per_kg_{t:g}h"), ls,
                    color=colors[preset], label=f"{preset}, {t:g} h")
    ax.axhspan(5, 33, color="0.85", zorder=0, label="Harrington 2001, 72 h")
    ax.set_ylabel("carriers in tumor (%ID/kg)")
    ax.set_title("tumor accumulation", fontsize=9)
    ax.legend(fontsize=6)
    ax = axes[0, 1]
    for preset in PRESETS:
        ax.plot(diameters, series(preset, "tumor_drug_auc_ug_h_per_g"), color=colors[preset],
                label=preset)
    ax.set_ylabel("tumor drug AUC (µg·h/g)")
    ax.set_title(f"tumor drug exposure, 0-{t_end:g} h", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    for preset in PRESETS:
        ax.plot(diameters, series(preset, "penetration_1_over_e_mm"), color=colors[preset],
                label=f"{preset} (1/e)")
        ax.plot(diameters, series(preset, "penetration_half_mm"), ":", color=colors[preset])
    ax.axhline(radius, color="0.5", lw=0.8)
    ax.text(2.2, radius * 0.75, "whole tumor", fontsize=7, color="0.4")
    ax.set_yscale("log")
    ax.set_ylabel("penetration from rim (mm)")
    ax.set_title(f"extravascular carriers at {t_end:g} h: depth to 1/e (—) and 1/2 (⋯) "
                 "of peak", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.plot(fine_d, frac_inf[:, 0], color="C4", label="renal (t → ∞)")
    ax.plot(fine_d, frac_inf[:, 1], color="C5", label="MPS (t → ∞)")
    ax.plot(diameters, series("high-epr", "renal_loss_fraction_t_end"), "o", color="C4", ms=3,
            label=f"renal, simulation at {t_end:g} h")
    ax.plot(diameters, series("high-epr", "mps_loss_fraction_t_end"), "o", color="C5", ms=3,
            label=f"MPS, simulation at {t_end:g} h")
    ax.axvline(RENAL_CUTOFF_NM, color="C4", lw=0.8, ls=":")
    ax.set_ylabel("share of carriers cleared")
    ax2 = ax.twinx()
    ax2.plot(fine_d, auc_inf, color="k", lw=0.8, ls="--")
    ax2.set_ylabel("plasma AUC∞ encapsulated (µg·h/mL, --)", fontsize=8)
    ax.set_title("systemic loss (all presets)", fontsize=9)
    ax.legend(fontsize=6, loc="center left")
    for a in axes.flat:
        a.set_xscale("log")
        a.set_xlabel("carrier diameter (nm)")
        a.set_xlim(fine_d[0] if a is axes[1, 1] else diameters[0], 1000 if a is axes[1, 1]
                   else diameters[-1])
    fig.suptitle("Size window: PEG-liposome-like carriers, 50 mg/m², 1-cm tumor", fontsize=10)
    C.save_figure(fig, out / "size_window.png")

    show = [{"preset": row["preset"], "d_nm": row["diameter_nm"],
             "%ID/kg": row[f"tumor_carrier_pct_id_per_kg_{t_acc:g}h"],
             "drugAUC": row["tumor_drug_auc_ug_h_per_g"],
             "pen_1/e_mm": row["penetration_1_over_e_mm"],
             "renal": row["renal_loss_fraction_t_end"], "MPS": row["mps_loss_fraction_t_end"]}
            for row in rows]
    C.print_table(show, title=f"Size scan ({t_acc:g} h accumulation; losses by {t_end:g} h)")
    C.print_table([{"preset": p, **{k.replace("optimum_diameter_", "opt_"): v
                                    for k, v in per_preset[p].items() if k.startswith("opt")},
                    "90% window (nm)": "{:.3g}-{:.3g}".format(
                        *per_preset[p][f"window_90pct_accumulation_{t_acc:g}h_nm"])}
                   for p in PRESETS], title="Optimum diameters (nm)")
    C.print_table(comparison, ["quantity", "model", "literature", "unit", "deviation_pct"],
                  title="Model vs literature")
    print(f"wrote {out}/size_window.{{csv,json,png}} in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
