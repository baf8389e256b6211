"""Cost of exact gradients: time of objective+gradient over time of objective, and memory.

For the thermodox scenario (reduced: 40 cells, 24 h, float64) this prints:

* wall time of J alone, of J + gradient for 2 parameters (forward mode,
  ``design.value_and_jacfwd``: J and its tangents in one pass, as ``nanotransport optimize``
  and ``design.value_and_gradient`` compute them) and for
  20 parameters (reverse mode, ``jax.value_and_grad``), and their ratios (goal ≤ 3× for 2).
  Everything is compiled first; then the four functions are timed in interleaved rounds
  (``--repeats``, default 7), so that load from other processes hits all of them alike.  The
  ratio uses the minimum over the rounds (the least disturbed run); medians are printed too.
* peak temporary memory of the compiled reverse-mode gradient (XLA's memory analysis of the
  compiled executable: ``temp_size_in_bytes``) against the number of time steps, counted
  exactly from the step schedule (``solver.macro_schedule``, including the refined steps of
  the heating window).  The step count is varied by scaling ``numerics.max_dt_min`` and
  ``numerics.heating_max_dt_min`` together.  Goal: growth like √steps or slower, thanks to the
  checkpointed macro-intervals of ``solver.integrate``; judged by the log-log slope of the
  whole temp memory.  Also reported: the exponent k of its growing part from a fit
  temp = a + b·steps^k (a: memory that does not depend on the step count), which is poorly
  determined when the growth is only a few MB.  For comparison the
  same gradient is compiled with checkpointing switched off (``solver.integrate`` patched to
  ``checkpoint=False`` in this process only) at the smallest and largest step counts.

The machine, the load average, the jax version and which code ran (SHA-256 of the package's
sources, git commit) are part of the output: the engine changes often.

    python benchmarks/gradients.py [--json] [--out FILE] [--repeats 7] [--no-reference]
    python benchmarks/gradients.py --from-json FILE     # the tables of a saved report
"""
import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nanotransport import design, provenance, scenario as sc  # noqa: E402
from nanotransport import simulate as sim, solver, study, units  # noqa: E402

BASE = ["numerics.cells=40", "numerics.t_end_h=24"]
TWO = ["diameter_nm", "release_temperature_C"]
TWENTY = TWO + ["dose_mg_per_m2", "heating_duration_min", "tissue.tumor.pore_radius_nm",
                "leak_rate_per_h", "release_transition_width_C", "release_max_rate_per_s",
                "interstitial_breakdown_rate_per_h", "target_temperature_C",
                "tissue.tumor.vessel_surface_density_per_cm", "tissue.tumor.perfusion_ml_per_ml_min",
                "tissue.tumor.fibre_volume_fraction", "tissue.tumor.interstitial_fraction",
                "tissue.tumor.vascular_fraction", "surface_factor", "infusion_duration_min",
                "drug.vessel_permeability_um_per_s", "drug.uptake_vmax_ng_per_1e5cells_min",
                "heating.focus_fwhm_mm"]
# (numerics.max_dt_min, numerics.heating_max_dt_min): the default pair (10, 1) in the middle
STEP_SETTINGS = ((40.0, 4.0), (20.0, 2.0), (10.0, 1.0), (5.0, 0.5), (2.5, 0.25))


def step_count(s) -> tuple[int, int, int]:
    """(time steps, macro-intervals, steps per macro-interval) of a scenario's run, exactly as
    ``simulate.run`` schedules them."""
    st = dict(sim.structure(s))
    fine = ()
    if st["_heating_window_s"] is not None:
        a, b = st["_heating_window_s"]
        fine = ((a, b, float(s["numerics.heating_max_dt_min"]) * units.MIN),)
    lengths, _, n_sub = solver.macro_schedule(
        sim.save_times_h(s) * units.HOUR, 0.0, float(s["numerics.max_dt_min"]) * units.MIN,
        None, fine)
    return len(lengths) * n_sub, len(lengths), n_sub


def load(dt, heating_dt):
    return sc.load("thermodox", BASE + [f"numerics.max_dt_min={dt}",
                                        f"numerics.heating_max_dt_min={heating_dt}"])


def function_of(s, names):
    paths = [sc.resolve_name(n) for n in names]
    return study.model_function(s, paths), jnp.asarray([s.params[q] for q in paths])


def timing(repeats: int) -> list[dict]:
    s = load(10.0, 1.0)
    f2, x2 = function_of(s, TWO)
    f20, x20 = function_of(s, TWENTY)
    calls = {
        "J (2)": (jax.jit(f2), x2),
        "J+grad (2, forward)": (jax.jit(design.value_and_jacfwd(f2)), x2),
        "J (20)": (jax.jit(f20), x20),
        "J+grad (20, reverse)": (jax.jit(jax.value_and_grad(f20)), x20),
    }
    compile_s = {}
    for name, (fn, x) in calls.items():
        t = time.perf_counter()
        jax.block_until_ready(fn(x))  # compile (+ one run)
        compile_s[name] = time.perf_counter() - t
    times = {name: [] for name in calls}
    for _ in range(repeats):  # interleaved rounds
        for name, (fn, x) in calls.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(x))
            times[name].append(time.perf_counter() - t)
    steps = step_count(s)[0]
    rows = []
    for n, mode, j, g in ((2, "forward", "J (2)", "J+grad (2, forward)"),
                          (20, "reverse", "J (20)", "J+grad (20, reverse)")):
        rows.append({"parameters": n, "mode": mode, "steps": steps,
                     "objective_s_min": min(times[j]),
                     "objective_s_median": statistics.median(times[j]),
                     "gradient_s_min": min(times[g]),
                     "gradient_s_median": statistics.median(times[g]),
                     "ratio_min": min(times[g]) / min(times[j]),
                     "ratio_median": statistics.median(times[g]) / statistics.median(times[j]),
                     "compile_objective_s": compile_s[j], "compile_gradient_s": compile_s[g]})
    return rows


def temp_mb(s, checkpoint=True) -> float:
    """Temp memory (MiB) of the compiled reverse-mode J + gradient for the 20 parameters."""
    original = solver.integrate
    if not checkpoint:
        solver.integrate = functools.partial(_no_checkpoint, original)
    try:
        f, x = function_of(s, TWENTY)
        compiled = jax.jit(jax.value_and_grad(f)).lower(x).compile()
    finally:
        solver.integrate = original
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def _no_checkpoint(original, *args, **kwargs):
    kwargs["checkpoint"] = False
    return original(*args, **kwargs)


def fit_growth(steps, mem):
    """(a, b, k) of mem ≈ a + b·steps^k, least squares over a grid of k (a, b ≥ 0)."""
    steps, mem = np.asarray(steps, float), np.asarray(mem, float)
    best = None
    for k in np.linspace(0.05, 1.5, 291):
        basis = np.stack([np.ones_like(steps), steps**k], 1)
        (a, b), *_ = np.linalg.lstsq(basis, mem, rcond=None)
        if a < 0 or b < 0:
            continue
        err = float(np.sum((basis @ [a, b] - mem) ** 2))
        if best is None or err < best[0]:
            best = (err, float(a), float(b), float(k))
    return best[1:] if best else (float("nan"),) * 3


def memory(reference: bool, on_row=None) -> tuple[list[dict], dict]:
    rows = []
    for dt, hdt in STEP_SETTINGS:
        s = load(dt, hdt)
        steps, macros, n_sub = step_count(s)
        row = {"max_dt_min": dt, "heating_max_dt_min": hdt, "steps": steps,
               "macro_intervals": macros, "steps_per_macro": n_sub,
               "temp_mb": temp_mb(s)}
        if reference and (dt, hdt) in (STEP_SETTINGS[0], STEP_SETTINGS[-1]):
            row["temp_mb_no_checkpoint"] = temp_mb(s, checkpoint=False)
        rows.append(row)
        if on_row is not None:
            on_row(rows)
    return rows, fit_memory(rows)


def fit_memory(rows) -> dict:
    """Exponents of temp memory against the step count, and its decomposition
    temp = a + b·(macro-intervals) + c·(steps per macro-interval) (least squares): what the
    reverse pass stores is one carry per macro-interval plus the residuals of the one
    macro-interval it recomputes, whose length is ~√(steps)."""
    steps = [r["steps"] for r in rows]
    mem = [r["temp_mb"] for r in rows]
    slope = float(np.polyfit(np.log(steps), np.log(mem), 1)[0])
    a, b, k = fit_growth(steps, mem)
    fit = {"loglog_slope": slope, "constant_mb": a, "coefficient_mb": b, "growth_exponent": k}
    basis = np.stack([np.ones(len(rows)), [r["macro_intervals"] for r in rows],
                      [r["steps_per_macro"] for r in rows]], 1)
    coef, *_ = np.linalg.lstsq(basis, np.asarray(mem), rcond=None)
    fit["decomposition_mb"] = {"constant": float(coef[0]), "per_macro_interval": float(coef[1]),
                               "per_step_of_a_macro_interval": float(coef[2]),
                               "max_residual": float(np.max(np.abs(basis @ coef - mem)))}
    spm = [r["steps_per_macro"] for r in rows]
    fit["steps_per_macro_exponent"] = float(np.polyfit(np.log(steps), np.log(spm), 1)[0])
    ref = [r for r in rows if "temp_mb_no_checkpoint" in r]
    if len(ref) == 2:
        fit["no_checkpoint_loglog_slope"] = float(
            np.log(ref[1]["temp_mb_no_checkpoint"] / ref[0]["temp_mb_no_checkpoint"])
            / np.log(ref[1]["steps"] / ref[0]["steps"]))
    return fit


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh
                          if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "device": str(jax.devices()[0]),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            **provenance.code_version()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-reference", action="store_true",
                   help="skip the compiles without checkpointing")
    p.add_argument("--out", help="also write the results as JSON to this file")
    p.add_argument("--from-json", metavar="FILE",
                   help="print the tables of a saved report (--out) instead of measuring")
    args = p.parse_args()
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        report["memory_fit"] = fit_memory(report["memory"])
        print_report(report, args.repeats)
        return
    t0 = time.perf_counter()
    rows = timing(args.repeats)
    print(f"timing done after {time.perf_counter() - t0:.0f} s; compiling for memory ...",
          file=sys.stderr, flush=True)

    def partial(mem_rows):  # what is done so far, in case the run is stopped
        if args.out:
            from nanotransport import io

            io.write_json(args.out, {"partial": True, "machine": machine(), "timing": rows,
                                     "memory": mem_rows})

    partial([])
    mem, fit = memory(not args.no_reference, partial)
    info = machine()
    info["benchmark_seconds"] = time.perf_counter() - t0
    report = {"machine": info, "timing": rows, "memory": mem, "memory_fit": fit}
    if args.out:
        from nanotransport import io

        io.write_json(args.out, report)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print_report(report, args.repeats)


def print_report(report: dict, repeats: int):
    info, rows, mem, fit = (report[k] for k in ("machine", "timing", "memory", "memory_fit"))
    print(f"thermodox, 40 cells, 24 h, float64, {rows[0]['steps']} steps; {info['cpu']}, "
          f"{info['cores']} cores, jax {info['jax']}; {repeats} interleaved rounds")
    print(f"{'params':>7} {'mode':>8} {'J min (s)':>10} {'J+grad min (s)':>15} {'ratio':>6} "
          f"{'ratio (medians)':>16}  goal")
    for r in rows:
        goal = ("≤ 3: " + ("met" if r["ratio_min"] <= 3 else "NOT met")) \
            if r["parameters"] == 2 else "-"
        print(f"{r['parameters']:>7} {r['mode']:>8} {r['objective_s_min']:>10.3f} "
              f"{r['gradient_s_min']:>15.3f} {r['ratio_min']:>6.2f} {r['ratio_median']:>16.2f}  "
              f"{goal}")
    print(f"\n{'max_dt':>6} {'heat dt':>7} {'steps':>6} {'macros':>6} {'steps/macro':>11} "
          f"{'temp MB':>8} {'no checkpoint MB':>17}")
    for m in mem:
        ref = m.get("temp_mb_no_checkpoint")
        print(f"{m['max_dt_min']:>6g} {m['heating_max_dt_min']:>7g} {m['steps']:>6} "
              f"{m['macro_intervals']:>6} {m['steps_per_macro']:>11} {m['temp_mb']:>8.1f} "
              f"{'' if ref is None else f'{ref:.1f}':>17}")
    print(f"temp memory ~ steps^{fit['loglog_slope']:.2f} (log-log slope; goal ≤ 0.5: "
          f"{'met' if fit['loglog_slope'] <= 0.5 else 'NOT met'}); growing part fitted as "
          f"{fit['constant_mb']:.1f} MB + {fit['coefficient_mb']:.3g} MB·steps^"
          f"{fit['growth_exponent']:.2f} (ill-conditioned when the growth is small)")
    d = fit["decomposition_mb"]
    print(f"decomposition: temp = {d['constant']:.1f} MB + {d['per_macro_interval']:.3f} MB × "
          f"macro-intervals + {d['per_step_of_a_macro_interval']:.2f} MB × steps per macro-interval"
          f" (max residual {d['max_residual']:.2g} MB); steps per macro-interval ~ steps^"
          f"{fit['steps_per_macro_exponent']:.2f}")
    if "no_checkpoint_loglog_slope" in fit:
        print(f"without checkpointing: ~ steps^{fit['no_checkpoint_loglog_slope']:.2f}")
    print(f"({info.get('benchmark_seconds', float('nan')):.0f} s in all; package sha256 "
          f"{info['package_sha256'][:12]}, commit {info.get('git_commit', '?')[:7]})")


if __name__ == "__main__":
    main()
