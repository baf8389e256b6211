"""Heating schedule: how long to heat, and when relative to the infusion (ThermoDox).

Question: for a lyso-thermosensitive liposome (ThermoDox, T_m 41.3 °C) given as 50 mg/m² over
30 min, how do the duration of hyperthermia and its start relative to the infusion change the
drug delivered to the tumor, the release in the tumor's vessels and the cell kill, when the
heating is delivered as clinics deliver it (the tumor's T90 held at 42 °C by the PI
controller of the focused-ultrasound source, far-field boundary, ESHO metrics)?

Settings: built-in ``thermodox`` (high-EPR 1-cm tumor, 72 h; 24 h and 30 cells with
``--quick``); heating duration 15, 30, 45, 60, 90 min × start 0 (with the infusion: the tumor
reaches 42 °C 5 min into the 30-min infusion), 15 (during), 30 (at its end), 60, 120 and
240 min (after) from the start of the infusion (``--quick``: 15, 60 min × 0, 30, 120 min).
The schema counts time from the start of the infusion, so heating cannot start before the drug
is given (start 0 is the earliest: "before" is not expressible, README known limitations).
Every point runs in one batched, compiled call (``nanotransport.scan.batched_metrics``; the
window of refined 1-min heating steps is widened to cover every schedule, as
``nanotransport scan thermodox --grid heating_duration_min=15:60:4`` does).  The unheated
reference (``thermodox-unheated``) runs once.

Reported per point: tumor drug AUC and peak (µg·h/g, µg/g), intracellular AUC, efficacy,
release in tumor vessels (share of the dose), CEM43T90 (min), time with T90 above T_m (min),
tumor volume fraction above T_m during the plateau, normal-tissue CEM43 max and temperature
max.

    python experiments/heating_schedule.py [--quick] [--out experiments/results]

Writes ``heating_schedule.csv`` (one row per schedule), ``heating_schedule.json`` and
``heating_schedule.png`` (heat maps over duration × start, and delivery vs duration for each
start).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import _common as C
import numpy as np

from nanotransport import scan

KEYS = ("tumor_drug_auc_ug_h_per_g", "tumor_drug_peak_ug_per_g",
        "tumor_intracellular_auc_ug_h_per_g", "efficacy", "released_in_tissue_vessels_fraction",
        "cem43_t90_min", "time_t90_above_release_min", "tumor_fraction_above_release_plateau",
        "t90_plateau_c", "t50_plateau_c", "cem43_normal_tissue_max_min",
        "normal_tissue_temperature_max_c", "tumor_temperature_max_c")


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    durations = (15.0, 60.0) if args.quick else (15.0, 30.0, 45.0, 60.0, 90.0)
    starts = (0.0, 30.0, 120.0) if args.quick else (0.0, 15.0, 30.0, 60.0, 120.0, 240.0)
    base = C.load("thermodox", quick=args.quick)
    cold = C.load("thermodox-unheated", quick=args.quick)
    dd, ss = np.meshgrid(durations, starts, indexing="ij")
    values = {"heating.heating_duration_min": dd.ravel(), "heating.heating_start_min": ss.ravel()}
    t0 = time.perf_counter()
    m = scan.batched_metrics(base, values)
    print(f"  [heated] {dd.size} schedules in {time.perf_counter() - t0:.1f} s (compile "
          "included)", flush=True)
    ref = scan.batched_metrics(cold, {"formulation.diameter_nm": np.asarray(
        [float(cold["formulation.diameter_nm"])])})
    rows = []
    for i, (d, s0) in enumerate(zip(dd.ravel(), ss.ravel())):
        row = {"heating_duration_min": float(d), "heating_start_min": float(s0)}
        row.update({k: float(m[k][i]) for k in KEYS})
        row["tumor_drug_auc_vs_unheated"] = float(m["tumor_drug_auc_ug_h_per_g"][i]
                                                  / ref["tumor_drug_auc_ug_h_per_g"][0])
        rows.append(row)
    rows.append({"heating_duration_min": 0.0, "heating_start_min": None,
                 **{k: float(ref[k][0]) for k in KEYS if k in ref},
                 "tumor_drug_auc_vs_unheated": 1.0})
    columns = ["heating_duration_min", "heating_start_min", "tumor_drug_auc_vs_unheated"] + list(
        KEYS)
    C.print_table(rows, columns[:9])
    C.write_csv(out / "heating_schedule.csv", rows, columns)
    best = max(rows[:-1], key=lambda r: r["efficacy"])
    C.write_json(out / "heating_schedule.json", {
        "settings": {"scenario": "thermodox", "quick": args.quick, "durations_min": durations,
                     "starts_min": starts},
        "rows": rows, "best_efficacy": best,
        "seconds": time.perf_counter() - t_start})

    plt = C.pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    shape = dd.shape
    for ax, key, label in zip(axes[:3], ("tumor_drug_auc_ug_h_per_g",
                                         "released_in_tissue_vessels_fraction", "efficacy"),
                              ("tumor drug AUC (µg·h/g)", "released in tumor vessels (share of "
                               "dose)", "efficacy")):
        z = np.asarray(m[key]).reshape(shape)
        im = ax.imshow(z.T, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(durations)), [f"{d:g}" for d in durations])
        ax.set_yticks(range(len(starts)), [f"{s:g}" for s in starts])
        ax.set_xlabel("heating duration (min)")
        ax.set_ylabel("heating start after infusion start (min)")
        ax.set_title(label, fontsize=10)
        fig.colorbar(im, ax=ax)
    ax = axes[3]
    auc = np.asarray(m["tumor_drug_auc_ug_h_per_g"]).reshape(shape)
    for j, s0 in enumerate(starts):
        ax.plot(durations, auc[:, j] / float(ref["tumor_drug_auc_ug_h_per_g"][0]), "o-",
                label=f"start {s0:g} min")
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("heating duration (min)")
    ax.set_ylabel("tumor drug AUC / unheated")
    ax.legend(fontsize=8)
    ax.set_title("delivery vs duration (infusion 0-30 min)", fontsize=10)
    fig.suptitle("ThermoDox 50 mg/m² over 30 min; tumor T90 held at 42 °C (PI-controlled "
                 "focused ultrasound)", fontsize=10)
    fig.tight_layout()
    C.save_figure(fig, out / "heating_schedule.png")
    print(f"best efficacy: duration {best['heating_duration_min']:g} min, start "
          f"{best['heating_start_min']:g} min ({best['efficacy']:.3f}); "
          f"{time.perf_counter() - t_start:.0f} s")
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
