"""Scans, the public face (``nanotransport scan``, ``scan.run_scan``): design spaces and
virtual cohorts as batches of simulations, one xarray Dataset.  This module only re-exports
the parts, each with one job: ``scan_spec`` (grids, distributions, samples, checks),
``scan_exec`` (batched, sharded runs, memory estimates, progress), ``scan_result`` (the
Dataset, units, Pareto front), ``scan_store`` (the resumable folder and ``run_scan``); the
figures are in ``plots`` and the command in ``cli``.  Package modules import the parts.
"""
from __future__ import annotations

from .studies.scan_exec import (SAFETY, BatchRunner, ScanStats, auto_chunk, batched_metrics,
                        bytes_per_simulation, check_plot_metric)
from .studies.scan_result import (FORMAT, pareto_mask, points_hash, scalar_variables,
                          warn_undefined)
from .studies.scan_spec import (Axis, Distribution, ScanError, ScanSpec, batchable_path, check_points,
                        cover_heating_window, dim_name, make_axis, make_sample, make_spec,
                        parse_correlation, parse_grid, parse_sample)
from .scan_store import (CHUNK_DIR, MANIFEST, RESULT, ChunkStore, assemble, file_sha256,
                         prepare_folder, run_scan)

# the names these helpers had before the split (tests use them)
_file_sha256, _points_hash, _warn_undefined = file_sha256, points_hash, warn_undefined

__all__ = ["SAFETY", "BatchRunner", "ScanStats", "auto_chunk", "batched_metrics",
           "bytes_per_simulation", "check_plot_metric", "FORMAT", "pareto_mask", "points_hash",
           "scalar_variables", "warn_undefined", "Axis", "Distribution", "ScanError",
           "ScanSpec", "batchable_path", "check_points", "cover_heating_window", "dim_name",
           "make_axis", "make_sample", "make_spec", "parse_correlation", "parse_grid",
           "parse_sample", "CHUNK_DIR", "MANIFEST", "RESULT", "ChunkStore", "assemble",
           "file_sha256", "prepare_folder", "run_scan"]
