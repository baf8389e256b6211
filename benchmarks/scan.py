"""Scan throughput: batched (``jax.vmap`` + sharding, ``nanotransport.scan.BatchRunner``) against
a Python loop of single runs of the same compiled function, on the default scenario.

Default scenario: ``doxil`` as shipped — 72 h, 100 radial cells, 10-min steps (432 steps), 18
saved times, float64.  Each batch varies ``formulation.diameter_nm`` (20-200 nm) and
``tissue.tumor.pore_radius_nm`` (100-800 nm).

CPU mode (default): batch sizes 1, 4, 16, 64, 256 (``--full``: up to 4096).  For each size: the
batch is compiled once (timed apart), then run once; the loop calls the batch-1 executable (the
same compiled function, one simulation at a time) on min(batch, ``--loop-max``) points and its
rate stands for the whole batch (a loop's rate does not depend on its length).

GPU mode (``--gpu``): batch sizes up to 16384 (``--gpu-sizes``) in float32 and float64 on the
default device, simulations per minute; then a float64 CPU check: 4 members of the largest
batch of each precision re-run on the CPU, max relative difference over every metric.  Sizes
run smallest first; ``--budget-s`` skips a configuration whose cost, extrapolated from the last
one (compile time + run time scaled with the batch), would not fit.

    python benchmarks/scan.py [--full] [--json PATH] [--loop-max 8]
    python benchmarks/scan.py --gpu [--gpu-sizes 1024 4096 16384] [--budget-s 110] [--json PATH]

On an H100 the 16384 float32 batch alone takes about 100 s (26 s compile, 72 s run), so the
whole ladder in both precisions needs ``--budget-s 420`` or so.

Installs nothing; prints a table and, with ``--json``, writes the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from nanotransport import scan, scenario as sc  # noqa: E402

PATHS = ("formulation.diameter_nm", "tissue.tumor.pore_radius_nm")


def points(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"formulation.diameter_nm": rng.uniform(20.0, 200.0, n),
            "tissue.tumor.pore_radius_nm": rng.uniform(100.0, 800.0, n)}


def _sync(out):
    jax.block_until_ready(out)
    return out


def time_batch(s, size: int, devices=None) -> dict:
    runner = scan.BatchRunner(s, PATHS, size, devices=devices)
    vals = points(size, seed=size)
    t0 = time.perf_counter()
    compiled = runner.compile(vals)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = _sync(runner.device_call(vals))
    run_s = time.perf_counter() - t0
    mem = None
    try:
        ma = compiled.memory_analysis()
        mem = int(ma.temp_size_in_bytes + ma.output_size_in_bytes + ma.argument_size_in_bytes)
    except Exception:  # noqa: BLE001 - not every backend reports it
        pass
    return {"batch": size, "compile_s": compile_s, "batched_s": run_s,
            "sims_per_s_batched": size / run_s, "compiled_bytes_per_sim": (mem / size
                                                                           if mem else None),
            "out": out, "values": vals}


def time_loop(s, n: int, devices=None) -> dict:
    runner = scan.BatchRunner(s, PATHS, 1, devices=devices)
    vals = points(n, seed=1000 + n)
    one = lambda i: {p: vals[p][i:i + 1] for p in PATHS}  # noqa: E731
    runner.compile(one(0))
    _sync(runner.device_call(one(0)))  # warm
    t0 = time.perf_counter()
    for i in range(n):
        _sync(runner.device_call(one(i)))
    dt = time.perf_counter() - t0
    return {"loop_n": n, "loop_s": dt, "sims_per_s_loop": n / dt}


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None}


def cpu_row(size: int, loop_max: int) -> dict:
    s = sc.load("doxil")
    b = time_batch(s, size)
    loop = time_loop(s, min(size, loop_max))
    row = {k: v for k, v in b.items() if k not in ("out", "values")}
    row.update(loop)
    row["speedup"] = row["sims_per_s_batched"] / row["sims_per_s_loop"]
    return row


def cpu_main(args):
    """Each batch size in a fresh process under a timeout: a hang (jaxlib 0.10 CPU LAPACK
    kernels can deadlock the intra-op thread pool, see RESULTS.md) is reported, not waited
    for."""
    import subprocess

    s = sc.load("doxil")
    sizes = [1, 4, 16, 64, 256] + ([1024, 4096] if args.full else [])
    if args.sizes:
        sizes = args.sizes
    est = scan.bytes_per_simulation(s)
    rows = []
    print(f"default scenario (doxil, 72 h, 100 cells, float64); estimate {est / 1e6:.2f} MB/sim "
          f"(with x{scan.SAFETY:g} safety); load average {os.getloadavg()}", flush=True)
    print(f"{'batch':>6} {'compile s':>10} {'batched s':>10} {'sims/s batched':>15} "
          f"{'sims/s loop':>12} {'speedup':>8} {'MB/sim (XLA)':>13}", flush=True)
    for size in sizes:
        limit = args.row_timeout_s or (90 + 3.0 * size + 3.0 * min(size, args.loop_max))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, __file__, "--_row", str(size), "--loop-max",
                                   str(args.loop_max)], capture_output=True, text=True,
                                  timeout=limit)
            line = [x for x in proc.stdout.splitlines() if x.startswith("ROW ")]
            row = json.loads(line[-1][4:]) if line else {"batch": size, "error":
                                                         proc.stderr[-500:]}
        except subprocess.TimeoutExpired:
            row = {"batch": size, "error": f"no result after {limit:.0f} s (hung)"}
        row["wall_s"] = time.perf_counter() - t0
        row["load_avg_1min"] = os.getloadavg()[0]
        rows.append(row)
        if "error" in row:
            print(f"{size:>6}  failed: {row['error'][-200:]}", flush=True)
        else:
            mb = row["compiled_bytes_per_sim"]
            print(f"{size:>6} {row['compile_s']:>10.1f} {row['batched_s']:>10.2f} "
                  f"{row['sims_per_s_batched']:>15.3f} {row['sims_per_s_loop']:>12.3f} "
                  f"{row['speedup']:>8.2f} {mb / 1e6 if mb else float('nan'):>13.3f}",
                  flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "mode": "cpu",
                                                   "estimate_bytes_per_sim": est,
                                                   "rows": rows}, indent=1))
    return rows


def gpu_main(args):
    t_start = time.perf_counter()
    gpu = jax.devices()[0]
    cpu = jax.devices("cpu")[0]
    print(f"device {gpu} ({gpu.platform}); {len(jax.devices())} device(s)", flush=True)
    rows, results = [], []
    configs = [(size, prec) for size in sorted(args.gpu_sizes) for prec in args.precisions]
    seen: dict = {}  # precision -> (size, compile s, run s) of its last batch
    for size, prec in configs:
        elapsed = time.perf_counter() - t_start
        if prec in seen:  # compile time stays, run time grows with the batch
            size0, comp0, run0 = seen[prec]
            cost = comp0 + run0 * size / size0
        else:
            cost = 0.0 if not seen else max(c + r for _, c, r in seen.values())
        if elapsed + cost > args.budget_s - args.check_reserve_s:
            print(f"skipped batch {size} {prec}: {elapsed:.0f} s used, about {cost:.0f} s "
                  f"more needed (--budget-s {args.budget_s:g})", flush=True)
            continue
        s = sc.load("doxil", [f"numerics.precision={prec}"])
        try:
            b = time_batch(s, size)
        except Exception as e:  # noqa: BLE001 - report (e.g. out of memory) and go on
            print(f"batch {size} {prec}: failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
            rows.append({"batch": size, "precision": prec, "error": str(e)[:300]})
            continue
        seen[prec] = (size, b["compile_s"], b["batched_s"])
        row = {"batch": size, "precision": prec, "compile_s": b["compile_s"],
               "batched_s": b["batched_s"], "sims_per_min": 60.0 * size / b["batched_s"],
               "compiled_bytes_per_sim": b["compiled_bytes_per_sim"]}
        rows.append(row)
        results = [r for r in results if r[0]["numerics.precision"] != prec] + [(s, b)]
        print(f"batch {size:>6} {prec}: compile {b['compile_s']:.1f} s, run {b['batched_s']:.2f} s"
              f" = {row['sims_per_min']:.0f} simulations/min", flush=True)
    # float64 CPU check of a few members of each GPU batch
    checks = []
    for s, b in results:  # the largest batch of each precision
        pick = np.linspace(0, b["batch"] - 1, 4).astype(int)
        ref_s = s.replace(**{"numerics.precision": "float64"})
        vals = {p: b["values"][p][pick] for p in PATHS}
        ref = scan.BatchRunner(ref_s, PATHS, 4, devices=[cpu])(vals)
        worst, where = 0.0, ""
        for k, v in ref.items():
            if k == "mass_balance_error":
                continue
            g = np.asarray(b["out"][k])[pick]
            rel = float(np.max(np.abs(g - v) / np.maximum(np.abs(v), 1e-30)))
            if rel > worst:
                worst, where = rel, k
        prec = s["numerics.precision"]
        checks.append({"batch": b["batch"], "precision": prec, "members": pick.tolist(),
                       "max_rel_diff_vs_cpu_f64": worst, "worst_metric": where})
        print(f"CPU float64 check, batch {b['batch']} {prec}, members {pick.tolist()}: max "
              f"relative difference {worst:.2e} ({where})", flush=True)
    doc = {"machine": machine(), "mode": "gpu", "rows": rows, "cpu_check": checks,
           "seconds": time.perf_counter() - t_start}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    print(f"{'batch':>6} {'precision':>9} {'compile s':>10} {'run s':>8} {'sims/min':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['batch']:>6} {r['precision']:>9}  failed: {r['error'][:60]}")
        else:
            print(f"{r['batch']:>6} {r['precision']:>9} {r['compile_s']:>10.1f} "
                  f"{r['batched_s']:>8.2f} {r['sims_per_min']:>10.0f}")
    ok = bool(rows) and all("error" not in r for r in rows)
    ok = ok and all(c["max_rel_diff_vs_cpu_f64"] < (1e-9 if c["precision"] == "float64"
                                                    else 1e-2) for c in checks)
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="CPU: batch sizes up to 4096")
    p.add_argument("--sizes", type=int, nargs="+", help="CPU: batch sizes")
    p.add_argument("--loop-max", type=int, default=8, help="CPU: simulations timed in the loop")
    p.add_argument("--gpu", action="store_true", help="GPU mode")
    p.add_argument("--gpu-sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--precisions", nargs="+", default=["float32", "float64"])
    p.add_argument("--budget-s", type=float, default=110.0, help="GPU: time budget (s)")
    p.add_argument("--check-reserve-s", type=float, default=25.0,
                   help="GPU: seconds kept for the CPU check")
    p.add_argument("--row-timeout-s", type=float, default=None,
                   help="CPU: seconds allowed per batch size (default 90 + 3 s per simulation)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--_row", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._row:
        print("ROW " + json.dumps(cpu_row(args._row, args.loop_max)), flush=True)
        return 0
    if args.gpu:
        if jax.devices()[0].platform == "cpu":
            print("--gpu: no GPU found (jax.devices() lists CPUs only)", file=sys.stderr)
            return 1
        return gpu_main(args)
    cpu_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
