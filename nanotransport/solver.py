"""Time integration: stiff local terms, implicit transport, Strang splitting, saving.

Scheme (second order in time, L-stable pieces; the step is set by accuracy, not stiffness):

    c(t + h) ≈ R(h/2) ∘ T(h) ∘ R(h/2) c(t)                               (Strang splitting)

* ``R`` integrates the local (per-cell) reactions dc/dt = f(t, c) — exchange between phases,
  release, binding, uptake, with rates up to 1e2 1/s and beyond — with TR-BDF2
  (γ = 2 − √2; Bank et al. 1985, Hosea & Shampine 1996).  Each stage is solved by a fixed
  number of Newton iterations with the exact per-cell Jacobian (n_species forward-mode
  products, then a batched n_species × n_species solve); for linear kinetics one iteration is
  exact.  L-stability means a rate k with k·h ≫ 1 relaxes to its quasi-steady state instead of
  oscillating.
* ``T`` integrates transport (diffusion + upwind convection), linear in c, with TR-BDF2 whose
  two stages share the matrix (I − (γ/2) h M) — a tridiagonal solve along each line.  In 2D/3D
  the directions are Strang-split (x(h/2) y(h/2) z(h) y(h/2) x(h/2)), which keeps second order
  and needs only tridiagonal solves (no Krylov iterations, so ``vmap`` never waits for the
  slowest member to converge).  ``transport_method='euler'`` (backward Euler, first order)
  is unconditionally positivity-preserving (each factor is the inverse of an M-matrix).
* ``explicit_step`` is forward Euler on the full operator (with the limited convection scheme
  if asked), for small problems and for comparison with explicit codes.

``integrate`` runs any step function under ``lax.scan``: the saved times are split into
macro-intervals of ``steps_per_macro`` equal steps; each macro-interval can be wrapped in
``jax.checkpoint`` so reverse-mode memory grows like (n_macro + steps_per_macro) states, i.e.
like √(number of steps) with the default choice, instead of linearly.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import fv
from .grid import Grid
from .linalg import solve_lines

GAMMA = 2.0 - math.sqrt(2.0)
G = (1.0 - GAMMA) / (2.0 - GAMMA)  # equals GAMMA/2 for GAMMA = 2 − √2: one matrix per step
C_GAMMA = 1.0 / (GAMMA * (2.0 - GAMMA))
C_N = (1.0 - GAMMA) ** 2 / (GAMMA * (2.0 - GAMMA))


# ------------------------------------------------------------------ transport
def _axis_sweep(coef: fv.AxisCoefficients, c_last, h, method):
    """Advance dc/dt = M c + b along one axis (axis last) over h."""
    if method == "euler":
        return solve_lines(coef.lower, coef.diag, coef.upper, c_last + h * coef.source, h)
    mc = fv.apply_axis(coef._replace(source=jnp.zeros_like(coef.source)), c_last)
    rhs1 = c_last + (G * h) * mc + (GAMMA * h) * coef.source
    y_g = solve_lines(coef.lower, coef.diag, coef.upper, rhs1, G * h)
    rhs2 = C_GAMMA * y_g - C_N * c_last + (G * h) * coef.source
    return solve_lines(coef.lower, coef.diag, coef.upper, rhs2, G * h)


def axis_order(ndim: int) -> list[tuple[int, float]]:
    """Symmetric direction splitting: (axis, fraction of h) — x/2 y/2 z y/2 x/2."""
    if ndim == 1:
        return [(0, 1.0)]
    first = [(a, 0.5) for a in range(ndim - 1)]
    return first + [(ndim - 1, 1.0)] + first[::-1]


def transport_step(grid: Grid, transport: fv.Transport, c, h, method: str = "trbdf2"):
    """Advance the transport part  φ ∂c/∂t = −∇·F  of fields c (n_species, *shape) over h."""
    if method not in ("trbdf2", "euler"):
        raise ValueError(f"transport_method = {method!r}; allowed: 'trbdf2', 'euler'")
    ns = c.shape[0]
    coefs = [fv.axis_coefficients(grid, transport, a, ns, c.dtype) for a in range(grid.ndim)]
    for axis, frac in axis_order(grid.ndim):
        c_last = jnp.moveaxis(c, 1 + axis, -1)
        c = jnp.moveaxis(_axis_sweep(coefs[axis], c_last, frac * h, method), -1, 1 + axis)
    return c


# ------------------------------------------------------------------ local stiff step
def cell_jacobian(f: Callable, t, c):
    """Per-cell Jacobian ∂f_i/∂c_j of a pointwise f, shape (*cell_shape, n, n).

    One batched forward-mode product per species direction (``vmap`` over the basis), so the
    cost is that of n_species evaluations of f's tangent and it is traced once."""
    ns = c.shape[0]
    basis = jnp.broadcast_to(jnp.eye(ns, dtype=c.dtype).reshape((ns, ns) + (1,) * (c.ndim - 1)),
                             (ns,) + c.shape)
    jac = jax.vmap(lambda e: jax.jvp(lambda x: f(t, x), (c,), (e,))[1])(basis)  # (j, i, *shape)
    return jnp.moveaxis(jnp.moveaxis(jac, 0, -1), 0, -2)  # (*shape, i, j)


def _implicit_stage(f, t, rhs, guess, a_h, iterations):
    """Solve y − a_h f(t, y) = rhs per cell with Newton iterations from ``guess``."""
    ns = rhs.shape[0]
    eye = jnp.eye(ns, dtype=rhs.dtype)
    y = guess
    for _ in range(iterations):
        resid = y - a_h * f(t, y) - rhs
        jac = eye - a_h * cell_jacobian(f, t, y)
        r = jnp.moveaxis(resid, 0, -1)[..., None]
        dy = jnp.linalg.solve(jac, r)[..., 0]
        y = y - jnp.moveaxis(dy, -1, 0)
    return y


def reaction_step(f: Callable, t, c, h, newton_iterations: int = 2):
    """TR-BDF2 step of the local system dc/dt = f(t, c) over h (every cell independently)."""
    f_n = f(t, c)
    rhs1 = c + (G * h) * f_n
    y_g = _implicit_stage(f, t + GAMMA * h, rhs1, c, G * h, newton_iterations)
    rhs2 = C_GAMMA * y_g - C_N * c
    return _implicit_stage(f, t + h, rhs2, y_g, G * h, newton_iterations)


# ------------------------------------------------------------------ split and explicit steps
def strang_step(grid: Grid, transport: fv.Transport, reaction: Callable | None,
                transport_method: str = "trbdf2", newton_iterations: int = 2,
                transported: tuple[int, ...] | None = None):
    """Return step(t, h, c) = R(h/2) T(h) R(h/2) c.

    ``transported`` lists the species indices that move (the others, e.g. bound or
    intracellular species and cumulative counters, only react); ``transport`` then describes
    those species only.
    """
    def step(t, h, c):
        if reaction is not None:
            c = reaction_step(reaction, t, c, 0.5 * h, newton_iterations)
        if transported is None:
            c = transport_step(grid, transport, c, h, transport_method)
        else:
            idx = np.asarray(transported)
            c = c.at[idx].set(transport_step(grid, transport, c[idx], h, transport_method))
        if reaction is not None:
            c = reaction_step(reaction, t + 0.5 * h, c, 0.5 * h, newton_iterations)
        return c

    return step


def explicit_step(grid: Grid, transport: fv.Transport, reaction: Callable | None = None,
                  scheme: str = "upwind"):
    """Return step(t, h, c) = c + h (transport + reaction): forward Euler.

    Stable for h ≤ min(cell) φ Δx²/(2 d D) and Courant ≤ 1/2 (limited scheme); used for small
    problems and in the benchmarks against explicit codes."""
    def step(t, h, c):
        rate = fv.divergence(grid, transport, c, scheme)
        if reaction is not None:
            rate = rate + reaction(t, c)
        return c + h * rate

    return step


def explicit_stable_dt(grid: Grid, transport: fv.Transport, n_species: int) -> float:
    """Largest forward-Euler step of the transport operator (Gershgorin bound on M), s."""
    worst = 0.0
    for a in range(grid.ndim):
        cf = fv.axis_coefficients(grid, transport, a, n_species, jnp.float64
                                  if jax.config.jax_enable_x64 else jnp.float32)
        worst = worst + jnp.max(-cf.diag)
    return float(1.0 / worst) if float(worst) > 0 else math.inf


# ------------------------------------------------------------------ time loop
def macro_schedule(save_times, t0: float, max_dt: float, steps_per_macro: int | None = None):
    """Split [t0, save_times[-1]] into macro-intervals of ``steps_per_macro`` equal steps.

    Returns (macro_lengths, save_index, steps_per_macro): the numpy lengths (s) of the
    macro-intervals, for each saved time the number of macro-intervals completed by then (0:
    the initial state), and the number of steps in each.  Step sizes never exceed ``max_dt``; saved times are hit exactly.
    """
    save_times = np.asarray(save_times, dtype=float)
    if save_times.ndim != 1 or save_times.size == 0:
        raise ValueError("save_times must be a non-empty 1D sequence of times (s)")
    if not np.all(np.isfinite(save_times)):
        raise ValueError("save_times contain NaN or inf; allowed: finite times (s)")
    edges = np.concatenate([[t0], save_times])
    lengths = np.diff(edges)
    if np.any(lengths < 0):
        raise ValueError(f"save_times must be >= t0 = {t0} s and non-decreasing")
    if not (max_dt > 0 and np.isfinite(max_dt)):
        raise ValueError(f"max_dt = {max_dt!r} s; allowed: finite > 0")
    total_steps = max(1.0, float(np.sum(np.ceil(lengths / max_dt))))
    if steps_per_macro is None:
        steps_per_macro = max(1, int(round(math.sqrt(total_steps))))
    macro_len = steps_per_macro * max_dt
    pieces, save_index = [], []
    for length in lengths:
        if length > 0:  # a save at an already reached time re-uses the last state
            m = max(1, int(math.ceil(length / macro_len - 1e-12)))
            pieces.extend([length / m] * m)
        save_index.append(len(pieces))  # 0 is the initial state, k the end of macro k − 1
    return np.asarray(pieces), np.asarray(save_index), steps_per_macro


def integrate(step: Callable, state0, save_times, max_dt: float, t0: float = 0.0,
              observe: Callable | None = None, checkpoint: bool = False,
              steps_per_macro: int | None = None, progress: Callable | None = None):
    """Advance ``state0`` (any pytree) with ``step(t, h, state)`` and return saved observations.

    Args:
        step: one time step; pure, jit-able.
        state0: initial state pytree.
        save_times: increasing times (s) at which ``observe(state)`` is recorded (static).
        max_dt: largest step (s).  Steps are equal within each macro-interval.
        observe: maps a state to what is saved (default: the state itself).
        checkpoint: wrap each macro-interval in ``jax.checkpoint`` (reverse-mode memory
            ~ √steps states instead of all of them).
        progress: optional host callback ``progress(t_seconds)`` called after each
            macro-interval (through ``jax.debug.callback``).
    Returns:
        (final state, saved observations stacked along a leading time axis).
    """
    observe = observe or (lambda s: s)
    lengths, save_index, n_sub = macro_schedule(save_times, t0, max_dt, steps_per_macro)
    dtype = jax.tree_util.tree_leaves(state0)[0].dtype

    def macro(carry, length):
        state, t = carry
        h = length / n_sub

        def body(c2, _):
            s, tt = c2
            return (step(tt, h, s), tt + h), None

        (state, t), _ = jax.lax.scan(body, (state, t), None, length=n_sub)
        if progress is not None:
            jax.debug.callback(progress, t)
        return (state, t), observe(state)

    if checkpoint:
        macro = jax.checkpoint(macro)
    (state, _), obs = jax.lax.scan(macro, (state0, jnp.asarray(t0, dtype)),
                                   jnp.asarray(lengths, dtype))
    obs = jax.tree_util.tree_map(lambda first, rest: jnp.concatenate([first[None], rest]),
                                 observe(state0), obs)
    saved = jax.tree_util.tree_map(lambda x: x[save_index], obs)
    return state, saved
