"""The rows of ``nanotransport verify``: one JSON-ready dict per case, with its checks
(shared by ``verify`` and ``verify_network``)."""
from __future__ import annotations

import math

import numpy as np


def observed_order(errors, spacings):
    """log(e₁/e₂)/log(h₁/h₂) of the last two errors and spacings (None if an error is 0)."""
    e1, e2 = float(errors[-2]), float(errors[-1])
    h1, h2 = float(spacings[-2]), float(spacings[-1])
    if e2 <= 0.0 or e1 <= 0.0:
        return None
    return math.log(e1 / e2) / math.log(h1 / h2)


def check(name, value, tolerance):
    """One named check: passed when value ≤ tolerance."""
    value = float(value)
    return {"name": name, "value": value, "tolerance": float(tolerance),
            "passed": bool(value <= tolerance)}


def row(case, description, finest_grid, errors, spacings, expected_order, tolerance,
        checks=(), order=True):
    """A case's row: passed when the finest error is within ``tolerance``, the observed order
    (if expected) within 0.3 of ``expected_order``, and every check passed."""
    errors = [float(e) for e in errors]
    error = errors[-1]
    obs = observed_order(errors, spacings) if (order and len(errors) > 1) else None
    ok = bool(np.isfinite(error) and error <= tolerance)
    if expected_order is not None:
        ok = ok and obs is not None and obs >= expected_order - 0.3
    checks = list(checks)
    ok = ok and all(c["passed"] for c in checks)
    return {
        "case": case,
        "description": description,
        "finest_grid": finest_grid,
        "error": error,
        "order": None if obs is None else float(obs),
        "expected_order": None if expected_order is None else float(expected_order),
        "tolerance": float(tolerance),
        "passed": bool(ok),
        "errors": errors,
        "spacings": [float(h) for h in spacings],
        "checks": checks,
    }
