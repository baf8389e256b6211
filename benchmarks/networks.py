"""Vessel-network benchmarks (issue #20): prints a table, writes benchmarks/networks.json.

1. the rat mesentery (Secomb's NetFlowV2 network, 1130 pieces): flow and haematocrit with
   NetFlowV2's rheology, first call (compile + solve) and warm (median of 5);
2. batched variants of the mesentery (every radius × a log-normal factor, 10 % spread) in one
   compiled call, by ``vmap`` and by ``lax.map`` (one after the other): per-variant cost with
   the SciPy LU ("direct", sequential under vmap) and with CG in JAX ("cg"); N variants,
   default 100 (``--variants``, 0 skips);
3. the mesentery and four random trees, each compiled on its own, against all padded to one
   size (``hm.stack``) and solved in one compiled call;
4. delivery into the tissue for synthetic tumor networks of different sizes in one 0.6-mm box
   and 12³ grid (6 h of 15-min steps with leak and macrophages), lattice pitches 60-100 µm
   (446-1789 segments) and 68-75 µm (968-981 segments): each ``network_delivery.run`` compiled on
   its own, against all padded to one program (``network_delivery.run_batch``, ``lax.map``),
   compile included in both;
5. a synthetic tumor network of ~1e4 segments on a 128³ tissue grid: generation, exact
   segment-cell pieces, the coupled Starling solve (network + tissue, CG), and one hour of
   delivery (4 steps).

Run: python benchmarks/networks.py [--variants N] [--solvers direct,cg]
     [--batching vmap,lax.map] [--skip-sizes] [--skip-delivery-sizes] [--skip-large]
     [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nanotransport.engine import grid as grids  # noqa: E402
from nanotransport.model import haemodynamics as hm  # noqa: E402
from nanotransport.model import network_delivery as nd  # noqa: E402
from nanotransport.model import network_exchange, network_files, network_generator  # noqa: E402
from nanotransport.model import properties, segment_cells  # noqa: E402
from nanotransport.studies import verify_network as vn  # noqa: E402


def report(row):
    """Print a row as soon as it is measured."""
    print(" | ".join(f"{k}: {v:.3g}" if isinstance(v, float) else f"{k}: {v}"
                     for k, v in row.items()), flush=True)


def timed(f, *args):
    t = time.perf_counter()
    out = f(*args)
    jax.block_until_ready(out)
    return out, time.perf_counter() - t


def mesentery(rows):
    net = network_files.read_network(vn.mesentery_path())
    topo, params = hm.Topology.of(net), hm.parameters(net)
    f = jax.jit(hm.solve_state, static_argnums=(2,))
    state, first = timed(f, topo, params, vn.NETFLOW_RHEOLOGY)
    warm = statistics.median(timed(f, topo, params, vn.NETFLOW_RHEOLOGY)[1] for _ in range(5))
    rows.append({"case": "mesentery flow + haematocrit (1130 pieces)", "first_s": first,
                 "warm_s": warm, "iterations": [int(state["picard_iterations"]),
                                                int(state["newton_iterations"])]})
    report(rows[-1])
    return net, topo, params


def variants(rows, net, topo, params, n, solvers, batchings):
    rng = np.random.default_rng(0)
    factors = jnp.asarray(np.exp(0.1 * rng.standard_normal((n, net.n_segments))))
    for solver in solvers:
        rheo = vn.NETFLOW_RHEOLOGY.__class__(**{**vn.NETFLOW_RHEOLOGY.__dict__,
                                                "solver": solver})

        def one(f):
            s = hm.solve_state(topo, {**params, "radius_m": params["radius_m"] * f}, rheo)
            return s["hematocrit"], s["converged"]

        ways = {"vmap": lambda: jax.jit(jax.vmap(one)),
                "lax.map": lambda: jax.jit(lambda f: jax.lax.map(one, f))}
        for label in batchings:
            batched = ways[label]()
            (_, ok), first = timed(batched, factors)
            (_, ok), warm = timed(batched, factors)
            rows.append({"case": f"{n} mesentery variants in one {label} ({solver})",
                         "first_s": first, "warm_s": warm,
                         "per_variant_ms": 1e3 * warm / n, "converged": int(np.sum(ok))})
            report(rows[-1])


def different_sizes(rows, mesentery_net):
    """The mesentery and random trees of different sizes: each compiled on its own, against
    all padded to one size (``hm.stack``) and solved by one compiled ``lax.map``."""
    from nanotransport.model.vessel_network import PRESSURE
    nets = [mesentery_net] + [vn._tree_network(*vn.random_tree(levels=lv, seed=lv), PRESSURE,
                                               4000.0) for lv in (7, 8, 9, 10)]
    rheo = vn.NETFLOW_RHEOLOGY
    t = time.perf_counter()
    for net in nets:
        jax.block_until_ready(jax.jit(hm.solve_state, static_argnums=(2,))(
            hm.Topology.of(net), hm.parameters(net), rheo)["hematocrit"])
    apart = time.perf_counter() - t
    topo, params, mask = hm.stack(nets)
    batched = jax.jit(lambda t, p: jax.lax.map(lambda a: hm.solve_state(*a, rheo), (t, p)))
    out, first = timed(batched, topo, params)
    out, warm = timed(batched, topo, params)
    rows.append({"case": f"{len(nets)} networks of {min(n.n_segments for n in nets)}-"
                         f"{max(n.n_segments for n in nets)} segments",
                 "separate_compiles_s": apart, "padded_first_s": first, "padded_warm_s": warm,
                 "converged": int(np.sum(out["converged"]))})
    report(rows[-1])


def different_sizes_delivery(rows, pitches_um, heated=False):
    """Delivery for synthetic networks of different sizes (lattice ``pitches_um``) in one
    tissue grid: one compile per network (``nd.run``) against one for all
    (``nd.run_batch``), results compared.  ``heated``: ThermoDox-like release
    (``nd.HeatedRelease``) in a 42-°C focus on the tumor from the start, instead of the leak
    at 37 °C."""
    box = 0.6
    nets = [network_generator.generate(network_generator.TumorNetworkSpec(
        box_mm=(box,) * 3, spacing_um=pitch, tumor_radius_mm=0.2, necrotic_radius_mm=0.08))
        for pitch in pitches_um]
    grid = grids.cartesian3d((box * 1e-3,) * 3, (12, 12, 12))
    solutes = [nd.Solute("carrier", 1.9e-10, 6.3e-13, 0.4, 0.9),
               nd.Solute("free", 1e-6, 2.6e-10, 0.4, 0.0)]
    asms = [nd.assemble(net, grid, hm.solve(net, hm.Rheology()), solutes) for net in nets]
    release = nd.Release(lambda t: 5.6e-7, lambda t: 5.6e-7, 5.6e-6)
    if heated:
        x, y, z = np.meshgrid(*grid.centers, indexing="ij")
        focus = jnp.asarray(np.exp(-((x - 3e-4)**2 + (y - 3e-4)**2 + (z - 3e-4)**2)
                                   / (2 * 1.5e-4**2)))
        release = nd.HeatedRelease(
            lambda t: 37.0 + 5.0 * jnp.minimum(t / 300.0, 1.0) * focus,
            lambda temp: properties.release_rate(temp, 41.3, 0.3, 5.6e-7, 0.046),
            blood_temperature_C=37.0, breakdown_rate=5.6e-6)
    options = dict(save_every=24, release=release,
                   macrophages=nd.Macrophages(uptake_rate=2.2e-5, digestion_rate=1e-5))

    def plasma(t):
        return jnp.array([10.0, 0.01]) * jnp.exp(-t / 2e5)

    t = time.perf_counter()
    apart = [np.asarray(nd.run(a, plasma, 6 * 3600.0, 900.0, **options)["tissue_mean"])
             for a in asms]
    t_apart = time.perf_counter() - t
    out, t_batch = timed(lambda: nd.run_batch(asms, plasma, 6 * 3600.0, 900.0,
                                              **options)["tissue_mean"])
    diff = max(float(np.max(np.abs(np.asarray(out[i]) - a) / np.max(np.abs(a))))
               for i, a in enumerate(apart))
    rows.append({"case": f"delivery, {len(nets)} networks of "
                         f"{min(n.n_segments for n in nets)}-{max(n.n_segments for n in nets)} "
                         f"segments, 12³ grid, 6 h{', heated release' if heated else ''}",
                 "separate_compiles_s": t_apart, "padded_first_s": t_batch,
                 "separate_over_padded": t_apart / t_batch, "max_relative_difference": diff})
    report(rows[-1])


def large(rows):
    spec = network_generator.TumorNetworkSpec(box_mm=(1.2, 1.2, 1.2), spacing_um=60.0,
                                              tumor_radius_mm=0.45, necrotic_radius_mm=0.2)
    net, t_gen = timed(lambda: network_generator.generate(spec))
    rheo = hm.Rheology()
    try:
        state, t_flow = timed(lambda: hm.solve(net, rheo))
        flow_note = "phase separation: converged"
    except hm.HaemodynamicsError as err:  # reported, then the rest measured without it
        flow_note = f"phase separation: {err}"[:160]
        rheo = hm.Rheology(phase_separation=False)
        state, t_flow = timed(lambda: hm.solve(net, rheo))
    grid = grids.cartesian3d((1.2e-3,) * 3, (128, 128, 128))
    pieces, t_pieces = timed(lambda: segment_cells.intersect(net, grid))
    topo, params = hm.Topology.of(net), hm.parameters(net)
    g, _ = hm.conductance(params, rheo, jnp.asarray(state["hematocrit"]))
    fixed, pressure, injection = hm.node_conditions(topo, params)
    starling = network_exchange.TissueExchange(conductivity=3.1e-14, wall_per_area=2.1e-11,
                                               offset=547.0, outer="value")
    fluid, t_fluid = timed(lambda: network_exchange.solve(
        grid, pieces, net.segment_nodes, net.n_nodes, net.segment_radius_m, starling,
        segment_conductance=g, node_fixed=fixed, node_value=pressure,
        node_injection=injection, solver="cg"))
    solutes = [nd.Solute("carrier", 1.9e-10, 6.3e-13, 0.4, 0.9), nd.Solute("free", 1e-6,
                                                                           2.6e-10, 0.4, 0.0)]
    asm = nd.assemble(net, grid, state, solutes, pieces=pieces)
    out, t_del = timed(lambda: nd.run(asm, lambda t: jnp.array([10.0, 0.01]), 3600.0, 900.0,
                                      save_every=4)["tissue"])
    rows.append({"case": f"synthetic network {net.n_segments} segments, 128³ grid",
                 "generate_s": t_gen, "flow_s": t_flow, "flow_note": flow_note,
                 "pieces_s": t_pieces,
                 "pieces": int(len(pieces.cell)), "starling_cg_s": t_fluid,
                 "starling_residual": float(fluid["residual"]),
                 "delivery_1h_4_steps_s": t_del})
    report(rows[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=100)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--solvers", default="direct,cg", help="Kirchhoff solvers of the batch")
    ap.add_argument("--batching", default="vmap,lax.map", help="vmap, lax.map or both")
    ap.add_argument("--skip-sizes", action="store_true",
                    help="skip networks of different sizes padded to one compile")
    ap.add_argument("--json", default=str(Path(__file__).with_name("networks.json")),
                    help="where to write the rows (default benchmarks/networks.json)")
    ap.add_argument("--skip-delivery-sizes", action="store_true",
                    help="skip the delivery of networks of different sizes in one compile")
    args = ap.parse_args()
    rows = []
    net, topo, params = mesentery(rows)
    if args.variants > 0:
        variants(rows, net, topo, params, args.variants, args.solvers.split(","),
                 args.batching.split(","))
    if not args.skip_sizes:
        different_sizes(rows, net)
    if not args.skip_delivery_sizes:
        for pitches in ((60.0, 70.0, 80.0, 100.0), (68.0, 72.0, 74.0, 75.0)):
            different_sizes_delivery(rows, pitches)
        different_sizes_delivery(rows, (60.0, 70.0, 80.0, 100.0), heated=True)
    if not args.skip_large:
        large(rows)
    path = Path(args.json)
    path.write_text(json.dumps({"machine": "see benchmarks/RESULTS.md", "rows": rows},
                               indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
