"""``nanotransport validate``: the model against published numbers.

``verify`` checks the engine against closed forms; ``validate`` checks the *model* against the
literature.  Each :class:`Target` names a published quantity: its source (paper and table,
figure or sentence), the published value and the paper's own band (its SD, range or stated
spread, never widened to make the model pass), and a function that computes the same quantity
from the model.  A target the model misses stays in the list, marked failed, with a ``note``
that says why (see docs/validation.md).

Targets are grouped: ``pk`` (systemic pharmacokinetics, human and mouse), ``delivery`` (how much
reaches the tumor), ``retention`` (how long drug stays there), ``distribution`` (where it goes
inside the tumor), ``release`` and ``heating`` (triggered release; ``validate_heating.py``).
``quick`` targets need no tissue simulation or only a small one; ``--quick`` runs only those
(the test suite does).

Python: ``validate.evaluate(validate.targets(), validate.Runs())`` → list of rows (dicts).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from . import pk, units

GROUPS = ("pk", "delivery", "retention", "distribution", "release", "heating")


@dataclasses.dataclass(frozen=True)
class Target:
    """One published number and how to compute it from the model.

    ``model(runs)`` returns the model's value in ``unit``; the target passes when it lies in
    [``low``, ``high``] (the published band)."""

    id: str
    group: str
    quantity: str
    unit: str
    published: float
    low: float
    high: float
    source: str
    model: Callable[["Runs"], float]
    quick: bool = False
    note: str = ""  # why it fails, where it is known to (kept with the target)


class Runs:
    """Simulations of built-in scenarios, each run once per ``Runs`` (a cache owned by one
    validation, not global state).  ``run(name, sets)`` → (scenario, result, metrics) with the
    metrics as floats (time series as {saved time h: value})."""

    def __init__(self):
        self._cache: dict = {}

    def run(self, name: str, sets: tuple = ()):
        key = (name, tuple(sets))
        if key not in self._cache:
            import jax

            from . import scenario as sc
            from . import simulate, summary, tissue

            s = sc.load(name, list(sets))
            if s["numerics.precision"] == "float64" and not jax.config.jax_enable_x64:
                raise RuntimeError("validate needs jax_enable_x64 for float64 scenarios")
            lay = tissue.layout(s)
            result = simulate.simulate(s)
            values = summary.metrics(result, lay, s["drug.kill_coefficient_per_ng_h_per_1e5cells"])
            self._cache[key] = (s, result, summary.to_json_ready(values,
                                                                 simulate.save_times_h(s)))
        return self._cache[key]

    def metric(self, name: str, metric: str, sets: tuple = (), at_h: float | None = None):
        """One summary metric of a run (``at_h``: the value of a time series at that saved
        time)."""
        values = self.run(name, sets)[2][metric]
        if at_h is not None:
            return float(values[f"{at_h:g}"])
        return float(values)


# ------------------------------------------------------------------ systemic PK (closed forms)

def _pk(name: str, species: str = "human"):
    """Systemic parameters and dose (mol) of a built-in scenario, as ``simulate`` builds them."""
    from . import scenario as sc
    from . import simulate

    return simulate.systemic_parameters(sc.load(name, []))


def _doxil_label(key: str, dose_mg_per_m2: float = 20.0) -> float:
    from . import scenario as sc
    from . import simulate

    params, _ = simulate.systemic_parameters(sc.load("doxil", []))
    return float(pk.liposome_label_metrics(params, dose_mg_per_m2, 1.8, pk.DOXIL_INFUSION_H)[key])


def _free_dox(key: str) -> float:
    params, _ = _pk("free-dox")
    bsa = 1.8
    if key == "cl":
        return float(pk.clearance(params, False)) / (units.ML / units.MIN) / bsa
    if key == "v_ss":
        return float(pk.steady_state_volume(params, False)) / units.LITRE / bsa
    return float(pk.half_lives(params).free[-1]) / units.HOUR


def _carrier_half_life(name: str, which: int) -> float:
    params, _ = _pk(name)
    return float(pk.half_lives(params).carrier[which]) / units.HOUR


def _encapsulated_share(name: str, at_h: float) -> float:
    """Share of plasma drug inside carriers at ``at_h`` after the scenario's infusion."""
    from . import scenario as sc

    s = sc.load(name, [])
    params, dose = _pk(name)
    t = np.asarray([at_h * units.HOUR])
    y = pk.simulate(params, t, dose, float(s["dose.infusion_duration_min"]) * units.MIN, True)
    c = pk.plasma_concentrations(params, y)
    return float(c.encapsulated[-1] / c.total[-1])


def _pk_targets() -> list[Target]:
    label = "Doxil US prescribing information, Table 8 (20 mg/m², 30-min infusion; mean ± SD)"
    dox = ("doxorubicin hydrochloride US prescribing information §12.3 (range; the centre "
           "shown is its geometric mean)")
    return [
        Target("pk-doxil-human-auc", "pk", "Doxil plasma AUC, 20 mg/m²", "µg·h/mL", 590.0,
               590.0 - 58.7, 590.0 + 58.7, label, lambda r: _doxil_label("auc"), quick=True),
        Target("pk-doxil-human-cmax", "pk", "Doxil plasma C_max, 20 mg/m²", "µg/mL", 8.34,
               8.34 - 0.49, 8.34 + 0.49, label, lambda r: _doxil_label("c_max"), quick=True),
        Target("pk-doxil-human-t-half-2", "pk", "Doxil terminal half-life", "h", 55.0,
               55.0 - 4.8, 55.0 + 4.8, label, lambda r: _doxil_label("t_half_2"), quick=True),
        Target("pk-doxil-human-t-half-1", "pk", "Doxil first half-life", "h", 5.2,
               5.2 - 1.4, 5.2 + 1.4, label, lambda r: _doxil_label("t_half_1"), quick=True),
        Target("pk-free-dox-human-cl", "pk", "free doxorubicin clearance", "mL/min/m²",
               512.0, 324.0, 809.0, dox, lambda r: _free_dox("cl"), quick=True),
        Target("pk-free-dox-human-vss", "pk", "free doxorubicin V_ss", "L/m²", 991.0, 809.0,
               1214.0, dox, lambda r: _free_dox("v_ss"), quick=True),
        Target("pk-free-dox-human-t-half", "pk", "free doxorubicin terminal half-life", "h",
               31.0, 20.0, 48.0, dox, lambda r: _free_dox("t_half"), quick=True),
        Target("release-doxil-encapsulated", "release", "share of plasma drug encapsulated, "
               "24 h after Doxil", "1", 0.90, 0.90, 1.0, "Doxil US prescribing information "
               "§12.3: 'at least 90 % of the drug in plasma is liposome-encapsulated'",
               lambda r: _encapsulated_share("doxil", 24.0), quick=True),
    ]


def targets() -> list[Target]:
    """Every validation target, in report order."""
    out = _pk_targets()
    ids = [t.id for t in out]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate validation target ids")
    return out


def evaluate(selected: list[Target], runs: Runs, progress: Callable | None = None) -> list[dict]:
    """Compute the model's value of every target; rows for the table, JSON and figure."""
    rows = []
    for t in selected:
        if progress is not None:
            progress(t)
        value = float(t.model(runs))
        passed = bool(math.isfinite(value) and t.low <= value <= t.high)
        rows.append(dict(id=t.id, group=t.group, quantity=t.quantity, unit=t.unit,
                         published=t.published, low=t.low, high=t.high,
                         model=value if math.isfinite(value) else None,
                         ratio=value / t.published if math.isfinite(value) else None,
                         passed=passed, source=t.source, note="" if passed else t.note))
    return rows


def format_table(rows: list[dict]) -> str:
    """Plain-text table: id, quantity, published band, model value, pass/FAIL."""
    lines = [f"{'target':<34}{'published [band]':>28}{'model':>12}  {'':4}  quantity (unit)"]
    for r in rows:
        band = f"{r['published']:.3g} [{r['low']:.3g}, {r['high']:.3g}]"
        model = "nan" if r["model"] is None else f"{r['model']:.3g}"
        lines.append(f"{r['id']:<34}{band:>28}{model:>12}  {'pass' if r['passed'] else 'FAIL'}"
                     f"  {r['quantity']} ({r['unit']})")
    n = sum(r["passed"] for r in rows)
    lines.append(f"{n} of {len(rows)} targets pass ({100.0 * n / max(len(rows), 1):.0f} %)")
    return "\n".join(lines)
