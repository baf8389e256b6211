"""Optimal carrier diameter and release temperature for ThermoDox with hyperthermia.

Part 1 (issue #5), the default: does the gradient-based optimizer find the best design?  The
objective J (efficacy minus normalized toxicities, docs/model.md §10) of the `thermodox` scenario is
evaluated on a dense 41 × 41 grid of (diameter_nm, release_temperature_C) with batched (vmap)
calls, `--chunk` grid points per call, and `design.optimize` (L-BFGS, 3 starts, 40 iterations)
is run over the same bounds.  Pass: the optimizer's J is within 1 % of the grid's best J (or
better), and the optimum release temperature is interior and below the tumor heating
temperature (42 °C).

    python experiments/design_optimum.py [--quick] [--n 41] [--chunk 8] [--out experiments/results]

writes `design_optimum.json` (both optima and their terms, the relative gap, every start's
path, the whole grid of J, the efficacy–toxicity Pareto front of the grid) and
`design_optimum.png` (J over the grid with the optimizer's paths).  The toxicities read organ
exposure (the default organ model, docs/organs.md); `--systemic-model compartments` uses the
compartmental plasma proxies instead (issue #18: how the optimum moved) and adds the suffix
`_compartments` to the files.

Part 2 (issue #8), `--tumors`: the optimal diameter and release temperature per tumor type, with
the efficacy–toxicity Pareto front.  ThermoDox in each tumor preset (high-epr, low-epr,
collagen-rich; `tumor_preset=...`, as `nanotransport scenarios` lists them): J and its terms on a
`--tumor-n` × `--tumor-n` grid (default 21), the optimizer per tumor type, the Pareto front of
efficacy against the weighted toxicity Σ w_k·Tox_k (= E − J, so the J optimum lies on the
front) over the grid, and a diameter profile below the box: J, efficacy and toxicity against
diameter from 3 to 200 nm (log-spaced) at the tumor's optimal release temperature, to see
where J peaks when the lower bound of 20 nm is lifted.  The optimizer is `design.optimize`
(L-BFGS, `--starts` starts), whose compiled J + gradient takes the scenario's numbers as an
argument, so the three tumor types share one compilation.

    python experiments/design_optimum.py --tumors [--quick] [--tumor-n 21]

writes `design_optimum_tumors.json` and `design_optimum_tumors.png`.

`--quick` (both parts): 20 radial cells, 24 h, 60-min steps (1 min while heating), 11 × 11
(part 1) or 7 × 7 (part 2) grids, one optimizer start; its files get the suffix `_quick` and go to
the subfolder `quick/` of `--out` (`experiments/results/quick/`, git-ignored), so they never
touch the tracked full results.  Compilation dominates such runs (part 2: the batched J
and the J + gradient, about 25 s and 55 s of CPU on a 2-core VM).  Grid evaluations and
optimizations are resumable: finished chunks and optimizations are kept in
`OUT/.design_optimum_cache/` (atomically) until the run completes, so a killed run continues
where it stopped (the cache key includes a hash of the package sources: changed code starts
afresh).  The results record which code ran (`code`).
"""
import argparse
import functools
import hashlib
import io as _io
import json
import os
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nanotransport import design, io, objective, plots, scan, scenario as sc  # noqa: E402
from nanotransport import provenance, simulate as sim, study  # noqa: E402
from nanotransport.model.scenario import Scenario  # noqa: E402

BOUNDS = {"diameter_nm": (20.0, 200.0), "release_temperature_C": (38.0, 45.0)}
TUMORS = ("high-epr", "low-epr", "collagen-rich")
QUICK_NUMERICS = ["numerics.cells=20", "numerics.t_end_h=24", "numerics.max_dt_min=60"]
PROFILE_DIAMETERS_NM = (3.0, 200.0)
TERMS = ("objective",) + objective.TERMS
PRESET_FIELDS = ("tissue.tumor.pore_radius_nm", "tissue.tumor.vessel_surface_density_per_cm",
                 "tissue.tumor.fibre_volume_fraction",
                 "tissue.tumor.interstitial_hydraulic_conductivity_cm2_per_mmhg_s",
                 "tissue.tumor.perfusion_ml_per_ml_min")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ J and its terms, batched
@functools.lru_cache(maxsize=None)
def _point_fn(structure: tuple, paths: tuple):
    """terms(params, x) → {objective, efficacy, tox_*} for the design x of the variables
    ``paths``; ``params`` (every numeric parameter) is an argument, so one compiled function
    serves every scenario of this structure (e.g. the three tumor presets)."""
    g = study.varied_function(structure, paths, study.objective_readout)

    def terms(params, x):
        out = g(x, params)
        out.pop("toxicity")
        return out

    return terms


@functools.lru_cache(maxsize=None)
def _batched(structure, paths):
    return jax.jit(jax.vmap(_point_fn(structure, paths), in_axes=(None, 0)))


def _key(s: Scenario, paths, a, b) -> str:
    text = json.dumps([s.to_toml(), list(paths), list(map(float, a)), list(map(float, b)),
                       provenance.code_version()["package_sha256"]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def evaluate(fn, params, pts: np.ndarray, chunk: int, done_chunk=None) -> dict:
    """J and its terms at the points ``pts`` (n, 2), ``chunk`` per call (the last call padded
    with copies of its last point, so one compiled batch size serves all)."""
    out = {k: np.full(len(pts), np.nan) for k in TERMS}
    for i in range(0, len(pts), chunk):
        x = pts[i:i + chunk]
        m = len(x)
        x = np.concatenate([x, np.repeat(x[-1:], chunk - m, 0)])
        res = jax.device_get(fn(params, jnp.asarray(x)))
        for k in TERMS:
            out[k][i:i + m] = np.asarray(res[k])[:m]
        if done_chunk is not None:
            done_chunk(i, m, {k: out[k][i:i + m] for k in TERMS})
    return out


def grid_terms(s: Scenario, n: int, chunk: int, cache_dir: Path | None, label: str = ""):
    """(a, b, {term: (n, n) array}, cache file) of J and its terms on an n × n grid of BOUNDS,
    in vmapped chunks of ``chunk`` points; resumable through the cache file."""
    paths = tuple(design.check_variables(BOUNDS))
    a = np.linspace(*BOUNDS["diameter_nm"], n)
    b = np.linspace(*BOUNDS["release_temperature_C"], n)
    pts = np.stack(np.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2)
    values = {k: np.full(len(pts), np.nan) for k in TERMS}
    done = np.zeros(len(pts), bool)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"grid-{_key(s, paths, a, b)}.npz"
        if cache.exists():
            with np.load(cache) as z:
                done = z["done"].copy()
                values = {k: z[k].copy() for k in TERMS}
            log(f"{label}resuming: {int(done.sum())} of {len(pts)} grid points cached in {cache}")
    fn = _batched(sim.structure(s), paths)
    params = {k: jnp.asarray(v) for k, v in s.params.items()}
    todo = np.flatnonzero(~done)
    t0, count = time.perf_counter(), [0]

    def done_chunk(i, m, chunk_values):
        idx = todo[i:i + m]
        for k in TERMS:
            values[k][idx] = chunk_values[k]
        done[idx] = True
        count[0] += m
        if cache is not None:
            buf = _io.BytesIO()
            np.savez(buf, done=done, **values)
            io.atomic_write_bytes(cache, buf.getvalue())
        el = time.perf_counter() - t0
        left = len(pts) - int(done.sum())
        log(f"{label}grid {int(done.sum())}/{len(pts)} points, {el:.0f} s"
            + (f", ~{el / count[0] * left:.0f} s left" if count[0] > m
               else " (includes compilation)"))

    if len(todo):
        evaluate(fn, params, pts[todo], chunk, done_chunk)
    return a, b, {k: v.reshape(n, n) for k, v in values.items()}, cache


def cached(cache_dir: Path, name: str, compute):
    """JSON result of ``compute()``, kept in ``cache_dir/name.json`` (atomically) until the run
    completes: a killed run does not repeat an optimization it finished.  Returns (value, path)."""
    path = Path(cache_dir) / f"{name}.json"
    if path.exists():
        log(f"resuming: {path} (cached)")
        return json.loads(path.read_text()), path
    value = compute()
    io.write_json(path, value)
    return value, path


def clean(cache_dir: Path, files):
    for f in files:
        if f is not None:
            Path(f).unlink(missing_ok=True)
    try:
        Path(cache_dir).rmdir()  # only when empty
    except OSError:
        pass


def weighted_toxicity(s: Scenario, terms: dict):
    """Σ w_k·Tox_k (= E − J) of a dict of terms (numbers or arrays)."""
    return objective.weighted_toxicity({t: np.asarray(terms[t]) for t in objective.WEIGHTS},
                                       s.params)


def pareto(a, b, grid, s: Scenario) -> list[dict]:
    """Efficacy against weighted toxicity over the grid; the non-dominated points
    (``scan.pareto_mask``), sorted by toxicity."""
    e = grid["efficacy"]
    tox = weighted_toxicity(s, grid)
    mask = scan.pareto_mask(e, tox)
    rows = [{"diameter_nm": float(a[i]), "release_temperature_C": float(b[j]),
             "efficacy": float(e[i, j]), "toxicity_weighted": float(tox[i, j]),
             "objective": float(grid["objective"][i, j])} for i, j in zip(*np.nonzero(mask))]
    return sorted(rows, key=lambda r: r["toxicity_weighted"])


def grid_best(a, b, grid):
    i, j = np.unravel_index(np.nanargmax(grid["objective"]), grid["objective"].shape)
    return {"diameter_nm": float(a[i]), "release_temperature_C": float(b[j]),
            "objective": float(grid["objective"][i, j]),
            "terms": {k: float(grid[k][i, j]) for k in objective.TERMS}}


def grid_json(a, b, grid):
    return {"diameter_nm": a.tolist(), "release_temperature_C": b.tolist(),
            "objective": np.round(grid["objective"], 8).tolist()}


def _start_dict(r) -> dict:
    return {"x": r.x, "objective": r.objective, "terms": r.terms, "iterations": r.iterations,
            "gradient_norm": r.gradient_norm, "converged": r.converged, "history": r.history}


def diameter_profile(s: Scenario, release_temperature_C: float, n: int, chunk: int) -> dict:
    """J, efficacy and weighted toxicity against diameter (log-spaced over
    PROFILE_DIAMETERS_NM) at one release temperature (the same compiled batch as the grid)."""
    paths = tuple(design.check_variables(BOUNDS))
    d = np.geomspace(*PROFILE_DIAMETERS_NM, n)
    pts = np.stack([d, np.full(n, release_temperature_C)], 1)
    fn = _batched(sim.structure(s), paths)
    out = evaluate(fn, {k: jnp.asarray(v) for k, v in s.params.items()}, pts, chunk)
    k = int(np.nanargmax(out["objective"]))
    return {"release_temperature_C": float(release_temperature_C), "diameter_nm": d.tolist(),
            "objective": out["objective"].tolist(), "efficacy": out["efficacy"].tolist(),
            "toxicity_weighted": weighted_toxicity(s, out).tolist(),
            "terms": {t: out[t].tolist() for t in objective.TERMS if t != "efficacy"},
            "best_diameter_nm": float(d[k]), "best_objective": float(out["objective"][k]),
            "best_is_interior": bool(0 < k < n - 1)}


def _systemic(args) -> list[str]:
    """The systemic-model override: none for the default organ model."""
    return [] if args.systemic_model == "organs" else [f"systemic_model={args.systemic_model}"]


# ------------------------------------------------------------------ part 1
def part_design(args, out: Path, suffix: str) -> int:
    overrides = (QUICK_NUMERICS if args.quick else []) + _systemic(args)
    n = 11 if args.quick else args.n
    s = sc.load("thermodox", overrides)
    cache_dir = out / ".design_optimum_cache"
    t0 = time.perf_counter()
    a, b, grid, cache = grid_terms(s, n, args.chunk, cache_dir)
    t_grid = time.perf_counter() - t0
    gb = grid_best(a, b, grid)
    log(f"grid best: {gb}")
    t0 = time.perf_counter()
    starts = 1 if args.quick else 3
    max_iter = 10 if args.quick else 40
    paths = tuple(design.check_variables(BOUNDS))
    key = _key(s, paths, [starts, max_iter], [])
    results, opt_cache = cached(cache_dir, f"optimize-{key}", lambda: [_start_dict(r) for r in (
        design.optimize(s, BOUNDS, method="lbfgs", starts=starts, max_iter=max_iter,
                        callback=lambda h: log(f"  optimizer start {h['start']} it "
                                               f"{h['iteration']}: {h['x']} J = "
                                               f"{h['objective']:.6f}")))])
    t_opt = time.perf_counter() - t0
    best = results[0]
    gap = (gb["objective"] - best["objective"]) / abs(gb["objective"])
    t_heat = float(s["heating.target_temperature_C"])
    t_best = best["x"]["formulation.release_temperature_C"]
    lo_t, hi_t = BOUNDS["release_temperature_C"]
    interior = lo_t + 1e-3 < t_best < min(hi_t, t_heat) - 1e-3
    report = {
        "scenario": "thermodox", "overrides": overrides, "grid_points": n * n,
        "bounds": BOUNDS, "tumor_heating_temperature_C": t_heat,
        "grid_best": gb,
        "optimizer_best": {"design": best["x"], "objective": best["objective"],
                           "terms": best["terms"], "iterations": best["iterations"],
                           "converged": best["converged"],
                           "gradient_norm": best["gradient_norm"]},
        "optimizer_starts": [{"design": r["x"], "objective": r["objective"],
                              "iterations": r["iterations"], "converged": r["converged"],
                              "gradient_norm": r["gradient_norm"], "history": r["history"]}
                             for r in results],
        "relative_gap": float(gap),
        "release_temperature_interior_below_heating": bool(interior),
        "passed": bool(gap <= 0.01 and interior),
        "pareto_front": pareto(a, b, grid, s),
        "grid": grid_json(a, b, grid),
        "grid_seconds": t_grid, "optimizer_seconds": t_opt, "chunk": args.chunk,
        "device": str(jax.devices()[0]), "jax": jax.__version__,
        "code": provenance.code_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    io.write_json(out / f"design_optimum{suffix}.json", report)
    plots.optimization_path(a, b, grid["objective"], list(paths),
                            [h for r in results for h in r["history"]], best["x"],
                            out / f"design_optimum{suffix}.png")
    clean(cache_dir, (cache, opt_cache))
    print(json.dumps({k: report[k] for k in ("grid_best", "relative_gap", "passed")}, indent=1))
    print(f"optimizer: {best['x']} J = {best['objective']:.6f} ({best['iterations']} "
          f"iterations); grid {n}×{n} in {t_grid:.0f} s, optimizer in {t_opt:.0f} s")
    return 0 if report["passed"] else 1


# ------------------------------------------------------------------ part 2
def part_tumors(args, out: Path, suffix: str) -> int:
    overrides = QUICK_NUMERICS if args.quick else []
    n = 7 if args.quick else args.tumor_n
    n_profile = 9 if args.quick else 25
    starts = 1 if args.quick else args.starts
    max_iter = 8 if args.quick else 40
    rows, grids, caches, t_start = [], {}, [], time.perf_counter()
    cache_dir = out / ".design_optimum_cache"
    paths = tuple(design.check_variables(BOUNDS))
    for tumor in TUMORS:
        s = sc.load("thermodox", overrides + [f"tumor_preset={tumor}"])
        t0 = time.perf_counter()
        a, b, grid, cache = grid_terms(s, n, args.chunk, cache_dir, f"[{tumor}] ")
        t_grid = time.perf_counter() - t0
        t0 = time.perf_counter()
        key = _key(s, paths, [starts, max_iter], [])
        res, opt_cache = cached(cache_dir, f"optimize-{key}", lambda: [_start_dict(r) for r in (
            design.optimize(s, BOUNDS, method="lbfgs", starts=starts, max_iter=max_iter))])
        caches += [cache, opt_cache]
        t_opt = time.perf_counter() - t0
        best, gb = res[0], grid_best(a, b, grid)
        profile = diameter_profile(s, best["x"]["formulation.release_temperature_C"],
                                   n_profile, args.chunk)
        front = pareto(a, b, grid, s)
        row = {
            "tumor_preset": tumor,
            "tumor_parameters": {f: s.params[f] for f in PRESET_FIELDS},
            "grid_best": gb,
            "optimizer_best": {k: best[k] for k in ("x", "objective", "terms", "iterations",
                                                      "converged", "gradient_norm")},
            "optimizer_starts": [{"x": r["x"], "objective": r["objective"],
                                  "iterations": r["iterations"], "converged": r["converged"],
                                  "history": r["history"]} for r in res],
            "relative_gap": (gb["objective"] - best["objective"]) / abs(gb["objective"]),
            "pareto_front": front,
            "diameter_profile": profile,
            "grid": grid_json(a, b, grid),
            "grid_seconds": t_grid, "optimizer_seconds": t_opt,
        }
        rows.append(row)
        grids[tumor] = (a, b, grid, res, s, profile)
        log(f"[{tumor}] optimum {best['x']} J = {best['objective']:.5f} (grid best "
            f"{gb['diameter_nm']:.0f} nm, {gb['release_temperature_C']:.2f} °C, J = "
            f"{gb['objective']:.5f}); {len(front)} Pareto points; profile peak at "
            f"{profile['best_diameter_nm']:.1f} nm; grid {t_grid:.0f} s, optimizer {t_opt:.0f} s")
    report = {
        "scenario": "thermodox", "overrides": overrides, "bounds": BOUNDS,
        "grid_points_per_tumor": n * n,
        "optimizer": {"method": "lbfgs (design.optimize, one compile shared by the tumor types)",
                      "starts": starts, "max_iter": max_iter},
        "toxicity_definition": "weighted toxicity = sum of objective weight × normalized term "
                               "(cardiac AUC, cardiac peak, hand-foot, thermal) = efficacy − J",
        "tumors": rows,
        "optimal_diameter_nm": {r["tumor_preset"]: r["optimizer_best"]["x"][
            "formulation.diameter_nm"] for r in rows},
        "optimal_release_temperature_C": {r["tumor_preset"]: r["optimizer_best"]["x"][
            "formulation.release_temperature_C"] for r in rows},
        "profile_best_diameter_nm": {r["tumor_preset"]: r["diameter_profile"][
            "best_diameter_nm"] for r in rows},
        "seconds": time.perf_counter() - t_start, "chunk": args.chunk,
        "device": str(jax.devices()[0]), "jax": jax.__version__,
        "code": provenance.code_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    io.write_json(out / f"design_optimum_tumors{suffix}.json", report)
    figure_tumors(grids, out / f"design_optimum_tumors{suffix}.png")
    clean(cache_dir, caches)
    print(f"{'tumor':>14} {'d* (nm)':>8} {'T* (°C)':>8} {'J*':>9} {'grid d':>7} {'grid T':>7} "
          f"{'grid J':>9} {'gap':>9} {'efficacy':>9} {'Pareto':>7} {'profile d':>10}")
    for r in rows:
        o, g = r["optimizer_best"], r["grid_best"]
        print(f"{r['tumor_preset']:>14} {o['x']['formulation.diameter_nm']:8.1f} "
              f"{o['x']['formulation.release_temperature_C']:8.2f} {o['objective']:9.5f} "
              f"{g['diameter_nm']:7.1f} {g['release_temperature_C']:7.2f} {g['objective']:9.5f} "
              f"{r['relative_gap']:9.2e} {o['terms']['efficacy']:9.4f} "
              f"{len(r['pareto_front']):7d} {r['diameter_profile']['best_diameter_nm']:10.1f}")
    print(f"{report['seconds']:.0f} s in all")
    return 0


def figure_tumors(grids: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    names = list(design.check_variables(BOUNDS))
    for k, (ax, (tumor, (a, b, grid, res, s, _))) in enumerate(zip(axes[0], grids.items())):
        cs = ax.contourf(a, b, grid["objective"].T, levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax)
        front = scan.pareto_mask(grid["efficacy"], weighted_toxicity(s, grid))
        i, j = np.nonzero(front)
        ax.plot(a[i], b[j], ".", color="C1", ms=3, label="Pareto-optimal grid points")
        for r in res:
            ax.plot([h["x"][names[0]] for h in r["history"]],
                    [h["x"][names[1]] for h in r["history"]], "w.-", lw=0.8, ms=3)
        ax.plot(res[0]["x"][names[0]], res[0]["x"][names[1]], "r*", ms=12, label="optimum")
        ax.axhline(float(s["heating.target_temperature_C"]), color="w", ls=":", lw=0.8)
        ax.set_title(f"objective J, {tumor} (white: optimizer paths)", fontsize=9)
        ax.set_xlabel("diameter (nm)")
        if k == 0:
            ax.set_ylabel("release temperature (°C)")
            ax.legend(fontsize=7, loc="upper right")
    ax = axes[1, 0]
    for k, (tumor, (a, b, grid, res, s, _)) in enumerate(grids.items()):
        e = grid["efficacy"].ravel()
        tox = weighted_toxicity(s, grid).ravel()
        mask = scan.pareto_mask(e, tox)
        ax.scatter(tox, e, s=3, color=f"C{k}", alpha=0.25)
        order = np.argsort(tox[mask])
        ax.plot(tox[mask][order], e[mask][order], "o-", color=f"C{k}", ms=3, lw=1, label=tumor)
        bt = res[0]["terms"]
        ax.plot(float(weighted_toxicity(s, bt)), bt["efficacy"], "*", color=f"C{k}", mec="k",
                ms=12)
    ax.set_xlabel("weighted toxicity Σ w·Tox (= E − J)")
    ax.set_ylabel("efficacy E")
    ax.set_title("efficacy vs toxicity over the grid: Pareto fronts (★ = J optimum)", fontsize=9)
    ax.legend(fontsize=7)
    for ax, key, label in ((axes[1, 1], "objective", "objective J"),
                           (axes[1, 2], "efficacy", "efficacy E")):
        for k, (tumor, (*_, s, profile)) in enumerate(grids.items()):
            ax.plot(profile["diameter_nm"], profile[key], "o-", ms=3, color=f"C{k}",
                    label=f"{tumor} (T_m {profile['release_temperature_C']:.2f} °C)")
            if key == "objective":
                ax.plot(profile["best_diameter_nm"], profile["best_objective"], "*",
                        color=f"C{k}", mec="k", ms=12)
        ax.axvspan(*BOUNDS["diameter_nm"], color="0.9", zorder=0, label="box of the design")
        ax.set_xscale("log")
        ax.set_xlabel("diameter (nm)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs diameter at each tumor's optimal T_m", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="coarse numerics, small grids, one start (a smoke run; suffix _quick)")
    p.add_argument("--tumors", action="store_true",
                   help="part 2: optimum, Pareto front and diameter profile per tumor preset")
    p.add_argument("--n", type=int, default=41, help="grid points per axis (part 1)")
    p.add_argument("--tumor-n", type=int, default=21, help="grid points per axis (part 2)")
    p.add_argument("--starts", type=int, default=3, help="optimizer starts (part 2)")
    p.add_argument("--chunk", type=int, default=8, help="grid points per batched call")
    p.add_argument("--systemic-model", choices=("organs", "compartments"), default="organs",
                   help="toxicities from organ exposure (default) or the compartmental plasma "
                        "proxies (part 1; its files get the suffix _compartments)")
    p.add_argument("--out", default="experiments/results",
                   help="output folder; --quick writes to its subfolder quick/ (git-ignored)")
    args = p.parse_args(argv)
    if args.chunk < 1 or args.n < 2 or args.tumor_n < 2:
        p.error("--chunk must be >= 1 and --n, --tumor-n >= 2")
    out = Path(args.out)
    if args.quick and out.name != "quick":  # smoke runs never touch the tracked results
        out = out / "quick"
    suffix = ("_compartments" if args.systemic_model == "compartments" else "") \
        + ("_quick" if args.quick else "")
    return part_tumors(args, out, suffix) if args.tumors else part_design(args, out, suffix)


if __name__ == "__main__":
    sys.exit(main())
