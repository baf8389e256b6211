"""nanotransport: differentiable simulation of nanocarrier and drug transport into tumors.

The package is layered (docs/architecture.md), imports only downward:

* ``nanotransport.engine``: grids, fluxes and boundary conditions, linear solvers, time
  integration;
* ``nanotransport.model``: the physiology and ``simulate``;
* ``nanotransport.studies``: design, scans, cohorts, calibration, validation, verification;
* the edge, here at the top: ``cli``, ``io`` (result files), ``outdir`` (output folders),
  ``scan`` and ``scan_store`` (the scan's public face and resumable folder), ``plots``,
  ``provenance``.

The public modules are also reachable from the top, so ``from nanotransport import scenario,
simulate, summary`` works whatever layer they live in (imported on first use), and so do the
most used names: ``load`` (a scenario), ``Scenario``, ``ScenarioError``, ``Result``,
``metrics``, ``model_function``, ``optimize`` and ``run_scan``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: module name → its subpackage (modules of the edge are plain submodules of this package)
_MODULES = {
    **{m: "engine" for m in ("grid", "fv", "fdm", "linalg", "multigrid", "solver", "units",
                                 "regions", "export_cache", "graph", "cell_blocks",
                                 "sparsity")},
    **{m: "model" for m in ("schema", "scenario", "properties", "cells", "pk", "organs", "tissue",
                            "fluid", "heat", "transport", "simulate", "capillary", "imaging",
                            "summary", "objective", "vessel_network", "network_files",
                            "network_vtp", "network_hdf5", "network_generator", "rheology",
                            "haemodynamics", "segment_cells", "network_exchange",
                            "network_transport", "network_delivery", "network_heating")},
    **{m: "studies" for m in ("study", "design", "scan_spec", "scan_exec", "scan_result",
                              "cohort", "calibrate", "validate", "validate_heating",
                              "verify", "verify_network", "verify_rows", "network_run",
                              "network_design", "observations", "fit")},
}
#: public name → (module path, attribute)
_NAMES = {
    "load": ("model.scenario", "load"),
    "Scenario": ("model.scenario", "Scenario"),
    "ScenarioError": ("model.scenario", "ScenarioError"),
    "Result": ("model.simulate", "Result"),
    "metrics": ("model.summary", "metrics"),
    "model_function": ("studies.study", "model_function"),
    "optimize": ("studies.design", "optimize"),
    "run_scan": ("scan_store", "run_scan"),
}

__all__ = sorted({*_MODULES, *_NAMES, "engine", "model", "studies"})


def __getattr__(name: str):
    """Import a public module or name on first use (PEP 562): ``import nanotransport`` stays
    cheap (no JAX), and ``nanotransport.simulate`` is ``nanotransport.model.simulate``."""
    if name in _MODULES:
        value = importlib.import_module(f"{__name__}.{_MODULES[name]}.{name}")
    elif name in _NAMES:
        module, attr = _NAMES[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
