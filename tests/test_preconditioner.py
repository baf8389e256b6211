"""Preconditioners of ``solver.implicit_step`` for spatially varying coefficients
(``solver.stage_system``, ``fdm.averaged_inverse``): same solution as dense linear algebra,
exact discrete mass balance, iteration counts against the multigrid V-cycle."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_engine import _dense_stage_solution

from nanotransport import fdm, fv, grid, multigrid, solver


def _heterogeneous(g, rng, jump=10.0):
    """Diffusivity with a factor-``jump`` drop inside a ball at the domain centre (a tumor),
    a smooth-ish log-normal decay map over a factor 10 and a varying capacity, shape
    (1, *g.shape)."""
    centres = np.meshgrid(*[np.asarray(x) for x in g.centers], indexing="ij")
    r2 = sum((x - x.mean()) ** 2 for x in centres)
    inside = r2 <= 0.15 * max(float(x.max() - x.min()) for x in centres) ** 2
    d = jnp.asarray(np.where(inside, 1e-10 / jump, 1e-10)[None])
    k = jnp.asarray(1e-3 * 10 ** rng.uniform(-0.5, 0.5, (1,) + g.shape))
    phi = jnp.asarray(rng.uniform(0.3, 1.0, (1,) + g.shape))
    return d, k, phi


def _graded(rng, n, length=1e-5):
    return tuple(np.cumsum(np.r_[0.0, rng.uniform(0.5, 1.5, n)]) * length)


@pytest.mark.parametrize("preconditioner, geometry, convection", [
    ("scaled-fdm", "cartesian3d", False), ("averaged-fdm", "cartesian3d", False),
    ("scaled-fdm", "axisymmetric", True), ("scaled-fdm", "cartesian3d", True),
    ("multigrid", "cartesian3d", False), ("multigrid", "axisymmetric", True)])
def test_preconditioned_step_matches_dense_solve(preconditioner, geometry, convection):
    """implicit_step with the coefficient-averaged fast-diagonalization preconditioners and
    the float32 multigrid V-cycle of halved coarse couplings (CG, or BiCGStab with convection)
    equals the dense SDIRK2 solution to 1e-8 relative: graded
    grids, a 10× diffusivity jump, a decay map, varying capacity, a Robin wall, a sharp source,
    at a step 100× the explicit limit."""
    rng = np.random.default_rng(3)
    sizes = (12, 14) if geometry == "axisymmetric" else (6, 8, 10)
    if preconditioner == "multigrid":  # odd lengths: a single-cell aggregate at each far end
        sizes = (13, 14) if geometry == "axisymmetric" else (7, 8, 9)
    faces = [_graded(rng, n) for n in sizes]
    if geometry == "axisymmetric":
        faces[1] = tuple(np.asarray(faces[1]) - faces[1][-1] / 2)
    g = grid.Grid(geometry, tuple(faces))
    d, k, phi = _heterogeneous(g, rng)
    bcs = [(fv.Flux(), fv.Flux())] * g.ndim
    bcs[-1] = (fv.Robin(1e-6, 0.0), fv.Flux())
    vel = None
    if convection:
        bcs[-1] = (fv.Inflow(0.0), fv.Outflow())
        vel = [None] * g.ndim
        vel[-1] = 2e-6
        vel = tuple(vel)
    src = jnp.zeros((1,) + g.shape).at[(0,) + tuple(slice(n // 3, n // 2) for n in g.shape)] \
        .set(1e-3)
    tr = fv.Transport(diffusivity=d, capacity=phi, velocity=vel, boundaries=tuple(bcs),
                      source=src)
    c = jnp.asarray(rng.uniform(0.0, 1.0, (1,) + g.shape))
    h = 100.0 * solver.explicit_stable_dt(g, tr, 1)
    got = np.asarray(jax.jit(lambda c: solver.implicit_step(
        g, tr, c, h, decay=k, preconditioner=preconditioner))(c))
    want = _dense_stage_solution(g, tr, c, h, np.asarray(k))
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-8


def test_preconditioned_step_conserves_mass():
    """Closed 3D box, heterogeneous D, φ and decay: over one step Σ V φ c changes by exactly
    the source integral minus the decay, with SDIRK2's own quadrature (stiffly accurate,
    weights (1 − γ, γ) on the stages Y₁, Y₂):

        Σ V φ (Y₂ − c) = h Σ_i b_i (Σ V s − Σ V φ k Y_i),

    to 1e-10 relative (stages solved to a relative residual of 1e-13)."""
    rng = np.random.default_rng(5)
    g = grid.cartesian3d((1e-3,) * 3, (8, 8, 8))
    d, k, phi = _heterogeneous(g, rng)
    src = jnp.zeros((1, 8, 8, 8)).at[0, 2:4, 3:6, 4:7].set(1e-3)
    tr = fv.Transport(diffusivity=d, capacity=phi, source=src)
    c = jnp.asarray(rng.uniform(0.0, 1.0, (1, 8, 8, 8)))
    h = 600.0
    tol = 1e-13

    @jax.jit
    def stages(c):
        level, weight, s, symmetric, precond = solver.stage_system(g, tr, c, h, k)
        y1 = multigrid.solve(level, weight * (c + solver.GAMMA * h * s), symmetric, tol,
                             preconditioner=precond).solution
        return y1, solver.implicit_step(g, tr, c, h, decay=k, tol=tol), weight

    y1, y2, weight = stages(c)
    mass = lambda x: float(jnp.sum(weight * x))  # noqa: E731
    supplied = float(jnp.sum(g.integrate(src)))
    expected = h * ((1 - solver.GAMMA) * (supplied - mass(k * y1))
                    + solver.GAMMA * (supplied - mass(k * y2)))
    assert abs((mass(y2) - mass(c)) / expected - 1.0) < 1e-10


def _iterations(g, tr, c, h, k, preconditioner):
    """CG iterations of the first stage (the preconditioner is applied once at the start and
    once per iteration, counted on the host)."""
    calls = []

    @jax.jit
    def first_stage(c):
        level, weight, s, symmetric, precond = solver.stage_system(g, tr, c, h, k,
                                                                   preconditioner)

        def counted(r):
            jax.debug.callback(lambda: calls.append(1))
            return precond(r)

        return multigrid.solve(level, weight * (c + solver.GAMMA * h * s), symmetric, 1e-10,
                               preconditioner=counted).solution

    first_stage(c).block_until_ready()
    return len(calls) - 1


def test_iteration_counts_on_heterogeneous_stage():
    """16³ DR3D-like stage (1 mm cube, 180-s step, D 1e-10 m²/s with a 10× drop in a central
    ball, decay over a factor 10): CG iterations to 1e-10 as measured when written (issue #19
    item 1): V-cycle 8 with Galerkin coarse levels and ω = 0.8, 6 with halved coarse couplings,
    ω = 6/7 and 3 sweeps (2026-12-08), scaled fast diagonalization 18, unscaled 27.  The diagonal scaling
    helps (fewer iterations than the plain average) but the V-cycle needs fewest, which is
    why 'auto' takes it for non-separable problems; bounds with ~30% margin."""
    rng = np.random.default_rng(0)
    g = grid.cartesian3d((1e-3,) * 3, (16, 16, 16))
    d, k, _ = _heterogeneous(g, rng)
    src = jnp.zeros((1,) + g.shape).at[0, 6:10, 6:10, 6:10].set(1e-3)
    tr = fv.Transport(diffusivity=d, source=src)
    c = jnp.zeros((1,) + g.shape)
    its = {p: _iterations(g, tr, c, 180.0, k, p)
           for p in ("auto", "multigrid", "scaled-fdm", "averaged-fdm")}
    assert its["auto"] == its["multigrid"] <= 8, its
    assert its["scaled-fdm"] <= 24, its
    assert its["scaled-fdm"] < its["averaged-fdm"] <= 36, its


def _graded_heterogeneous_level(sizes=(6, 8, 4)):
    rng = np.random.default_rng(11)
    g = grid.Grid("cartesian3d", tuple(_graded(rng, n) for n in sizes))
    d, k, phi = _heterogeneous(g, rng)
    bcs = ((fv.Flux(), fv.Flux()), (fv.Robin(1e-6, 0.0), fv.Flux()), (fv.Value(0.0), fv.Flux()))
    tr = fv.Transport(diffusivity=d, capacity=phi, boundaries=bcs)
    c = jnp.zeros((1,) + g.shape)
    level = solver.stage_system(g, tr, c, 100.0 * solver.explicit_stable_dt(g, tr, 1), k)[0]
    return level


def _dense(op, shape):
    n = int(np.prod(shape))
    cols = jax.vmap(lambda e: op(e.reshape(shape)).reshape(-1))(jnp.eye(n))
    return np.asarray(cols).T


@pytest.mark.parametrize("sizes", [(6, 8, 4), (7, 9, 5)])
def test_coarse_levels_keep_row_sums_and_halve_the_couplings(sizes):
    """Graded grid, heterogeneous D, φ, decay, Robin and Dirichlet walls, even and odd
    lengths: the V-cycle's coarse level has the Galerkin level's row sums (volume and boundary
    terms) to 1e-13, couplings across coarsened faces exactly half the Galerkin ones and the
    others equal, and is a symmetric positive-definite M-matrix; every level of the hierarchy
    is too.  Odd lengths leave the last cell an aggregate of its own: the Galerkin level is
    Pᵀ A P with that P (checked densely)."""
    level = _graded_heterogeneous_level(sizes)
    axes = multigrid.coarsenable(level.diag.shape[1:])
    assert axes == (0, 1, 2)
    fine = _dense(lambda x: multigrid.apply(level, x), level.diag.shape)
    prolong = _dense(lambda e: multigrid._prolong(e, axes, level.diag.shape),
                     (1,) + tuple((n + 1) // 2 for n in sizes))
    assert np.array_equal(prolong.sum(axis=1), np.ones(prolong.shape[0]))  # each cell once
    gal_dense = _dense(lambda x: multigrid.apply(multigrid.galerkin(level, axes), x),
                       (1,) + tuple((n + 1) // 2 for n in sizes))
    np.testing.assert_allclose(gal_dense, prolong.T @ fine @ prolong, rtol=0,
                               atol=1e-13 * np.abs(gal_dense).max())
    gal, coarse = multigrid.galerkin(level, axes), multigrid.coarsen(level, axes)
    ones = jnp.ones_like(gal.diag)
    np.testing.assert_allclose(np.asarray(multigrid.apply(coarse, ones)),
                               np.asarray(multigrid.apply(gal, ones)), rtol=1e-13)
    for a in range(3):
        np.testing.assert_array_equal(np.asarray(coarse.off[a]), 0.5 * np.asarray(gal.off[a]))
    for x, y in zip(jax.tree_util.tree_leaves(multigrid.coarsen(level, axes, scale=1.0)),
                    jax.tree_util.tree_leaves(gal)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    partial = multigrid.coarsen(level, (0,))  # only axis 0 coarsened: the others untouched
    np.testing.assert_array_equal(np.asarray(partial.off[1]),
                                  np.asarray(multigrid.galerkin(level, (0,)).off[1]))
    for lev in multigrid.hierarchy(level):
        m = _dense(lambda x, lev=lev: multigrid.apply(lev, x), lev.diag.shape)
        np.testing.assert_allclose(m, m.T, rtol=0, atol=1e-14 * np.abs(m).max())
        assert np.all(m - np.diag(np.diag(m)) <= 0)  # M-matrix couplings
        assert np.linalg.eigvalsh(0.5 * (m + m.T)).min() > 0


def test_float32_cycle_is_the_float64_cycle_at_any_scale():
    """``multigrid.low_precision``: the cycle run in float32 equals the float64 cycle to 1e-5
    relative, for residuals of size 1 and 1e-60 and for the operator scaled by 1e-40 (each
    far below float32's range, ~1e-38: no underflow, both are divided out before the cast),
    and as an operator it is symmetric positive definite to float32 round-off, as CG needs."""
    level = _graded_heterogeneous_level()
    levels = multigrid.hierarchy(level)
    r = jnp.asarray(np.random.default_rng(2).normal(size=level.diag.shape))
    want = np.asarray(multigrid.v_cycle(levels, r))
    tiny = jax.tree_util.tree_map(lambda x: 1e-40 * x, levels)
    for lev, r_size, out_size in ((levels, 1.0, 1.0), (levels, 1e-60, 1e-60),
                                  (tiny, 1.0, 1e40)):
        got = np.asarray(multigrid.low_precision(lev)(r_size * r)) / out_size
        assert got.dtype == np.float64
        assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-5
    jaxpr = jax.make_jaxpr(multigrid.low_precision(levels))(r).jaxpr
    assert sum(v.aval.dtype == jnp.float32 for e in jaxpr.eqns for v in e.outvars) > 50
    m = _dense(multigrid.low_precision(levels), level.diag.shape)
    np.testing.assert_allclose(m, m.T, rtol=0, atol=1e-5 * np.abs(m).max())
    assert np.linalg.eigvalsh(0.5 * (m + m.T)).min() > 0


def test_preconditioner_argument_is_checked():
    """Unknown names, and exact fast diagonalization for a non-separable problem, are refused
    with the allowed values."""
    g = grid.cartesian2d((1e-3, 1e-3), (8, 8))
    c = jnp.zeros((1, 8, 8))
    uniform = fv.Transport(diffusivity=1e-10)
    varying = fv.Transport(diffusivity=jnp.full((1, 8, 8), 1e-10).at[0, :4].set(1e-11))
    with pytest.raises(ValueError, match="preconditioner = 'ilu'; allowed"):
        solver.implicit_step(g, uniform, c, 60.0, preconditioner="ilu")
    with pytest.raises(ValueError, match="'fdm' needs uniform"):
        solver.implicit_step(g, varying, c, 60.0, preconditioner="fdm")
    step = jax.jit(lambda c, p: solver.implicit_step(g, uniform, c, 60.0, decay=1e-3,
                                                     preconditioner=p), static_argnums=1)
    exact, averaged = step(c + 1.0, "fdm"), step(c + 1.0, "scaled-fdm")
    np.testing.assert_allclose(np.asarray(averaged), np.asarray(exact), rtol=1e-12)
    tr_bar, k_bar = fdm.averaged_transport(varying, jnp.full((1, 8, 8), 2e-3), 2)
    assert float(k_bar.reshape(())) == pytest.approx(2e-3)
    assert float(jnp.asarray(tr_bar.diffusivity).reshape(())) == pytest.approx(
        1e-10 / np.sqrt(10.0))


@pytest.mark.parametrize("velocity, max_iterations", [(2e-7, 2), (2e-4, 60)])
def test_fast_diagonalization_with_uniform_convection(velocity, max_iterations):
    """A uniform velocity keeps the stage operator separable: 'auto' takes fast diagonalization
    for BiCGStab.  At cell Péclet 0.1 (the DR3D convection case) the inverse is exact (1-2
    iterations); at Péclet 100 the symmetrizing similarity exceeds fdm.SIMILARITY_RANGE, is
    clipped, and BiCGStab still converges.  Both equal the dense SDIRK2 solution to 1e-8."""
    n = 10
    g = grid.cartesian3d((1e-4,) * 3, (n,) * 3)  # cells of 10 µm
    wall = (fv.Flux(), fv.Flux())
    src = jnp.zeros((1,) + g.shape).at[0, 3:6, 4:7, 2:5].set(1e-3)
    tr = fv.Transport(diffusivity=2e-11, velocity=(velocity, None, None),
                      boundaries=((fv.Inflow(0.5), fv.Outflow()), wall, wall), source=src)
    c = jnp.asarray(np.random.default_rng(6).uniform(0.0, 1.0, (1,) + g.shape))
    h, k = 60.0, 1e-3
    its = _iterations(g, tr, c, h, k, "auto")
    assert its <= max_iterations, its
    if max_iterations <= 2:  # exact: far fewer than the V-cycle
        assert its < _iterations(g, tr, c, h, k, "multigrid")
    got = np.asarray(jax.jit(lambda c: solver.implicit_step(g, tr, c, h, decay=k))(c))
    want = _dense_stage_solution(g, tr, c, h, k)
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-8
