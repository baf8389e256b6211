"""Time of `nanotransport run` on the default scenario, cold and warm (the persistent
compilation cache, ``nanotransport/compile_cache.py``), and of `compare` over four scenarios.

Goals (issue #19, 2 CPU cores): the first run < 10 s wall, the second (warm cache) < 3 s,
`compare free-dox doxil thermodox targeted` the second time < 10 s.  Every command is a fresh process, as a user's would be, with its default progress bar.
Rows:

* ``run, no cache``: ``--no-compile-cache`` (every run compiles: the reference);
* ``run, cold cache``: an empty cache folder (compiles and writes the cache);
* ``run, warm cache``: the same folder again (loads the compiled programs);
* ``compare ×4`` cold and warm, likewise;
* ``python + import``: start-up of Python with the command line imported (the floor).

Also the phases of one run in one process (load, trace + compile, first and second call).

    python benchmarks/default_run.py [--repeats 3] [--json]
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

PHASES = r"""
import json, time, jax
t0 = time.perf_counter()
jax.config.update("jax_enable_x64", True)
from nanotransport import scenario as S, simulate as M
sc = S.load("doxil")
t1 = time.perf_counter()
lowered = M._run_jit.lower(sc.params, M.structure(sc), "")
compiled = lowered.compile()
t2 = time.perf_counter()
r = compiled(sc.params); jax.block_until_ready(r.fields)
t3 = time.perf_counter()
r = compiled(sc.params); jax.block_until_ready(r.fields)
t4 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "compile_s": t2 - t1, "first_run_s": t3 - t2,
                  "second_run_s": t4 - t3}))
"""
COMPARE = ["free-dox", "doxil", "thermodox", "targeted"]


def timed(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nanotransport.cli", *args], check=True,
                   capture_output=True)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = {k: [] for k in ("run, no cache", "run, cold cache", "run, warm cache",
                            "compare x4, cold cache", "compare x4, warm cache",
                            "python + import")}
    phases = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as cache:
            rows["run, no cache"].append(timed(["run", "--out", out, "--no-compile-cache"]))
            rows["run, cold cache"].append(timed(["run", "--out", out, "--compile-cache", cache]))
            rows["run, warm cache"].append(timed(["run", "--out", out, "--compile-cache", cache]))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import nanotransport.cli, jax"], check=True)
        rows["python + import"].append(time.perf_counter() - t)
        res = subprocess.run([sys.executable, "-c", PHASES], check=True, capture_output=True,
                             text=True)
        phases.append(json.loads(res.stdout.strip().splitlines()[-1]))
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as cache:
        for k in ("compare x4, cold cache", "compare x4, warm cache"):
            rows[k].append(timed(["compare", *COMPARE, "--out", out, "--compile-cache", cache]))
    table = {k: statistics.median(v) for k, v in rows.items()}
    goals = {"run, cold cache": 10.0, "run, warm cache": 3.0, "compare x4, warm cache": 10.0}
    med = {k: statistics.median(ph[k] for ph in phases) for k in phases[0]}
    if args.json:
        print(json.dumps({"wall_s": table, "goals_s": goals, "phases_s": med}, indent=1))
        return
    print(f"nanotransport run (default scenario) and compare {' '.join(COMPARE)}; median of "
          f"{args.repeats} fresh processes (compare: 1)")
    print(f"  {'command':<26}{'wall (s)':>9}  goal")
    for k, v in table.items():
        goal = goals.get(k)
        print(f"  {k:<26}{v:9.2f}  " + (f"< {goal:g} s: {'met' if v < goal else 'NOT met'}"
                                        if goal else ""))
    print("phases of one run in one process (no cache): "
          + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))


if __name__ == "__main__":
    main()
