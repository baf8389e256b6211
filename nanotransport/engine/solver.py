"""Time integration: stiff local terms, implicit transport, Strang splitting, saving.

Scheme (second order in time, L-stable pieces; the step is set by accuracy, not stiffness):

    c(t + h) ≈ R(h/2) ∘ T(h) ∘ R(h/2) c(t)                               (Strang splitting)

* ``R`` integrates the local (per-cell) reactions dc/dt = f(t, c) — exchange between phases,
  release, binding, uptake, with rates up to 1e2 1/s and beyond — with the two-stage,
  L-stable, stiffly accurate SDIRK of Alexander (1977), γ = 1 − 1/√2.  Each stage is a
  backward-Euler-like equation solved by a fixed number of Newton iterations with the exact
  per-cell Jacobian (forward-mode products, then an unpivoted LU with the species axes first,
  ``linalg.local_lu``: one fused update per elimination step over contiguous cells); when the
  kinetics' traced program shows a sparse Jacobian (``sparsity.py``), one product per group of
  columns that share no row and an elimination over the nonzeros only (``linalg.sparse_lu``);
  on the CPU, in cache-sized blocks of cells (``cell_blocks.py``).  For linear kinetics one
  iteration is exact.  L-stability means a rate k with k·h ≫ 1 relaxes to its
  quasi-steady state instead of oscillating.  Cells where the second-order result would turn
  negative (stiff nonlinear kinetics far from equilibrium, e.g. receptor binding) take the
  backward-Euler result instead (positive, first order there).  (TR-BDF2 was used first: its
  explicit trapezoidal half pushed such kinetics out of the region with a physical root.)
* ``T`` integrates transport (diffusion + upwind convection), linear in c, with the same SDIRK2,
  whose two stages share the matrix (I − γ h M) — a tridiagonal solve along each line.  In 2D/3D
  the directions are Strang-split (x(h/2) y(h/2) z(h) y(h/2) x(h/2)), which keeps second order
  and needs only tridiagonal solves (no Krylov iterations, so ``vmap`` never waits for the
  slowest member to converge).  ``transport_method='euler'`` (backward Euler, first order) is
  unconditionally positivity-preserving (each solve is the inverse of an M-matrix).
  ``convection='limited'`` adds the second-order van Leer correction by deferred correction
  (explicit, FCT-limited anti-diffusive flows on the right-hand side; ``_limited_sweep``).
* ``implicit_step`` is SDIRK2 on the whole operator at once (transport, first-order decay and
  sources inside the solve): no splitting error, so around sharp sources the step really is set
  by accuracy (DR3D at 64³: error 1.1e-5 at 180-s steps against 2e-2 for the split step at 60 s).
  In 2D/3D each stage is a Krylov solve preconditioned by fast diagonalization (``fdm.py``,
  exact for uniform coefficients) or geometric multigrid (``multigrid.py``);
  ``transport_method='unsplit'`` uses it inside ``strang_step``.
* ``explicit_step`` is forward Euler on the full operator (with the limited convection scheme
  if asked), for small problems and for comparison with explicit codes.

``integrate`` runs any step function under ``lax.scan``: the saved times are split into
macro-intervals of ``steps_per_macro`` equal steps; each macro-interval can be wrapped in
``jax.checkpoint`` so reverse-mode memory grows like (n_macro + steps_per_macro) states, i.e.
like √(number of steps) with the default choice, instead of linearly.  Every interval between
saved times holds whole macro-intervals, so saved times closer than steps_per_macro · max_dt
make the steps smaller than max_dt; ``StepWarning`` when that more than doubles their number.
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import cell_blocks, fdm, fv, sparsity
from .grid import Grid
from .linalg import local_lu, local_lu_solve, solve_lines, sparse_lu, sparse_lu_solve

GAMMA = 1.0 - 1.0 / math.sqrt(2.0)  # Alexander's L-stable, stiffly accurate 2-stage SDIRK
W = (1.0 - GAMMA) / GAMMA  # (1 − γ)/γ ≈ 2.414: second stage rhs = c + W (Y₁ − c)


# ------------------------------------------------------------------ transport
def _axis_sweep(coef: fv.AxisCoefficients, c_last, h, method):
    """Advance dc/dt = M c + b along one axis (axis last) over h.

    SDIRK2: (I − γhM) Y₁ = c + γh b;  (I − γhM) Y₂ = c + w (Y₁ − c) + γh b,  w = (1 − γ)/γ.
    L-stable and second order; positivity is guaranteed only by ``method='euler'``."""
    if method == "euler":
        return solve_lines(coef.lower, coef.diag, coef.upper, c_last + h * coef.source, h)
    return line_stages(coef.lower, coef.diag, coef.upper, coef.source, c_last, h)[1]


def line_stages(lower, diag, upper, source, c, h, source_end=None):
    """Both stages (Y₁, Y₂) of the SDIRK2 step of dc/dt = M c + s over h, M tridiagonal along
    the last axis (sub-, main and super-diagonal ``lower``, ``diag``, ``upper``); s is
    ``source`` at the first stage's time t + γh and ``source_end`` (default: the same) at t + h:

        (I − γhM) Y₁ = c + γh s₁,   (I − γhM) Y₂ = c + w (Y₁ − c) + γh s₂,   w = (1 − γ)/γ.

    Y₂ is the new value.  The stages are returned so that a caller can integrate what crosses
    a boundary during the step with the scheme's own quadrature, h Σ b_i F(Y_i) with the
    Butcher weights b = (1 − γ, γ): exact for the discrete balance (``capillary`` does)."""
    y1 = solve_lines(lower, diag, upper, c + (GAMMA * h) * source, GAMMA * h)
    source_end = source if source_end is None else source_end
    rhs2 = (1.0 - W) * c + W * y1 + (GAMMA * h) * source_end
    return y1, solve_lines(lower, diag, upper, rhs2, GAMMA * h)


def axis_order(ndim: int) -> list[tuple[int, float]]:
    """Symmetric direction splitting: (axis, fraction of h) — x/2 y/2 z y/2 x/2."""
    if ndim == 1:
        return [(0, 1.0)]
    first = [(a, 0.5) for a in range(ndim - 1)]
    return first + [(ndim - 1, 1.0)] + first[::-1]


def transport_coefficients(grid: Grid, transport: fv.Transport, n_species: int, dtype):
    """The tridiagonal coefficients of every axis (``fv.axis_coefficients``), for
    ``transport_step(..., coefficients=)``: compute them once outside a time loop when the
    transport does not change with time."""
    return [fv.axis_coefficients(grid, transport, a, n_species, dtype) for a in range(grid.ndim)]


def convection_faces(grid: Grid, transport: fv.Transport, n_species: int, dtype):
    """The ``fv.ConvectionFaces`` of every axis, for ``transport_step(..., faces=)`` with
    ``convection='limited'``: compute them once outside a time loop."""
    return [fv.convection_faces(grid, transport, a, n_species, dtype) for a in range(grid.ndim)]


CONVECTION = ("upwind", "limited")
# explicit weights of the deferred correction in stage 2 (ARS(2,2,2) with Alexander's SDIRK2):
# h (E0 C(c) + E1 C(Y₁)), E1 = 1/(2γ), E0 = γ − 1/(2γ)  (E0 + E1 = γ: consistent in stage 2)
E1 = 1.0 / (2.0 * GAMMA)
E0 = GAMMA - E1


def _limited_sweep(coef: fv.AxisCoefficients, faces: fv.ConvectionFaces, c_last, h, method):
    """Advance dc/dt = M c + b + C(c) along one axis (axis last) over h, M the upwind
    tridiagonal operator, C(c) = −ΔG(c)/(Vφ) the anti-diffusive van Leer correction
    (``fv.anti_diffusive_flux``), by deferred correction: M stays implicit, C is explicit.

    'sdirk2' pairs Alexander's SDIRK2 with the explicit tableau of Ascher, Ruuth & Spiteri
    (1997, ARS(2,2,2)), second order in time for the whole step:

        (I − γhM) Y₁ = c + γh b + γh C(c)
        (I − γhM) Y₂ = c + w (Y₁ − c) + γh b + h [(γ − 1/(2γ)) C(c) + 1/(2γ) C(Y₁)]

    'euler':  (I − hM) c¹ = c + h b + h C(c)  (first order in time).

    Each correction is added through ``fv.bounded_correction``: it cannot move the stage's
    right-hand side outside the local range of that right-hand side without it (Zalesak's
    limiter), so it stays non-negative where that is, and no new local extremum is created.
    With 'euler' the step is positive and bounded for every Courant number ((I − hM)⁻¹ is
    non-negative, its rows summing to one for divergence-free flow), and so is stage 1 of
    'sdirk2'.  Stage 2 starts from (1 − w) c + w Y₁, with a negative weight 1 − w ≈ −1.41 on c,
    and carries the explicit correction w·γh C(c) = (1 − γ)h C(c) of stage 1 unlimited: on a
    square pulse it stays positive and bounded up to Courant number 1 and undershoots from
    about 1.5 (−0.015 at 1.5, −0.13 at 2).  So, as in ``reaction_step``, every line (all cells
    along the axis, so that conservation holds) where the result turns negative from
    non-negative data takes the backward-Euler result instead: first order in time there,
    positive for every step (a ``lax.cond``: computed only when needed; under ``vmap`` always).
    Where the limiter does not act (smooth data, resolved steps) the scheme is the second-order
    MUSCL scheme in space and time.
    """
    vol_phi = faces.vol_phi
    g0 = fv.anti_diffusive_flux(faces, c_last)

    def euler():
        q = c_last + h * coef.source
        rhs = fv.bounded_correction(q, h * g0, vol_phi)
        return solve_lines(coef.lower, coef.diag, coef.upper, rhs, h)

    if method == "euler":
        return euler()
    a_h = GAMMA * h
    q1 = c_last + a_h * coef.source
    y1 = solve_lines(coef.lower, coef.diag, coef.upper,
                     fv.bounded_correction(q1, a_h * g0, vol_phi), a_h)
    q2 = (1.0 - W) * c_last + W * y1 + a_h * coef.source
    g = h * (E0 * g0 + E1 * fv.anti_diffusive_flux(faces, y1))
    y2 = solve_lines(coef.lower, coef.diag, coef.upper, fv.bounded_correction(q2, g, vol_phi),
                     a_h)
    # lines that turned negative (beyond round-off, from non-negative data) take the
    # backward-Euler result
    floor = -64.0 * jnp.finfo(y2.dtype).eps * jnp.max(jnp.abs(c_last), axis=-1, keepdims=True)
    bad = jnp.any((y2 < floor) & (c_last >= 0.0), axis=-1, keepdims=True)
    return jax.lax.cond(jnp.any(bad), lambda y: jnp.where(bad, euler(), y),
                        lambda y: y, y2)


def transport_step(grid: Grid, transport: fv.Transport, c, h, method: str = "sdirk2",
                   coefficients=None, convection: str = "upwind", faces=None):
    """Advance the transport part  φ ∂c/∂t = −∇·F  of fields c (n_species, *shape) over h:
    'sdirk2' direction-split tridiagonal sweeps, 'euler' the same with backward Euler,
    'unsplit' all directions at once (``implicit_step``: preconditioned Krylov).
    ``convection``: 'upwind' (first order, the matrix inverted) or 'limited' (second-order
    van Leer MUSCL by deferred correction, ``_limited_sweep``; split methods only).
    ``coefficients``: those of ``transport_coefficients`` for c's species and dtype (split
    methods only), if already computed; ``faces``: those of ``convection_faces`` likewise."""
    if convection not in CONVECTION:
        raise ValueError(f"convection = {convection!r}; allowed: 'upwind', 'limited'")
    if method == "unsplit":
        if convection != "upwind":
            raise ValueError(f"convection = {convection!r} with transport_method = 'unsplit'; "
                             "allowed there: 'upwind' ('limited' needs 'sdirk2' or 'euler')")
        return implicit_step(grid, transport, c, h)
    if method not in ("sdirk2", "euler"):
        raise ValueError(f"transport_method = {method!r}; allowed: 'sdirk2', 'euler', "
                         "'unsplit'")
    coefs = coefficients
    if coefs is None:
        coefs = transport_coefficients(grid, transport, c.shape[0], c.dtype)
    limited = convection == "limited" and transport.velocity is not None
    if limited and faces is None:
        faces = convection_faces(grid, transport, c.shape[0], c.dtype)
    for axis, frac in axis_order(grid.ndim):
        c_last = jnp.moveaxis(c, 1 + axis, -1)
        if limited and transport.velocity[axis] is not None:
            new = _limited_sweep(coefs[axis], faces[axis], c_last, frac * h, method)
        else:
            new = _axis_sweep(coefs[axis], c_last, frac * h, method)
        c = jnp.moveaxis(new, -1, 1 + axis)
    return c


def _stage_level(grid: Grid, coefs, weight, a_h, decay):
    """The volume-weighted stage operator W (1 + a_h k) − a_h W Σ_axes L_axis as a multigrid
    ``Level`` (W = V φ), from the axis coefficients (axis last, per V φ)."""
    from .multigrid import Level

    diag = weight * (1.0 + a_h * decay)
    off, off_t = [], []
    for axis, cf in enumerate(coefs):
        back = lambda x, ax=axis: jnp.moveaxis(x, -1, 1 + ax)  # noqa: E731
        diag = diag - a_h * weight * back(cf.diag)
        n = cf.diag.shape[-1]
        w_last = jnp.moveaxis(weight, 1 + axis, -1)
        off.append(back(-a_h * (w_last * cf.upper)[..., : n - 1]))
        off_t.append(back(-a_h * (w_last * cf.lower)[..., 1:]))
    return Level(diag, tuple(off), tuple(off_t))


def _separable(grid: Grid, transport: fv.Transport, decay) -> bool:
    """True when the stage operator is a sum of identical one-axis operators (uniform
    diffusivity, capacity, decay, velocity and boundary conditions), so ``fdm`` inverts it
    exactly (with convection: while the cell Péclet range allows, ``fdm.axis_eigen``)."""
    leaves = [transport.diffusivity, transport.capacity, decay]
    leaves += jax.tree_util.tree_leaves(transport.boundaries)
    leaves += jax.tree_util.tree_leaves(transport.velocity)
    return all(fdm.uniform(x, grid.ndim) for x in leaves)


PRECONDITIONERS = ("auto", "fdm", "scaled-fdm", "averaged-fdm", "multigrid")


def stage_system(grid: Grid, transport: fv.Transport, c, h, decay=0.0,
                 preconditioner: str = "auto"):
    """The linear system of ``implicit_step``'s stages (2D/3D): (level, weight, source,
    symmetric, precond) with ``level`` the volume-weighted stage matrix A = W B
    (``multigrid.Level``, W = V φ, B = I − γh(L − k)), ``source`` S (per V φ, as in the
    right-hand side c + γh S), ``symmetric`` False with convection, and ``precond``
    r ↦ ≈ A⁻¹ r:

    * 'fdm': fast diagonalization, the exact A⁻¹ (``fdm.stage_inverse``); only for separable
      problems (uniform diffusivity, capacity, decay, velocity and boundaries; with convection
      exact while the cell Péclet number keeps the symmetrizing similarity within
      ``fdm.SIMILARITY_RANGE``, an approximate inverse beyond).
    * 'scaled-fdm': P = S Ā S, Ā the separable operator of the averaged coefficients (geometric
      mean D, mean φ, k, boundaries; no velocity), S = (diag A / diag Ā)^½
      (``fdm.averaged_inverse``).
    * 'averaged-fdm': P = Ā, no diagonal scaling.
    * 'multigrid': a geometric multigrid V-cycle of A's symmetric part, run in float32
      (``multigrid.py``: aggregation with halved coarse couplings, Jacobi ω = 6/7).
    * 'auto': 'fdm' where it applies, else 'multigrid', the fastest by measurement
      (benchmarks/heterogeneous.py, benchmarks/RESULTS.md: 64³ DR3D with a 10× diffusivity
      jump and a 10×-range decay map, CG to 1e-10 needs 7-9 V-cycles per stage against 29-31
      applications of 'scaled-fdm' and 22-34 of 'averaged-fdm'; with the Galerkin V-cycle of
      2026-12-06 (13-17 cycles) the V-cycle run already took 0.70-0.86× the wall time of
      'averaged-fdm' and 0.71× that of 'scaled-fdm')."""
    from . import multigrid

    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner = {preconditioner!r}; allowed: {PRECONDITIONERS}")
    ns = c.shape[0]
    dtype = c.dtype
    coefs = [fv.axis_coefficients(grid, transport, a, ns, dtype) for a in range(grid.ndim)]
    k = jnp.broadcast_to(jnp.asarray(decay, dtype), c.shape)
    src = sum(jnp.moveaxis(cf.source, -1, 1 + a) for a, cf in enumerate(coefs))
    a_h = GAMMA * h
    weight = jnp.asarray(grid.volume, dtype)[None] * jnp.broadcast_to(
        jnp.asarray(transport.capacity, dtype), c.shape)
    level = _stage_level(grid, coefs, weight, a_h, k)
    symmetric = transport.velocity is None or all(v is None for v in transport.velocity)
    exact = _separable(grid, transport, decay)
    kind = preconditioner
    if kind == "auto":
        kind = "fdm" if exact else "multigrid"
    if kind == "fdm":
        if not exact:
            raise ValueError(
                "preconditioner = 'fdm' needs uniform diffusivity, capacity, decay, velocity "
                "and boundary conditions; this problem has not; allowed here: 'auto', "
                "'scaled-fdm', 'averaged-fdm', 'multigrid'")
        inverse = fdm.stage_inverse(coefs, a_h, decay)
        precond = lambda r: inverse(r / weight)  # noqa: E731  (W B)⁻¹, exact
    elif kind == "multigrid":
        precond = multigrid.low_precision(multigrid.hierarchy(multigrid.symmetric_part(level)))
    else:
        precond = fdm.averaged_inverse(grid, transport, k, a_h, level.diag,
                                       scaled=kind == "scaled-fdm")
    return level, weight, src, symmetric, precond


def implicit_step(grid: Grid, transport: fv.Transport | Callable, c, h, decay=0.0,
                  tol: float | None = None, maxiter: int = 500, t=0.0,
                  preconditioner: str = "auto"):
    """Unsplit SDIRK2 step of  φ ∂c/∂t = −∇·F(c) − φ k c + s  (transport, first-order decay
    ``decay`` = k in 1/s, and the sources of ``transport``) over h, every direction at once:

        (I − γh(L − k)) Y₁ = c + γh S(t + γh),   (I − γh(L − k)) Y₂ = c + w (Y₁ − c) + γh S(t + h).

    S holds the sources of ``transport`` and the boundary values (``Value``, ``Robin``,
    ``Inflow``).  ``transport`` may be a function of time, ``transport(t) -> Transport``, for
    sources and boundary values that change with time (a plasma concentration driving
    exchange, a heated boundary): S is then taken at each stage's own time, t + γh and t + h.
    That is the SDIRK2 tableau exactly (Y₁ − c = γh F(t + γh, Y₁), so the second stage's
    w (Y₁ − c) is (1 − γ)h F(t + γh, Y₁)), second order in time (tested against a
    manufactured solution).  The operator itself (diffusivity, capacity, velocity, the
    coefficients of the boundary conditions) is taken at t + γh and must not change with t.

    Second order in time with no splitting error (the direction-split ``transport_step`` has
    an O(h) error around sharp sources at large steps).  1D: tridiagonal direct solves; 2D/3D:
    each stage is a Krylov solve of the volume-weighted system (CG when there is no convection,
    BiCGStab otherwise) to a relative residual ``tol`` (default 1e-10 in float64, 1e-5 in
    float32), preconditioned as ``preconditioner`` says (``stage_system``): by default fast
    diagonalization (``fdm.py``: the exact inverse, so CG or BiCGStab stops after one
    iteration) when the coefficients and the velocity are uniform, else a geometric multigrid
    V-cycle (``multigrid.py``); fast diagonalization of the coefficient-averaged operator
    ('scaled-fdm', 'averaged-fdm') is the alternative for variable coefficients."""
    from . import multigrid

    ns = c.shape[0]
    dtype = c.dtype
    a_h = GAMMA * h
    if callable(transport):
        transport, at_end = transport(t + a_h), transport(t + h)
    else:
        at_end = None

    def sources(tr):
        return sum(jnp.moveaxis(fv.axis_coefficients(grid, tr, a, ns, dtype).source, -1, 1 + a)
                   for a in range(grid.ndim))

    if grid.ndim == 1:
        cf = fv.axis_coefficients(grid, transport, 0, ns, dtype)
        k = jnp.broadcast_to(jnp.asarray(decay, dtype), c.shape)
        src_end = cf.source if at_end is None else sources(at_end)
        return line_stages(cf.lower, cf.diag - k, cf.upper, cf.source, c, h,
                           source_end=src_end)[1]
    level, weight, src, symmetric, precond = stage_system(grid, transport, c, h, decay,
                                                          preconditioner)
    src_end = src if at_end is None else sources(at_end)
    tol = tol if tol is not None else (1e-10 if dtype == jnp.float64 else 1e-5)

    def stage(i, y):  # stage 1 from y = c (then W (y − c) = 0), stage 2 from y = Y₁
        rhs = c + W * (y - c) + a_h * jnp.where(i == 0, src, src_end)
        return multigrid.solve(level, weight * rhs, symmetric, tol, maxiter, x0=y,
                               preconditioner=precond).solution

    return jax.lax.fori_loop(0, 2, stage, c)  # one traced (and compiled) Krylov solve


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


def _state_jacobian(f, t, y, n_state):
    """∂f_i/∂y_j per cell over the first ``n_state`` species (the state), at y, with the
    species axes first: shape (i, j, *cell_shape)."""
    ns = n_state
    z = y[:ns]
    basis = jnp.broadcast_to(jnp.eye(ns, dtype=y.dtype).reshape((ns, ns) + (1,) * (z.ndim - 1)),
                             (ns,) + z.shape)
    g = lambda zz: f(t, y.at[:ns].set(zz))[:ns]  # noqa: E731
    jac = jax.vmap(lambda e: jax.jvp(g, (z,), (e,))[1])(basis)  # (j, i, *cell_shape)
    return jnp.swapaxes(jac, 0, 1)


def _state_eye(ns, like):
    return jnp.eye(ns, dtype=like.dtype).reshape((ns, ns) + (1,) * (like.ndim - 1))


def _sparse_state_jacobian(f, t, y, n_state, pattern):
    """The structural nonzeros {(i, j): ∂f_i/∂y_j} (arrays over the cells) of the state
    Jacobian, ``pattern`` (``sparsity.species_pattern``), from one forward product per group of
    columns that share no row (``sparsity.column_colours``): 5 products instead of 10 for the
    default scenario."""
    ns = n_state
    z = y[:ns]
    colours = sparsity.column_colours(np.asarray(pattern))
    seeds = np.zeros((len(colours), ns))
    for c, columns in enumerate(colours):
        seeds[c, list(columns)] = 1.0
    basis = jnp.broadcast_to(jnp.asarray(seeds, y.dtype).reshape(seeds.shape + (1,) * (z.ndim - 1)),
                             (len(colours),) + z.shape)
    g = lambda zz: f(t, y.at[:ns].set(zz))[:ns]  # noqa: E731
    products = jax.vmap(lambda e: jax.jvp(g, (z,), (e,))[1])(basis)  # (colour, i, *cells)
    colour = {j: c for c, columns in enumerate(colours) for j in columns}
    return {(i, j): products[colour[j], i] for i in range(ns) for j in range(ns)
            if pattern[i][j]}


def _newton_pattern(f, t, y, ns):
    """The state Jacobian's structural pattern (diagonal included) as a hashable tuple, or None
    where a dense elimination is as cheap (fewer than 3 species, or LU fill-in over half the
    matrix)."""
    if ns < 3:
        return None
    pattern = sparsity.species_pattern(lambda yy: f(t, yy), y)[:ns, :ns] | np.eye(ns, dtype=bool)
    filled = pattern.copy()
    for k in range(ns - 1):
        filled[np.ix_(filled[k + 1:, k].nonzero()[0] + k + 1,
                      filled[k, k + 1:].nonzero()[0] + k + 1)] = True
    if filled.sum() > 0.5 * ns * ns:
        return None
    return tuple(tuple(bool(v) for v in row) for row in pattern)


def _lu_solve(lu, b):
    return sparse_lu_solve(lu, b) if isinstance(lu, dict) else local_lu_solve(lu, b)


def _newton_parts(f, ns, pattern, t, rhs, y, a_h):
    """(f(t, y), LU factors of M = I − a_h J, Newton step δ = M⁻¹ F) at y, with
    F = (y − a_h f − rhs) and J = ∂f_s/∂y_s on the state species [0, ns): dense, or on the
    structural nonzeros ``pattern`` (``_newton_pattern``; the same numbers, fewer operations)."""
    value = f(t, y)
    resid = (y - a_h * value - rhs)[:ns]
    if pattern is None:
        lu = local_lu(_state_eye(ns, rhs) - a_h * _state_jacobian(f, t, y, ns))
        return value, lu, local_lu_solve(lu, resid)
    m = {ij: -a_h * v for ij, v in _sparse_state_jacobian(f, t, y, ns, pattern).items()}
    for i in range(ns):
        m[i, i] = 1.0 + m[i, i] if (i, i) in m else jnp.ones_like(resid[i])
    lu = sparse_lu(m, ns)
    return value, lu, sparse_lu_solve(lu, resid)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _newton_iteration(g, ns, pattern, t, rhs, y, a_h, *consts):
    """One Newton iteration y − δ for y − a_h g(t, y, *consts) = rhs (``_newton_parts``)."""
    _, _, delta = _newton_parts(lambda tt, yy: g(tt, yy, *consts), ns, pattern, t, rhs, y, a_h)
    return y.at[:ns].add(-delta)


@_newton_iteration.defjvp
def _newton_iteration_jvp(g, ns, pattern, primals, tangents):
    """Exact tangent of one Newton iteration y⁺ = y − M⁻¹F, M = I − a_h J:

        dy⁺ = dy − M⁻¹ (dF − dM δ),   δ = M⁻¹ F,
        dF = dy − d(a_h) g − a_h dg − drhs,   dM δ = −d(a_h) J δ − a_h (dJ) δ,

    with dg and (dJ) δ, the directional second derivative, from one nested forward product.
    Automatic differentiation of the iteration would instead differentiate the whole Jacobian
    (n_state second-order products) and its LU factorization: this rule costs per tangent one
    nested product and one triangular solve with the iteration's own factors, and is the same
    derivative (verified against finite differences in tests/test_design.py)."""
    t, rhs, y, a_h, *consts = primals
    dt, drhs, dy, da_h, *dconsts = tangents
    value, lu, delta = _newton_parts(lambda tt, yy: g(tt, yy, *consts), ns, pattern, t, rhs, y,
                                     a_h)
    delta_full = jnp.zeros_like(y).at[:ns].set(delta)

    def value_and_directional(tt, yy, *cs):  # (g, J δ) at (tt, yy, cs)
        return jax.jvp(lambda z: g(tt, z, *cs), (yy,), (delta_full,))

    (_, j_delta), (dg, dj_delta) = jax.jvp(value_and_directional, (t, y, *consts),
                                           (dt, dy, *dconsts))
    d_resid = (dy - da_h * value - a_h * dg - drhs)[:ns]
    dm_delta = (-da_h * j_delta - a_h * dj_delta)[:ns]
    return y.at[:ns].add(-delta), dy.at[:ns].add(-_lu_solve(lu, d_resid - dm_delta))


def _implicit_stage(f, t, rhs, guess, a_h, iterations, n_state):
    """Solve y − a_h f(t, y) = rhs per cell with Newton iterations from ``guess``: each
    iteration evaluates f and its state Jacobian J at the iterate, factors I − a_h J
    (``local_lu``) and solves.

    Only the first ``n_state`` species enter Newton; the others are counters (nothing depends
    on them), whose implicit equation is explicit once the state is known.  The iterations run
    in a ``fori_loop`` so the Jacobian code is traced (and compiled) once.  (A Jacobian frozen
    over a stage — simplified Newton — is cheaper per iteration but diverged on the stiff,
    quadratic exchange of tests/test_engine.py at 5-s steps.)  Derivatives of each iteration
    come from its hand-written rule (``_newton_iteration_jvp``); ``jax.closure_convert`` makes
    the arrays f closes over (rate parameters, plasma levels) explicit arguments for it."""
    ns = n_state
    t = jnp.asarray(t, rhs.dtype)
    a_h = jnp.asarray(a_h, rhs.dtype)
    g, consts = jax.closure_convert(f, t, guess)
    pattern = _newton_pattern(f, t, guess, ns)
    y = jax.lax.fori_loop(
        0, iterations, lambda _, y: _newton_iteration(g, ns, pattern, t, rhs, y, a_h, *consts),
        guess)
    if ns < y.shape[0]:
        y = y.at[ns:].set(rhs[ns:] + a_h * f(t, y)[ns:])
    return y


def reaction_step(f: Callable, t, c, h, newton_iterations: int = 2, n_state: int | None = None,
                  positive: bool = True, cell_data=None, cells_per_block: int | None = None):
    """SDIRK2 step of the local system dc/dt = f(t, c) over h (every cell independently):

        Y₁ − γh f(t + γh, Y₁) = c,     Y₂ − γh f(t + h, Y₂) = c + ((1 − γ)/γ)(Y₁ − c).

    Each stage is a backward-Euler-like equation, well posed for stiff nonlinear kinetics.  No
    second-order linear method is positive for every step (Bolley & Crouzeix 1978), so with
    ``positive=True`` every cell where a non-negative state component would turn negative takes
    the backward-Euler result instead (first order there, positive, and — like any Runge–Kutta
    method — exact for linear invariants, so conservation is unaffected).  That stage is
    solved only when some cell needs it (a ``lax.cond``: 30 % of a thermodox run's time when it
    was always solved; under ``vmap`` the cond is a select and it is always solved).
    ``n_state``: species [0, n_state) are solved by Newton; species from ``n_state`` on must be
    counters — their rates may depend on the state but nothing may depend on them (cumulative
    amounts, exposure integrals) — and are integrated by the same formulas without entering the
    Newton system (cheaper Jacobians and solves).

    ``cell_data``: the arrays f reads per cell, as a pytree; given, f is called as
    f(t, c, cell_data), and on a CPU a large grid is solved in blocks of about
    ``cells_per_block`` cells (``cell_blocks.py``: 2.3× faster at 48³, bit-identical; None: the
    backend's default, 0: the whole grid at once)."""
    if cell_data is not None:
        layout = cell_blocks.block_layout(math.prod(c.shape[1:]), cells_per_block)

        def on_cells(cc, data):
            return reaction_step(lambda tt, y: f(tt, y, data), t, cc, h, newton_iterations,
                                 n_state, positive)

        if layout is None:
            return on_cells(c, cell_data)
        return cell_blocks.map_blocks(on_cells, c, cell_data, layout)
    n_state = c.shape[0] if n_state is None else n_state
    # the stages run as iterations of one scan, so the kinetics, their Jacobian and the
    # Newton rule are traced and compiled once per step, not once per stage (a third of the
    # compile time of a heated model): stage k solves at time t_k with step a_k from the
    # right-hand side c + [k = 1] W (Y₁ − c), starting from c (k = 0) or Y₁
    t_stage = jnp.stack([t + GAMMA * h, t + h, t + h]).astype(c.dtype)
    a_stage = jnp.stack([GAMMA * h, GAMMA * h, h]).astype(c.dtype)

    def turned_negative(y2):
        return jnp.any((y2[:n_state] < 0.0) & (c[:n_state] >= 0.0), axis=0)

    def stage(stages, k):
        y1 = stages[0]
        rhs = jnp.where(k == 1, c + W * (y1 - c), c)
        guess = jnp.where(k == 0, c, y1)

        def solve(_):
            return _implicit_stage(f, t_stage[k], rhs, guess, a_stage[k], newton_iterations,
                                   n_state)

        # the backward-Euler stage (k = 2) only when some cell needs it (see above)
        needed = (k < 2) | jnp.any(turned_negative(stages[1]))
        return stages.at[k].set(jax.lax.cond(needed, solve, lambda _: guess, None)), None

    n_stages = 3 if positive else 2
    stages, _ = jax.lax.scan(stage, jnp.broadcast_to(c, (3,) + c.shape), jnp.arange(n_stages))
    if not positive:
        return stages[1]
    return jnp.where(turned_negative(stages[1])[None], stages[2], stages[1])


# ------------------------------------------------------------------ split and explicit steps
def strang_step(grid: Grid, transport: fv.Transport, reaction: Callable | None,
                transport_method: str = "sdirk2", newton_iterations: int = 2,
                transported: tuple[int, ...] | None = None, convection: str = "upwind"):
    """Return step(t, h, c) = R(h/2) T(h) R(h/2) c.

    ``transported`` lists the species indices that move (the others, e.g. bound or
    intracellular species and cumulative counters, only react); ``transport`` then describes
    those species only.  ``convection``: 'upwind' or 'limited' (``transport_step``).
    """
    if convection not in CONVECTION:
        raise ValueError(f"convection = {convection!r}; allowed: 'upwind', 'limited'")

    def step(t, h, c):
        if reaction is not None:
            c = reaction_step(reaction, t, c, 0.5 * h, newton_iterations)
        if transported is None:
            c = transport_step(grid, transport, c, h, transport_method, convection=convection)
        else:
            idx = np.asarray(transported)
            c = c.at[idx].set(transport_step(grid, transport, c[idx], h, transport_method,
                                             convection=convection))
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
class StepWarning(UserWarning):
    """``integrate`` takes more than twice the steps that ``max_dt`` and the saved times need,
    because every interval between saved times gets whole macro-intervals of
    ``steps_per_macro`` steps (see ``integrate``: pass ``steps_per_macro``)."""


def macro_schedule(save_times, t0: float, max_dt: float, steps_per_macro: int | None = None,
                   fine_windows=()):
    """Split [t0, save_times[-1]] into macro-intervals of ``steps_per_macro`` equal steps.

    ``fine_windows`` is a sequence of (start, end, max_dt) (s) inside which the step is at most
    that max_dt (their edges become unsaved breakpoints).
    Returns (macro_lengths, save_index, steps_per_macro): the numpy lengths (s) of the
    macro-intervals, for each saved time the number of macro-intervals completed by then (0:
    the initial state), and the number of steps in each.  Steps never exceed the local largest
    step; saved times are hit exactly.

    Each interval between consecutive breakpoints (t0, saved times, window edges) of length L
    and largest step Δt is split into m = ⌈L/(n Δt)⌉ macro-intervals of n = ``steps_per_macro``
    steps, so its step is h = L/(m n) ≤ Δt.  The default n = round(√N), N = Σ ⌈L/Δt⌉ the fewest
    steps that hit every breakpoint, keeps reverse-mode memory ~ √N; but an interval shorter
    than n Δt then takes n steps of h = L/n, possibly far below Δt (``StepWarning``).
    """
    return _schedule(save_times, t0, max_dt, steps_per_macro, fine_windows)[:3]


def _schedule(save_times, t0, max_dt, steps_per_macro, fine_windows):
    """``macro_schedule``'s three results, then the largest step allowed in each
    macro-interval (s) and the fewest steps N = Σ ⌈L/Δt⌉ that hit every breakpoint."""
    save_times = np.asarray(save_times, dtype=float)
    if save_times.ndim != 1 or save_times.size == 0:
        raise ValueError("save_times must be a non-empty 1D sequence of times (s)")
    if not np.all(np.isfinite(save_times)):
        raise ValueError("save_times contain NaN or inf; allowed: finite times (s)")
    if np.any(np.diff(np.concatenate([[t0], save_times])) < 0):
        raise ValueError(f"save_times must be >= t0 = {t0} s and non-decreasing")
    if not (max_dt > 0 and np.isfinite(max_dt)):
        raise ValueError(f"max_dt = {max_dt!r} s; allowed: finite > 0")
    t_end = save_times[-1]
    edges = {float(t0), *map(float, save_times)}
    for a, b, _ in fine_windows:
        edges.update(x for x in (a, b) if t0 < x < t_end)
    edges = np.asarray(sorted(edges))

    def local_dt(a, b):
        dts = [w_dt for w_a, w_b, w_dt in fine_windows if a < w_b and b > w_a]
        return min([max_dt] + dts)

    lengths = np.diff(edges)
    dts = np.asarray([local_dt(a, b) for a, b in zip(edges[:-1], edges[1:])])
    total_steps = max(1.0, float(np.sum(np.ceil(lengths / dts))))
    if steps_per_macro is None:
        steps_per_macro = max(1, int(round(math.sqrt(total_steps))))
    pieces, allowed, completed_at = [], [], {float(t0): 0}
    for b, length, dt in zip(edges[1:], lengths, dts):
        m = max(1, int(math.ceil(length / (steps_per_macro * dt) - 1e-12)))
        pieces.extend([length / m] * m)
        allowed.extend([dt] * m)
        completed_at[float(b)] = len(pieces)
    save_index = np.asarray([completed_at[float(t)] for t in save_times])
    fewest = int(np.sum(np.maximum(1.0, np.ceil(lengths / dts - 1e-12))))
    return np.asarray(pieces), save_index, steps_per_macro, np.asarray(allowed), fewest


def _warn_if_split(lengths, n_sub: int, allowed, fewest: int) -> None:
    """``StepWarning`` when the schedule takes more than 2 N steps, N the fewest that hit every
    breakpoint with steps ≤ the largest allowed (then somewhere h < Δt/2).  The normal case,
    every step within a factor 2 of its largest allowed step, takes at most 2 N and is silent;
    so is a schedule whose small steps are few (the default model's first saved times, 15 and
    30 min at 10-min steps, make 609 steps where 433 would do: 1.4 N)."""
    taken = len(lengths) * n_sub
    if taken <= 2 * fewest:
        return
    ratio = lengths / n_sub / allowed
    k = int(np.argmin(ratio))
    warnings.warn(
        f"integrate takes {taken} steps where the saved times and max_dt need {fewest}: "
        f"steps_per_macro = {n_sub} steps in every macro-interval, and each interval between "
        f"saved times holds whole macro-intervals, so steps go down to {lengths[k] / n_sub:.4g} s "
        f"where {allowed[k]:.4g} s are allowed.  Pass steps_per_macro=1 for exactly the fewest "
        "steps (reverse-mode memory then grows with the number of steps), or save less often.",
        StepWarning, stacklevel=3)


def macro_interval(step: Callable, carry, length, n_sub: int, prepare: Callable | None = None):
    """One macro-interval of ``integrate``: ``n_sub`` equal steps of length/n_sub from
    carry = (state, t); returns (state, t)."""
    state, t = carry
    h = length / n_sub
    data = prepare(h) if prepare is not None else None

    def body(c2, _):
        s, tt = c2
        new = step(tt, h, s) if prepare is None else step(tt, h, s, data)
        return (new, tt + h), None

    (state, t), _ = jax.lax.scan(body, (state, t), None, length=n_sub)
    return state, t


def integrate(step: Callable, state0, save_times, max_dt: float, t0: float = 0.0,
              observe: Callable | None = None, checkpoint: bool = False,
              steps_per_macro: int | None = None, progress: Callable | None = None,
              fine_windows=(), prepare: Callable | None = None):
    """Advance ``state0`` (any pytree) with ``step(t, h, state)`` and return saved observations.

    Args:
        step: one time step; pure, jit-able.  With ``prepare``: ``step(t, h, state, data)``.
        prepare: optional ``prepare(h) → data`` for what depends on the step length only (e.g.
            the propagator exp(A h) of a linear subsystem): all steps of a macro-interval have
            the same h, so it runs once per macro-interval instead of once per step.
        state0: initial state pytree.
        save_times: increasing times (s) at which ``observe(state)`` is recorded (static).
        max_dt: largest step (s).  Steps are equal within each macro-interval.
        steps_per_macro: steps per macro-interval (default round(√N), N the fewest steps
            that hit every saved time with steps ≤ max_dt).  Every interval between saved
            times takes at least this many steps, so saved times closer than
            steps_per_macro · max_dt make steps smaller than max_dt and more of them
            (``StepWarning`` past twice the fewest): ``steps_per_macro=1`` takes exactly the
            fewest steps (each interval L in ⌈L/max_dt⌉ equal steps) at the cost of
            reverse-mode memory growing with their number; larger values trade steps for
            memory (``macro_schedule``).
        fine_windows: (start, end, max_dt) triples (s) where a smaller step is needed.
        observe: maps a state to what is saved (default: the state itself).
        checkpoint: wrap each macro-interval in ``jax.checkpoint`` (reverse-mode memory
            ~ √steps states instead of all of them).
        progress: optional host callback ``progress(t_seconds)`` called after each
            macro-interval (through ``jax.debug.callback``).
    Returns:
        (final state, saved observations stacked along a leading time axis).
    """
    observe = observe or (lambda s: s)
    lengths, save_index, n_sub, allowed, fewest = _schedule(save_times, t0, max_dt,
                                                            steps_per_macro, fine_windows)
    _warn_if_split(lengths, n_sub, allowed, fewest)
    dtype = jax.tree_util.tree_leaves(state0)[0].dtype

    def macro(carry, length):
        state, t = macro_interval(step, carry, length, n_sub, prepare)
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


def integrate_on_host(advance: Callable, state0, save_times, max_dt: float, t0: float = 0.0,
                      observe: Callable | None = None, steps_per_macro: int | None = None,
                      progress: Callable | None = None, fine_windows=()):
    """``integrate`` with the loop over macro-intervals on the host, for progress reports.

    ``advance(state, t, length, n_sub) -> (state, t)`` is one macro-interval
    (``macro_interval`` under ``jax.jit``, with ``n_sub`` static): it is compiled once and
    called once per macro-interval, and ``progress(t_seconds)`` runs on the host between
    calls.  Nothing inside the compiled code calls back to Python, so JAX's persistent
    compilation cache can keep it (executables with host callbacks are never written there),
    and the progress function is no part of what is compiled: a new progress bar compiles
    nothing.  Same schedule, same steps and same results as ``integrate`` (forward only: for
    gradients use ``integrate``, whose macro-intervals are checkpointed)."""
    observe = observe or (lambda s: s)
    lengths, save_index, n_sub, allowed, fewest = _schedule(save_times, t0, max_dt,
                                                            steps_per_macro, fine_windows)
    _warn_if_split(lengths, n_sub, allowed, fewest)
    dtype = jax.tree_util.tree_leaves(state0)[0].dtype
    state, t = state0, jnp.asarray(t0, dtype)
    observed = [observe(state0)]
    for length in np.asarray(lengths):
        state, t = advance(state, t, jnp.asarray(length, dtype), n_sub)
        observed.append(observe(state))
        if progress is not None:
            progress(t)
    keep = [observed[i] for i in np.asarray(save_index)]
    saved = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *keep)
    return state, saved
