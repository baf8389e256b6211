"""Vessel normalization by gradient: how carrier, free-drug and intracellular delivery into the
synthetic tumor network respond to the tumor vessels' diameter and wall permeability.

Normalization (Jain 2005 Science 307:58; Jain 2001 Nat Med 7:987) shrinks dilated tumor vessels
and tightens their walls.  ``studies/network_design.py`` scales the tumor segments' radii by
e^(s_d) and their wall permeabilities (carrier, free drug, water) by e^(s_p), recomputes flow and
haematocrit, the Starling exchange and the delivery, and differentiates the tumor's mean carrier
and free drug and the drug in its cells at the end in forward mode.  This script prints, for the `tumor-network` scenario
(Doxil) at the unmodified network and at a "normalized" one (diameters −20 %, permeability
halved), the values and their elasticities ∂ln(value)/∂s — the design question "does
normalization help this carrier here?" answered by gradient, without a parameter sweep.  A
second table asks the formulation's question on the heated `thermodox-network` scenario: the
elasticities ∂ln(value)/∂ln(x) of the tumor's carrier, free drug and drug in cells with respect to the
liposome's diameter and its release temperature (°C), from one forward-mode Jacobian through
the plasma PK, the walls, release at k_rel(T) and delivery.  Writes
``vessel_normalization.json``.  ``--quick``: a 0.6-mm box and 1 h (a smoke test).
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
    path = Path(args.out) / "vessel_normalization.json"
    _common.write_json(path, {"scenario": "tumor-network", "overrides": overrides,
                              "segments": int(prob.net.n_segments),
                              "tissue_grid": list(prob.grid.shape), "rows": rows,
                              "formulation_scenario": "thermodox-network",
                              "formulation_rows": formulation})
    print(f"wrote {path}")
    return 0


def formulation_rows(quick: bool) -> list:
    """Elasticities of heated delivery (``thermodox-network``) to the liposome's diameter and
    release temperature."""
    from nanotransport.model import scenario as sc
    from nanotransport.studies import network_design

    overrides = (["network.box_mm=[0.6,0.6,0.6]", "network.tumor_radius_mm=0.2",
                  "network.core_radius_mm=0.08", "numerics.t_end_h=1"] if quick else [])
    prob = network_design.problem(sc.load("thermodox-network", overrides),
                                  ["diameter_nm", "release_temperature_C"])
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
                     "seconds": seconds})
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
