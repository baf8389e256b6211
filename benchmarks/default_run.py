"""Time of `nanotransport run` on the default scenario (goal: < 30 s on a 2-core CPU, including
start-up and compilation), split into process start-up + import, trace + compile, and the run.

Each repeat is a fresh process (cold JIT cache), as a user's command would be; the reference
measured in the same run is the bare start-up of Python with the package imported.

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
lowered = M._run_jit.lower(sc.params, M.structure(sc), "", None)
compiled = lowered.compile()
t2 = time.perf_counter()
r = compiled(sc.params); jax.block_until_ready(r.fields)
t3 = time.perf_counter()
r = compiled(sc.params); jax.block_until_ready(r.fields)
t4 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "compile_s": t2 - t1, "first_run_s": t3 - t2,
                  "second_run_s": t4 - t3}))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    total, imports, phases = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "nanotransport.cli", "run", "--quiet",
                            "--out", out], check=True, capture_output=True)
            total.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import nanotransport.cli, jax"], check=True)
        imports.append(time.perf_counter() - t)
        res = subprocess.run([sys.executable, "-c", PHASES], check=True, capture_output=True,
                             text=True)
        phases.append(json.loads(res.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(ph[k] for ph in phases) for k in phases[0]}
    row = {"run_total_s": statistics.median(total), "python_import_s": statistics.median(imports),
           **med, "goal_s": 30.0, "met": statistics.median(total) < 30.0}
    if args.json:
        print(json.dumps(row, indent=1))
        return
    print(f"nanotransport run (default scenario), median of {args.repeats} fresh processes")
    for k, v in row.items():
        print(f"  {k:<18}{v if isinstance(v, bool) else f'{v:.2f}'}")


if __name__ == "__main__":
    main()
