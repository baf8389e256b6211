"""IFP and convection vs tumor size; vascular normalization for small vs large carriers.

Questions: (1) how do the model's interstitial fluid pressure (IFP) and outward fluid velocity
depend on tumor radius, and do they follow the Baxter–Jain behaviour (IFP plateau ≈ effective
pressure p_e in the centre, steep fall within ~1 mm of the margin, outward velocity peaking at
the rim at ~0.1-0.2 µm/s)?  (2) does vascular normalization (smaller, less leaky vessel walls)
help small carriers and hinder large ones, as Chauhan et al. 2012 found?

Settings.
(1) Tumor radius 2, 5, 10, 20 mm (3 with ``--quick``), high-EPR tumor values of the ``doxil``
scenario (Baxter & Jain 1989 Table 1: L_p 2.8e-7 cm/(mmHg·s), S_v 200 cm⁻¹, K 4.13e-8
cm²/(mmHg·s), p_e = 15.6 − 0.82·(20 − 15) = 11.5 mmHg) inside a 5-mm shell of normal tissue with
lymphatics; steady Darcy–Starling solve (``nanotransport.fluid.solve_pressure``) on the
scenario's grid (200 cells, refined at the margin).  Compared with two closed forms: the
isolated sphere (p = 0 at the rim, docs/model.md §4) and the sphere embedded in an infinite
normal-tissue medium with lymphatic drainage (continuity of p and K ∂p/∂r at the margin;
derived here: p = P_t + A sinh(k_t r)/r inside, P_n + B e^(−k_n (r − R))/r outside).
(2) ``doxil-mouse`` (4-mm subcutaneous tumor, 6 mg/kg bolus; Chauhan et al. worked in mice)
with carrier diameter 12 nm or 125 nm (their particle sizes) in three vessel states:
baseline high-EPR (pore radius 400 nm, L_p 2.8e-7); *normalized* = pore radius 400 → 100 nm,
with the gaps' tenth of L_p following ⟨r²⟩ (docs/model.md §4; our choice, following the
qualitative description of normalization as "pruning and fortifying leaky vessels", Jain 2005
Science 307:58; the magnitudes are assumptions, not measurements); and a sensitivity arm
*normalized + oncotic* (protein reflection coefficient σ_0 0.82 → 0.91 and interstitial
oncotic pressure 15 → 10 mmHg, the normal-tissue values: less protein leak lowers p_e from
11.5 to 6.5 mmHg, the route by which the Baxter–Jain model can lower IFP in a tumor with α ≫ 1).
All six (state × size) simulations share one structure: one batched call.

Literature compared with: Baxter & Jain 1989 (Microvasc Res 37:77) closed form, u(R) ≈ 0.17
µm/s for R = 1 cm (docs/model.md §4); Boucher et al. 1990 (Cancer Res 50:4478): IFP rises to its
plateau over ~0.2-1.1 mm from the margin; Chauhan et al. 2012 (Nat Nanotechnol 7:383):
normalization (DC101) improved the delivery of 12-nm particles and hindered that of 125-nm
particles, and in their model lowered IFP.

    python experiments/ifp_and_convection.py [--quick] [--out experiments/results]

Writes ``ifp_and_convection.csv`` (profiles summary per radius and normalization arms),
``ifp_and_convection.json`` and ``ifp_and_convection.png``.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import _common as C
import numpy as np

from nanotransport import fluid, simulate, tissue, units

MMHG = units.MMHG_PA
RADII_MM = (2.0, 5.0, 10.0, 20.0)
NORMALIZED = {"tissue.tumor.pore_radius_nm": 100.0}  # 400 → 100 nm (L_p follows: × 1/16)
SIGMA0_NORMAL = 0.91  # normal-tissue σ_0 and π_i of the schema (Baxter & Jain 1989)
PI_I_NORMAL = 10.0


def fluid_solution(scenario):
    """Model IFP (mmHg) at cell centres, velocity (µm/s) at faces, and the region values."""
    lay = tissue.layout(scenario)
    maps = tissue.tissue_maps(lay, scenario)
    st = fluid.solve_pressure(lay.grid, maps.hydraulic_k, maps.lp_sv, maps.p_eff, maps.lymph)
    tum = np.asarray(lay.tumor) > 0
    vals = {
        "K_t": float(np.asarray(maps.hydraulic_k)[tum][0]),
        "K_n": float(np.asarray(maps.hydraulic_k)[~tum][0]),
        "a_t": float(np.asarray(maps.lp_sv)[tum][0] + np.asarray(maps.lymph)[tum][0]),
        "a_n": float(np.asarray(maps.lp_sv)[~tum][0] + np.asarray(maps.lymph)[~tum][0]),
        "pe_t": float(np.asarray(maps.p_eff)[tum][0]),
        "peq_n": float(np.asarray(maps.lp_sv * maps.p_eff)[~tum][0]
                       / (np.asarray(maps.lp_sv)[~tum][0] + np.asarray(maps.lymph)[~tum][0])),
        "lp_sv_t": float(np.asarray(maps.lp_sv)[tum][0]),
    }
    return (np.asarray(st.pressure) / MMHG, np.asarray(st.velocity[0]) / units.UM,
            np.asarray(lay.grid.centers[0]) / units.MM, np.asarray(lay.grid.faces[0]) / units.MM,
            vals)


def embedded_closed_form(v, R):
    """p(r) (Pa) and u(r) (m/s) of a uniformly perfused sphere of radius R (m) in an infinite
    normal-tissue medium with lymphatics: −K∇²p + a p = a p_eq in each region, continuity of
    p and K ∂p/∂r at R, bounded at 0 and ∞."""
    kt, kn = math.sqrt(v["a_t"] / v["K_t"]), math.sqrt(v["a_n"] / v["K_n"])
    pt, pn = v["pe_t"], v["peq_n"]
    s, c = math.sinh(kt * R), math.cosh(kt * R)
    # unknowns A, B: P_t + A s/R = P_n + B/R ;  K_t A (kt c/R − s/R²) = K_n B (−kn/R − 1/R²)
    m = np.array([[s / R, -1.0 / R],
                  [v["K_t"] * (kt * c / R - s / R**2), v["K_n"] * (kn / R + 1.0 / R**2)]])
    A, B = np.linalg.solve(m, np.array([pn - pt, 0.0]))

    def p(r):
        r = np.asarray(r, float)
        inside = pt + A * np.sinh(kt * np.minimum(r, R)) / r
        outside = pn + B * np.exp(-kn * (r - R)) / r
        return np.where(r < R, inside, outside)

    def u(r):
        r = np.asarray(r, float)
        rr = np.minimum(r, R)
        dp_in = A * (kt * np.cosh(kt * rr) / rr - np.sinh(kt * rr) / rr**2)
        dp_out = B * np.exp(-kn * (r - R)) * (-kn / r - 1.0 / r**2)
        return np.where(r < R, -v["K_t"] * dp_in, -v["K_n"] * dp_out)

    return p, u


def isolated_closed_form(v, R):
    """Baxter–Jain isolated sphere, p(R) = 0: p/p_e = 1 − sinh(α r/R)/((r/R) sinh α)."""
    alpha = R * math.sqrt(v["lp_sv_t"] / v["K_t"])
    p = lambda r: v["pe_t"] * (1.0 - np.sinh(alpha * r / R) / (r / R * np.sinh(alpha)))  # noqa
    u_rim = v["K_t"] * v["pe_t"] * (alpha / math.tanh(alpha) - 1.0) / R
    return alpha, p, u_rim


def rise_width_mm(r, p, radius, fraction=0.9):
    """Distance from the margin inward over which IFP rises from its rim value to ``fraction``
    of its central value (NaN if the centre is below that)."""
    inside = r < radius
    ri, pi = r[inside], p[inside]
    level = pi[-1] + fraction * (pi[0] - pi[-1])
    for i in range(len(ri) - 1, 0, -1):
        if pi[i - 1] >= level > pi[i]:
            x = ri[i] + (level - pi[i]) / (pi[i - 1] - pi[i]) * (ri[i - 1] - ri[i])
            return float(radius - x)
    return float("nan")


def part_radius(radii, cells):
    rows, curves = [], {}
    for radius in radii:
        s = C.load("doxil", [f"tumor.radius_mm={radius}", f"numerics.cells={cells}"])
        p, u, r, rf, v = fluid_solution(s)
        R = radius * units.MM
        p_emb, u_emb = embedded_closed_form(v, R)
        alpha, p_iso, u_rim_iso = isolated_closed_form(v, R)
        p_cf = p_emb(r * units.MM) / MMHG
        u_cf = u_emb(rf[1:] * units.MM) / units.UM
        i_peak = int(np.argmax(u))
        inside = r < radius
        rows.append({
            "tumor_radius_mm": radius, "alpha": alpha,
            "p_e_mmhg": v["pe_t"] / MMHG,
            "ifp_centre_mmhg": float(p[0]), "ifp_centre_closed_form_mmhg": float(p_cf[0]),
            "ifp_centre_isolated_mmhg": float(p_iso(r[0] * units.MM) / MMHG),
            "ifp_rim_mmhg": float(np.interp(radius, r, p)),
            "ifp_tumor_mean_mmhg": C.tumor_mean(rf, p, inside),
            "u_peak_um_s": float(u[i_peak]), "u_peak_r_mm": float(rf[i_peak]),
            "u_rim_closed_form_um_s": float(u_emb(R * (1 - 1e-12)) / units.UM),
            "u_rim_isolated_um_s": u_rim_iso / units.UM,
            "rise_width_90pct_mm": rise_width_mm(r, p, radius),
            "max_abs_p_error_vs_closed_form_mmhg": float(np.max(np.abs(p - p_cf))),
            "max_abs_u_error_vs_closed_form_um_s": float(np.max(np.abs(u[1:] - u_cf))),
        })
        curves[radius] = (r, p, rf, u, p_cf, u_cf)
    return rows, curves


def part_normalization(quick):
    base = C.load("doxil-mouse", quick=quick)
    states = {
        "baseline": {},
        "normalized": dict(NORMALIZED),  # the gaps' share of L_p falls with ⟨r²⟩ (× 1/16 of f = 0.1)
        "normalized + oncotic": {
            **NORMALIZED,
            "tissue.tumor.protein_reflection_coefficient": SIGMA0_NORMAL,
            "tissue.tumor.interstitial_oncotic_pressure_mmhg": PI_I_NORMAL},
    }
    scenarios, labels = [], []
    for state, changes in states.items():
        for d in (12.0, 125.0):
            scenarios.append(base.replace(diameter_nm=d, **changes))
            labels.append((state, d))
    sim = C.run_batch(scenarios, label="normalization: 3 states × 2 sizes")
    times_h = simulate.save_times_h(base)
    r, faces, tumor, radius = C.radial_grid(base)
    rows = []
    for j, (state, d) in enumerate(labels):
        prof = sim["carrier_ev_profile"][j, -1]
        p = sim["pressure_mmhg"][j]
        row = {"state": state, "diameter_nm": d,
               "ifp_centre_mmhg": float(p[0]),
               "ifp_tumor_mean_mmhg": C.tumor_mean(faces, p, tumor),
               "u_peak_um_s": float(np.max(sim["velocity_um_per_s"][j]))}
        for t in (24.0, 72.0):
            if t <= times_h[-1]:
                k = C.time_index(times_h, t)
                row[f"tumor_carrier_pct_id_per_g_{t:g}h"] = sim["tumor_carrier_pct_id_per_g"][j, k]
        row.update({
            "tumor_drug_auc_ug_h_per_g": sim["tumor_drug_auc_ug_h_per_g"][j],
            "extravascular_carrier_tumor_mean_ug_per_g": C.tumor_mean(faces, prof, tumor),
            "penetration_1_over_e_mm": C.penetration_depth(r, prof, tumor, radius, np.exp(-1)),
        })
        rows.append(row)
    key = [k for k in rows[0] if k.startswith("tumor_carrier_pct_id_per_g_")][-1]
    effect = {}
    for d in (12.0, 125.0):
        b = next(row for row in rows if row["state"] == "baseline" and row["diameter_nm"] == d)
        for state in list(states)[1:]:
            n = next(row for row in rows if row["state"] == state and row["diameter_nm"] == d)
            effect[f"{state}, {d:g} nm"] = {
                "accumulation_ratio": n[key] / b[key],
                "extravascular_mean_ratio": n["extravascular_carrier_tumor_mean_ug_per_g"]
                / b["extravascular_carrier_tumor_mean_ug_per_g"],
                "drug_auc_ratio": n["tumor_drug_auc_ug_h_per_g"] / b["tumor_drug_auc_ug_h_per_g"],
                "penetration_ratio": n["penetration_1_over_e_mm"] / b["penetration_1_over_e_mm"],
                "ifp_centre_change_mmhg": n["ifp_centre_mmhg"] - b["ifp_centre_mmhg"],
            }
    return rows, effect, key, (r, radius, sim, labels, float(times_h[-1]))


def main(argv=None):
    args = C.parse_args(__doc__, argv)
    t_start = time.perf_counter()
    radii = (2.0, 10.0, 20.0) if args.quick else RADII_MM
    rad_rows, curves = part_radius(radii, 200)
    norm_rows, effect, key, (r_m, radius_m, sim_m, labels_m, t_end_m) = \
        part_normalization(args.quick)

    ten = next((row for row in rad_rows if row["tumor_radius_mm"] == 10.0), rad_rows[-1])
    small = rad_rows[0]
    comparison = [
        C.compare("IFP centre / p_e, R = 10 mm", ten["ifp_centre_mmhg"] / ten["p_e_mmhg"], 1.0,
                  "1", "Baxter & Jain 1989 (plateau = p_e for α ≫ 1)",
                  "isolated-sphere closed form gives 1 − α/sinh α ≈ 1"),
        C.compare(f"IFP centre / p_e, R = {small['tumor_radius_mm']:g} mm",
                  small["ifp_centre_mmhg"] / small["p_e_mmhg"],
                  small["ifp_centre_isolated_mmhg"] / small["p_e_mmhg"], "1",
                  "Baxter & Jain closed form (isolated sphere)",
                  "embedded tumor: normal tissue holds the rim above 0"),
        C.compare("peak outward velocity, R = 10 mm", ten["u_peak_um_s"], (0.1, 0.2), "µm/s",
                  "Baxter & Jain 1989 / docs/model.md §4 (0.17 isolated)",
                  f"isolated closed form {ten['u_rim_isolated_um_s']:.3f}; embedded closed form "
                  f"{ten['u_rim_closed_form_um_s']:.3f}"),
        C.compare("IFP rise width (rim → 90 % of centre), R = 10 mm", ten["rise_width_90pct_mm"],
                  (0.2, 1.1), "mm", "Boucher et al. 1990",
                  "= ~2.3/k_t = 2.3 R/α with the Baxter-Jain values"),
        C.compare("max |IFP model − embedded closed form| (all radii)",
                  max(row["max_abs_p_error_vs_closed_form_mmhg"] for row in rad_rows), 0.0,
                  "mmHg", "closed form derived here", "discretization error only"),
    ]
    for name, e in effect.items():
        if "oncotic" in name:
            continue
        d = float(name.split(",")[1].split()[0])
        expected = (1.0, 100.0) if d < 50 else (0.0, 1.0)
        comparison.append(C.compare(
            f"normalized / baseline tumor accumulation ({key.rsplit('_', 1)[-1]}), {d:g} nm",
            e["accumulation_ratio"], expected, "ratio", "Chauhan et al. 2012",
            "> 1 expected for 12 nm (improved), < 1 for 125 nm (hindered)"))
        comparison.append(C.compare(
            f"normalized − baseline IFP centre, {d:g} nm", e["ifp_centre_change_mmhg"],
            (-100.0, 0.0), "mmHg", "Chauhan et al. 2012 (model); Jain 2005",
            "< 0 expected (IFP falls)"))

    out = Path(args.out)
    C.write_csv(out / "ifp_and_convection.csv", rad_rows + norm_rows,
                list(dict.fromkeys(k for row in rad_rows + norm_rows for k in row)))
    C.write_json(out / "ifp_and_convection.json", {
        "question": __doc__.strip().splitlines()[0], "quick": args.quick,
        "radius_scan": rad_rows, "normalization": {
            "scenario": "doxil-mouse", "pore_radius_nm": [400.0, NORMALIZED[
                "tissue.tumor.pore_radius_nm"]], "lp_factor": 1.0 / 16.0,
            "oncotic_sensitivity_arm": {"protein_reflection_coefficient": SIGMA0_NORMAL,
                                        "interstitial_oncotic_pressure_mmhg": PI_I_NORMAL},
            "rows": norm_rows, "effect": effect},
        "comparison": comparison, "seconds": time.perf_counter() - t_start,
    })

    # ---------------------------------------------------------------- figure
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.9))
    for i, (radius, (r, p, rf, u, p_cf, u_cf)) in enumerate(curves.items()):
        col = f"C{i}"
        x, xf = r / radius, rf / radius
        axes[0].plot(x, p, color=col, label=f"R = {radius:g} mm")
        axes[0].plot(x[::6], p_cf[::6], "o", color=col, ms=3, mfc="none")
        axes[1].plot(xf, u, color=col, label=f"R = {radius:g} mm")
        axes[1].plot(xf[1::6], u_cf[::6], "o", color=col, ms=3, mfc="none")
    axes[0].axhline(ten["p_e_mmhg"], color="0.5", lw=0.8, ls=":")
    axes[0].text(0.02, ten["p_e_mmhg"] * 1.02, "p_e", fontsize=7, color="0.4")
    axes[0].set_ylabel("interstitial fluid pressure (mmHg)")
    axes[1].axhspan(0.1, 0.2, color="0.9", zorder=0)
    axes[1].set_ylabel("outward Darcy velocity (µm/s)")
    for ax in axes[:2]:
        ax.set_xlabel("r / R (tumor margin at 1)")
        ax.set_xlim(0, 1.3)
        ax.legend(fontsize=7, title="model (—), closed form (o)", title_fontsize=7)
    axes[0].set_title("IFP vs tumor size", fontsize=9)
    axes[1].set_title("fluid velocity (grey: 0.1-0.2 µm/s)", fontsize=9)
    ax = axes[2]
    r_mm = r_m
    tum = r_mm < radius_m
    styles = {"baseline": "-", "normalized": "--", "normalized + oncotic": ":"}
    for j, (state, d) in enumerate(labels_m):
        prof = sim_m["carrier_ev_profile"][j, -1]
        ax.plot(r_mm[tum] / radius_m, prof[tum], styles[state],
                color="C0" if d < 50 else "C3", label=f"{d:g} nm, {state}")
    ax.set_yscale("log")
    ax.set_xlabel("r / R (mouse tumor, R = 4 mm)")
    ax.set_ylabel("extravascular carriers (µg/g)")
    ax.set_title(f"normalization: extravascular carriers at {t_end_m:g} h", fontsize=9)
    ax.legend(fontsize=6)
    C.save_figure(fig, out / "ifp_and_convection.png")

    C.print_table(rad_rows, ["tumor_radius_mm", "alpha", "ifp_centre_mmhg",
                             "ifp_centre_closed_form_mmhg", "ifp_centre_isolated_mmhg",
                             "ifp_rim_mmhg", "u_peak_um_s", "u_rim_closed_form_um_s",
                             "u_rim_isolated_um_s", "rise_width_90pct_mm"],
                  title="IFP and velocity vs tumor radius (model; closed forms)")
    C.print_table(norm_rows, title="Vascular normalization (doxil-mouse)")
    C.print_table(comparison, ["quantity", "model", "literature", "unit", "deviation_pct"],
                  title="Model vs literature")
    print(f"wrote {out}/ifp_and_convection.{{csv,json,png}} in "
          f"{time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
