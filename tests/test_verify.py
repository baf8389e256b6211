"""Closed-form verification cases (docs/model.md §11) as tests: every row of ``nanotransport verify``
must pass (error ≤ tolerance and observed order ≥ expected − 0.3; see nanotransport/studies/verify.py)."""
import json

import jax
import pytest

from nanotransport import verify


#: verify cases kept out of the default test run (``nanotransport verify`` runs them all):
#: network_gradient_fd (64 s: three compiles of the mesentery's root and 12 solves) checks the
#: haematocrit root's derivatives, which tests/test_network_design.py also checks against
#: central differences (through the root, the Starling solve and the delivery)
SLOW_CASES = {"network_gradient_fd"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES
                                  else n for n in verify.CASES])
def test_case_passes(name):
    row = verify.run_cases([name])[0]
    assert row["case"] == name
    assert row["passed"], json.dumps(row, indent=1, ensure_ascii=False)


def test_rows_are_json_and_table_lists_columns():
    rows = verify.run_cases(["two_compartments_stiff", "krogh_cylinder"])
    back = json.loads(json.dumps(rows))
    for r in back:
        for key in ("case", "description", "finest_grid", "error", "order", "expected_order",
                    "tolerance", "passed"):
            assert key in r
        assert isinstance(r["error"], float) and isinstance(r["passed"], bool)
    table = verify.format_table(rows)
    header = table.splitlines()[0]
    for col in ("case", "finest grid", "error", "order", "tolerance", "pass"):
        assert col in header
    assert "krogh_cylinder" in table and "PASS" in table


def test_unknown_case_is_named():
    with pytest.raises(ValueError, match="no_such_case"):
        verify.run_cases(["no_such_case"])


def test_needs_float64():
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(RuntimeError, match="float64"):
            verify.run_cases(["krogh_cylinder"])
    finally:
        jax.config.update("jax_enable_x64", True)
