"""Vessel normalization by gradient: how carrier, free-drug and intracellular delivery into the
synthetic tumor network respond to the tumor vessels' diameter and wall permeability.

Normalization (Jain 2005 Science 307:58; Jain 2001 Nat Med 7:987) shrinks dilated tumor vessels
and tightens their walls.  ``studies/network_design.py`` scales the tumor segments' radii by
e^(s_d) and their wall permeabilities (carrier, free drug, water) by e^(s_p), recomputes flow and
haematocrit, the Starling exchange and the delivery, and differentiates the tumor's mean carrier
and free drug and the drug in its cells at the end in forward mode.  This script prints, for the
`tumor-network` scenario (Doxil) at the unmodified network and at a "normalized" one (diameters
−20 %, permeability halved), the values and their elasticities ∂ln(value)/∂s — the design
question "does normalization help this carrier here?" answered by gradient, without a parameter
sweep.  A second table asks the formulation's question on the heated `thermodox-network`
scenario: the elasticities ∂ln(value)/∂ln(x) of the tumor's carrier, free drug and drug in
cells with respect to the liposome's diameter and its release temperature (°C), and their
change per °C of the heating's target temperature, from one forward-mode Jacobian through the
plasma PK, the walls, the heating's amplitude, release at k_rel(T) and delivery.  A
third part asks it vessel by vessel: the derivatives of the tumor's carrier at the end with
respect to *every* segment's radius and wall permeability, from one reverse-mode pass
(``network_design.segment_sensitivity``), summarized (how concentrated the effect is, tumor vs
surrounding vessels, the strongest segments), mapped in ``vessel_normalization_segments.png``
and listed per segment in ``vessel_normalization_segments.csv``.  Writes ``vessel_normalization.json``.  ``--quick``: a
0.6-mm box and 1 h (a smoke test).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

NORMALIZED = (float(np.log(0.8)), float(np.log(0.5)))


def main(argv=None) -> int:
    import jax
    jax.config.update("jax_enable_x64", True)
    from nanotransport.model import scenario as sc
    from nanotransport.studies import network_design

    args = _common.parse_args(__doc__, argv)
    overrides = (["network.box_mm=[0.6,0.6,0.6]", "network.tumor_radius_mm=0.2",
                  "network.core_radius_mm=0.08", "numerics.t_end_h=1"] if args.quick else [])
    scenario = sc.load("tumor-network", overrides)
    prob = network_design.problem(scenario)
    rows = []
    for label, design in (("as generated", (0.0, 0.0)), ("normalized", NORMALIZED)):
        t0 = time.perf_counter()
        out = network_design.sensitivity(prob, design)
        seconds = time.perf_counter() - t0
        for i, name in enumerate(network_design.OUTPUTS):
            value = float(out["values"][i])
            rows.append({"network": label, "diameter_scale": round(float(np.exp(design[0])), 3),
                         "permeability_scale": round(float(np.exp(design[1])), 3),
                         "quantity": f"tumor {name} at {prob.t_end_s / 3600:g} h (µg/mL)",
                         "value": value,
                         "elasticity_diameter": float(out["jacobian"][i, 0]) / value,
                         "elasticity_permeability": float(out["jacobian"][i, 1]) / value,
                         "seconds": round(seconds, 1)})
    _common.print_table(rows)
    formulation = formulation_rows(args.quick)
    _common.print_table(formulation)
    segments = segment_summary(prob, Path(args.out) / "vessel_normalization_segments.png")
    _common.print_table(segments["strongest"])
    print({k: v for k, v in segments.items() if k != "strongest"})
    path = Path(args.out) / "vessel_normalization.json"
    _common.write_json(path, {"scenario": "tumor-network", "overrides": overrides,
                              "segments": int(prob.net.n_segments),
                              "tissue_grid": list(prob.grid.shape), "rows": rows,
                              "formulation_scenario": "thermodox-network",
                              "formulation_rows": formulation,
                              "segment_sensitivity": segments})
    print(f"wrote {path}")
    return 0


def formulation_rows(quick: bool) -> list:
    """Elasticities of heated delivery (``thermodox-network``) to the liposome's diameter and
    release temperature, and its change per °C of the heating's target temperature."""
    from nanotransport.model import scenario as sc
    from nanotransport.studies import network_design

    overrides = (["network.box_mm=[0.6,0.6,0.6]", "network.tumor_radius_mm=0.2",
                  "network.core_radius_mm=0.08", "numerics.t_end_h=1"] if quick else [])
    prob = network_design.problem(sc.load("thermodox-network", overrides),
                                  ["diameter_nm", "release_temperature_C",
                                   "target_temperature_C"])
    x0 = network_design.start(prob)
    t0 = time.perf_counter()
    out = network_design.sensitivity(prob, x0)
    seconds = round(time.perf_counter() - t0, 1)
    rows = []
    for i, name in enumerate(network_design.OUTPUTS):
        value = float(out["values"][i])
        rows.append({"scenario": "thermodox-network" + (" (quick)" if quick else ""),
                     "quantity": f"tumor {name} at {prob.t_end_s / 3600:g} h (µg/mL)",
                     "value": value,
                     "elasticity_diameter": float(out["jacobian"][i, 2]) * x0[2] / value,
                     "elasticity_release_temperature": float(out["jacobian"][i, 3]) * x0[3]
                     / value,
                     "per_degree_C": float(out["jacobian"][i, 3]) / value,
                     "per_degree_C_of_heating": float(out["jacobian"][i, 4]) / value,
                     "seconds": seconds})
    return rows


def _share_count(values: np.ndarray, share: float) -> int:
    """The fewest entries whose |values| sum to ``share`` of the total."""
    a = np.sort(np.abs(values))[::-1]
    return int(np.searchsorted(np.cumsum(a), share * a.sum()) + 1)


def segment_summary(prob, figure_path: Path) -> dict:
    """Per-segment derivatives of the tumor's carrier at the end (one reverse-mode pass),
    summarized, with a map of both (x–y projection)."""
    from nanotransport.model import haemodynamics as hm
    from nanotransport.studies import network_design

    t0 = time.perf_counter()
    out = network_design.segment_sensitivity(prob, "carrier")
    seconds = round(time.perf_counter() - t0, 1)
    state = hm.solve(prob.net, prob.rheology)
    flow_nl_min = np.abs(state["flow_m3_per_s"]) * 6e13
    tumor = prob.tumor_segment
    rows = []
    for i in np.argsort(-np.abs(out["radius"]))[:6]:
        rows.append({"segment": int(i), "in tumor": bool(tumor[i]),
                     "radius_um": round(float(prob.net.segment_radius_m[i]) * 1e6, 2),
                     "flow_nl_per_min": float(flow_nl_min[i]),
                     "d_carrier_d_ln_radius": float(out["radius"][i]),
                     "d_carrier_d_ln_wall": float(out["wall"][i])})
    summary = {
        "output": f"tumor carrier at {prob.t_end_s / 3600:g} h (µg/mL)",
        "value": out["value"], "seconds_reverse_pass": seconds,
        "sum_d_ln_radius_tumor_segments": float(out["radius"][tumor].sum()),
        "sum_d_ln_radius_other_segments": float(out["radius"][~tumor].sum()),
        "sum_d_ln_wall_all_segments": float(out["wall"].sum()),
        "segments_with_half_of_abs_d_ln_radius": _share_count(out["radius"], 0.5),
        "segments_with_90_percent_of_abs_d_ln_radius": _share_count(out["radius"], 0.9),
        "tumor_share_of_abs_d_ln_radius": float(np.abs(out["radius"][tumor]).sum()
                                                / np.abs(out["radius"]).sum()),
        "segments_with_negative_d_ln_radius": int(np.sum(out["radius"] < 0)),
        "strongest": rows}
    _segment_figure(prob, out, figure_path)
    _common.write_csv(figure_path.with_suffix(".csv"), [
        {"segment": i, "in_tumor": int(tumor[i]),
         "radius_um": float(prob.net.segment_radius_m[i]) * 1e6,
         "flow_nl_per_min": float(flow_nl_min[i]),
         "d_carrier_d_ln_radius": float(out["radius"][i]),
         "d_carrier_d_ln_wall": float(out["wall"][i])} for i in range(prob.net.n_segments)])
    return summary


def _segment_figure(prob, out: dict, path: Path) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.colors import SymLogNorm
    plt = _common.pyplot()

    pos = prob.net.node_position_m[:, :2] * 1e3
    ends = prob.net.segment_nodes
    lines = np.stack([pos[ends[:, 0]], pos[ends[:, 1]]], axis=1)
    width = 0.4 + 2.0 * prob.net.segment_radius_m / prob.net.segment_radius_m.max()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    centre = prob.net.node_position_m[:, :2].min(0) * 1e3 + 0.5 * np.ptp(pos, axis=0)
    for ax, name, title in ((axes[0], "radius", "∂(tumor carrier)/∂ln r, per segment"),
                            (axes[1], "wall", "∂(tumor carrier)/∂ln P, per segment")):
        v = out[name]
        top = float(np.max(np.abs(v))) or 1.0
        lc = LineCollection(lines, linewidths=width, cmap="RdBu_r",
                            norm=SymLogNorm(linthresh=1e-2 * top, vmin=-top, vmax=top))
        lc.set_array(v)
        ax.add_collection(lc)
        ax.add_patch(plt.Circle(centre, float(prob.scenario["network.tumor_radius_mm"]),
                                fill=False, ls="--", color="k", lw=0.8))
        ax.autoscale()
        ax.set_aspect("equal")
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        ax.set_title(title, fontsize=10)
        fig.colorbar(lc, ax=ax, label="µg/mL per unit ln scale", shrink=0.85,
                     ticks=[-top, -0.1 * top, 0.0, 0.1 * top, top], format="%.1e")
    fig.suptitle(f"Which vessels matter: tumor carrier at {prob.t_end_s / 3600:g} h "
                 f"= {out['value']:.3g} µg/mL (dashed: tumor sphere, projected)", fontsize=10)
    _common.save_figure(fig, path)


if __name__ == "__main__":
    raise SystemExit(main())
