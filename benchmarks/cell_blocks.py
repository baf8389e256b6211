#!/usr/bin/env python
"""The local kinetics in blocks of cells (``engine/cell_blocks.py``) against the whole grid at
once, in one run (issue #19 item 1, the default scenario on a 3D tissue).

Rows:

* **reaction half step**: one ``solver.reaction_step`` of the default scenario's kinetics
  (``doxil``, ``tumor.geometry = cartesian3d``, 10 Newton species + 11 counters per cell) over
  5 min, at a state six 10-min steps into the run, for each grid size and cells per block
  (0 = the whole grid); compiled first, then the median of ``--repeats`` calls, and the
  speed-up over the first entry of ``--blocks`` (default 0) in the same run;
* **run**: ``simulate`` of the same scenario to ``--t-end-h`` with the default blocks and with
  none (``cell_blocks.CELLS_PER_BLOCK = 0``), compile included (the model's structure is the
  same, so each is compiled once, first), the speed-up over the run without blocks, and the
  largest relative difference of any saved field between the two.

    python benchmarks/cell_blocks.py [--sizes 24 48] [--blocks 0 512 1024 2048 4096]
                                     [--run-size 24] [--t-end-h 12] [--repeats 5] [--json PATH]

Installs nothing; prints a table and, with ``--json``, writes the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _scenario(n: int, t_end_h: float | None = None):
    from nanotransport.model import scenario
    sets = ["tumor.geometry=cartesian3d", f"numerics.cells={n}"]
    if t_end_h is not None:
        sets.append(f"numerics.t_end_h={t_end_h}")
    return scenario.load("doxil", sets)


def half_step_rows(sizes, blocks, repeats):
    import jax
    from nanotransport.engine import solver
    from nanotransport.model import simulate as sim
    from nanotransport.model.transport import local_rates

    rows = []
    for n in sizes:
        sc = _scenario(n)
        static = sim.structure(sc)
        inp, state = sim._prepare_jit(sc.params, static)
        scenario, lay, names, _, _ = sim._prepare(sc.params, static)
        step, prepare = sim._step_of(scenario, lay, names, inp)
        h = 600.0
        propagators = jax.jit(prepare)(h)
        jstep = jax.jit(step)
        for i in range(6):
            state = jstep(i * h, h, state, propagators)
        plasma = sim._plasma(inp, state[0], state[1])
        n_state = sim.n_state(names)

        def half(x, kinetics, block):
            return solver.reaction_step(
                lambda t, y, k: local_rates(k, y, plasma, names), 0.0, x, 0.5 * h, 2,
                n_state, cell_data=kinetics, cells_per_block=block)

        reference = None
        for block in blocks:
            fn = jax.jit(lambda x, k, b=block: half(x, k, b))
            out = jax.block_until_ready(fn(state[2], inp.kinetics))
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(state[2], inp.kinetics))
                times.append(time.perf_counter() - t0)
            wall = statistics.median(times)
            if reference is None:  # the first entry of --blocks (0: the whole grid)
                reference, reference_wall = out, wall
            diff = float(abs(out - reference).max() / abs(reference).max())
            rows.append(dict(row="reaction half step", cells=n ** 3, grid=f"{n}³",
                             cells_per_block=block, wall_s=wall,
                             speedup=reference_wall / wall, max_rel_diff=diff))
            print(_line(rows[-1]), flush=True)
    return rows


def run_rows(n, t_end_h):
    import jax
    import numpy as np
    from nanotransport.engine import cell_blocks
    from nanotransport.model import simulate as sim

    rows, fields = [], []
    default = cell_blocks.CELLS_PER_BLOCK
    for block in (default, 0):
        cell_blocks.CELLS_PER_BLOCK = block  # read when the run is traced:
        jax.clear_caches()  # so trace it again
        t0 = time.perf_counter()
        result = sim.simulate(_scenario(n, t_end_h))
        fields.append(np.asarray(result.fields))
        rows.append(dict(row=f"run to {t_end_h:g} h", cells=n ** 3, grid=f"{n}³",
                         cells_per_block=block, wall_s=time.perf_counter() - t0))
    cell_blocks.CELLS_PER_BLOCK = default
    scale = np.abs(fields[1]).max(axis=tuple(range(2, fields[1].ndim)), keepdims=True)
    diff = float((np.abs(fields[0] - fields[1]) / np.where(scale > 0, scale, 1.0)).max())
    for row in rows:
        row["max_rel_diff"] = diff
        row["speedup"] = rows[1]["wall_s"] / row["wall_s"]  # against no blocks
        print(_line(row), flush=True)
    return rows


def _line(r):
    return (f"| {r['row']} | {r['grid']} | {r['cells_per_block']} | {r['wall_s']:.3f} | "
            f"{r['speedup']:.2f} | {r['max_rel_diff']:.1e} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[24, 48])
    p.add_argument("--blocks", type=int, nargs="*", default=[0, 512, 1024, 2048, 4096])
    p.add_argument("--run-size", type=int, default=24, help="grid of the run rows (0: none)")
    p.add_argument("--t-end-h", type=float, default=12.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path)
    opts = p.parse_args(argv)

    import jax
    jax.config.update("jax_enable_x64", True)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} {jax.default_backend()}, float64")
    print("| row | grid | cells per block | wall s (median) | speed-up over the first row of "
          "its grid | max rel. diff. to whole grid |")
    print("|---|---|---|---|---|---|")
    rows = half_step_rows(opts.sizes, opts.blocks, opts.repeats)
    if opts.run_size:
        rows += run_rows(opts.run_size, opts.t_end_h)
    if opts.json:
        tmp = opts.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(opts.json)


if __name__ == "__main__":
    main()
