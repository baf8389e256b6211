"""Scan execution: runs a scan's points as batches of simulations, ``jax.vmap`` of
``study.evaluate`` compiled once per structure and batch size, the batch axis sharded over a 1D
``Mesh`` of every device (of every host under ``jax.distributed``: each process feeds its own
devices, results gathered to process 0), chunk by chunk with one chunk in flight while the
previous one is handed to the store, a tqdm bar (simulations/s) and totals (``ScanStats``);
the chunk size comes from a per-simulation memory estimate in bytes (``bytes_per_simulation``,
``auto_chunk``).  Where the chunks go is the caller's: kept in memory, or a store object
(``scan_store.ChunkStore``: ``open``, ``write``, ``chunk_ok``, ``assemble``) on process 0.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from typing import Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm import tqdm

from . import scan_result, study
from ..model import simulate, summary, tissue
from ..engine import solver, units
from .scan_spec import ScanError, ScanSpec, batchable_path, check_points, cover_heating_window
from ..model.scenario import Scenario
from ..model.transport import drug_per_tissue_volume, n_state, species_names

CPU_MAX_PER_DEVICE = 32
CPU_CACHE_BYTES = 8 << 20  # per-device working set (estimate without safety) of a CPU chunk
GPU_MAX_PER_DEVICE = 8192
SAFETY = 4.0


def _mesh(devices=None):
    return Mesh(np.asarray(list(devices) if devices is not None else jax.devices()), ("batch",))


def _readout(result, with_fields: bool) -> dict:
    """What a scan records of one simulation: every summary metric (imaging included), the
    design objective J and each of its terms (``study.objective_readout``: ``objective``,
    ``tox_*`` and ``toxicity`` = Σ w·Tox), and optionally the final fields."""
    out = dict(summary.metrics(result, with_imaging=True))
    out.update(study.objective_readout(result))
    if with_fields:
        maps = result.inputs.kinetics.maps
        out["final_tissue_drug_ug_per_g"] = drug_per_tissue_volume(
            maps, result.fields[-1], result.species) * units.DOXORUBICIN_MOLAR_MASS
        out["final_surviving_fraction"] = summary.surviving_fraction(result)
    return out


@functools.lru_cache(maxsize=16)
def _batched_fn(static: tuple, with_fields: bool, mesh):
    """jit(vmap(_readout ∘ run)) with the batch sharded over ``mesh`` (cached per structure
    and mesh)."""
    batch = NamedSharding(mesh, P("batch"))
    repl = NamedSharding(mesh, P())

    def fn(varied, fixed):
        return jax.vmap(lambda v: study.evaluate(
            {**fixed, **v}, static, lambda r: _readout(r, with_fields)))(varied)

    return jax.jit(fn, in_shardings=(batch, repl), out_shardings=batch)


def _float_dtype():
    return np.float64 if jax.config.jax_enable_x64 else np.float32


def _global(host: np.ndarray, sharding):
    """A (possibly multi-process) global array from a host array every process holds."""
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def _to_host(x) -> np.ndarray:
    if x.is_fully_addressable:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


_COMPILED: dict = {}  # (structure, fields, mesh, batch size, paths, dtype) -> executable


class BatchRunner:
    """Runs batches of one scenario with the ``paths`` fields varied, ``size`` simulations per
    call (a multiple of the device count), compiled once.

    ``runner.device_call(values)`` returns the metrics as sharded jax arrays (padded rows at the
    end); ``runner(values)`` returns them as numpy arrays of exactly len(values) rows.
    """

    def __init__(self, scenario: Scenario, paths, size: int, fields: bool = False,
                 devices=None):
        simulate._dtype(scenario)  # float64 needs jax_enable_x64: a clear error first
        self.scenario, self.paths, self.fields = scenario, tuple(paths), fields
        self.mesh = _mesh(devices)
        self.n_devices = self.mesh.devices.size
        self.size = -(-max(1, int(size)) // self.n_devices) * self.n_devices
        self.static = simulate.structure(scenario)
        self.fn = _batched_fn(self.static, fields, self.mesh)
        self._batch = NamedSharding(self.mesh, P("batch"))
        self._repl = NamedSharding(self.mesh, P())
        dt = _float_dtype()
        self._fixed = {k: _global(np.asarray(v, dt), self._repl)
                       for k, v in scenario.params.items() if k not in self.paths}
        self._compiled = None
        self.compile_seconds = 0.0

    def _inputs(self, values: Mapping):
        n = len(next(iter(values.values())))
        if not 1 <= n <= self.size:
            raise ValueError(f"batch of {n} simulations; this runner takes 1 to {self.size}")
        idx = np.minimum(np.arange(self.size), n - 1)  # pad with the last point
        dt = _float_dtype()
        return {p: _global(np.asarray(values[p], dt)[idx], self._batch) for p in self.paths}, n

    def compile(self, values: Mapping):
        if self._compiled is None:
            t0 = time.perf_counter()
            key = (self.static, self.fields, self.mesh, self.size, self.paths, _float_dtype())
            self._compiled = _COMPILED.get(key)
            if self._compiled is None:
                varied, _ = self._inputs(values)
                self._compiled = self.fn.lower(varied, self._fixed).compile()
                if len(_COMPILED) >= 8:
                    _COMPILED.pop(next(iter(_COMPILED)))
                _COMPILED[key] = self._compiled
            self.compile_seconds = time.perf_counter() - t0
        return self._compiled

    def device_call(self, values: Mapping) -> dict:
        varied, _ = self._inputs(values)
        return self.compile(values)(varied, self._fixed)

    def __call__(self, values: Mapping) -> dict:
        n = len(next(iter(values.values())))
        out = self.device_call(values)
        return {k: _to_host(v)[:n] for k, v in out.items()}


def batched_metrics(scenario: Scenario, values: Mapping, fields: bool = False,
                    devices=None) -> dict:
    """Metrics of len(values) simulations of ``scenario`` with the given fields varied (names or
    paths → 1D arrays), in one batch sharded over ``devices`` (default all); numpy arrays."""
    values = {batchable_path(k): np.asarray(v, float) for k, v in values.items()}
    scenario = cover_heating_window(scenario, values)
    n = len(next(iter(values.values())))
    return BatchRunner(scenario, list(values), n, fields, devices)(values)


def bytes_per_simulation(scenario: Scenario, fields: bool = False) -> int:
    """Estimated device memory of one simulation in a batch (bytes), safety factor included:
    saved states (at every macro-interval and saved time), per-cell Newton Jacobians and the
    temporaries of their forward-mode products, times ``SAFETY``."""
    st = dict(simulate.structure(scenario))
    lay = tissue.layout(scenario)
    cells = int(np.prod(lay.grid.shape))
    names = species_names(st["_heating"], st["_targeting"])
    ns, nst = len(names), n_state(names)
    times = simulate.save_times_h(scenario) * units.HOUR
    fine = ()
    if st["_heating_window_s"] is not None:
        a, b = st["_heating_window_s"]
        fine = ((a, b, float(scenario["numerics.heating_max_dt_min"]) * units.MIN),)
    lengths, _, _ = solver.macro_schedule(times, 0.0, float(scenario["numerics.max_dt_min"])
                                          * units.MIN, fine_windows=fine)
    saved = (len(lengths) + 1 + len(times)) * (ns * cells + 18)
    work = cells * (4 * nst * nst + 8 * nst * ns + 16 * ns)
    extra = 2 * cells * len(times) if fields else 0
    item = 8 if scenario["numerics.precision"] == "float64" else 4
    return int(SAFETY * item * (saved + work + extra))


def auto_chunk(scenario: Scenario, fields: bool = False, devices=None) -> int:
    """Simulations per chunk that fit the devices' memory (a multiple of the device count)."""
    devices = list(devices) if devices is not None else jax.devices()
    per_sim = bytes_per_simulation(scenario, fields)
    dev = devices[0]
    stats = None
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = None
    if dev.platform == "cpu" or not stats or "bytes_limit" not in stats:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 4 << 30
        budget = 0.25 * free / max(1, len([d for d in devices
                                           if d.process_index == jax.process_index()]))
        cap = GPU_MAX_PER_DEVICE
        if dev.platform == "cpu":  # wider batches than the cache holds run slower per simulation
            cap = int(np.clip(CPU_CACHE_BYTES * SAFETY // per_sim, 1, CPU_MAX_PER_DEVICE))
    else:
        budget = 0.5 * (stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        cap = GPU_MAX_PER_DEVICE
    per_device = int(max(1, min(cap, budget // per_sim)))
    return per_device * len(devices)


def check_plot_metric(scenario: Scenario, metric: str) -> None:
    """Refuse, before anything runs, a heat-map metric that a scan will not have."""
    if metric in ("efficacy", "objective", "toxicity", "pareto_front"):
        return
    static = simulate.structure(scenario)
    shapes = jax.eval_shape(lambda p: study.evaluate(p, static, lambda r: _readout(r, False)),
                            scenario.params)
    scalars = sorted(k for k, v in shapes.items() if v.shape == ())
    if metric not in scalars:
        raise ScanError(f"--plot-metric {metric}: not a scalar metric of this scan; allowed: "
                        + ", ".join(scalars + ["pareto_front"]))


@dataclasses.dataclass
class ScanStats:
    total: int = 0
    run_now: int = 0
    resumed: int = 0
    seconds: float = 0.0
    compile_seconds: float = 0.0
    chunk: int = 0
    devices: int = 1
    processes: int = 1

    run_seconds: float = 0.0  # the chunk loop alone (simulations and chunk files)

    @property
    def rate(self) -> float:
        busy = self.run_seconds
        return self.run_now / busy if busy > 0 and self.run_now else float("nan")

    def line(self) -> str:
        speed = (f"{self.rate:.3g} simulations/s ({self.run_now} in {self.run_seconds:.1f} s "
                 f"after {self.compile_seconds:.1f} s compiling)" if self.run_now
                 else "nothing left to run")
        return (f"scan: {self.total} simulations ({self.run_now} run now, {self.resumed} "
                f"resumed) in {self.seconds:.1f} s, {speed}; chunks of {self.chunk} on "
                f"{self.devices} device(s), {self.processes} process(es)")


def broadcast(values: np.ndarray) -> np.ndarray:
    """``values`` of process 0, on every process."""
    if jax.process_count() == 1:
        return values
    return np.asarray(multihost_utils.broadcast_one_to_all(values))


def prepare(scenario: Scenario, spec: ScanSpec, chunk: int | None = None):
    """(scenario, points) for ``run``: the points of ``spec`` ({path: (total,) values}), checked
    against the scenario (``check_points``), and the scenario with a heating window covering
    them (``cover_heating_window``); ScanError before anything runs."""
    simulate._dtype(scenario)
    points = spec.points()
    scenario = cover_heating_window(scenario, points)
    check_points(scenario, spec, points)
    if chunk is not None and int(chunk) < 1:
        raise ScanError(f"--chunk {chunk}; allowed: an integer >= 1")
    return scenario, points


def run(scenario: Scenario, spec: ScanSpec, points: dict, store=None, chunk: int | None = None,
        progress: bool = True, devices=None):
    """(Dataset, ScanStats) of the points from ``prepare``; the Dataset on process 0, None on
    the others.  Without ``store`` the chunks are kept in memory.  With a store (process 0
    alone calls it; the others learn the chunk size and the finished chunks by broadcast):
    ``store.open`` gives the manifest and the chunks already done (skipped), every chunk is
    handed to ``store.write`` as it finishes, then checked with ``store.chunk_ok`` (bad ones
    recomputed, twice at most) and ``store.assemble`` gives the Dataset."""
    t_start = time.perf_counter()
    phash = scan_result.points_hash(points, spec.paths)
    total = spec.total
    devices = list(devices) if devices is not None else jax.devices()
    chunk_given = chunk is not None
    writer = jax.process_index() == 0

    # process 0 checks the folder; the others learn the outcome (chunk size, finished chunks)
    status = np.zeros(2, np.int64)
    manifest, done, error = None, None, None
    if writer:
        try:
            size = int(chunk) if chunk_given else auto_chunk(scenario, spec.fields, devices)
            size = max(1, min(size, total))
            if store is not None:
                manifest, done = store.open(spec, scenario, phash, size, chunk_given)
                size = manifest["chunk"]
            status[:] = (1, size)
        except Exception as e:  # noqa: BLE001 - the other processes must not wait forever
            error = e
    status = broadcast(status)
    if not status[0]:
        raise error if error is not None else ScanError(
            "process 0 refused the output folder (see its message)")
    size = int(status[1])
    n_chunks = -(-total // size)
    if manifest is None:
        manifest = scan_result.manifest(spec, scenario, phash, size)
    flags = broadcast(np.asarray(done if done is not None else [False] * n_chunks, np.int8))
    pending = [c for c in range(n_chunks) if not flags[c]]

    times_h = simulate.save_times_h(scenario)
    space = {}
    if spec.fields:
        g = tissue.layout(scenario).grid
        space = {n: np.asarray(g.centers[a]) / units.MM for a, n in enumerate(g.axis_names)}
    stats = ScanStats(total=total, chunk=size, devices=len(devices),
                      processes=jax.process_count())
    stats.resumed = sum(min(size, total - c * size) for c in range(n_chunks) if flags[c])
    in_memory: list = []
    runner = None
    show = progress and writer

    def values_of(c):
        start, stop = c * size, min((c + 1) * size, total)
        return start, {p: points[p][start:stop] for p in spec.paths}

    def run_chunks(todo):
        nonlocal runner
        if runner is None:
            runner = BatchRunner(scenario, spec.paths, size, spec.fields, devices)
            if show:
                print(f"scan: {total} simulations ({stats.resumed} already done) in chunks of "
                      f"{size} on {len(devices)} device(s); compiling ...", file=sys.stderr,
                      flush=True)
            runner.compile(values_of(todo[0])[1])
            stats.compile_seconds = runner.compile_seconds
        bar = None
        if show:
            bar = tqdm(total=total, initial=total - sum(min(size, total - c * size)
                                                        for c in todo),
                       unit="sim", desc="scan", file=sys.stderr, dynamic_ncols=True,
                       smoothing=0.1)
        queued = None  # one chunk in flight while the previous one is written

        def finish(item):
            c, start, n, out_dev = item
            host = {k: _to_host(v)[:n] for k, v in out_dev.items()}
            if writer:
                if store is not None:
                    store.write(c, start, host, times_h, space, manifest)
                else:
                    in_memory.append(scan_result.chunk_dataset(start, host, times_h, space))
            stats.run_now += n
            if bar is not None:
                bar.update(n)

        t_loop = time.perf_counter()
        try:
            for c in todo:
                start, vals = values_of(c)
                item = (c, start, len(vals[spec.paths[0]]), runner.device_call(vals))
                if queued is not None:
                    finish(queued)
                queued = item
            finish(queued)
        finally:
            stats.run_seconds += time.perf_counter() - t_loop
            if bar is not None:
                bar.close()

    if pending:
        run_chunks(pending)
    if store is not None:  # verify every chunk against the manifest; recompute the bad ones
        for _ in range(2):
            bad = np.zeros(n_chunks, np.int8)
            if writer:
                bad[:] = [not store.chunk_ok(c, manifest) for c in range(n_chunks)]
            bad = broadcast(bad)
            if not bad.any():
                break
            run_chunks([c for c in range(n_chunks) if bad[c]])
    ds = None
    manifest = {**manifest, "times_h": [float(t) for t in times_h]}
    if writer:
        if store is not None:
            ds = store.assemble(manifest, spec, points, times_h, space)
        else:
            ds = scan_result.to_dataset(in_memory, manifest, spec, points, times_h, space)
        scan_result.warn_undefined(ds)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("nanotransport scan done")
    stats.seconds = time.perf_counter() - t_start
    return ds, stats

