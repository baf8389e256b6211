"""Scenarios: TOML files → validated ``Scenario`` pytrees (user units), and back.

Resolution order: schema defaults ← tumor preset (``tumor_preset = "low-epr"``) ← the file ←
``--set`` overrides.  Nothing runs on a half-valid scenario: every problem found is reported
in one error that names the field, the value and what is allowed.

A ``Scenario`` keeps user-facing units (``diameter_nm``); the model converts them to SI inside
the differentiated function (``simulate.model_inputs``, ``tissue.tissue_maps``), so gradients
are per user unit.  Numeric fields
are float leaves of the pytree (``scenario.params``); structure (strings, grid sizes, saved
times) is static.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jax
import numpy as np

from .schema import FIELDS, FIELDS_BY_PATH, Field, ScenarioError, is_number_ok

TUMOR_PRESETS = ("high-epr", "low-epr", "collagen-rich")
TOP_LEVEL = {"description": str, "tumor_preset": str}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A validated scenario.

    Attributes:
        params: {dotted path: float} of every numeric parameter (pytree leaves).
        static: sorted tuple of (dotted path, value) of the structural fields (hashable).
        description: free text.
    """

    params: dict
    static: tuple
    description: str = ""
    #: the contents of ``tissue.maps_file`` (``MapsFile``: arrays, read by ``load``
    #: through ``read_tissue_maps``), None without one; static
    maps: object = None

    def __getitem__(self, path: str):
        path = resolve_name(path)
        if path in self.params:
            return self.params[path]
        return dict(self.static)[path]

    def get(self, path: str, default=None):
        try:
            return self[path]
        except (KeyError, ScenarioError):
            return default

    @property
    def name(self) -> str:
        return self["formulation.name"]

    def replace(self, **updates) -> "Scenario":
        """A copy with fields changed; keys are dotted paths or unique bare names. Values are
        validated (numbers may be tracers inside jit/grad: then only the static fields are)."""
        params, static = dict(self.params), dict(self.static)
        maps = self.maps
        for name, value in updates.items():
            path = resolve_name(name)
            if path == "tissue.maps_file" and value != static[path]:
                if value:
                    raise ScenarioError("tissue.maps_file: a maps file is read when the "
                                        "scenario is loaded; allowed: scenario.load(..., "
                                        "['tissue.maps_file=...']), or '' (no maps) here")
                maps = None
            if path in params:
                if _is_concrete_number(value):
                    _check_value(FIELDS_BY_PATH[path], value, raise_now=True)
                params[path] = value
            else:
                _check_value(FIELDS_BY_PATH[path], value, raise_now=True)
                static[path] = _freeze(value)
        return Scenario(params, tuple(sorted(static.items())), self.description, maps)

    def to_dict(self) -> dict:
        """Nested {section: {key: value}} in user units (floats for parameters)."""
        out: dict = {}
        if self.description:
            out["description"] = self.description
        flat = {**{k: float(v) for k, v in self.params.items()},
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self.static}}
        for path in sorted(flat):
            node = out
            *sections, key = path.split(".")
            for s in sections:
                node = node.setdefault(s, {})
            node[key] = flat[path]
        return out

    def to_toml(self) -> str:
        """The fully resolved scenario as TOML (every field, defaults included)."""
        import tomli_w  # imported where TOML is written: GPU images without it can still run

        return tomli_w.dumps(self.to_dict())


jax.tree_util.register_dataclass(Scenario, data_fields=["params"],
                                 meta_fields=["static", "description", "maps"])


def _is_concrete_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _freeze(v):
    return tuple(float(x) for x in v) if isinstance(v, list) else v


# ------------------------------------------------------------------ names
BARE_NAMES: dict[str, list[str]] = {}
for _f in FIELDS:
    BARE_NAMES.setdefault(_f.key, []).append(_f.path)


def resolve_name(name: str) -> str:
    """Dotted path of a field given its dotted path or a unique bare name."""
    if name in FIELDS_BY_PATH:
        return name
    if name in BARE_NAMES:
        paths = BARE_NAMES[name]
        if len(paths) == 1:
            return paths[0]
        raise ScenarioError(f"'{name}' is ambiguous; use one of: {', '.join(paths)}")
    raise ScenarioError(f"unknown field '{name}'{_suggest(name)}")


def _suggest(name: str) -> str:
    candidates = list(FIELDS_BY_PATH) + list(BARE_NAMES)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    if not close:
        key = name.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(key, list(BARE_NAMES), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


# ------------------------------------------------------------------ validation
def _check_value(field: Field, value, raise_now=False) -> str | None:
    problem = None
    if field.kind in ("param", "static_float", "int"):
        if field.kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            problem = "must be an integer"
        elif isinstance(value, float) and math.isnan(value):
            problem = "is NaN"
        elif not is_number_ok(field, value):
            problem = "is out of range" if _is_concrete_number(value) else "is not a number"
    elif field.kind == "str":
        if not isinstance(value, str):
            problem = "must be a string"
        elif field.choices and value not in field.choices:
            problem = "is not allowed"
    elif field.kind == "bool":
        if not isinstance(value, bool):
            problem = "must be true or false"
    elif field.kind == "list":
        if not isinstance(value, (list, tuple)) or not all(
                is_number_ok(field, v) for v in value):
            problem = "must be a list of numbers in range"
    if problem is None:
        return None
    msg = (f"{field.path} = {value!r} {problem}; allowed: {field.allowed()}"
           + (f" {field.unit}" if field.unit and field.kind != "str" else ""))
    if raise_now:
        raise ScenarioError(msg)
    return msg


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, path + "."))
        else:
            out[path] = v
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """'formulation.diameter_nm=50' → (path, 50.0); the value is parsed as a TOML value,
    falling back to a bare string (so ``species=mouse`` works)."""
    if "=" not in text:
        raise ScenarioError(f"--set '{text}' must look like key=value (e.g. diameter_nm=50)")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def build(file_values: dict, overrides: Iterable[tuple[str, Any]] = (),
          source: str = "<scenario>") -> Scenario:
    """Validate nested ``file_values`` plus overrides and return the resolved Scenario."""
    problems: list[str] = []
    top = {k: v for k, v in file_values.items() if not isinstance(v, dict)}
    flat_file = _flatten({k: v for k, v in file_values.items() if isinstance(v, dict)})
    for k, v in top.items():
        if k not in TOP_LEVEL:
            flat_file[k] = v  # a stray top-level key: reported as unknown below
    given: dict[str, Any] = {}
    for path, value in flat_file.items():
        if path in FIELDS_BY_PATH:
            given[path] = value
        else:
            problems.append(f"unknown key '{path}' in {source}{_suggest(path)}")
    description = top.get("description", "")
    preset = top.get("tumor_preset")
    for key, value in overrides:
        if key == "tumor_preset":
            preset = value
            continue
        try:
            given[resolve_name(key)] = value
        except ScenarioError as e:
            problems.append(f"--set {key}: {e}")
    if preset is not None and preset not in TUMOR_PRESETS:
        problems.append(f"tumor_preset = {preset!r} is not allowed; allowed: one of "
                        + ", ".join(repr(p) for p in TUMOR_PRESETS))
        preset = None

    values = {f.path: f.default for f in FIELDS}
    if preset is not None:
        preset_values = _load_toml_text(_builtin_text(f"tumor-{preset}"), f"tumor-{preset}")
        values.update(_flatten({k: v for k, v in preset_values.items() if isinstance(v, dict)}))
    values.update(given)

    species = values["patient.species"]
    overridden = {resolve_name(k) for k, _ in overrides if k in FIELDS_BY_PATH or
                  len(BARE_NAMES.get(k, ())) == 1}
    problems += dose_unit_problems(species, given, overridden, source)
    for path, value in values.items():
        msg = _check_value(FIELDS_BY_PATH[path], value)
        if msg:
            problems.append(msg)
    if not problems:
        phi = [values[f"tissue.{r}.vascular_fraction"] + values[f"tissue.{r}.interstitial_fraction"]
               for r in ("tumor", "normal")]
        for r, total in zip(("tumor", "normal"), phi):
            if total >= 0.99:
                problems.append(f"tissue.{r}: vascular_fraction + interstitial_fraction = "
                                f"{total:g}; allowed: < 0.99 (cells take the rest)")
        if values["tumor.necrotic_radius_mm"] >= values["tumor.radius_mm"]:
            problems.append(f"tumor.necrotic_radius_mm = {values['tumor.necrotic_radius_mm']!r} "
                            f"must be smaller than tumor.radius_mm = {values['tumor.radius_mm']!r}")
        saves = values["numerics.save_times_h"]
        if saves and (sorted(saves) != list(saves) or max(saves) > values["numerics.t_end_h"]):
            problems.append(f"numerics.save_times_h = {saves!r} must increase and end at or "
                            f"before numerics.t_end_h = {values['numerics.t_end_h']!r}")
        if (values["formulation.carrier"] == "none"
                and values["formulation.encapsulated_fraction"] != 0.0):
            problems.append(f"formulation.encapsulated_fraction = "
                            f"{values['formulation.encapsulated_fraction']!r} with "
                            "formulation.carrier = 'none' (free drug: no carrier holds any of "
                            "the dose); allowed: 0, or another carrier")
        window = values["numerics.heating_window_min"]
        if window and (len(window) != 2 or not window[0] < window[1]):
            problems.append(f"numerics.heating_window_min = {window!r}; allowed: [] or "
                            "[start, end] with start < end (min)")
    if problems:
        raise ScenarioError(f"invalid scenario {source}:\n  - " + "\n  - ".join(problems))
    params = {p: float(v) for p, v in values.items() if FIELDS_BY_PATH[p].is_param}
    static = tuple(sorted((p, _freeze(v)) for p, v in values.items()
                          if not FIELDS_BY_PATH[p].is_param))
    return Scenario(params, static, description)


# ------------------------------------------------------------------ dose unit rule
DOSE_FIELD = {"human": "dose.dose_mg_per_m2", "mouse": "dose.dose_mg_per_kg"}


def dose_unit_error(species: str, path: str, where: str = "") -> str | None:
    """The message if ``path`` is a dose field that ``species`` does not use, else None.

    The one rule (human → ``dose.dose_mg_per_m2``, mouse → ``dose.dose_mg_per_kg``) that
    ``build`` (run, compare, show, optimize, ``scenario.load``), ``scan`` (--grid, --sample)
    and ``optimize --vary`` / ``design.optimize`` apply: a dose in the other unit would be
    silently ignored, so it is refused."""
    right = DOSE_FIELD.get(species)
    if right is None or path not in DOSE_FIELD.values() or path == right:
        return None
    return (f"{where}{path} is not used for patient.species = '{species}' (a {species} dose is "
            f"{right}); set {right} instead")


def check_dose_unit(species: str, paths: Iterable[str], where: str = "") -> None:
    """Raise ScenarioError if any of ``paths`` is a dose field ``species`` does not use."""
    for path in paths:
        msg = dose_unit_error(species, path, where)
        if msg:
            raise ScenarioError(msg)


def dose_unit_problems(species: str, given: dict, overridden: set, source: str) -> list[str]:
    """Problems of the dose rule in a scenario being built: a dose in the other unit is refused
    when set by ``--set`` (always), or by the file without the species' own dose (a file that
    sets both, such as a resolved scenario from ``show`` or ``results.nc``, names the dose
    used; ``doxil --set species=mouse --set dose_mg_per_kg=3`` switches species and dose)."""
    right = DOSE_FIELD.get(species)
    problems = []
    for path in DOSE_FIELD.values():
        if path not in given or path == right:
            continue
        if path in overridden:
            problems.append(dose_unit_error(species, path, "--set "))
        elif right not in given:
            problems.append(dose_unit_error(species, path, f"{source}: "))
    return problems


# ------------------------------------------------------------------ memory
BYTES_PER_CELL_STATE = 8 * 24  # float64 × (species and accumulators per cell), rounded up
BYTES_PER_CELL_WORK = 8 * 2200  # per-cell Newton Jacobians and their temporaries


def grid_cells(scenario: "Scenario") -> int:
    """Number of grid cells of a scenario, from its geometry and ``numerics.cells``."""
    n = int(scenario["numerics.cells"])
    return {"sphere": n, "axisymmetric": 2 * n * n, "cartesian2d": n * n,
            "cartesian3d": n ** 3}.get(scenario["tumor.geometry"], n ** 3)


def memory_estimate(scenario: "Scenario") -> int:
    """Estimated bytes of one simulation (saved states and solver work), before any array is
    allocated; a lower bound good enough to refuse grids that cannot fit."""
    saves = len(scenario["numerics.save_times_h"]) or 20
    return grid_cells(scenario) * (BYTES_PER_CELL_STATE * (saves + 4) + BYTES_PER_CELL_WORK)


def memory_available() -> int:
    """Physical memory of this machine (bytes); 4 GiB where it cannot be read."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def check_memory(scenario: "Scenario", copies: int = 1) -> None:
    """Refuse (ScenarioError) a grid whose estimated memory exceeds this machine's; the message
    gives the estimate and the largest ``numerics.cells`` that fits."""
    need = memory_estimate(scenario) * max(1, int(copies))
    have = memory_available()
    if need <= have:
        return
    n = int(scenario["numerics.cells"])
    per_cell = need / grid_cells(scenario)
    fits = max(4, n)
    while fits > 4 and per_cell * grid_cells(scenario.replace(**{"numerics.cells": fits})) > have:
        fits = int(fits * 0.9)
    gib = 1 << 30
    raise ScenarioError(
        f"numerics.cells = {n} on a {scenario['tumor.geometry']} grid gives "
        f"{grid_cells(scenario):,} cells, an estimated {need / gib:.3g} GiB"
        + (f" for {copies} simulations" if copies > 1 else "")
        + f"; allowed: at most this machine's {have / gib:.3g} GiB, i.e. about numerics.cells "
        f"<= {fits} for this geometry")


# ------------------------------------------------------------------ files and built-ins
def _builtin_text(name: str) -> str:
    path = resources.files("nanotransport") / "scenarios" / f"{name}.toml"
    if not path.is_file():
        raise ScenarioError(f"no built-in scenario '{name}'{_suggest_builtin(name)}; "
                            f"available: {', '.join(builtin_names())}")
    return path.read_text(encoding="utf-8")


def _suggest_builtin(name):
    close = difflib.get_close_matches(name, builtin_names(), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def builtin_names(include_presets: bool = False) -> list[str]:
    """Names of the built-in scenarios (package data ``scenarios/*.toml``)."""
    names = sorted(p.name[:-5] for p in (resources.files("nanotransport") / "scenarios")
                   .iterdir() if p.name.endswith(".toml"))
    return [n for n in names
            if include_presets or n.removeprefix("tumor-") not in TUMOR_PRESETS]


def builtin_description(name: str) -> str:
    return tomllib.loads(_builtin_text(name)).get("description", "")


def _load_toml_text(text: str, source: str) -> dict:
    if not text.strip():
        raise ScenarioError(f"scenario {source} is empty; it needs at least one section, e.g. "
                            "[formulation] diameter_nm = 100")
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"scenario {source} is not valid TOML: {e}") from None
    if not parsed:
        raise ScenarioError(f"scenario {source} sets nothing (only comments or blank lines); "
                            "it needs at least one section, e.g. [formulation] diameter_nm = 100"
                            " (a file that runs the defaults must say so: description = ...)")
    return parsed


def read_text_file(path, what: str = "file") -> str:
    """The UTF-8 text of ``path``, or a ScenarioError naming the file and the problem
    (missing, a folder, unreadable, binary or not UTF-8)."""
    path = Path(path)
    if path.is_dir():
        raise ScenarioError(f"{what} {str(path)!r} is a folder; allowed: a UTF-8 text file")
    if not path.is_file():
        raise ScenarioError(f"{what} {str(path)!r} does not exist")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ScenarioError(f"{what} {str(path)!r} cannot be read ({e.strerror or e}); "
                            "allowed: a readable UTF-8 text file") from None
    if b"\x00" in data:
        raise ScenarioError(f"{what} {str(path)!r} is binary (it holds NUL bytes); allowed: a "
                            "UTF-8 text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{what} {str(path)!r} is not UTF-8 text (byte {e.start}: "
                            f"{data[e.start:e.start + 1]!r}); allowed: a UTF-8 text file"
                            ) from None


# ------------------------------------------------------------------ the maps file
@dataclasses.dataclass(frozen=True, eq=False)
class MapsFile:
    """The contents of a ``tissue.maps_file`` as arrays (read by ``read_tissue_maps``,
    called by ``load``): its variables and coordinates, float arrays.  Static (hashed
    by its content), so it rides in a scenario's structure."""

    source: str
    variables: tuple  # ((name, array), ...)
    coords: tuple  # ((name, array), ...)

    @property
    def digest(self) -> str:
        h = hashlib.sha256(self.source.encode())
        for name, arr in self.variables + self.coords:
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr, dtype=float).tobytes())
        return h.hexdigest()

    def __hash__(self):
        return hash(self.digest)

    def __eq__(self, other):
        return isinstance(other, MapsFile) and self.digest == other.digest


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # a scheme (http:, s3:, file:), not C:


def read_tissue_maps(path: str) -> MapsFile:
    """The variables and coordinates of a ``tissue.maps_file`` (a local netCDF file) as float
    arrays, for ``tissue.layout`` (which checks them against the grid and the schema).

    Checked here (ScenarioError naming the file and what is allowed): a local path (URLs and
    other schemes are refused: reading one must not touch a network), an existing file, readable
    as netCDF, every variable numeric."""
    import xarray as xr

    def error(msg: str) -> ScenarioError:
        return ScenarioError(f"tissue.maps_file {path!r}: {msg}")

    if _URL.match(path):
        raise error("looks like a URL or another scheme; allowed: a local file path")
    p = Path(path)
    if not p.is_file():
        raise error("is a folder; allowed: a netCDF file" if p.is_dir() else
                    "does not exist; allowed: a local netCDF file")
    try:
        ds = xr.open_dataset(p).load()
    except Exception as e:  # noqa: BLE001 - any backend's complaint about a bad file is input
        raise error(f"cannot be read as netCDF ({type(e).__name__}: {str(e)[:200]}); allowed: "
                    "a netCDF file") from None
    with ds:
        variables = []
        for name, var in ds.data_vars.items():
            try:
                variables.append((str(name), np.asarray(var.values, dtype=float)))
            except (TypeError, ValueError):
                raise error(f"map {name!r} is not numeric ({var.dtype})") from None
        coords = []
        for name, c in ds.coords.items():
            try:
                coords.append((str(name), np.asarray(c.values, dtype=float)))
            except (TypeError, ValueError):
                continue  # a non-numeric coordinate names no grid axis
    return MapsFile(path, tuple(variables), tuple(coords))


DEFAULT_SCENARIO = "doxil"


def load(name_or_path: str | None = None, overrides: Iterable[str] = ()) -> Scenario:
    """Load a built-in scenario by name or a TOML file by path, apply ``key=value`` overrides.

    With no name, the default scenario (doxil in a high-EPR tumor).
    """
    name_or_path = name_or_path or DEFAULT_SCENARIO
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        text, source = read_text_file(path, "scenario file"), str(path)
    else:
        text, source = _builtin_text(name_or_path), f"'{name_or_path}'"
    parsed = [parse_override(o) for o in overrides]
    scenario = build(_load_toml_text(text, source), parsed, source)
    if scenario["tissue.maps_file"]:  # the maps file is read with the scenario file
        scenario = dataclasses.replace(scenario,
                                       maps=read_tissue_maps(scenario["tissue.maps_file"]))
    return scenario


def annotated_toml(scenario: Scenario) -> str:
    """The resolved scenario as TOML with every field, each with its unit, range and source as
    a comment (what ``nanotransport show`` prints; loadable as a scenario file)."""
    import tomli_w

    flat = {**scenario.params, **dict(scenario.static)}
    lines = []
    if scenario.description:
        lines.append(tomli_w.dumps({"description": scenario.description}).strip())
    current = None
    for f in FIELDS:
        if f.section != current:
            current = f.section
            lines.append(f"\n[{current}]")
        value = flat[f.path]
        value = list(value) if isinstance(value, tuple) else value
        value = float(value) if f.is_param else value
        text = tomli_w.dumps({f.key: value}).strip()
        unit = f" [{f.unit}]" if f.unit and f.kind != "str" else ""
        lines.append(f"{text:<48}# {f.doc}{unit}; allowed: {f.allowed()}")
    return "\n".join(lines) + "\n"
