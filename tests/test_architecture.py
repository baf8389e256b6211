"""The package's layers: engine → model → studies → edge, imports only downward.

A module's layer is its subpackage: ``nanotransport/engine/``, ``model/``, ``studies/``; the
edge (command line, result files, output folders, the scan's folder, figures, provenance) is
the package's top.  A module may import from its own layer and the layers beneath it, never
from a layer above.  Imports are read from the source (``ast``), function-local ones included,
relative and absolute.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nanotransport

PACKAGE = Path(nanotransport.__file__).resolve().parent
ORDER = ("engine", "model", "studies", "edge")
SUBPACKAGES = ORDER[:-1]


def module_name(path: Path) -> str:
    """Dotted name inside the package: ``model.simulate``, ``cli`` (``__init__`` → the package)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str:
    head = module.split(".")[0]
    return head if head in SUBPACKAGES else "edge"


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str, known: set[str]) -> str | None:
    """The package module that the dotted ``name`` (inside the package) denotes, or None."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name if name in known else None


def imports_of(path: Path, importer: str, known: set[str]) -> set[str]:
    """Modules of the package that ``path`` (module ``importer``) imports, at any depth."""
    is_package = path.name == "__init__.py"
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                stem = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "nanotransport":
                stem = node.module.split(".")[1:]
            else:
                continue
            # ``from pkg import a`` may name a submodule ``pkg.a`` or an attribute of ``pkg``
            for a in node.names:
                full = ".".join(stem + [a.name])
                targets.append(full if full in known else ".".join(stem))
        elif isinstance(node, ast.Import):
            targets = [".".join(a.name.split(".")[1:]) for a in node.names
                       if a.name.split(".")[0] == "nanotransport"]
        for t in targets:
            module = _resolve(t, known)
            if module is not None and module != "":
                found.add(module)
    return found


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer (the
    subpackages' own ``__init__`` modules are their layer's; the top package's is the edge)."""
    rank = lambda m: ORDER.index(layer_of(m))  # noqa: E731
    return {(m, d) for m, deps in graph.items() for d in deps
            if d not in SUBPACKAGES and rank(d) > rank(m)}


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules) - {""}
    return {m: imports_of(p, m, known) for m, p in modules.items()}


def test_the_package_is_layered():
    """Every module sits in one of the three subpackages or at the top (the edge); no other
    subpackage, and the subpackages' ``__init__`` import nothing (each module is imported on
    its own)."""
    modules = all_modules()
    heads = {m.split(".")[0] for m in modules if "." in m}
    assert heads <= set(SUBPACKAGES), f"unexpected subpackages: {heads - set(SUBPACKAGES)}"
    assert all(m.count(".") <= 1 for m in modules), "modules nest at most one level"
    for sub in SUBPACKAGES:
        assert import_graph()[sub] == set(), f"{sub}/__init__.py imports package modules"


def test_imports_only_downward():
    upward = sorted(upward_imports(import_graph()))
    assert not upward, "upward imports (importer → imported, layers " + " → ".join(ORDER) \
        + "): " + ", ".join(f"{a} ({layer_of(a)}) → {b} ({layer_of(b)})" for a, b in upward)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """A model module importing a study and the edge, in every spelling, is reported; its
    downward and same-layer imports are not."""
    src = tmp_path / "summary.py"
    src.write_text("from . import pk\nfrom ..engine import units\n"
                   "def f():\n    from ..studies.design import optimize\n"
                   "    from .. import cli\n    import nanotransport.studies.scan_exec\n")
    known = set(all_modules()) - {""}
    found = imports_of(src, "model.summary", known)
    assert found == {"model.pk", "engine.units", "studies.design", "cli", "studies.scan_exec"}
    assert upward_imports({"model.summary": found}) == {
        ("model.summary", "studies.design"), ("model.summary", "cli"),
        ("model.summary", "studies.scan_exec")}


def test_public_modules_are_reexported_at_the_top():
    """``from nanotransport import simulate`` gives ``nanotransport.model.simulate``: every module
    of a subpackage is in the top package's table, under its own layer, and nothing else is."""
    in_subpackages = {m for m in all_modules() if "." in m}
    table = {f"{layer}.{name}" for name, layer in nanotransport._MODULES.items()}
    assert table == in_subpackages
    from nanotransport import simulate, study

    assert simulate.__name__ == "nanotransport.model.simulate"
    assert study.__name__ == "nanotransport.studies.study"
    assert nanotransport.load is nanotransport.scenario.load
