"""Command line: ``nanotransport run | compare | scenarios | show | capillary | optimize |
sensitivity | scan | cohort | calibrate | fit | validate | verify`` (manuals: docs/manuals/).

float64 is switched on here, at the edge, for scenarios that ask for it (the default); the
package never switches it on at import.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import signal
import sys
import threading
import time
import warnings
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
HEATING_EXTRA = (
    ("t90_plateau_c", "heating: T90 plateau (°C)"),
    ("t50_plateau_c", "heating: T50 plateau (°C)"),
    ("tumor_fraction_above_release_plateau", "heating: tumor > T_m (plateau)"),
    ("cem43_t90_min", "heating: CEM43T90 (min)"),
)
RUN_EXTRA = (
    ("tumor_carrier_pct_id", "tumor carriers (% ID)"),
    ("imaging_tumor_pct_id_per_kg", "image: tumor ROI (%ID/kg)"),
    ("imaging_tumor_to_reference", "image: tumor/reference"),
)


def _enable_precision(scenario) -> None:
    import jax

    if scenario["numerics.precision"] == "float64":
        jax.config.update("jax_enable_x64", True)


_OWNED: list = []  # [(folder, created)] output folders this command holds the lock of


def _own(out) -> Path:
    """Take the lock of the output folder (``outdir.folder_lock``) for the rest of the command,
    after its input was validated and before any work; released by ``main``."""
    from . import outdir

    out = Path(out)
    created = outdir.acquire(out, "nanotransport " + " ".join(_ARGV))
    _OWNED.append((out, created))
    return out


def _check_scenario(scenario) -> None:
    """Input checks that need the resolved scenario, before any work: the grid fits this
    machine's memory; the tissue maps file (if any) is valid for the grid."""
    from .model import scenario as sc, tissue

    if scenario["tissue.network_file"]:
        raise sc.ScenarioError(
            f"tissue.network_file = {scenario['tissue.network_file']!r}: a network scenario "
            "runs the network model (nanotransport network, or run); this command uses the "
            "continuum model: allowed here tissue.network_file = ''")
    sc.check_memory(scenario)
    if scenario["tissue.maps_file"]:
        tissue.layout(scenario)


def _warn_undefined(values: dict) -> None:
    """One line per undefined summary metric, saying why (written as JSON null)."""
    eff = values.get("efficacy")
    if isinstance(eff, float) and math.isnan(eff):
        print("warning: no viable tumor cells on this grid (the necrotic core fills the tumor): "
              "efficacy is undefined, written as null", file=sys.stderr)


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
    from .model import simulate, summary

    _enable_precision(scenario)
    t0 = time.perf_counter()
    # quiet: a progress function that does nothing, so the run is the same host loop of
    # compiled macro-intervals (kept by the compile and export caches) as with a bar
    bar, update = (_progress_bar(float(scenario["numerics.t_end_h"]), label)
                   if show_progress else (None, lambda t_s: None))
    # the run's compiled inputs first (here: the run reuses them), then the readouts' programs
    # in a second thread while the run compiles its macro-interval
    readouts = threading.Thread(target=_compile_readouts,
                                args=(simulate.standin_result(scenario),), daemon=True)
    readouts.start()
    try:
        result = simulate.simulate(scenario, progress=update)
        import jax

        jax.block_until_ready(result.fields)
        if bar is not None:
            bar.close()
    finally:  # also when interrupted: no compilation left running while the process exits
        readouts.join()
    values = summary.metrics(result, with_imaging=True)
    times_h = simulate.save_times_h(scenario)
    return result, result.layout, summary.to_json_ready(values, times_h), time.perf_counter() - t0


def _compile_readouts(standin) -> None:
    """Compile (or load from the caches) the programs that read the run's result (summary
    metrics, the result's arrays, the objective) on a stand-in result, in a second thread
    while the run compiles: XLA compiles without holding Python's lock, so on 2 cores a cold
    ``nanotransport run`` overlaps their ~6 s of compilation with the model's ~6 s
    (``benchmarks/default_run.py``).  The stand-in has the result's shapes and placement
    (``simulate.standin_result``), so the real calls afterwards find the programs compiled.
    Any failure here only costs that overlap: the real calls compile what they need."""
    from . import io
    from .model import objective, summary

    try:  # the longest first (objective ~4 s, metrics and arrays ~1 s each, alone)
        objective.compiled_objective(standin)
        summary.metrics(standin, with_imaging=True)
        io.model_arrays(standin)
    except Exception as e:  # noqa: BLE001 -- an optimization only; the real calls report
        logging.getLogger(__name__).debug("compiling the readouts ahead failed: %s", e)


def _objective_summary(result) -> dict:
    """J, each term, the weighted toxicity and each term's reference (summary.json)."""
    from .model import objective

    j, terms = objective.compiled_objective(result)
    terms = {k: float(v) for k, v in terms.items()}
    out = {"J": float(j), **terms,
           "toxicity": float(objective.weighted_toxicity(terms, result.params)),
           "references": dict(objective.REFERENCES)}
    if result.scenario["patient.systemic_model"] == "compartments":
        out["references"] = {k: v + ("" if k == "tox_thermal" else " (plasma proxy)")
                             for k, v in out["references"].items()}
    return out


def _fmt(v) -> str:
    if isinstance(v, dict):
        last = list(v.items())[-1]
        return f"{last[1]:.4g} (at {last[0]} h)"
    return f"{v:.4g}"


#: the run's figures drawn by the worker process (``figure_worker``); the rest are drawn here
#: after the objective (the split that balanced the two on the 2-core CPU)
WORKER_FIGURES = ("plasma_pk", "release_cells", "imaging", "heating")


def run_figures_of(scenario) -> tuple[list[str], dict | None]:
    """The figures ``nanotransport run`` draws for a scenario (names of ``plots.RUN_FIGURES``)
    and the heating figure's options (None when unheated)."""
    from . import plots

    names = [n for n in plots.RUN_FIGURES if n != "heating"]
    if scenario["heating.source"] == "none":
        return names, None
    start = float(scenario["heating.heating_start_min"]) / 60.0
    heated = {"release_c": float(scenario["formulation.release_temperature_C"]),
              "plateau_h": (start + float(scenario["heating.ramp_min"]) / 60.0,
                            start + float(scenario["heating.heating_duration_min"]) / 60.0)}
    return names + ["heating"], heated


def cmd_run(args) -> int:
    from . import figure_worker

    with figure_worker.FigureWorker() as worker:  # starts now: imports while this one does
        return _run(args, worker)


def _run(args, worker) -> int:
    from . import io, plots
    from .model import scenario as sc

    if args.scenario == "capillary":  # the microscale scenario has its own model and command
        worker.close()
        return cmd_capillary(build_parser().parse_args(
            ["capillary", "--out", args.out] + [a for kv in (args.set or []) for a in
                                                ("--set", kv)]))

    scenario = sc.load(args.scenario, args.set or [])
    if scenario["tissue.network_file"] or not scenario["outputs.figures"]:
        worker.close()
    if scenario["tissue.network_file"]:  # a vessel network: the network model
        return _network(scenario, args)
    _check_scenario(scenario)
    out = _own(args.out)
    result, lay, values, seconds = run_one(scenario, scenario.name, not args.quiet)
    _warn_undefined(values)
    ds = io.to_xarray(result, lay, scenario)
    io.write_netcdf(ds, out / "results.nc")
    if scenario["outputs.figures"]:
        names, heated = run_figures_of(scenario)
        remote = worker.submit(plots.run_figures_from_file, out / "results.nc", out,
                               [n for n in names if n in WORKER_FIGURES], scenario.name,
                               values, heated)
    summary = {"scenario": scenario.name, "description": scenario.description, **values,
               "objective": _objective_summary(result)}
    io.write_json(out / "summary.json", summary)
    if scenario["outputs.figures"]:
        plots.run_figures(ds, out, [n for n in names if n not in WORKER_FIGURES],
                          scenario.name, values, heated)
        worker.result(remote)
    print(f"{scenario.name}: {scenario.description}")
    width = max(len(lbl) for _, lbl in SUMMARY_TABLE) + 2
    heated = HEATING_EXTRA if "t90_plateau_c" in values else ()
    for key, label in SUMMARY_TABLE + RUN_EXTRA + heated:
        print(f"  {label:<{width}}{_fmt(values[key])}")
    print(f"wrote {out / 'results.nc'}, {out / 'summary.json'}"
          + (", figures" if scenario["outputs.figures"] else "") + f" ({seconds:.1f} s)")
    return 0


def cmd_network(args) -> int:
    """The network model (``studies.network_run``) of a scenario with ``tissue.network_file``
    (default: the built-in ``tumor-network``)."""
    from .model import scenario as sc

    scenario = sc.load(args.scenario or "tumor-network", args.set or [])
    if not scenario["tissue.network_file"]:
        raise sc.ScenarioError("tissue.network_file is empty: give a network file or "
                               "'synthetic' (--set tissue.network_file=...), or run a "
                               "network scenario (tumor-network)")
    return _network(scenario, args)


def _network(scenario, args) -> int:
    from . import io, plots
    from .studies import network_run

    out = _own(args.out)
    t0 = time.perf_counter()
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    r = network_run.run(scenario, log)
    ds = network_run.to_dataset(r)
    io.write_netcdf(ds, out / "network.nc")
    values = {"scenario": args.scenario or "tumor-network",
              "description": scenario.description, **network_run.summary(r)}
    io.write_json(out / "network_summary.json", values)
    if scenario["outputs.figures"]:
        plots.network_map(ds, out / "network_map.png")
        plots.network_delivery(ds, out / "network_delivery.png")
    print(f"{values['scenario']}: {scenario.description}")
    for key, value in values.items():
        if key not in ("scenario", "description", "seconds"):
            print(f"  {key:<38}{_fmt(value) if isinstance(value, float) else value}")
    print(f"wrote {out / 'network.nc'}, {out / 'network_summary.json'}"
          + (", figures" if scenario["outputs.figures"] else "")
          + f" ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_compare(args) -> int:
    from . import io, plots
    from .model import scenario as sc

    scenarios = [sc.load(name, args.set or []) for name in args.scenarios]
    for s in scenarios:
        _check_scenario(s)
    out = _own(args.out)
    rows, datasets = [], {}
    for s in scenarios:
        result, lay, values, _ = run_one(s, s.name, not args.quiet)
        _warn_undefined(values)
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
    from .model import scenario as sc

    for name in sc.builtin_names():
        print(f"{name:<22}{sc.builtin_description(name)}")
    print(f"{'capillary':<22}Resolved microvessel: one capillary and its Krogh tissue "
          "cylinder (r, z), heated over 0.15-0.35 mm (nanotransport capillary --help)")
    print("\ntumor presets (tumor_preset = ...): " + ", ".join(sc.TUMOR_PRESETS))
    return 0


def cmd_show(args) -> int:
    from .model import scenario as sc

    scenario = sc.load(args.scenario, args.set or [])
    if scenario["tissue.maps_file"]:
        _check_scenario(scenario)
    print(sc.annotated_toml(scenario), end="")
    return 0


def cmd_verify(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    from .studies import verify

    rows = verify.run_cases()
    if args.json:
        from .outdir import strict_json

        print(strict_json(rows, "verify --json"), end="")
    else:
        print(verify.format_table(rows))
    return 0 if all(r["passed"] for r in rows) else 1


def cmd_validate(args) -> int:
    """The model against published numbers (``validate.py``): table, validation.json, figure."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from . import io, plots
    from .studies import validate

    selected = [t for t in validate.targets() if t.quick or not args.quick]
    progress = None if args.json else (lambda t: print(f"  {t.id} ...", file=sys.stderr))
    rows = validate.evaluate(selected, validate.Runs(), progress)
    out = Path(args.out)
    passed = sum(r["passed"] for r in rows)
    io.write_json(out / "validation.json", {"passed": passed, "total": len(rows),
                                            "quick": bool(args.quick), "targets": rows})
    plots.validation(rows, out / "validation.png")
    if args.json:
        from .outdir import strict_json

        print(strict_json(rows, "validate --json"), end="")
    else:
        print(validate.format_table(rows))
        for r in rows:
            if not r["passed"] and r["note"]:
                print(f"  {r['id']}: {r['note']}")
        print(f"wrote {out / 'validation.json'}, {out / 'validation.png'}")
    return 0


def cmd_capillary(args) -> int:
    """The resolved microvessel (``capillary.py``): a Krogh tissue cylinder around one
    capillary with plug flow, wall exchange and optional heating over part of its length."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from .model import capillary as cap
    from . import io

    params, heated = _capillary_inputs(args)
    inlet = cap.CapillaryInlet(args.inlet, args.inlet, 0.0)
    out = _own(args.out)
    result = cap.simulate_capillary(params, inlet, args.t_end_s, grid_shape=(args.nr, args.nz),
                                    heated_segment=heated)
    ds = cap.to_dataset(result)
    io.write_netcdf(ds, out / "capillary.nc")
    values = cap.summary(result)
    io.write_json(out / "capillary_summary.json", values)
    from . import plots

    plots.capillary_profiles(ds, out / "capillary.png")
    for k, v in values.items():
        print(f"  {k:<40}{v:.5g}")
    print(f"wrote {out / 'capillary.nc'}, {out / 'capillary_summary.json'}, {out / 'capillary.png'}")
    return 0


def _capillary_inputs(args):
    """(CapillaryParameters, HeatedSegment or None) from the capillary arguments, every value
    checked (finite, in range) before anything runs; ScenarioError names the argument."""
    from .model import capillary as cap
    from .model.scenario import ScenarioError
    from .model.schema import FIELDS_BY_PATH

    d = FIELDS_BY_PATH["formulation.diameter_nm"]
    if not (math.isfinite(args.diameter_nm) and d.lo <= args.diameter_nm <= d.hi):
        raise ScenarioError(f"--diameter-nm {args.diameter_nm!r}; allowed: {d.allowed()} nm")
    names = [f.name for f in dataclasses.fields(cap.CapillaryParameters)]
    changes = {}
    for item in args.set or []:
        key, eq, value = (t.strip() for t in item.partition("="))
        if not eq:
            raise ScenarioError(f"--set {item!r} must look like FIELD=VALUE (e.g. "
                                "plasma_velocity_m_per_s=1e-3)")
        if key not in names:
            raise ScenarioError(f"--set {item}: unknown capillary parameter '{key}'; allowed: "
                                + ", ".join(names))
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or (number < 0 and not key.endswith("_C")):
            raise ScenarioError(f"--set {key}={value}: allowed: a finite number"
                                + ("" if key.endswith("_C") else " >= 0"))
        changes[key] = number
    params = cap.CapillaryParameters.default(args.diameter_nm).replace(**changes)
    rc, rk, length = params.capillary_radius_m, params.krogh_radius_m, params.length_m
    if not (rc > 0 and rk > rc and length > 0):
        raise ScenarioError(f"capillary_radius_m = {rc:g}, krogh_radius_m = {rk:g}, length_m = "
                            f"{length:g}; allowed: 0 < capillary_radius_m < krogh_radius_m and "
                            "length_m > 0")
    heated = None
    if args.heated:
        parts = args.heated.split(":")
        try:
            start, end, temp = (float(v) for v in parts)
        except ValueError:
            start = end = temp = math.nan
        if not (all(map(math.isfinite, (start, end, temp))) and 0 <= start < end
                and end <= length * 1e3 and 30.0 <= temp <= 50.0):
            raise ScenarioError(f"--heated {args.heated!r}; allowed: START_MM:END_MM:TEMP_C with "
                                f"0 <= START < END <= {length * 1e3:g} (the vessel length) and "
                                "30 <= TEMP <= 50, or '' for none")
        heated = cap.HeatedSegment(start * 1e-3, end * 1e-3, temp)
    return params, heated


def cmd_optimize(args) -> int:
    from .studies import design
    from . import io, plots
    from .model import scenario as sc

    scenario = sc.load(args.scenario, args.set or [])
    _enable_precision(scenario)
    if not args.vary:
        raise sc.ScenarioError("optimize needs at least one --vary name=lo:hi "
                               "(e.g. --vary diameter_nm=10:300)")
    bounds = dict(design.parse_vary(v) for v in args.vary)
    paths = design.check_variables(bounds)
    sc.check_dose_unit(scenario["patient.species"], paths, "--vary ")
    _check_scenario(scenario)
    out = _own(args.out)
    from tqdm import tqdm

    bar = tqdm(total=args.starts * args.max_iter, desc="optimize", unit="it", leave=False,
               file=sys.stderr, disable=args.quiet)

    def report(row):
        bar.update(1)
        bar.set_postfix(start=row["start"], J=f"{row['objective']:.4f}",
                        grad=f"{row['gradient_norm']:.1e}")

    t0 = time.perf_counter()
    results = design.optimize(scenario, bounds, method=args.method, starts=args.starts,
                              max_iter=args.max_iter, tol=args.tol, seed=args.seed,
                              callback=report)
    bar.close()
    best = results[0]
    report_json = {
        "scenario": scenario.name, "method": args.method, "bounds": {k: list(v) for k, v in
                                                                    bounds.items()},
        "best": {"design": best.x, "objective": best.objective, "terms": best.terms,
                 "iterations": best.iterations, "gradient_norm": best.gradient_norm,
                 "converged": best.converged},
        "starts": [{"design": r.x, "objective": r.objective, "terms": r.terms,
                    "iterations": r.iterations, "gradient_norm": r.gradient_norm,
                    "converged": r.converged} for r in results],
        "history": [h for r in results for h in r.history],
        "seconds": time.perf_counter() - t0,
    }
    io.write_json(out / "optimization.json", report_json)
    plots.convergence(report_json["history"], out / "optimization_convergence.png")
    if len(bounds) >= 2 and args.contour > 1:
        a, b, grid = design.objective_grid(scenario, bounds, n=args.contour)
        names = list(design.check_variables(bounds))[:2]
        plots.optimization_path(a, b, grid, names, report_json["history"], best.x,
                                out / "optimization_path.png")
    print(f"best design ({'converged' if best.converged else 'not converged'}, "
          f"{best.iterations} iterations, |grad| = {best.gradient_norm:.2e}):")
    for k, v in best.x.items():
        print(f"  {k} = {v:.6g}")
    print(f"objective J = {best.objective:.6g}  (" + ", ".join(
        f"{k} {v:.4g}" for k, v in best.terms.items()) + ")")
    print(f"wrote {out / 'optimization.json'} ({report_json['seconds']:.1f} s)")
    return 0


def cmd_sensitivity(args) -> int:
    from .studies import design
    from . import io, plots
    from .model import scenario as sc

    scenario = sc.load(args.scenario, args.set or [])
    _enable_precision(scenario)
    _check_scenario(scenario)
    out = _own(args.out)
    value, rows = design.sensitivities(scenario, args.metric)
    io.write_json(out / "sensitivity.json", {"scenario": scenario.name, "metric": args.metric,
                                             "value": value, "parameters": rows})
    plots.sensitivity_bars(rows[: args.top], args.metric, out / "sensitivity.png")
    print(f"{args.metric} = {value:.6g} for {scenario.name}; sorted by |elasticity|:")
    print(f"{'parameter':<58}{'value':>12}{'d metric/d p':>16}{'elasticity':>12}")
    for r in rows[: args.top]:
        print(f"{r['parameter']:<58}{r['value']:>12.4g}{r['derivative']:>16.4g}"
              f"{r['elasticity']:>12.4g}")
    print(f"wrote {out / 'sensitivity.json'}, {out / 'sensitivity.png'}")
    return 0


def _folder_scan(out: Path, chunk: int | None, progress: bool):
    """The cohort's scan runner for the command: each scan a resumable folder ``out/part``."""
    from . import scan_store

    def scan(scenario, spec, part):
        ds, stats = scan_store.run(scenario, spec, out / part, chunk, progress)
        if progress and ds is not None:
            print(stats.line(), file=sys.stderr)
        return ds

    return scan


def cmd_cohort(args) -> int:
    import jax

    from .studies import cohort
    from . import io, outdir, plots
    from .model import scenario as sc

    scenario = sc.load(args.scenario, args.set or [])
    _enable_precision(scenario)
    spreads = {}
    for text in args.spread or []:
        name, _, value = text.partition("=")
        try:
            spreads[name.strip()] = float(value)
        except ValueError:
            raise sc.ScenarioError(f"--spread {text}: expected NAME=SIGMA_LN, e.g. "
                                    "pore_radius_nm=0.6") from None
    settings = cohort.CohortSettings(
        patients=args.patients, seed=args.seed, imaging_time_h=args.imaging_time_h,
        imaging_dose_fraction=args.imaging_dose_fraction, readout=args.readout,
        responder_efficacy=args.responder_efficacy, select_fraction=args.select_fraction,
        spreads=spreads)
    _check_scenario(scenario)
    out = _own(args.out)
    report, ds = cohort.run_cohort(scenario, settings,
                                   scan=_folder_scan(out, args.chunk, not args.quiet))
    io.write_json(out / "cohort.json", report)
    ds.attrs["report"] = outdir.strict_json(report, "cohort.nc report")
    io.write_netcdf(ds, out / "cohort.nc")
    plots.cohort(ds, report, out / "cohort.png")
    print("\n".join(cohort.summary_lines(report)))
    print(f"wrote {out / 'cohort.json'}, {out / 'cohort.nc'}, {out / 'cohort.png'} "
          f"({jax.devices()[0].platform})")
    return 0


def cmd_calibrate(args) -> int:
    from .studies import calibrate as cal, cohort
    from . import io, plots
    from .model import scenario as sc

    scenario = sc.load(args.scenario, args.set or [])
    _enable_precision(scenario)
    obs = cal.load_observations(args.observed)
    names = args.fit or [p for p, _, _ in cohort.EPR_VARIABILITY]
    _check_scenario(scenario)
    out = _own(args.out)
    print(f"calibrate: fitting {len(names)} parameter(s) of {scenario.name} to {len(obs.times_h)}"
          f" observation(s) of {obs.quantity} (compiling the simulation and its Jacobian) ...",
          file=sys.stderr)
    progress = None if args.quiet else (
        lambda it, chi2: print(f"  iteration {it}: chi2 = {chi2:.6g}", file=sys.stderr))
    result = cal.fit(scenario, obs, names, args.imaging_dose_fraction, args.max_iter, progress)
    prediction = None if args.no_prediction else cal.predict(scenario, result)
    rep = cal.report(scenario, obs, result, prediction)
    io.write_json(out / "calibration.json", rep)
    if scenario["outputs.figures"]:
        plots.calibration(rep, out / "calibration.png")
    print(f"{scenario.name}: {obs.quantity} fitted in {result.iterations} iteration(s), "
          f"chi2 = {result.chi2:.4g} ({'converged' if result.converged else 'NOT converged'})")
    for p, v in rep["parameters"].items():
        ci = ("not identifiable" if not v["identifiable"] else
              f"95% CI {v['ci95'][0]:.4g} to {v['ci95'][1]:.4g}")
        print(f"  {p:<66}{v['value']:.4g}  ({ci})")
    for w in result.warnings:
        print(f"  warning: {w}")
    if prediction is not None:
        e = prediction["efficacy"]
        print(f"  predicted efficacy {e['value']:.3f} ± {e['sd']:.3f} (95% CI {e['ci95'][0]:.3f} "
              f"to {e['ci95'][1]:.3f})")
    print(f"wrote {out / 'calibration.json'}" + (", calibration.png" if
                                                  scenario["outputs.figures"] else ""))
    return 0


def cmd_fit(args) -> int:
    from . import outdir, plots
    from .model import scenario as sc
    from .studies import fit as fitmod, observations

    scenario = sc.load(args.scenario, args.set or [])
    _enable_precision(scenario)
    obs = observations.load(args.data, float(scenario["numerics.t_end_h"]))
    if not args.param:
        raise sc.ScenarioError("--param: no parameters to fit; allowed: one or more scenario "
                               "parameters by dotted path or unique bare name (repeat --param)")
    problem = fitmod.Problem(scenario, obs, args.param, error_model=args.error_model)
    out = _own(args.out)
    print(f"fit: {len(problem.paths)} parameter(s) of {scenario.name} to {len(obs)} "
          f"observation(s) ({args.error_model} error model; compiling the model and its "
          "Jacobian) ...", file=sys.stderr)
    result = fitmod.fit(scenario, obs, args.param, profile=not args.no_profile, problem=problem)
    rep = fitmod.report(scenario, obs, result)
    fitted = fitmod.fitted_scenario(scenario, result)
    outdir.write_json(out / "fit.json", rep)
    toml = (f"# fitted by: nanotransport {' '.join(_ARGV)}\n"
            f"# to {obs.path}; see fit.json for intervals and warnings\n" + fitted.to_toml())
    outdir.atomic_write_bytes(out / "fitted.toml", toml.encode())
    written = ["fit.json", "fitted.toml"]
    if scenario["outputs.figures"]:
        written += plots.fit_figures(rep, fitmod.curves(fitted, obs, problem.model), out)
    g = rep["goodness_of_fit"]["overall"]
    print(f"{scenario.name}: chi2 = {result.chi2:.4g} on {result.dof} degree(s) of freedom "
          f"({'converged' if result.converged else 'NOT converged'}); AAFE "
          + (f"{g['aafe']:.3g}, {100 * g['within_2_fold']:.0f} % within 2-fold" if g["aafe"]
             else "undefined"))
    fmt = lambda ci: ("open" if ci is None else  # noqa: E731
                      f"{'-inf' if ci[0] is None else f'{ci[0]:.4g}'} to "
                      f"{'inf' if ci[1] is None else f'{ci[1]:.4g}'}")
    print(f"  {'parameter':<44}{'value':>11}  {'95% CI (Fisher)':<24}95% CI (profile)")
    for p, v in rep["parameters"].items():
        prof = "skipped" if v["ci95_profile"] is None else fmt(v["ci95_profile"])
        print(f"  {p:<44}{v['value']:>11.4g}  {fmt(v['ci95_wald']):<24}{prof}"
              + ("" if v["identifiable"] else "  (not identifiable)"))
    for name, gg in rep["goodness_of_fit"]["by_group"].items():
        if gg["aafe"] is not None:
            print(f"  AAFE {name:<30}{gg['aafe']:.3g} ({gg['n']} rows)")
    for w in result.warnings:
        print(f"  warning: {w}")
    print(f"wrote {out / written[0]}, " + ", ".join(written[1:]))
    return 0


def cmd_scan(args) -> int:
    """``scan``: batched grids and samples (``scan_spec``, ``scan_exec``, ``scan_store``):
    parse, run, write, plot, print the totals."""
    import jax  # deferred like every command's imports: ``--help`` stays fast

    from . import plots, scan_store
    from .studies import scan_exec, scan_spec
    from .model import scenario as sc

    if getattr(args, "distributed", False):
        jax.distributed.initialize()
    scenario = sc.load(args.scenario, args.set or [])
    if scenario["numerics.precision"] == "float64":
        jax.config.update("jax_enable_x64", True)
    _check_scenario(scenario)
    axes = tuple(scan_spec.parse_grid(g) for g in (args.grid or []))
    dists = tuple(scan_spec.parse_sample(s) for s in (args.sample or []))
    corr = tuple((scan_spec.batchable_path(a, "--correlate"),
                  scan_spec.batchable_path(b, "--correlate"), rho)
                 for (a, b), rho in map(scan_spec.parse_correlation, args.correlate or []))
    spec = scan_spec.ScanSpec(axes, dists, int(args.samples or 0), int(args.seed), args.sampler,
                              bool(args.fields), corr)
    if not args.no_figures:
        scan_exec.check_plot_metric(scenario, args.plot_metric)
    out = Path(args.out)
    ds, stats = scan_store.run(scenario, spec, out, args.chunk, not args.quiet)
    if ds is None:  # not process 0
        return 0
    figures = []
    if scenario["outputs.figures"] and not args.no_figures:
        figures = plots.plot_scan(ds, out, args.plot_metric)
    print(stats.line())
    print(f"wrote {out / scan_store.RESULT}" + (f" and {len(figures)} figure(s)" if figures
                                                else ""))
    return 0


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

    q = sub.add_parser("network", help="the vessel-network model: blood flow, haematocrit, "
                       "Starling exchange and delivery from a network (default: tumor-network)")
    scenario_args(q)
    q.add_argument("--out", default="out", help="output folder (default: out)")
    q.add_argument("--quiet", action="store_true", help="no progress lines")
    q.set_defaults(func=cmd_network)

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

    q = sub.add_parser("capillary", help="resolved microvessel: one capillary and its tissue "
                       "cylinder (r, z)")
    q.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a CapillaryParameters field (SI units, e.g. "
                        "plasma_velocity_m_per_s=1e-3)")
    q.add_argument("--diameter-nm", type=float, default=90.0, help="carrier diameter (nm)")
    q.add_argument("--heated", default="0.15:0.35:42",
                   help="heated segment START_MM:END_MM:TEMP_C ('' for none)")
    q.add_argument("--inlet", type=float, default=1e-2,
                   help="carrier and encapsulated-drug concentration entering (mol/m³)")
    q.add_argument("--t-end-s", type=float, default=30.0, help="simulated time (s)")
    q.add_argument("--nr", type=int, default=16, help="radial tissue cells")
    q.add_argument("--nz", type=int, default=50, help="axial cells")
    q.add_argument("--out", default="out", help="output folder (default: out)")
    q.set_defaults(func=cmd_capillary)

    q = sub.add_parser("optimize", help="optimize design variables of a formulation")
    scenario_args(q)
    q.add_argument("--vary", action="append", metavar="NAME=LO:HI",
                   help="design variable and its bounds (repeat)")
    q.add_argument("--method", choices=("adam", "lbfgs"), default="lbfgs")
    q.add_argument("--starts", type=int, default=1, help="number of starts (multi-start)")
    q.add_argument("--max-iter", type=int, default=30, help="iterations per start")
    q.add_argument("--tol", type=float, default=1e-5, help="relative objective change to stop")
    q.add_argument("--seed", type=int, default=0, help="seed of the Sobol start points")
    q.add_argument("--contour", type=int, default=9,
                   help="points per axis of the objective contour (0: none)")
    q.add_argument("--out", default="out", help="output folder (default: out)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_optimize)

    q = sub.add_parser("sensitivity", help="d(metric)/d(parameter) for every parameter")
    scenario_args(q)
    q.add_argument("--metric", default="objective",
                   help="objective, efficacy, a tox_* term or a scalar summary metric")
    q.add_argument("--top", type=int, default=25, help="rows shown and plotted")
    q.add_argument("--out", default="out", help="output folder (default: out)")
    q.set_defaults(func=cmd_sensitivity)

    q = sub.add_parser("scan", help="batched grids and random/Sobol samples of parameters, "
                       "sharded over all devices, resumable (DIR/scan.nc)")
    scenario_args(q)
    q.add_argument("--grid", action="append", metavar="NAME=LO:HI:N[:log]",
                   help="grid dimension: linspace (':log' for log spacing) or V1,V2,... (repeat)")
    q.add_argument("--sample", action="append", metavar="NAME=DIST(A,B)",
                   help="sampled field: uniform(lo,hi), loguniform(lo,hi), "
                        "lognormal(median,sigma_ln), normal(mean,sd) (repeat)")
    q.add_argument("--samples", type=int, default=0, metavar="M", help="number of samples")
    q.add_argument("--correlate", action="append", metavar="NAME_A:NAME_B=RHO",
                   help="correlation of two sampled fields' normal scores (Gaussian copula; "
                        "of their logarithms for log-normal fields) (repeat)")
    q.add_argument("--sampler", choices=("sobol", "random"), default="sobol",
                   help="scrambled Sobol (default) or pseudo-random draws")
    q.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")
    q.add_argument("--chunk", type=int, default=None, metavar="N",
                   help="simulations per compiled call (default: from device memory)")
    q.add_argument("--fields", action="store_true",
                   help="also keep final tissue drug and surviving fraction per grid cell")
    q.add_argument("--plot-metric", default="efficacy", help="metric of the heat map")
    q.add_argument("--no-figures", action="store_true", help="write no PNG figures")
    q.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() first (one process per host)")
    q.add_argument("--out", default="scan", help="output folder (default: scan)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_scan)

    q = sub.add_parser("cohort", help="virtual cohort: does imaging of the carrier predict "
                       "who responds? (DIR/cohort.json, cohort.nc, cohort.png)")
    scenario_args(q)
    q.add_argument("--patients", type=int, default=256, metavar="N",
                   help="virtual patients (default 256)")
    q.add_argument("--seed", type=int, default=0, help="seed of the patient draws (default 0)")
    q.add_argument("--imaging-time-h", type=float, default=24.0,
                   help="time of the image after the imaging dose (default 24 h)")
    q.add_argument("--imaging-dose-fraction", type=float, default=0.05,
                   help="imaging dose as a share of the therapeutic dose (default 0.05)")
    q.add_argument("--readout", default="tumor_pct_id_per_g",
                   choices=("tumor_pct_id_per_g", "tumor_to_reference", "tumor_kbq_per_ml"),
                   help="imaging readout used to select patients (default tumor_pct_id_per_g)")
    q.add_argument("--responder-efficacy", type=float, default=None, metavar="E",
                   help="efficacy that makes a responder (default: the cohort median)")
    q.add_argument("--select-fraction", type=float, default=0.5, metavar="F",
                   help="share of patients selected by the readout (default 0.5)")
    q.add_argument("--spread", action="append", metavar="NAME=SIGMA_LN",
                   help="log-normal spread of an EPR parameter (0 holds it fixed) (repeat)")
    q.add_argument("--chunk", type=int, default=None, metavar="N",
                   help="simulations per compiled call (default: from device memory)")
    q.add_argument("--out", default="cohort", help="output folder (default: cohort)")
    q.add_argument("--quiet", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_cohort)

    q = sub.add_parser("calibrate", help="fit a patient's tumor transport parameters to an "
                       "observed time-activity curve; predict the therapeutic outcome")
    scenario_args(q)
    q.add_argument("--observed", required=True, metavar="FILE",
                   help="CSV or JSON: time_h|time_min|time_s|time_d, one of tumor_pct_id_per_g, "
                        "tumor_pct_id_per_kg, tumor_kbq_per_ml, tumor_to_reference, optional "
                        "<quantity>_sd")
    q.add_argument("--fit", action="append", metavar="NAME",
                   help="parameter to fit (repeat; default: the cohort's EPR parameters)")
    q.add_argument("--imaging-dose-fraction", type=float, default=0.05,
                   help="imaging dose as a share of the therapeutic dose (default 0.05)")
    q.add_argument("--max-iter", type=int, default=30, help="iterations of the least-squares fit (scipy trust-region)")
    q.add_argument("--no-prediction", action="store_true",
                   help="skip the therapeutic prediction")
    q.add_argument("--out", default="calibration", help="output folder (default: calibration)")
    q.add_argument("--quiet", action="store_true", help="no progress lines")
    q.set_defaults(func=cmd_calibrate)

    q = sub.add_parser("fit", help="fit scenario parameters to a tidy study CSV (time_h, "
                       "tissue, analyte, value, unit[, sd, n, subject]); write fitted.toml")
    q.add_argument("scenario", help="built-in name or TOML file")
    q.add_argument("data", help="tidy CSV file of observations (docs/manuals/fit.md)")
    q.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a field, by dotted path or unique bare name")
    q.add_argument("--param", action="append", metavar="NAME",
                   help="parameter to fit, dotted path or unique bare name (repeat)")
    q.add_argument("--error-model", choices=("log", "proportional", "additive"), default="log",
                   help="residuals: log (default), proportional or additive")
    q.add_argument("--no-profile", action="store_true",
                   help="skip the profile-likelihood intervals (Fisher intervals only)")
    q.add_argument("--out", default="fit", help="output folder (default: fit)")
    q.set_defaults(func=cmd_fit)

    q = sub.add_parser("validate", help="the model against published numbers (targets with "
                       "sources; DIR/validation.json, DIR/validation.png)")
    q.add_argument("--quick", action="store_true", help="only the cheap targets")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--out", default="out", help="output folder (default: out)")
    q.set_defaults(func=cmd_validate)

    q = sub.add_parser("verify", help="run the closed-form verification problems")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_verify)
    for q in sub.choices.values():  # every command compiles: the persistent cache is for all
        q.add_argument("--compile-cache", metavar="DIR", default=None,
                       help="folder of JAX's persistent compilation cache (default: "
                            "$NANOTRANSPORT_COMPILE_CACHE, else ~/.cache/nanotransport/jax)")
        q.add_argument("--no-compile-cache", action="store_true",
                       help="do not read or write the persistent compilation cache")
    return p


# argument: (check, allowed) for every command that has it; checked before anything runs
ARG_RULES = {
    "max_iter": (lambda v: v >= 1, "an integer >= 1"),
    "starts": (lambda v: v >= 1, "an integer >= 1"),
    "tol": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "seed": (lambda v: v >= 0, "an integer >= 0"),
    "contour": (lambda v: v >= 0, "an integer >= 0 (0: no contour)"),
    "top": (lambda v: v >= 1, "an integer >= 1"),
    "samples": (lambda v: v >= 0, "an integer >= 0"),
    "chunk": (lambda v: v is None or v >= 1, "an integer >= 1"),
    "patients": (lambda v: v >= 2, "an integer >= 2"),
    "imaging_time_h": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0 (h)"),
    "imaging_dose_fraction": (lambda v: math.isfinite(v) and 0 < v <= 1, "a number in (0, 1]"),
    "select_fraction": (lambda v: math.isfinite(v) and 0 < v < 1, "a number in (0, 1)"),
    "responder_efficacy": (lambda v: v is None or (math.isfinite(v) and 0 <= v <= 1),
                           "a number in [0, 1]"),
    "inlet": (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0 (mol/m³)"),
    "t_end_s": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0 (s)"),
    "nr": (lambda v: v >= 2, "an integer >= 2"),
    "nz": (lambda v: v >= 2, "an integer >= 2"),
}
_ARGV: list = []


def check_arguments(args) -> None:
    """Refuse out-of-range numeric arguments and an unusable ``--out`` (a file, below a file,
    read-only) before any work; ScenarioError names the argument, the value and what is
    allowed."""
    from . import outdir
    from .model.scenario import ScenarioError

    for name, (ok, allowed) in ARG_RULES.items():
        if hasattr(args, name):
            value = getattr(args, name)
            if not ok(value):
                raise ScenarioError(f"--{name.replace('_', '-')} {value!r}; allowed: {allowed}")
    if getattr(args, "out", None) is not None:
        outdir.check_out_dir(args.out)


def _interrupted(args) -> str:
    """The one line printed on Ctrl-C: what was kept and how to go on."""
    out = getattr(args, "out", None)
    if args.command in ("scan", "cohort"):
        return (f"interrupted: finished chunks are kept in {out}; rerun the same command to "
                "resume (finished chunks are not run again)")
    if out is None:
        return "interrupted: nothing was written"
    return (f"interrupted: {out} keeps only files that were complete (each file is written "
            "whole or not at all); rerun the same command to start again")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds: temporary files removed, lock released


def main(argv=None) -> int:
    """Run a command.  Exit status: 0 done; 2 bad input or refused (the message names the
    file, field or argument, the value and what is allowed; nothing written); 130
    interrupted (Ctrl-C); 1 an internal error (a bug: traceback)."""
    from . import compile_cache, outdir
    from .model.scenario import ScenarioError
    from .model.vessel_network import NetworkError

    args = build_parser().parse_args(argv)
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    _OWNED.clear()
    old_term = None
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        pass
    rc = 1
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            check_arguments(args)
            compile_cache.enable(args.compile_cache, args.no_compile_cache)
            rc = args.func(args)
        return rc
    except (ScenarioError, NetworkError) as e:
        print(f"error: {e}", file=sys.stderr)
        rc = 2
        return rc
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        rc = 130
        return rc
    except SystemExit as e:  # SIGTERM (``_on_sigterm``) or argparse
        rc = e.code if isinstance(e.code, int) else 1
        raise
    finally:
        for folder, created in reversed(_OWNED):
            outdir.release(folder, remove_if_empty=created and rc != 0)
        _OWNED.clear()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if argv is None and rc in (130, 143):
            # the command line, interrupted: files and lock are cleaned up; leave now, without
            # the interpreter's shutdown, which can crash while XLA threads are still compiling
            # or running (seen: SIGSEGV after Ctrl-C during compilation)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())
