#!/usr/bin/env python
"""Speed of the network model's delivery on the default ``tumor-network`` scenario (2972
segments, 19³ tissue cells, 24 h in 96 steps of 15 min): prints a table, writes
``benchmarks/network_speed.json`` (or ``--json``).

Rows, one process, compile included where said:

* ``lumen``: one solve of the lumen on the directed flow graph (``network_transport.lumen``,
  warm, median of 20) and the graph's longest flow path in segments (the sweep needs one pass
  more than that);
* ``run``: ``network_run.run`` of the scenario (haemodynamics, tissue, delivery; the delivery's
  own seconds as the run reports them, compile included);
* ``primal``, ``forward``, ``reverse`` (``--design``): ``network_design.delivery`` jitted, its
  forward-mode 3 × 2 Jacobian (``sensitivity``) and the reverse pass for every segment
  (``segment_sensitivity``), compile included.

Run it on another checkout with ``PYTHONPATH=/path/to/checkout`` to compare commits in one
session (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nanotransport.model import network_delivery as nd  # noqa: E402
from nanotransport.model import network_transport  # noqa: E402
from nanotransport.model.scenario import load  # noqa: E402
from nanotransport.studies import network_design, network_run  # noqa: E402


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def lumen_row(r) -> dict:
    """One lumen solve on the run's network, flows and wall conductances (carrier and free
    drug, the pieces' γ summed per segment) with the tissue along each segment at the last
    saved tissue values of the run's cells (a real right-hand side: its round-off matters)."""
    net, state = r.net, r.state
    flow = jnp.asarray(state["flow_m3_per_s"])
    volume = jnp.pi * jnp.asarray(net.segment_radius_m) ** 2 * jnp.asarray(net.segment_length_m)
    asm = nd.assemble(net, r.grid, state, r.solutes, pieces=r.pieces)
    segment = jnp.asarray(r.pieces.segment)
    ps = jax.ops.segment_sum(asm.gamma, segment, net.n_segments)
    tissue = jnp.asarray(r.delivery["tissue"][-1]).reshape(2, -1).T[jnp.asarray(r.pieces.cell)]
    c_tissue = (jax.ops.segment_sum(asm.gamma * tissue, segment, net.n_segments)
                / jnp.maximum(ps, 1e-300))
    maps = network_transport.segment_maps(flow, volume, ps, jnp.zeros((2, 2)), c_tissue)
    inflow = jnp.maximum(jnp.asarray(state["external_inflow_m3_per_s"]), 0.0)
    hour = int(np.argmin(np.abs(r.plasma_times_s - 3600.0)))
    c_in = jnp.broadcast_to(jnp.asarray(r.plasma[hour]), (net.n_nodes, 2))  # plasma at 1 h
    solve = jax.jit(lambda m: network_transport.lumen(net.segment_nodes, net.n_nodes, flow,
                                                      inflow, c_in, m)[2])
    jax.block_until_ready(solve(maps))
    times = []
    for _ in range(20):
        t = time.perf_counter()
        jax.block_until_ready(solve(maps))
        times.append(time.perf_counter() - t)
    return {"row": "lumen", "segments": int(net.n_segments),
            "longest_flow_path_segments": longest_path(net.segment_nodes,
                                                       np.asarray(state["flow_m3_per_s"])),
            "median_ms": 1e3 * statistics.median(times)}


def longest_path(edges: np.ndarray, flow: np.ndarray) -> int:
    """Segments on the longest directed path of the flow graph (its depth), by relaxing the
    segments' depths until nothing changes (an acyclic graph settles within its depth)."""
    up = np.where(flow >= 0, edges[:, 0], edges[:, 1])
    down = np.where(flow >= 0, edges[:, 1], edges[:, 0])
    depth = np.ones(len(edges), int)
    while True:
        node = np.zeros(edges.max() + 1, int)
        np.maximum.at(node, down, depth)
        new = 1 + node[up]
        if np.array_equal(new, depth):
            return int(depth.max())
        depth = new


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--design", action="store_true", help="also primal, forward, reverse")
    ap.add_argument("--json", default=str(Path(__file__).with_name("network_speed.json")))
    args = ap.parse_args(argv)
    rows = []

    def report(row):
        rows.append(row)
        print(" | ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}"
                         for k, v in row.items()), flush=True)

    scenario = load("tumor-network")
    t = time.perf_counter()
    r = network_run.run(scenario)
    report({"row": "run", "wall_s": time.perf_counter() - t,
            "delivery_s": float(r.seconds["delivery"]), "peak_rss_gb": peak_gb()})
    report(lumen_row(r))
    if args.design:
        prob = network_design.problem(scenario)
        x0 = jnp.asarray(network_design.start(prob))
        t = time.perf_counter()
        jax.block_until_ready(jax.jit(lambda d: network_design.delivery(prob, d))(x0))
        report({"row": "primal", "wall_s": time.perf_counter() - t, "peak_rss_gb": peak_gb()})
        t = time.perf_counter()
        network_design.sensitivity(prob)
        report({"row": "forward 3 x 2", "wall_s": time.perf_counter() - t,
                "peak_rss_gb": peak_gb()})
        t = time.perf_counter()
        network_design.segment_sensitivity(prob, "carrier")
        report({"row": f"reverse 2 x {prob.net.n_segments}", "wall_s": time.perf_counter() - t,
                "peak_rss_gb": peak_gb()})
    Path(args.json).write_text(json.dumps({"machine": "see benchmarks/RESULTS.md",
                                           "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
