"""Command line: ``nanotransport run | compare | scenarios | show | verify``.

float64 is switched on here, at the edge, for scenarios that ask for it (the default); the
package never switches it on at import.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SUMMARY_TABLE = (
    ("plasma_auc_total_ug_h_per_ml", "plasma AUC total (µg·h/mL)"),
    ("plasma_auc_free_ug_h_per_ml", "plasma AUC free (µg·h/mL)"),
    ("tumor_drug_auc_ug_h_per_g", "tumor drug AUC (µg·h/g)"),
    ("tumor_drug_peak_ug_per_g", "tumor drug peak (µg/g)"),
    ("tumor_intracellular_auc_ug_h_per_g", "tumor intracellular AUC (µg·h/g)"),
    ("fraction_released", "fraction released"),
    ("efficacy", "efficacy (1 − mean SF)"),
    ("mass_balance_error", "mass-balance error"),
)


def _enable_precision(scenario) -> None:
    import jax

    if scenario["numerics.precision"] == "float64":
        jax.config.update("jax_enable_x64", True)


def _progress_bar(total_h: float, label: str):
    """A tqdm bar advanced from inside the compiled loop (jax.debug.callback)."""
    from tqdm import tqdm

    bar = tqdm(total=round(total_h, 3), unit="h", desc=label, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.0f} h "
                          "[{elapsed}<{remaining}]", file=sys.stderr)

    def update(t_s):
        bar.n = min(float(t_s) / 3600.0, bar.total)
        bar.refresh()

    return bar, update


def run_one(scenario, label: str, show_progress: bool = True):
    """Simulate one scenario; returns (result, layout, metrics as JSON-ready dict, seconds)."""
    from . import simulate, summary, tissue

    _enable_precision(scenario)
    lay = tissue.layout(scenario)
    t0 = time.perf_counter()
    bar, update = (_progress_bar(float(scenario["numerics.t_end_h"]), label)
                   if show_progress else (None, None))
    result = simulate.simulate(scenario, progress=update)
    import jax

    jax.block_until_ready(result.fields)
    if bar is not None:
        bar.close()
    values = summary.metrics(result, lay, scenario["drug.kill_coefficient_per_ng_h_per_1e5cells"])
    times_h = simulate.save_times_h(scenario)
    return result, lay, summary.to_json_ready(values, times_h), time.perf_counter() - t0


def _fmt(v) -> str:
    if isinstance(v, dict):
        last = list(v.items())[-1]
        return f"{last[1]:.4g} (at {last[0]} h)"
    return f"{v:.4g}"


def cmd_run(args) -> int:
    from . import io, plots, scenario as sc

    scenario = sc.load(args.scenario, args.set or [])
    out = Path(args.out)
    result, lay, values, seconds = run_one(scenario, scenario.name, not args.quiet)
    ds = io.to_xarray(result, lay, scenario)
    io.write_netcdf(ds, out / "results.nc")
    summary = {"scenario": scenario.name, "description": scenario.description, **values}
    io.write_json(out / "summary.json", summary)
    if scenario["outputs.figures"]:
        plots.plasma_pk({scenario.name: ds}, out / "plasma_pk.png")
        plots.tumor_profiles(ds, out / "tumor_profiles.png")
        plots.pressure_velocity(ds, out / "pressure_velocity.png")
    print(f"{scenario.name}: {scenario.description}")
    width = max(len(lbl) for _, lbl in SUMMARY_TABLE) + 2
    for key, label in SUMMARY_TABLE + (("tumor_carrier_pct_id", "tumor carriers (% ID)"),):
        print(f"  {label:<{width}}{_fmt(values[key])}")
    print(f"wrote {out / 'results.nc'}, {out / 'summary.json'}"
          + (", figures" if scenario["outputs.figures"] else "") + f" ({seconds:.1f} s)")
    return 0


def cmd_compare(args) -> int:
    from . import io, plots, scenario as sc

    scenarios = [sc.load(name, args.set or []) for name in args.scenarios]
    out = Path(args.out)
    rows, datasets = [], {}
    for s in scenarios:
        result, lay, values, _ = run_one(s, s.name, not args.quiet)
        datasets[s.name] = io.to_xarray(result, lay, s)
        rows.append({"scenario": s.name, **values})
    ref = rows[0]
    keys = [k for k, _ in SUMMARY_TABLE if k != "mass_balance_error"]
    head = f"{'scenario':<16}" + "".join(f"{k[:22]:>24}" for k in keys)
    print(head)
    for r in rows:
        print(f"{r['scenario']:<16}" + "".join(f"{r[k]:>24.4g}" for k in keys))
    print(f"\nrelative to {ref['scenario']}:")
    for r in rows[1:]:
        ratios = {k: (r[k] / ref[k] if ref[k] else float('inf')) for k in
                  ("tumor_drug_auc_ug_h_per_g", "tumor_intracellular_auc_ug_h_per_g",
                   "plasma_auc_free_ug_h_per_ml")}
        print(f"  {r['scenario']}: tumor drug AUC ×{ratios['tumor_drug_auc_ug_h_per_g']:.3g}, "
              f"intracellular AUC ×{ratios['tumor_intracellular_auc_ug_h_per_g']:.3g}, "
              f"plasma free-drug AUC ×{ratios['plasma_auc_free_ug_h_per_ml']:.3g}")
    io.write_json(out / "compare.json", rows)
    plots.compare_bars(rows, ["tumor_drug_auc_ug_h_per_g", "tumor_intracellular_auc_ug_h_per_g",
                              "plasma_auc_free_ug_h_per_ml", "efficacy"], out / "compare.png")
    plots.plasma_pk(datasets, out / "compare_plasma_pk.png")
    print(f"wrote {out / 'compare.json'}, {out / 'compare.png'}")
    return 0


def cmd_scenarios(args) -> int:
    from . import scenario as sc

    for name in sc.builtin_names():
        print(f"{name:<22}{sc.builtin_description(name)}")
    print("\ntumor presets (tumor_preset = ...): " + ", ".join(sc.TUMOR_PRESETS))
    return 0


def cmd_show(args) -> int:
    from . import scenario as sc

    print(sc.annotated_toml(sc.load(args.scenario, args.set or [])), end="")
    return 0


def cmd_verify(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from . import verify

    rows = verify.run_cases()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(verify.format_table(rows))
    return 0 if all(r["passed"] for r in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nanotransport", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def scenario_args(q, many=False):
        if many:
            q.add_argument("scenarios", nargs="+", help="built-in names or TOML files")
        else:
            q.add_argument("scenario", nargs="?", default=None,
                           help="built-in name or TOML file (default: doxil)")
        q.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a field, by dotted path or unique bare name")

    q = sub.add_parser("run", help="simulate a scenario and write results")
    scenario_args(q)
    q.add_argument("--out", default="out", help="output folder (default: out)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_run)

    q = sub.add_parser("compare", help="run several scenarios side by side")
    scenario_args(q, many=True)
    q.add_argument("--out", default="out", help="output folder (default: out)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_compare)

    q = sub.add_parser("scenarios", help="list the built-in scenarios")
    q.set_defaults(func=cmd_scenarios)

    q = sub.add_parser("show", help="print a scenario in full, with every default")
    scenario_args(q)
    q.set_defaults(func=cmd_show)

    q = sub.add_parser("verify", help="run the closed-form verification problems")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_verify)
    return p


def main(argv=None) -> int:
    from .scenario import ScenarioError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
