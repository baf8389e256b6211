"""How far the default grid's carrier profile is from a converged one (issue #19 item 2).

Goal: the default doxil model grid (100 radial cells) within 0.5 % (L2 over the tumor) of a
converged interstitial carrier profile at 1 h.

Reference: 1600 cells (geometric margin grading, ratio 1000), limited convection, 0.05-min
steps to 1 h (its own convergence is printed: the same with 3200 cells).  With
``--with-72h`` also a 72-h reference (1600 cells, 0.25-min steps; ~10 min on 2 cores) and the
errors at 72 h.  Candidates run the full default schedule (72 h, default saved times and
steps) and are compared at 1 h (and 72 h).  Profiles are compared cell by cell after a
conservative remap of the reference onto each candidate's cells (cell averages; the margin is
a face of every grid).

Columns: tumor L2 = volume-weighted relative L2 over r < R; tumor max = max |error| / max
reference over r < R; total = relative error of the tumor's carrier amount; domain L2 over the
whole grid (tumor + normal shell).

    python benchmarks/margin_convergence.py [--with-72h] [--json out.json]
"""
import argparse
import json
import math
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from nanotransport import scenario as S, simulate as M  # noqa: E402

CANDIDATES = {
    "default (geometric 3000, limited)": [],
    "geometric 3000, upwind": ["numerics.convection=upwind"],
    "geometric 1000, limited": ["numerics.margin_refinement=1000"],
    "gaussian-like: geometric 8, upwind": ["numerics.margin_refinement=8",
                                           "numerics.convection=upwind"],
    "default, 1-min steps": ["numerics.max_dt_min=1"],
}
REF = ["numerics.margin_refinement=1000", "numerics.convection=limited"]
ONE_HOUR = ["numerics.t_end_h=1", "numerics.save_times_h=[0.25,0.5,1.0]"]


def profile(overrides, t_h):
    """(faces, carrier at t_h) of doxil with ``overrides``, and the run's wall time (s)."""
    sc = S.load("doxil", overrides)
    t0 = time.perf_counter()
    r = M.simulate(sc)
    times = np.asarray(r.times_s) / 3600.0
    k = int(np.argmin(np.abs(times - t_h)))
    if abs(times[k] - t_h) > 1e-9:
        raise ValueError(f"{t_h} h is not a saved time of {overrides}")
    return (np.asarray(r.layout.grid.faces[0]), np.asarray(r.field("carrier"))[k],
            time.perf_counter() - t0)


def remap(faces_fine, c_fine, faces):
    """Conservative remap of a piecewise-constant radial profile onto other cells (sphere)."""
    mass = np.concatenate([[0.0], np.cumsum(c_fine * np.diff(faces_fine**3))])
    return np.diff(np.interp(faces**3, faces_fine**3, mass)) / np.diff(faces**3)


def errors(faces, c, ref_faces, ref_c, radius_m):
    rr = remap(ref_faces, ref_c, faces)
    centres, vol = 0.5 * (faces[1:] + faces[:-1]), np.diff(faces**3)
    tumor = centres < radius_m
    e = c - rr
    return {
        "tumor_l2": math.sqrt(np.sum(vol[tumor] * e[tumor] ** 2)
                              / np.sum(vol[tumor] * rr[tumor] ** 2)),
        "tumor_max": float(np.max(np.abs(e[tumor])) / np.max(np.abs(rr[tumor]))),
        "total": float(np.sum(vol[tumor] * e[tumor]) / np.sum(vol[tumor] * rr[tumor])),
        "domain_l2": math.sqrt(np.sum(vol * e**2) / np.sum(vol * rr**2)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--with-72h", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    radius = float(S.load("doxil")["tumor.radius_mm"]) * 1e-3
    refs = {1.0: profile(REF + ONE_HOUR + ["numerics.cells=1600", "numerics.max_dt_min=0.05"],
                         1.0)}
    check = profile(REF + ONE_HOUR + ["numerics.cells=3200", "numerics.max_dt_min=0.05"], 1.0)
    out = {"reference_self_check_1h": errors(refs[1.0][0], refs[1.0][1], check[0], check[1],
                                             radius)}
    if args.with_72h:
        refs[72.0] = profile(REF + ["numerics.cells=1600", "numerics.max_dt_min=0.25"], 72.0)
    print(f"reference 1600 vs 3200 cells at 1 h: tumor L2 "
          f"{out['reference_self_check_1h']['tumor_l2']:.3%}")
    print("| grid, scheme | t | tumor L2 | tumor max | total | domain L2 | run s |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name, ov in CANDIDATES.items():
        for t_h, (rf, rc, _) in refs.items():
            faces, c, wall = profile(ov, t_h)
            e = errors(faces, c, rf, rc, radius)
            rows.append(dict(candidate=name, t_h=t_h, wall_s=wall, **e))
            print(f"| {name} | {t_h:g} h | {e['tumor_l2']:.2%} | {e['tumor_max']:.2%} | "
                  f"{e['total']:+.2%} | {e['domain_l2']:.2%} | {wall:.1f} |")
    out["rows"] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
