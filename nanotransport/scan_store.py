"""The resumable scan folder (edge layer: it needs ``outdir``'s folder lock and atomic
files and ``io``'s JSON and netCDF writers): ``DIR/scan.json`` (manifest: spec, resolved
scenario TOML and SHA-256, hash of the points, chunk size, the SHA-256 of every finished
chunk), ``DIR/chunks/chunk-NNNNN.nc`` (written atomically, hash recorded just before the
rename) and ``DIR/scan.nc`` assembled from the chunks that match their record; a killed scan
(SIGKILL included) resumes with the same command, skipping finished chunks and recomputing
(with a warning) any that does not match; a folder holding another scan is refused, nothing
in it overwritten.  ``run_scan`` is the scan entry point, into such a folder or in memory.
"""
from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Mapping

import jax
import xarray as xr

from . import io, outdir
from .studies import scan_exec, scan_result
from .studies.scan_result import FORMAT
from .studies.scan_spec import ScanError, ScanSpec, make_spec
from .model.scenario import Scenario, load

MANIFEST = "scan.json"
RESULT = "scan.nc"
CHUNK_DIR = "chunks"


def _chunk_path(out: Path, c: int) -> Path:
    return out / CHUNK_DIR / f"chunk-{c:05d}.nc"


def _describe_difference(old: dict, new: dict) -> str:
    for key in ("grid", "samples", "n_samples", "seed", "sampler", "fields"):
        if old["spec"].get(key) != new["spec"].get(key):
            return (f"its {key} is {json.dumps(old['spec'].get(key))[:300]}, this scan's is "
                    f"{json.dumps(new['spec'].get(key))[:300]}")
    if old.get("scenario_sha256") != new["scenario_sha256"]:
        return ("it was made from another scenario (the resolved scenario TOML differs; the "
                "folder's is in its scan.json)")
    if old.get("points_sha256") != new["points_sha256"]:
        return ("its sampled points differ from this scan's (another scipy version draws other "
                "Sobol points?)")
    return "its format differs"


def prepare_folder(out: Path, spec: ScanSpec, scenario: Scenario, points_hash: str,
                   chunk: int | None, chunk_given: bool) -> tuple[dict, list[bool]]:
    """Create or check the output folder; returns (manifest, done flags per chunk).

    Refuses (ScanError, nothing written) a folder that holds another scan or scan files without
    a manifest."""
    out = Path(out)
    mpath = out / MANIFEST
    if mpath.exists():
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ScanError(f"{mpath} cannot be read ({e}); it is not a scan manifest: choose "
                            "another --out") from None
        new = scan_result.manifest(spec, scenario, points_hash, old.get("chunk", 1) or 1)
        same = (old.get("format") == FORMAT and old.get("spec") == new["spec"]
                and old.get("scenario_sha256") == new["scenario_sha256"]
                and old.get("points_sha256") == new["points_sha256"])
        if not same:
            raise ScanError(f"output folder {out} belongs to a different scan: "
                            f"{_describe_difference(old, new)}; nothing was overwritten. Use "
                            "another --out, or delete the folder to start over")
        if chunk_given and chunk is not None and int(chunk) != int(old["chunk"]):
            raise ScanError(f"--chunk {chunk}: the scan in {out} was started with chunks of "
                            f"{old['chunk']} simulations; resume with --chunk {old['chunk']} "
                            "(or without --chunk)")
        manifest = old
    else:
        clash = [p for p in (out / RESULT, out / CHUNK_DIR) if p.exists()]
        if clash:
            raise ScanError(f"output folder {out} holds {clash[0].name} but no {MANIFEST}: it "
                            "is not a resumable scan of this version; nothing was overwritten. "
                            "Use another --out")
        manifest = scan_result.manifest(spec, scenario, points_hash, chunk)
        io.write_json(mpath, manifest)
    (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    done = [_chunk_ok(out, c, manifest) for c in range(manifest["n_chunks"])]
    return manifest, done


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _chunk_ok(out: Path, c: int, manifest: dict, warn: bool = True) -> bool:
    """True if chunk ``c`` exists and its SHA-256 is the one the manifest recorded when it was
    written; a chunk file that does not match (corrupted, from another run, or written but not
    yet recorded when the scan was killed) is reported (warning) and will be recomputed."""
    path = _chunk_path(out, c)
    if not path.exists():
        return False
    recorded = (manifest.get("chunks") or {}).get(str(c))
    try:
        actual = file_sha256(path)
    except OSError as e:
        actual, recorded = None, recorded or f"unreadable ({e})"
    if recorded is not None and actual == recorded:
        return True
    if warn:
        why = ("is not recorded in the manifest (the scan stopped between writing it and "
               "recording it)" if recorded is None else
               f"does not match the manifest (sha256 {str(actual)[:12]}..., recorded "
               f"{recorded[:12]}...: the file was changed or corrupted)")
        warnings.warn(f"scan chunk {path} {why}; it is recomputed", stacklevel=2)
    return False


def _write_chunk(out: Path, c: int, start: int, host: dict, times_h, space: dict,
                 manifest: dict) -> None:
    """Write one finished chunk atomically (temporary file + rename), its SHA-256 recorded in
    the manifest (rewritten atomically) just before the rename: resume and assembly trust only
    chunks whose content matches the record."""
    ds = scan_result.chunk_dataset(start, host, times_h, space)
    ds.attrs.update(chunk=c, points_sha256=manifest["points_sha256"])
    with outdir.atomic_path(_chunk_path(out, c)) as tmp:
        ds.to_netcdf(tmp)
        # recorded before the chunk appears: a visible chunk always has its hash on record
        manifest.setdefault("chunks", {})[str(c)] = file_sha256(tmp)
        io.write_json(out / MANIFEST, manifest)


def assemble(out: Path, manifest: dict, spec: ScanSpec, points: dict, times_h=None,
             space: dict | None = None) -> xr.Dataset:
    """The scan Dataset from the chunk files in ``out``, each checked against the manifest."""
    parts = []
    for c in range(manifest["n_chunks"]):
        if not _chunk_ok(out, c, manifest, warn=False):
            raise ScanError(f"scan chunk {_chunk_path(out, c)} is missing or does not match "
                            f"the SHA-256 recorded in {out / MANIFEST}; rerun the same "
                            "command to recompute it")
        with xr.open_dataset(_chunk_path(out, c)) as ds:
            parts.append(ds.load())
    return scan_result.to_dataset(parts, manifest, spec, points, times_h, space)


class ChunkStore:
    """The store of ``scan_exec.run`` for the folder ``out`` (called on process 0 only)."""

    def __init__(self, out: Path):
        self.out = Path(out)

    def open(self, spec: ScanSpec, scenario: Scenario, points_hash: str, chunk: int,
             chunk_given: bool) -> tuple[dict, list[bool]]:
        return prepare_folder(self.out, spec, scenario, points_hash, chunk, chunk_given)

    def write(self, c: int, start: int, host: dict, times_h, space: dict, manifest: dict):
        _write_chunk(self.out, c, start, host, times_h, space, manifest)

    def chunk_ok(self, c: int, manifest: dict) -> bool:
        return _chunk_ok(self.out, c, manifest)

    def assemble(self, manifest: dict, spec: ScanSpec, points: dict, times_h,
                 space: dict) -> xr.Dataset:
        """The Dataset, also written (atomically) to ``out/scan.nc``."""
        ds = assemble(self.out, manifest, spec, points, times_h, space)
        io.write_netcdf(ds, self.out / RESULT)
        return ds


def run(scenario: Scenario, spec: ScanSpec, out=None, chunk: int | None = None,
        progress: bool = True, devices=None):
    """(Dataset, ScanStats) of ``scan_exec.run``, into the folder ``out`` (None: in memory).
    Process 0 owns ``out`` for the whole scan (``outdir`` lock: a second scan into the same
    folder is refused, naming the holder)."""
    scenario, points = scan_exec.prepare(scenario, spec, chunk)
    if out is None:
        return scan_exec.run(scenario, spec, points, None, chunk, progress, devices)
    store = ChunkStore(Path(out))
    if jax.process_index() != 0:
        return scan_exec.run(scenario, spec, points, store, chunk, progress, devices)
    with outdir.folder_lock(store.out, "nanotransport scan " + " ".join(sys.argv[1:])):
        outdir.remove_stale_temps(store.out / CHUNK_DIR)  # left by a killed scan (SIGKILL)
        return scan_exec.run(scenario, spec, points, store, chunk, progress, devices)


def run_scan(scenario, grid: Mapping | None = None, samples: Mapping | None = None,
             n_samples: int | None = None, seed: int = 0, out=None, chunk: int | None = None,
             progress: bool = True, fields: bool = False, sampler: str = "sobol",
             overrides=(), devices=None, correlation: Mapping | None = None):
    """Run a scan and return it as an xarray Dataset.

    Args:
        scenario: a Scenario, or a built-in name / TOML path (with ``overrides`` "key=value").
        grid: {name: values (sequence) or "lo:hi:n", "lo:hi:n:log", "v1,v2"}; full factorial.
        samples: {name: "lognormal(400, 0.5)" | ("normal", 1, 0.1) | Distribution}.
        n_samples: M draws (Sobol by default, ``sampler="random"`` for pseudo-random).
        correlation: {(name_a, name_b): rho} between sampled fields (Gaussian copula; for
            log-normal fields the correlation of their logarithms).
        seed: seed of the sampler.
        out: folder for the resumable files (scan.json, chunks/, scan.nc); None keeps it all
            in memory.
        chunk: simulations per compiled call (default: from the memory estimate).
        progress: tqdm bar (simulations/s, ETA) and a final summary line on stderr.
        fields: also keep final tissue drug and surviving fraction per grid cell.
        devices: devices to shard over (default ``jax.devices()``).

    Float64 scenarios need ``jax.config.update("jax_enable_x64", True)`` first.  Under
    ``jax.distributed`` every process calls this with the same arguments; process 0 gets the
    Dataset, the others None.
    """
    if not isinstance(scenario, Scenario):
        scenario = load(scenario, list(overrides))
    spec = make_spec(grid, samples, n_samples or 0, seed, sampler, fields, correlation)
    ds, stats = run(scenario, spec, out, chunk, progress, devices)
    if progress and ds is not None:
        print(stats.line(), file=sys.stderr)
    return ds

