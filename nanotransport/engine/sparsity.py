"""Which species a pointwise rate function's outputs depend on: the structural sparsity of its
per-cell Jacobian, read from its traced program, and a column colouring to compute it with few
forward-mode products.

The model's local kinetics have 10-16 Newton species per cell, but each rate depends on a few
of them (the default scenario's 10 × 10 Jacobian has 25 structural nonzeros). A dense Newton
iteration computes n forward products and eliminates all n³/3 entries; knowing the pattern,
``solver.reaction_step`` computes one product per colour and eliminates only the nonzeros and
their fill (``linalg.sparse_lu``).

``species_pattern(f, y)`` traces f (``jax.make_jaxpr``) and follows every value's dependence on
the rows of y (the species axis, axis 0) through the program. The analysis is conservative:
slices, squeezes, stacks, concatenations, broadcasts, reshapes and reductions that keep axis 0
are followed row by row, elementwise operations join their operands row by row, calls
(``jit``, ``custom_jvp_call``, ...) are followed inside, and any other operation makes its
outputs depend on everything its inputs depend on. So the pattern may hold structural nonzeros
that are always zero (a denser, still exact, Jacobian), never miss a dependence: a select
(``jnp.where``) depends on its condition and both branches, whatever the values. Why
hand-written: JAX has no sparsity detection (jax.experimental.sparse is sparse arrays, not
Jacobian patterns); this is the jaxpr-level dependence analysis of SparseConnectivityTracer.jl
and of CasADi's sparsity propagation, reduced to one tracked axis.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np

_NONE = frozenset()

# operations whose output element depends only on the operands' elements at the same index
_ELEMENTWISE = frozenset("""
abs acos acosh add asin asinh atan atan2 atanh cbrt ceil clamp convert_element_type copy cos
cosh div eq erf erf_inv erfc exp exp2 expm1 floor ge gt imag integer_pow is_finite le lgamma
digamma log log1p logistic lt max min mul ne neg nextafter not or pow real reduce_precision rem
round rsqrt select_n sign sin sinh sqrt square stop_gradient sub tan tanh and xor
""".split())
_CALLS = frozenset(["jit", "pjit", "closed_call", "core_call", "remat", "checkpoint",
                    "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"])
_REDUCTIONS = frozenset(["reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax",
                         "argmin", "reduce_and", "reduce_or"])


class _Dep:
    """A value's dependence: ``rows`` (one set per index of its axis 0) or ``whole`` (one set
    for all its elements)."""

    __slots__ = ("rows", "whole")

    def __init__(self, rows=None, whole=_NONE):
        self.rows, self.whole = rows, whole

    def union(self) -> frozenset:
        return frozenset().union(*self.rows) if self.rows is not None else self.whole

    def row_list(self, n: int) -> list:
        return list(self.rows) if self.rows is not None else [self.whole] * n


def _shape(var) -> tuple:
    return tuple(getattr(var.aval, "shape", ()))


def _inner(eqn):
    """The called jaxpr of a call (run once, its inputs the equation's), or None; loops
    (``scan``, ``while``) and branches are not calls and take the conservative rule."""
    if eqn.primitive.name not in _CALLS:
        return None
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        inner = eqn.params.get(key)
        if inner is not None and (hasattr(inner, "eqns") or hasattr(inner, "jaxpr")):
            return getattr(inner, "jaxpr", inner)
    return None


def _rule(eqn, deps: list) -> list:
    """The dependence of ``eqn``'s outputs from its inputs' (module docstring)."""
    name = eqn.primitive.name
    out_shapes = [_shape(v) for v in eqn.outvars]
    in_shapes = [_shape(v) for v in eqn.invars]
    everything = frozenset().union(*(d.union() for d in deps))
    fallback = [_Dep(whole=everything) for _ in eqn.outvars]
    inner = _inner(eqn)
    if inner is not None and len(inner.invars) == len(deps):
        return _run(inner, deps)
    if len(eqn.outvars) != 1:
        return fallback
    shape = out_shapes[0]
    d0 = deps[0] if deps else _Dep()
    if name in _ELEMENTWISE and shape:
        n = shape[0]
        if not any(d.rows is not None for d in deps):
            return [_Dep(whole=everything)]
        if any(d.rows is not None and s != shape for d, s in zip(deps, in_shapes)):
            return fallback
        rows = [frozenset().union(*(d.row_list(n)[i] for d in deps)) for i in range(n)]
        return [_Dep(rows=rows)]
    if name == "stack" and eqn.params.get("axis") == 0:  # each operand one new row
        return [_Dep(rows=[d.union() for d in deps])]
    if name == "concatenate" and eqn.params.get("dimension") == 0:
        return [_Dep(rows=[r for d, s in zip(deps, in_shapes) for r in d.row_list(s[0])])]
    if d0.rows is None:
        return fallback
    rows = d0.rows
    if name == "slice":
        start, limit = eqn.params["start_indices"][0], eqn.params["limit_indices"][0]
        stride = (eqn.params.get("strides") or (1,))[0]
        return [_Dep(rows=rows[start:limit:stride])]
    if name == "squeeze":
        dims = eqn.params["dimensions"]
        return [_Dep(whole=rows[0]) if 0 in dims else _Dep(rows=rows)]
    if name == "broadcast_in_dim":
        dims = eqn.params["broadcast_dimensions"]
        keep = dims and dims[0] == 0 and shape and shape[0] == len(rows)
        return [_Dep(rows=rows) if keep else _Dep(whole=everything)]
    if name == "reshape" and shape and shape[0] == len(rows):
        return [_Dep(rows=rows)]  # C order: each index of axis 0 keeps its own elements
    if name in _REDUCTIONS:
        return [_Dep(whole=everything) if 0 in eqn.params.get("axes", (0,))
                else _Dep(rows=rows)]
    if name == "transpose" and eqn.params["permutation"][0] == 0:
        return [_Dep(rows=rows)]
    if name == "stack" and eqn.params.get("axis", 0) != 0 and all(
            d.rows is not None and len(d.rows) == len(rows) for d in deps):
        return [_Dep(rows=[frozenset().union(*(d.rows[i] for d in deps))
                           for i in range(len(rows))])]
    if name == "concatenate":  # along another axis: row i joins row i of every operand
        if all(d.rows is not None and len(d.rows) == len(rows) for d in deps):
            return [_Dep(rows=[frozenset().union(*(d.rows[i] for d in deps))
                               for i in range(len(rows))])]
    return fallback


def _run(jaxpr, in_deps: list) -> list:
    env = {}

    def read(v):
        return env.get(v, _Dep()) if not hasattr(v, "val") else _Dep()  # literals: nothing

    for v, d in zip(jaxpr.invars, in_deps):
        env[v] = d
    for eqn in jaxpr.eqns:
        for v, d in zip(eqn.outvars, _rule(eqn, [read(v) for v in eqn.invars])):
            env[v] = d
    return [read(v) for v in jaxpr.outvars]


def species_pattern(f: Callable, y) -> np.ndarray:
    """Boolean (n_out, n_in): output row i of f(y) may depend on row j of y (axis 0 of both
    being species); conservative (module docstring). ``y`` may be abstract
    (``jax.ShapeDtypeStruct``) or a traced value; only its shape and dtype are used."""
    spec = jax.ShapeDtypeStruct(np.shape(y), y.dtype)
    closed = jax.make_jaxpr(f)(spec)
    n_in = spec.shape[0]
    (out,) = _run(closed.jaxpr, [_Dep(rows=[frozenset([j]) for j in range(n_in)])])
    n_out = closed.out_avals[0].shape[0]
    pattern = np.zeros((n_out, n_in), bool)
    for i, deps in enumerate(out.row_list(n_out)):
        pattern[i, sorted(deps)] = True
    return pattern


def column_colours(pattern: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Groups of columns no two of which have a nonzero in the same row (greedy, columns with
    more nonzeros first): one forward product per group gives all their entries."""
    order = sorted(range(pattern.shape[1]), key=lambda j: -int(pattern[:, j].sum()))
    groups, rows_used = [], []
    for j in order:
        for g, used in zip(groups, rows_used):
            if not (used & pattern[:, j]).any():
                g.append(j)
                used |= pattern[:, j]
                break
        else:
            groups.append([j])
            rows_used.append(pattern[:, j].copy())
    return tuple(tuple(sorted(g)) for g in groups)
