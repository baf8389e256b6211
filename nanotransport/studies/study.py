"""The one way a study calls the model: (scenario, varied names, readout) → a pure JAX function
of the varied values (user units).

Every study (design, scan, cohort, calibration) and experiment goes through here: the varied
values are put into the scenario's numbers, ``simulate.run`` runs the scenario's fixed
structure, and the readout is read off the self-describing ``Result`` (which carries its
layout, its scenario and ω, so no study recomputes them or strips private keys of the static
structure).  The functions are pure, so ``jax.jit``, ``jax.vmap``, ``jax.grad`` and
``jax.jacfwd`` go through them.

Readouts: a callable of a ``Result``, or a name: ``"objective"`` (the design objective J),
one of its terms (``objective.TERMS``), or a scalar summary metric (``summary.metrics``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax.numpy as jnp

from ..model import simulate, summary
from ..model.objective import TERMS, objective, weighted_toxicity
from ..model.scenario import Scenario, ScenarioError, resolve_name

#: readout names besides the scalar summary metrics: J and each of its terms
OBJECTIVE_READOUTS = ("objective",) + TERMS


def objective_readout(result: simulate.Result) -> dict:
    """J, each of its terms and the weighted toxicity Σ w·Tox = efficacy − J (JAX scalars), under
    the names of ``objective.TERMS`` plus ``objective`` and ``toxicity``: what scans, cohorts
    and ``optimize`` report."""
    j, t = objective(result)
    return {"objective": j, **t, "toxicity": weighted_toxicity(t, result.params)}


def readout_function(readout: str | Callable) -> Callable[[simulate.Result], Any]:
    """A function of a ``Result`` for a readout name (or the callable itself)."""
    if callable(readout):
        return readout
    if readout == "objective":
        return lambda r: objective(r)[0]
    if readout in TERMS:
        return lambda r: objective(r)[1][readout]

    def scalar_metric(result):
        m = summary.metrics(result)
        if readout not in m or jnp.ndim(m[readout]) != 0:
            scalars = tuple(k for k, v in m.items() if jnp.ndim(v) == 0)
            raise ScenarioError(f"metric '{readout}' is unknown or not a scalar; allowed: "
                                f"{', '.join(OBJECTIVE_READOUTS + scalars)}")
        return m[readout]

    return scalar_metric


def evaluate(params: dict, structure: tuple, readout: str | Callable):
    """The readout of one simulation of ``params`` (every number of a scenario, user units)
    on the static ``structure`` (``simulate.structure``); pure."""
    return readout_function(readout)(simulate.run(params, structure))


def varied_function(structure: tuple, varied: Sequence[str], readout: str | Callable
                    ) -> Callable:
    """g(values, params) → readout, with ``values[i]`` replacing ``params[varied[i]]`` (names
    or dotted paths); the scenario's numbers are an argument, so one compilation serves every
    scenario of one structure."""
    paths = tuple(resolve_name(n) for n in varied)
    read = readout_function(readout)

    def g(values, params: dict):
        p = dict(params)
        for i, path in enumerate(paths):
            p[path] = values[i]
        return read(simulate.run(p, structure))

    return g


def model_function(scenario: Scenario, varied: Sequence[str],
                   readout: str | Callable = "objective") -> Callable:
    """f(values) → readout of ``scenario`` with the ``varied`` fields (names or dotted paths)
    set to ``values`` (a vector, user units, in the order of ``varied``)."""
    g = varied_function(simulate.structure(scenario), varied, readout)
    params = scenario.params
    return lambda values: g(values, params)

