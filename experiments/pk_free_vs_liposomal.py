"""Plasma PK of free doxorubicin vs PEGylated liposomal doxorubicin (Doxil) in patients.

Question: does the model's systemic part reproduce the published plasma PK of both drugs, and
by how much does encapsulation change clearance, volume, AUC and half-lives?

Settings: the systemic parameters of the built-in scenarios ``free-dox`` (60 mg/m² over 10 min)
and ``doxil`` (50 mg/m² over 60 min), adult BSA 1.8 m², as ``nanotransport.simulate.
systemic_parameters`` builds them (carrier clearance from the size and surface laws at 90 nm).
Closed forms of ``nanotransport.pk``: non-compartmental CL = dose/AUC∞ and V_ss = CL·MRT of
total plasma drug, eigenvalue half-lives, AUC∞, the encapsulated share of plasma drug; the
Doxil label quantities at the label's own doses (20 and 10 mg/m², 30-min infusion).  The
coupled tissue simulation of each scenario (one batched call) checks that the plasma curves
of the full model equal the closed form (the tumor takes a negligible share of the dose).

Literature compared with:
* doxorubicin US label §12.3: distribution t½ ≈ 5 min, terminal t½ 20-48 h, CL 324-809
  mL/min/m², V_ss 809-1214 L/m², dose-independent over 30-70 mg/m²; AUC is not given in the
  label: the range shown is dose/CL over the label CL range (derived, not measured);
* Doxil US label Table 8 (the numbers reviewed by Gabizon et al. 2003 Clin Pharmacokinet
  42:419): 20 mg/m² → CL 0.041 L/h/m², V_ss 2.72 L/m², AUC 590 µg·h/mL, t½ 5.2 h and 55 h,
  C_max 8.34 µg/mL; 10 mg/m² → CL 0.056, V_ss 2.83, AUC 277, t½ 4.7 and 52.3 h; ≥ 90 % of
  plasma drug encapsulated;
* human PEG-liposome terminal half-life ≈ 76 h (Harrington et al. 2001 Clin Cancer Res 7:243).

    python experiments/pk_free_vs_liposomal.py [--quick] [--out experiments/results]

Writes ``pk_free_vs_liposomal.csv`` (simulation vs literature, deviation in %),
``pk_free_vs_liposomal.json`` (all numbers) and ``pk_free_vs_liposomal.png`` (plasma
concentration vs time, log scale).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import _common as C
import numpy as np

from nanotransport import pk, simulate, units

BSA = 1.8
L_H = units.LITRE / units.HOUR
LABEL = pk.DOXIL_LABEL  # {20: {...}, 10: {...}} (Doxil label Table 8)


def closed_form(scenario) -> dict:
    """Closed-form PK of a scenario's systemic model (label units)."""
    p, dose = simulate.systemic_parameters(scenario)
    enc = float(scenario["formulation.encapsulated_fraction"])
    hl = pk.half_lives(p)
    out = {
        "cl_l_h_m2": float(pk.clearance(p, enc)) / L_H / BSA,
        "v_ss_l_m2": float(pk.steady_state_volume(p, enc)) / units.LITRE / BSA,
        "auc_inf_ug_h_ml": float(pk.auc(p, dose, enc).total) * C.MW / units.HOUR,
        "auc_free_inf_ug_h_ml": float(pk.auc(p, dose, enc).free_total) * C.MW / units.HOUR,
        "t_half_free_min": (np.asarray(hl.free) / units.MIN).tolist(),
        "t_half_carrier_h": (np.asarray(hl.carrier) / units.HOUR).tolist(),
        "elimination_fractions": dict(zip(p.state_names[p.n_active:],
                                          np.asarray(pk.elimination_fractions(p, enc)).tolist())),
    }
    return out, p, dose, enc


def curves(p, dose, infusion_h, enc, t_h):
    """Plasma total, encapsulated and free (µg/mL) at t_h (closed form, exact)."""
    y = pk.simulate(p, t_h * units.HOUR, dose, infusion_h * units.HOUR, enc)
    c = pk.plasma_concentrations(p, y)
    return (np.asarray(c.total) * C.MW, np.asarray(c.encapsulated) * C.MW,
            np.asarray(c.free_total) * C.MW)


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    t_start = time.perf_counter()
    free_s = C.load("free-dox", quick=args.quick)
    dox_s = C.load("doxil", quick=args.quick)
    free, p_f, dose_f, enc_f = closed_form(free_s)
    dox, p_d, dose_d, enc_d = closed_form(dox_s)

    # Doxil label quantities at the label doses (30-min infusion)
    label_model = {d: {k: float(v) for k, v in pk.liposome_label_metrics(p_d, d, BSA).items()}
                   for d in LABEL}
    # encapsulated share of plasma drug over 0-168 h (label: ≥ 90 %)
    t_fine = np.concatenate([np.linspace(0, 2, 41)[1:], np.linspace(2.5, 168, 200)])
    tot, enc_c, free_c = curves(p_d, dose_d, 1.0, enc_d, t_fine)
    min_enc_share = float(np.min(enc_c / tot))

    # coupled tissue simulation of both scenarios (the carrier type is structure: two compiles)
    runs = [C.run_batch([s_], label=s_.name) for s_ in (free_s, dox_s)]
    sim = {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}
    times_h = simulate.save_times_h(free_s)
    t_end = float(times_h[-1])
    # closed-form AUC over 0 → t_end, by trapezoid on a fine grid, for the check
    t_chk = np.linspace(0.0, t_end, 4001)
    auc_cf = []
    for p, dose, inf_h, enc in ((p_f, dose_f, 10 / 60, enc_f), (p_d, dose_d, 1.0, enc_d)):
        ct = curves(p, dose, inf_h, enc, t_chk)[0]
        auc_cf.append(float(np.sum(0.5 * (ct[1:] + ct[:-1]) * np.diff(t_chk))))
    auc_sim = sim["plasma_auc_total_ug_h_per_ml"]

    # ---------------------------------------------------------------- comparison table
    lab20, lab10 = LABEL[20.0], LABEL[10.0]
    m20, m10 = label_model[20.0], label_model[10.0]
    dose_f_m2 = float(free_s["dose.dose_mg_per_m2"])
    cl_free_mlmin = free["cl_l_h_m2"] * 1000 / 60
    rows = [
        C.compare("free dox: CL", cl_free_mlmin, (324.0, 809.0), "mL/min/m²",
                  "doxorubicin label", "fitted to the geometric mid-point 512"),
        C.compare("free dox: V_ss", free["v_ss_l_m2"], (809.0, 1214.0), "L/m²",
                  "doxorubicin label", "fitted to the geometric mid-point 991"),
        C.compare("free dox: distribution t½", free["t_half_free_min"][0], 5.0, "min",
                  "doxorubicin label"),
        C.compare("free dox: terminal t½", free["t_half_free_min"][-1] / 60, (20.0, 48.0), "h",
                  "doxorubicin label", "fitted to 30 h"),
        C.compare(f"free dox: AUC∞ at {dose_f_m2:g} mg/m²", free["auc_inf_ug_h_ml"],
                  (dose_f_m2 / (0.809 * 60), dose_f_m2 / (0.324 * 60)), "µg·h/mL",
                  "dose/CL, label CL range", "derived from the label, not a measured AUC"),
        C.compare("Doxil 20 mg/m²: CL", m20["cl"], lab20["cl"], "L/h/m²", "Doxil label T8",
                  "label CL ≠ label dose/AUC (0.0339); a linear model cannot match both"),
        C.compare("Doxil 20 mg/m²: V_ss", m20["v_ss"], lab20["v_ss"], "L/m²", "Doxil label T8"),
        C.compare("Doxil 20 mg/m²: AUC", m20["auc"], lab20["auc"], "µg·h/mL", "Doxil label T8",
                  "shares the CL misfit (AUC = dose/CL)"),
        C.compare("Doxil 20 mg/m²: t½ 1", m20["t_half_1"], lab20["t_half_1"], "h",
                  "Doxil label T8"),
        C.compare("Doxil 20 mg/m²: t½ 2", m20["t_half_2"], lab20["t_half_2"], "h",
                  "Doxil label T8"),
        C.compare("Doxil 20 mg/m²: C_max", m20["c_max"], lab20["c_max"], "µg/mL",
                  "Doxil label T8"),
        C.compare("Doxil 10 mg/m²: CL", m10["cl"], lab10["cl"], "L/h/m²", "Doxil label T8",
                  "linear model: CL is dose-independent; label's is not (saturable MPS)"),
        C.compare("Doxil 10 mg/m²: V_ss", m10["v_ss"], lab10["v_ss"], "L/m²", "Doxil label T8"),
        C.compare("Doxil 10 mg/m²: AUC", m10["auc"], lab10["auc"], "µg·h/mL", "Doxil label T8"),
        C.compare("Doxil 10 mg/m²: t½ 1", m10["t_half_1"], lab10["t_half_1"], "h",
                  "Doxil label T8", "dose-independent in the model"),
        C.compare("Doxil 10 mg/m²: t½ 2", m10["t_half_2"], lab10["t_half_2"], "h",
                  "Doxil label T8"),
        C.compare("Doxil: min encapsulated share of plasma drug, 0-168 h", 100 * min_enc_share,
                  (90.0, 100.0), "%", "Doxil label (≥ 90 %)"),
        C.compare("PEG-liposome terminal t½", dox["t_half_carrier_h"][1], 76.0, "h",
                  "Harrington et al. 2001 (111In-liposomes)",
                  "different liposome/label and patients (cancer, imaging dose); the model "
                  "is fitted to the Doxil label's 55 h"),
    ]
    ratios = {
        "clearance_free_over_doxil": free["cl_l_h_m2"] / dox["cl_l_h_m2"],
        "v_ss_free_over_doxil": free["v_ss_l_m2"] / dox["v_ss_l_m2"],
        "auc_per_dose_doxil_over_free":
            (dox["auc_inf_ug_h_ml"] / float(dox_s["dose.dose_mg_per_m2"]))
            / (free["auc_inf_ug_h_ml"] / dose_f_m2),
        "label_auc_per_dose_doxil_20_over_free_mid": (lab20["auc"] / 20.0) / (1.0 / (0.512 * 60)),
    }
    checks = [{"scenario": n, "plasma_auc_total_sim_0_to_t_end": float(a_s),
               "plasma_auc_total_closed_form_0_to_t_end": a_c,
               "relative_difference": float(a_s / a_c - 1)}
              for n, a_s, a_c in zip(("free-dox", "doxil"), auc_sim, auc_cf)]

    out = Path(args.out)
    C.write_csv(out / "pk_free_vs_liposomal.csv", rows,
                ["quantity", "model", "literature", "unit", "deviation_pct", "source", "note"])
    C.write_json(out / "pk_free_vs_liposomal.json", {
        "question": __doc__.strip().splitlines()[0], "quick": args.quick,
        "body_surface_area_m2": BSA,
        "free_dox": {"scenario": "free-dox", "dose_mg_per_m2": dose_f_m2, **free},
        "doxil": {"scenario": "doxil", "dose_mg_per_m2": float(dox_s["dose.dose_mg_per_m2"]),
                  **dox, "label_quantities_model": label_model,
                  "min_encapsulated_share_0_168h": min_enc_share},
        "label": {str(k): v for k, v in LABEL.items()},
        "ratios": ratios, "comparison": rows, "simulation_vs_closed_form": checks,
        "seconds": time.perf_counter() - t_start,
    })

    # ---------------------------------------------------------------- figure
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.9), gridspec_kw={"width_ratios": [1, 2]})
    t = np.concatenate([np.linspace(0.0, 2.0, 161)[1:], np.linspace(2.02, 168.0, 500)])
    ft, _, _ = curves(p_f, dose_f, 10 / 60, enc_f, t)
    dt_, _, df_ = curves(p_d, dose_d, 1.0, enc_d, t)
    lt, _, _ = curves(p_d, units.mg_to_mol(20.0 * BSA), 0.5, enc_d, t)
    pf = sim["plasma_encapsulated_ug_per_ml"] + sim["plasma_free_ug_per_ml"]
    for ax, t_max in zip(axes, (6.0, 168.0)):
        ax.plot(t, ft, color="C3", label=f"free doxorubicin {dose_f_m2:g} mg/m², 10 min")
        ax.plot(t, dt_, color="C0", label="Doxil 50 mg/m², 60 min: total")
        ax.plot(t, df_, color="C0", ls="--", label="Doxil 50 mg/m²: released (free) drug")
        ax.plot(t, lt, color="C2", lw=1, label="Doxil 20 mg/m², 30 min (label dose)")
        ax.plot([0.5], [lab20["c_max"]], "o", color="C2", ms=5,
                label="label C_max at 20 mg/m²")
        ax.plot(times_h[1:], pf[0, 1:], "x", color="C3", ms=5)
        ax.plot(times_h[1:], pf[1, 1:], "x", color="C0", ms=5,
                label="coupled tissue simulation")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 100)
        ax.set_xlim(0, t_max)
        ax.set_xlabel("time after start of infusion (h)")
    axes[1].set_xticks(np.arange(0, 169, 24))
    axes[0].set_ylabel("plasma doxorubicin (µg/mL)")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Plasma PK: free vs PEG-liposomal doxorubicin (human, BSA 1.8 m²)",
                 fontsize=10)
    C.save_figure(fig, out / "pk_free_vs_liposomal.png")

    C.print_table(rows, ["quantity", "model", "literature", "unit", "deviation_pct"],
                  title="Plasma PK: model vs literature (deviation 0 = inside the range)")
    print(f"CL free/Doxil = {ratios['clearance_free_over_doxil']:.0f}×, V_ss free/Doxil = "
          f"{ratios['v_ss_free_over_doxil']:.0f}×, AUC per mg Doxil/free = "
          f"{ratios['auc_per_dose_doxil_over_free']:.0f}× (label: "
          f"{ratios['label_auc_per_dose_doxil_20_over_free_mid']:.0f}×)")
    for c in checks:
        print(f"  {c['scenario']}: plasma AUC 0-{t_end:g} h, coupled simulation vs closed form: "
              f"{c['relative_difference']:+.2e}")
    print(f"wrote {out}/pk_free_vs_liposomal.{{csv,json,png}} in "
          f"{time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
