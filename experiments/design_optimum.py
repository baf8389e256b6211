"""Optimal carrier diameter and release temperature for ThermoDox with hyperthermia.

Question: does the gradient-based optimizer find the best design?  The objective J (efficacy
minus normalized toxicities, MODEL.md §10) of the `thermodox` scenario is evaluated on a dense
41 × 41 grid of (diameter_nm, release_temperature_C) in one batched (vmap) computation, and
`design.optimize` (L-BFGS, 3 starts) is run over the same bounds.  Pass: the optimizer's J is
within 1 % of the grid's best J, and the optimum release temperature is interior and below the
tumor heating temperature (42 °C).

    python experiments/design_optimum.py [--quick] [--n 41] [--out experiments/results]

Writes `design_optimum.json` (both optima, grid maximum, relative gap) and
`design_optimum.png` (J over the grid with the optimizer's paths).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nanotransport import design, io, plots, scenario as sc  # noqa: E402

BOUNDS = {"diameter_nm": (20.0, 200.0), "release_temperature_C": (38.0, 45.0)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="coarse grid (11×11), short horizon")
    p.add_argument("--n", type=int, default=41, help="grid points per axis")
    p.add_argument("--chunk", type=int, default=128, help="grid points per batched call")
    p.add_argument("--out", default="experiments/results")
    args = p.parse_args(argv)
    overrides = ["numerics.cells=30", "numerics.t_end_h=24", "numerics.max_dt_min=30"] \
        if args.quick else []
    n = 11 if args.quick else args.n
    s = sc.load("thermodox", overrides)
    t0 = time.perf_counter()
    a, b, grid = design.objective_grid(s, BOUNDS, n=n, chunk=args.chunk)
    t_grid = time.perf_counter() - t0
    i, j = np.unravel_index(np.argmax(grid), grid.shape)
    t0 = time.perf_counter()
    results = design.optimize(s, BOUNDS, method="lbfgs", starts=3, max_iter=40)
    t_opt = time.perf_counter() - t0
    best = results[0]
    gap = (grid[i, j] - best.objective) / abs(grid[i, j])
    report = {
        "scenario": "thermodox", "overrides": overrides, "grid_points": n * n,
        "grid_best": {"diameter_nm": float(a[i]), "release_temperature_C": float(b[j]),
                      "objective": float(grid[i, j])},
        "optimizer_best": {"design": best.x, "objective": best.objective, "terms": best.terms,
                           "iterations": best.iterations, "converged": best.converged},
        "relative_gap": float(gap),
        "passed": bool(gap <= 0.01 and 38.0 < best.x["formulation.release_temperature_C"] < 42.0),
        "grid_seconds": t_grid, "optimizer_seconds": t_opt,
        "device": str(jax.devices()[0]),
    }
    out = Path(args.out)
    io.write_json(out / "design_optimum.json", report)
    plots.optimization_path(a, b, grid, list(design.check_variables(BOUNDS)),
                            [h for r in results for h in r.history], best.x,
                            out / "design_optimum.png")
    print(json.dumps({k: report[k] for k in ("grid_best", "relative_gap", "passed")}, indent=1))
    print(f"optimizer: {best.x} J = {best.objective:.6f} ({best.iterations} iterations); "
          f"grid {n}×{n} in {t_grid:.0f} s, optimizer in {t_opt:.0f} s")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
