"""Cost of exact gradients: time of objective+gradient over time of objective, and memory.

For the thermodox scenario (reduced: 40 cells, 24 h) this prints:
* wall time (median of 3 after compilation) of J alone, of J + gradient for 2 parameters
  (forward mode) and for 20 parameters (reverse mode), and their ratios (goal ≤ 3× for 2);
* peak temporary memory of the compiled reverse-mode gradient (XLA memory analysis) against the
  number of time steps, with the fitted exponent (goal: growth like √steps or slower, thanks
  to the checkpointed macro-intervals of `solver.integrate`).

    python benchmarks/gradients.py [--json]
"""
import argparse
import json
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nanotransport import design, scenario as sc  # noqa: E402

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


def timed(fn, x, repeats=3):
    jax.block_until_ready(fn(x))  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(x))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = []
    s = sc.load("thermodox", BASE + ["numerics.max_dt_min=10"])
    for names, mode in ((TWO, "forward"), (TWENTY, "reverse")):
        paths = [sc.resolve_name(n) for n in names]
        f = design.metric_function(s, paths)
        x = jnp.asarray([s.params[q] for q in paths])
        t_f = timed(jax.jit(f), x)
        g = jax.jit(lambda x: (f(x), jax.jacfwd(f)(x))) if mode == "forward" else \
            jax.jit(jax.value_and_grad(f))
        t_g = timed(g, x)
        rows.append({"parameters": len(names), "mode": mode, "objective_s": t_f,
                     "objective_and_gradient_s": t_g, "ratio": t_g / t_f})
    mem = []
    for dt in (40.0, 20.0, 10.0, 5.0):
        s = sc.load("thermodox", BASE + [f"numerics.max_dt_min={dt}"])
        paths = [sc.resolve_name(n) for n in TWENTY]
        f = design.metric_function(s, paths)
        x = jnp.asarray([s.params[q] for q in paths])
        compiled = jax.jit(jax.value_and_grad(f)).lower(x).compile()
        analysis = compiled.memory_analysis()
        steps = 24 * 60 / dt
        mem.append({"max_dt_min": dt, "approx_steps": steps,
                    "temp_mb": analysis.temp_size_in_bytes / 2**20})
    k = np.polyfit(np.log([m["approx_steps"] for m in mem]), np.log([m["temp_mb"] for m in mem]), 1)[0]
    if args.json:
        print(json.dumps({"timing": rows, "memory": mem, "memory_exponent": k}, indent=1))
        return
    print(f"{'params':>7} {'mode':>8} {'J (s)':>9} {'J+grad (s)':>11} {'ratio':>7}")
    for r in rows:
        print(f"{r['parameters']:>7} {r['mode']:>8} {r['objective_s']:>9.3f} "
              f"{r['objective_and_gradient_s']:>11.3f} {r['ratio']:>7.2f}")
    print(f"\n{'max_dt (min)':>12} {'steps':>7} {'reverse-mode temp memory (MB)':>30}")
    for m in mem:
        print(f"{m['max_dt_min']:>12g} {m['approx_steps']:>7.0f} {m['temp_mb']:>30.1f}")
    print(f"memory ~ steps^{k:.2f} (goal ≤ 0.5)")


if __name__ == "__main__":
    main()
