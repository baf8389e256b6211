"""The package's layers: engine → model → studies → edge, imports only downward.

Every module of ``nanotransport/`` is assigned to one layer below; a module may import from
its own layer and the layers beneath it, never from a layer above.  Imports are read from the
source (``ast``), function-local ones included.  ``LAYERS`` is the plan of the subpackages
(``nanotransport/engine/``, ``model/``, ``studies/``, edge at the top): moving the files into
them is a rename per entry.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nanotransport"
ORDER = ("engine", "model", "studies", "edge")
LAYERS = {
    # grids, fluxes and boundary conditions, linear solvers, time integration (no physiology)
    "engine": ("grid", "fv", "fdm", "linalg", "multigrid", "solver", "units"),
    # the physiology and ``simulate``; the scenario pytree and its schema are the model's
    # parameter set (user units, validated), which every model function takes
    "model": ("schema", "scenario", "properties", "cells", "pk", "tissue", "fluid", "heat",
              "transport", "simulate", "capillary", "imaging", "summary", "objective"),
    # what is done with the model: the one adapter, design, scans, cohorts, calibration,
    # validation and verification
    "studies": ("study", "design", "scan_spec", "scan_exec", "scan_result", "cohort",
                "calibrate", "validate", "validate_heating", "verify"),
    # command line, results and files, output folders (the scan's resumable chunk store),
    # figures, provenance; ``scan`` is the public face of the scan parts, store included
    "edge": ("__init__", "cli", "io", "outdir", "scan_store", "scan", "plots", "provenance"),
}
LAYER_OF = {m: layer for layer, mods in LAYERS.items() for m in mods}
#: upward imports that remain, each with the step that removes it: (importer, imported) → why.
#: Checked both ways: a new upward import fails, and so does an entry no longer needed.
KNOWN_UPWARD = {
    ("cohort", "scan_store"): "the cohort's two scans are resumable folders (run_scan with "
                              "out): the cohort's folder output moves to the edge with its "
                              "report in the package split",
    ("cohort", "outdir"): "the report is sanitized for netCDF attributes with outdir.strict_json",
    ("scenario", "io"): "scenario.load reads the maps file a scenario file names (io): the "
                        "Scenario type (model) and its file loader (edge) part in the package "
                        "split",
}


def imports_of(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports (relative or absolute, at any depth)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.level == 0 and node.module
                                   and node.module.split(".")[0] == "nanotransport"):
                parts = (node.module or "").split(".")
                if node.level == 0:
                    parts = parts[1:]
                if parts and parts[0]:
                    found.add(parts[0])
                else:  # ``from . import a, b`` / ``from nanotransport import a``
                    found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "nanotransport" and len(parts) > 1:
                    found.add(parts[1])
    return found & set(LAYER_OF)


def upward_imports(modules: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer."""
    rank = {m: ORDER.index(layer) for m, layer in LAYER_OF.items()}
    return {(m, dep) for m, deps in modules.items() for dep in deps if rank[dep] > rank[m]}


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules - set(LAYER_OF) == set(), "give each new module a layer in LAYERS"
    assert set(LAYER_OF) - modules == set(), "LAYERS names a module that does not exist"
    assert sum(map(len, LAYERS.values())) == len(LAYER_OF), "a module is in two layers"


def test_imports_only_downward():
    modules = {p.stem: imports_of(p) for p in PACKAGE.glob("*.py")}
    upward = upward_imports(modules)
    new = sorted(upward - set(KNOWN_UPWARD))
    assert not new, "upward imports (importer → imported, layers " + " → ".join(ORDER) + "): " \
        + ", ".join(f"{a} ({LAYER_OF[a]}) → {b} ({LAYER_OF[b]})" for a, b in new)
    stale = sorted(set(KNOWN_UPWARD) - upward)
    assert not stale, f"KNOWN_UPWARD entries no longer needed (remove them): {stale}"


def test_the_checker_sees_an_upward_import(tmp_path):
    """A model module importing a study (here ``from .design import ...`` inside a function)
    is reported."""
    src = tmp_path / "summary.py"
    src.write_text("def f():\n    from .design import optimize\n    import nanotransport.cli\n")
    assert imports_of(src) == {"design", "cli"}
    assert upward_imports({"summary": imports_of(src)}) == {("summary", "design"),
                                                             ("summary", "cli")}
