"""Tidy study data for ``fit``: one observation per row of a CSV file.

Format (docs/manuals/fit.md)::

    # source: authors, year, journal ...        (comment lines: kept as ``source`` text)
    time_h,tissue,analyte,value,unit,sd,n,subject
    1,plasma,drug,120,ug/mL,15,4,
    24,tumor,drug,8.1,ug/g,,,m1

Required columns: ``time_h``, ``tissue``, ``analyte``, ``value``, ``unit``; optional ``sd``,
``n`` (animals behind a group mean), ``subject`` (an individual's id); any other column is an
error.  ``tissue`` and ``analyte`` name the model's compartments (``TISSUES``,
``ANALYTES``, as ``model.organs``).  Units (``UNITS``): %ID/g, %ID/mL, ug/g, ug/mL, ng/g,
ng/mL, mg/L, uM, nM (``µ``/``μ`` accepted for ``u``); 1 g of tissue is taken as 1 mL, masses
are doxorubicin (``units.DOXORUBICIN_MOLAR_MASS``; carriers in drug equivalents), %ID needs
the dose in mol.  In mol/m³: value · (a + b · dose_mol) with (a, b) = ``unit_factors(unit)``.

Rows: a row with a ``subject`` is one individual's measurement; a row without one is a group
mean whose ``sd`` is the spread of the group (the SD of the animals, not the standard error)
and whose ``n`` is the group size: its standard error is sd/√n (n missing: 1, so the SD itself
is used, the conservative choice).  Every bad row is reported in one error, one
``line N: <field> = <value>: <allowed>`` per problem (N is the line of the file, comments
counted).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np

from ..engine import units
from .calibrate import ObservationError

#: the model's compartments and analytes (the contract of ``model.organs``)
TISSUES = ("plasma", "liver", "spleen", "kidney", "heart", "skin", "marrow", "muscle", "tumor")
ANALYTES = ("drug", "free_drug", "encapsulated_drug", "carrier")
REQUIRED = ("time_h", "tissue", "analyte", "value", "unit")
OPTIONAL = ("sd", "n", "subject")

_MW = units.DOXORUBICIN_MOLAR_MASS
#: unit → (a, b): mol/m³ = value · (a + b · dose_mol).  1 µg/mL = 1 g/m³; 1 g tissue = 1 mL;
#: 1 %ID/g = 0.01 · dose_mol per 1e-6 m³ = 1e4 · dose_mol mol/m³.
UNITS = {
    "%ID/g": (0.0, 1e4),
    "%ID/mL": (0.0, 1e4),
    "ug/g": (1.0 / _MW, 0.0),
    "ug/mL": (1.0 / _MW, 0.0),
    "ng/g": (1e-3 / _MW, 0.0),
    "ng/mL": (1e-3 / _MW, 0.0),
    "mg/L": (1.0 / _MW, 0.0),
    "uM": (1e-3, 0.0),
    "nM": (1e-6, 0.0),
}
_MICRO = ("µ", "μ")  # micro sign U+00B5 and Greek mu U+03BC


def canonical_unit(unit: str) -> str | None:
    """The key of ``UNITS`` for ``unit`` (case-sensitive; µ/μ read as u), or None."""
    for m in _MICRO:
        unit = unit.replace(m, "u")
    return unit if unit in UNITS else None


def unit_factors(unit: str) -> tuple[float, float]:
    """(a, b) with mol/m³ = value · (a + b · dose_mol)."""
    u = canonical_unit(unit)
    if u is None:
        raise ObservationError([f"unit = {unit}: allowed: {', '.join(UNITS)}"])
    return UNITS[u]


@dataclasses.dataclass(frozen=True)
class Observations:
    """One row per observation (numpy arrays of equal length)."""

    line: np.ndarray  # line number in the file (1-based, comments counted)
    time_h: np.ndarray
    tissue: np.ndarray  # str
    analyte: np.ndarray  # str
    value: np.ndarray  # in ``unit``
    unit: np.ndarray  # canonical unit (a key of UNITS)
    sd: np.ndarray  # in ``unit``; NaN where not given
    n: np.ndarray  # group size; 1 where not given
    subject: np.ndarray  # str; "" for group means
    source: str = ""  # the file's '#' comment lines
    path: str = "observations"

    def __len__(self) -> int:
        return int(self.value.size)

    @property
    def tissue_index(self) -> np.ndarray:
        return np.asarray([TISSUES.index(t) for t in self.tissue], dtype=np.int32)

    @property
    def analyte_index(self) -> np.ndarray:
        return np.asarray([ANALYTES.index(a) for a in self.analyte], dtype=np.int32)

    @property
    def times_s(self) -> np.ndarray:
        return self.time_h * units.HOUR

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) per row: mol/m³ = value · (a + b · dose_mol)."""
        ab = np.asarray([UNITS[u] for u in self.unit], float).reshape(-1, 2)
        return ab[:, 0], ab[:, 1]

    def to_mol_per_m3(self, dose_mol: float, values=None) -> np.ndarray:
        """``values`` (default: the observed values), in each row's unit, as mol/m³."""
        a, b = self.factors()
        v = self.value if values is None else np.asarray(values, float)
        return v * (a + b * float(dose_mol))

    def standard_error(self) -> np.ndarray:
        """sd/√n per row (NaN where no sd is given)."""
        return self.sd / np.sqrt(self.n)

    def with_values(self, values, sd=None) -> "Observations":
        """A copy with new values (and sd): synthetic data on the same design."""
        return dataclasses.replace(
            self, value=np.asarray(values, float),
            sd=self.sd if sd is None else np.broadcast_to(np.asarray(sd, float),
                                                          self.value.shape).copy())

    def groups(self) -> list[tuple[str, str]]:
        """The (tissue, analyte) pairs with data, in the model's order."""
        pairs = set(zip(self.tissue.tolist(), self.analyte.tolist()))
        return sorted(pairs, key=lambda p: (TISSUES.index(p[0]), ANALYTES.index(p[1])))


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse(text: str, path: str = "observations", t_end_h: float | None = None) -> Observations:
    """Observations from the CSV text; one ObservationError lists every bad row."""
    source, body = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            source.append(stripped.lstrip("#").strip())
        elif stripped:
            body.append((number, raw))
    if not body:
        raise ObservationError([f"{path}: no header line; allowed: a header with the columns "
                                f"{', '.join(REQUIRED)} (and optionally {', '.join(OPTIONAL)})"])
    rows = list(csv.reader(io.StringIO("\n".join(r for _, r in body))))
    header_line, header = body[0][0], [h.strip() for h in rows[0]]
    problems = []
    for h in header:
        if h not in REQUIRED + OPTIONAL:
            problems.append(f"line {header_line}: column = {h!r}: allowed columns: "
                            f"{', '.join(REQUIRED + OPTIONAL)}")
    for h in REQUIRED:
        if h not in header:
            problems.append(f"line {header_line}: column {h!r} is missing: required columns: "
                            f"{', '.join(REQUIRED)}")
    if len(set(header)) != len(header):
        problems.append(f"line {header_line}: a column is given twice: {', '.join(header)}")
    if problems:
        raise ObservationError([f"{path}: bad header:\n  " + "\n  ".join(problems)])
    col = {h: i for i, h in enumerate(header)}
    out = {k: [] for k in ("line", "time_h", "tissue", "analyte", "value", "unit", "sd", "n",
                           "subject")}
    for (number, _), row in zip(body[1:], rows[1:]):
        if len(row) != len(header):
            problems.append(f"line {number}: row = {','.join(row)!r}: allowed: {len(header)} "
                            f"values, one per column ({', '.join(header)})")
            continue
        get = lambda k: row[col[k]].strip() if k in col else ""  # noqa: E731
        bad = lambda field, value, allowed: problems.append(  # noqa: E731
            f"line {number}: {field} = {value!r}: {allowed}")
        t = _number(get("time_h"))
        if not (math.isfinite(t) and t >= 0):
            bad("time_h", get("time_h"), "allowed: a number >= 0 (h after the dose)")
        elif t_end_h is not None and t > t_end_h:
            bad("time_h", get("time_h"), f"allowed: times within the run, <= numerics.t_end_h "
                                         f"= {t_end_h:g} h")
        tissue, analyte = get("tissue"), get("analyte")
        if tissue not in TISSUES:
            bad("tissue", tissue, f"allowed: {', '.join(TISSUES)}")
        if analyte not in ANALYTES:
            bad("analyte", analyte, f"allowed: {', '.join(ANALYTES)}")
        v = _number(get("value"))
        if not (math.isfinite(v) and v >= 0):
            bad("value", get("value"), "allowed: a finite number >= 0")
        unit = canonical_unit(get("unit"))
        if unit is None:
            bad("unit", get("unit"), f"allowed: {', '.join(UNITS)} (µ may be written u)")
        sd = _number(get("sd")) if get("sd") else math.nan
        if get("sd") and not (math.isfinite(sd) and sd > 0):
            bad("sd", get("sd"), "allowed: a finite number > 0, or empty")
        n = _number(get("n")) if get("n") else 1.0
        if get("n") and not (math.isfinite(n) and n >= 1 and n == int(n)):
            bad("n", get("n"), "allowed: an integer >= 1, or empty")
        subject = get("subject")
        if subject and get("n") and n != 1:
            bad("n", get("n"), "allowed: empty or 1 on a row with a subject (one individual)")
        for k, x in zip(out, (number, t, tissue, analyte, v, unit, sd, n, subject)):
            out[k].append(x)
    if len(rows) == 1:
        problems.append(f"line {header_line}: no data rows after the header; allowed: at "
                        "least one observation")
    if problems:
        raise ObservationError([f"{path}: {len(problems)} problem(s):\n  "
                                + "\n  ".join(problems)])
    return Observations(
        line=np.asarray(out["line"], int), time_h=np.asarray(out["time_h"], float),
        tissue=np.asarray(out["tissue"], dtype=object), analyte=np.asarray(out["analyte"],
                                                                           dtype=object),
        value=np.asarray(out["value"], float), unit=np.asarray(out["unit"], dtype=object),
        sd=np.asarray(out["sd"], float), n=np.asarray(out["n"], float),
        subject=np.asarray(out["subject"], dtype=object), source="\n".join(source),
        path=str(path))


def load(path, t_end_h: float | None = None) -> Observations:
    """Read a tidy CSV file (``parse``); ``t_end_h``: refuse rows after the end of the run."""
    from ..model.scenario import ScenarioError, read_text_file

    try:
        text = read_text_file(Path(path), "observation file")
    except ScenarioError as e:
        raise ObservationError([str(e)]) from None
    return parse(text, str(path), t_end_h)


def to_csv(obs: Observations) -> str:
    """The observations as tidy CSV text (comments first); ``parse`` reads it back."""
    buf = io.StringIO()
    for ln in obs.source.splitlines():
        buf.write(f"# {ln}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REQUIRED + OPTIONAL)
    for i in range(len(obs)):
        w.writerow([repr(float(obs.time_h[i])), obs.tissue[i], obs.analyte[i],
                    repr(float(obs.value[i])), obs.unit[i],
                    "" if math.isnan(obs.sd[i]) else repr(float(obs.sd[i])),
                    "" if obs.subject[i] else f"{int(obs.n[i])}", obs.subject[i]])
    return buf.getvalue()
