#!/usr/bin/env python
"""Heterogeneous DR3D: ``solver.implicit_step`` with spatially varying coefficients, by
preconditioner, against the uniform DR3D in the same run (issue #19 item 1).

Problem: DR3D of ``engine.py`` (1 mm cube, N³ cells, zero-flux walls, c(0) = 0, a 1e-3
mol/(m³·s) source in the central 0.2-mm sphere, 1 h in 20 SDIRK2 steps of 180 s, CG to a
relative residual 1e-10 per stage), made heterogeneous:

* diffusivity jump: D = 1e-10 m²/s outside, D/10 in a "tumor" sphere of radius 0.3 mm at the
  centre (a factor-10 jump at its margin; faces take the harmonic mean, fv.py);
* "vessel-density map": the decay (exchange) rate k = 1e-4 1/s × 10^(g − ½), g ∈ [0, 1] a
  smooth Gaussian random field (correlation length ~0.1 mm, seed 0) mapped to [0, 1]: a
  smooth log-normal field with a factor-10 range.

Rows (all compiled first, then timed round-robin, so that the load of a shared machine falls
on every row alike): the uniform DR3D (preconditioner 'auto' = fast diagonalization, exact),
then the heterogeneous problem with each preconditioner of ``solver.stage_system`` ('auto' =
the multigrid V-cycle there).  Per row: setup (trace + compile), wall (median of the repeats),
CG iterations per stage (the two stages of the first and of the last step, counted by wrapping
the preconditioner in a host callback: CG applies it once per iteration plus once at the
start, BiCGStab twice per iteration), and the relative L2 error of c(1 h) against the same
scheme solved to a relative residual 1e-13 (preconditioner 'auto' for the uniform case,
'scaled-fdm' for the heterogeneous one), so the error is the solver's
alone.  Ratios are to the uniform row of the same run.

Usage::

    python benchmarks/heterogeneous.py                  # N = 64, all preconditioners
    python benchmarks/heterogeneous.py --n 32 --skip averaged-fdm
    python benchmarks/heterogeneous.py --convection     # + u = (1e-7, 0, 0) m/s (BiCGStab)
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import (D_M2S, K_1S, _nt_problem, heterogeneous_fields,  # noqa: E402
                    near_sqrt_divisor)

DT_S, STEPS = 180.0, 20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--convection", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", nargs="*", default=[], help="preconditioners to leave out")
    opts = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from nanotransport import multigrid, solver

    n, conv = opts.n, opts.convection
    dtype = jnp.float64
    g, src, transport = _nt_problem(n, conv, dtype)
    d_het, k_het = (jnp.asarray(a, dtype) for a in heterogeneous_fields(n))
    cases = {"uniform": (jnp.asarray(D_M2S, dtype), jnp.asarray(K_1S, dtype)),
             "heterogeneous": (d_het, k_het)}
    c0 = jnp.zeros((1, n, n, n), dtype)
    spm = near_sqrt_divisor(STEPS)

    def simulate(precond, tol):
        """The 1-h run, jitted with D, k and c(0) traced arguments (as in engine.py: no
        constant folding of the coefficient fields, no recompilation for new values)."""
        def run(d, k, c):
            tr = dataclasses.replace(transport(d), source=src)

            def step(t, h, c):
                return solver.implicit_step(g, tr, c, h, decay=k, tol=tol,
                                            preconditioner=precond)

            return solver.integrate(step, c, [DT_S * STEPS], max_dt=DT_S,
                                    steps_per_macro=spm)[1][0]

        return jax.jit(run)

    def iterations(case, precond, c):
        """Iterations of the two stages of one step from c (host-side count)."""
        d, k = cases[case]
        tr = dataclasses.replace(transport(d), source=src)
        calls = []
        level, weight, s, symmetric, pre = solver.stage_system(g, tr, c, DT_S, k, precond)

        def counted(r):
            jax.debug.callback(lambda: calls.append(1))
            return pre(r)

        out = []
        y = c
        a_h = solver.GAMMA * DT_S
        for _ in range(2):
            calls.clear()
            rhs = c + solver.W * (y - c) + a_h * s
            y = multigrid.solve(level, weight * rhs, symmetric, 1e-10, 500, x0=y,
                                preconditioner=counted).solution
            y.block_until_ready()
            out.append(len(calls) - 1 if symmetric else len(calls) // 2)
        return out

    runs = [("uniform", "auto")] + [("heterogeneous", pc) for pc in
                                    ("auto", "averaged-fdm", "scaled-fdm")
                                    if pc not in opts.skip]
    rows, compiled = [], []
    for case, precond in runs:  # compile every row first
        args = cases[case] + (c0,)
        run = simulate(precond, None)
        t = time.perf_counter()
        run.lower(*args).compile()
        rows.append(dict(case=case, precond=precond, setup=time.perf_counter() - t, walls=[]))
        run(*args).block_until_ready()  # the first call fills jit's cache
        compiled.append((run, args))
    for _ in range(opts.repeats):  # then the repeats round-robin, so load changes hit all rows
        for row, (run, args) in zip(rows, compiled):
            t = time.perf_counter()
            run(*args).block_until_ready()
            row["walls"].append(time.perf_counter() - t)
    refs = {}
    for row, (run, args) in zip(rows, compiled):
        case, precond = row["case"], row["precond"]
        if case not in refs:
            refs[case] = np.asarray(simulate("auto" if case == "uniform" else "scaled-fdm",
                                             1e-13)(*args))
        out = np.asarray(run(*args))
        row["err"] = float(np.linalg.norm(out - refs[case]) / np.linalg.norm(refs[case]))
        row["its"] = iterations(case, precond, c0) + iterations(case, precond, jnp.asarray(out))
        row["wall"] = float(np.median(row["walls"]))
        print(f"{case} {precond}: setup {row['setup']:.2f} s, walls "
              f"{', '.join(f'{w:.2f}' for w in row['walls'])} s, iterations {row['its']}, "
              f"error {row['err']:.2e}", flush=True)

    base = rows[0]
    print(f"\nN = {n}, {'convection (BiCGStab)' if conv else 'diffusion (CG)'}, "
          f"{STEPS} steps of {DT_S:g} s, tol 1e-10\n")
    print("| case | preconditioner | setup s | wall s (median) | total s | iterations/stage "
          "(first step; last step) | error vs tol-1e-13 reference | wall / uniform | "
          "total / uniform |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        total = r["setup"] + r["wall"]
        btotal = base["setup"] + base["wall"]
        its = f"{r['its'][0]}, {r['its'][1]}; {r['its'][2]}, {r['its'][3]}"
        print(f"| {r['case']} | {r['precond']} | {r['setup']:.2f} | {r['wall']:.3f} "
              f"(×{len(r['walls'])}) | {total:.2f} | {its} | {r['err']:.1e} | "
              f"{r['wall'] / base['wall']:.1f} | {total / btotal:.2f} |")


if __name__ == "__main__":
    main()
