"""Tests of the numerics layer: grid.py, fv.py, linalg.py, solver.py (docs/architecture.md "The engine
on its own"; docs/model.md §11).  float64 unless a test says otherwise (tests/conftest.py).  Tolerances are
stated per test."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from nanotransport import fv, grid, linalg, solver


# ================================================================== grid metrics
def test_sphere_volumes_and_areas():
    R = 3e-3
    for g in (grid.sphere(R, 37), grid.sphere(R, 50, refine_at_m=2e-3, refine_ratio=8.0),
              grid.sphere(R, 50, refine_at_m=2e-3, refine_ratio=1e3, grading="geometric")):
        assert float(np.sum(g.volume)) == pytest.approx(4.0 / 3.0 * math.pi * R**3, rel=1e-12)
        r = np.asarray(g.faces[0])
        np.testing.assert_allclose(g.face_area(0), 4.0 * math.pi * r**2, rtol=1e-14)
        assert g.face_area(0)[0] == 0.0
        np.testing.assert_allclose(g.volume, 4.0 / 3.0 * math.pi * np.diff(r**3), rtol=1e-13)


def test_cylinder_volumes_and_areas():
    rc, R = 5e-6, 60e-6
    g = grid.cylinder(R, 41, inner_radius_m=rc)
    assert g.faces[0][0] == rc and g.faces[0][-1] == pytest.approx(R, rel=1e-15)
    assert float(np.sum(g.volume)) == pytest.approx(math.pi * (R**2 - rc**2), rel=1e-12)
    np.testing.assert_allclose(g.face_area(0), 2.0 * math.pi * np.asarray(g.faces[0]),
                               rtol=1e-14)


def test_axisymmetric_and_3d_metrics():
    R, L = 2e-3, 5e-3
    g = grid.axisymmetric(R, L, (13, 7))
    assert g.shape == (13, 7)
    assert float(np.sum(g.volume)) == pytest.approx(math.pi * R**2 * L, rel=1e-12)
    r, z = (np.asarray(f) for f in g.faces)
    np.testing.assert_allclose(g.face_area(0), np.outer(2 * math.pi * r, np.diff(z)),
                               rtol=1e-14)
    np.testing.assert_allclose(g.face_area(1), np.outer(math.pi * np.diff(r**2),
                                                        np.ones(z.size)), rtol=1e-14)
    # the lateral surface is 2πRL and each end disc is πR²
    assert float(np.sum(g.face_area(0)[-1])) == pytest.approx(2 * math.pi * R * L, rel=1e-12)
    assert float(np.sum(g.face_area(1)[:, 0])) == pytest.approx(math.pi * R**2, rel=1e-12)

    g3 = grid.cartesian3d((1e-3, 2e-3, 3e-3), (4, 5, 6))
    assert g3.shape == (4, 5, 6)
    assert float(np.sum(g3.volume)) == pytest.approx(6e-9, rel=1e-12)
    assert g3.face_area(1).shape == (4, 6, 6)
    assert float(np.sum(g3.face_area(0)[0])) == pytest.approx(2e-3 * 3e-3, rel=1e-12)
    assert float(np.sum(g3.face_area(2)[..., -1])) == pytest.approx(1e-3 * 2e-3, rel=1e-12)
    g2 = grid.cartesian2d((1.0, 2.0), (3, 4))
    assert float(np.sum(g2.volume)) == pytest.approx(2.0, rel=1e-14)


def test_graded_spacing_is_finer_at_refinement_point():
    g = grid.sphere(1e-2, 80, refine_at_m=6e-3, refine_ratio=10.0, refine_width_m=1e-3)
    w = g.cell_widths(0)
    near = w[np.argmin(np.abs(g.centers[0] - 6e-3))]
    assert near < w[0] / 5 and near < w[-1] / 5
    assert float(np.sum(w)) == pytest.approx(1e-2, rel=1e-14)
    assert np.all(w > 0)


@pytest.mark.parametrize("ratio", [8.0, 1000.0, 1e4])
def test_geometric_grading(ratio):
    """``grading="geometric"``: the refinement point is a face, the finest cell is ~1/ratio of
    the far spacing, neighbours differ by at most the growth factor (+ 5 % for the discrete
    placement), and the cells fill the axis exactly."""
    L, x0, n = 15e-3, 10e-3, 100
    faces = np.asarray(grid.axis_faces(L, n, refine_at_m=x0, refine_ratio=ratio,
                                       grading="geometric"))
    h = np.diff(faces)
    assert faces.size == n + 1 and faces[0] == 0.0 and faces[-1] == L
    assert x0 in faces and np.all(h > 0)
    neighbours = np.maximum(h[1:] / h[:-1], h[:-1] / h[1:])
    assert neighbours.max() <= 1.0 + grid.GEOMETRIC_GROWTH + 0.05
    # the finest cells sit at x0; far cells are about ratio times larger where the axis is
    # long enough to reach the far spacing ((ratio − 1)δ/|x − x0| ≪ 1; not at ratio 1e4 with
    # 100 cells, where every cell is in the geometric zone and the finest cell is smaller still)
    k = int(np.argmin(h))
    assert abs(faces[k] - x0) <= h[k] or abs(faces[k + 1] - x0) <= h[k]
    if ratio <= 1000.0:
        assert h.max() / h.min() == pytest.approx(ratio, rel=0.6)
    coarser = np.diff(grid.axis_faces(L, n, refine_at_m=x0, refine_ratio=ratio / 4,
                                      grading="geometric"))
    assert h.min() < coarser.min()
    # a material interface elsewhere is still moved onto a face
    f2 = grid.axis_faces(L, n, refine_at_m=x0, refine_ratio=ratio, grading="geometric",
                         interfaces_m=(3e-3,))
    assert 3e-3 in f2 and x0 in f2


def test_grading_errors_name_the_value():
    with pytest.raises(ValueError, match="grading = 'cubic'"):
        grid.axis_faces(1.0, 10, refine_at_m=0.5, refine_ratio=4.0, grading="cubic")
    with pytest.raises(ValueError, match="refine_ratio = 0.5"):
        grid.axis_faces(1.0, 10, refine_at_m=0.5, refine_ratio=0.5, grading="geometric")
    with pytest.raises(ValueError, match="growth"):
        grid.axis_faces(1.0, 10, refine_at_m=0.5, refine_ratio=4.0, grading="geometric",
                        growth=-1.0)


# ================================================================== conservation
def _closed_problem(g, rng, ns=3):
    """Closed domain: zero-flux walls, face velocities zero on the boundary faces, spatially
    varying diffusivities and capacities, 3 species with linear and nonlinear exchange."""
    shape = (ns,) + g.shape
    D = jnp.asarray(10 ** rng.uniform(-10, -8, shape))
    D = D.at[2].set(1e-9)  # a species with uniform D, another varying by decades
    phi = jnp.asarray(rng.uniform(0.1, 1.0, shape))
    vel = []
    for a in range(g.ndim):
        fshape = (ns,) + g.face_area(a).shape
        v = rng.uniform(-1, 1, fshape) * 1e-5  # m/s: cell Péclet |u| h / D up to ~3
        idx = [slice(None)] * (g.ndim + 1)
        idx[1 + a] = 0
        v[tuple(idx)] = 0.0
        idx[1 + a] = -1
        v[tuple(idx)] = 0.0
        vel.append(jnp.asarray(v))
    tr = fv.Transport(diffusivity=D, capacity=phi, velocity=tuple(vel))
    fv.validate_transport(g, tr, ns)

    def reaction(t, c):
        # exchange fluxes per volume J01 (linear), J12 (saturable), J20 (quadratic); each
        # leaves one species and enters another, so Σ_s φ_s f_s = 0
        j01 = 2.0 * c[0] - 0.5 * c[1]
        j12 = 5.0 * c[1] / (1.0 + jnp.abs(c[1])) - 0.1 * c[2]
        j20 = 0.3 * c[2] ** 2 - 0.05 * c[0]
        return jnp.stack([(-j01 + j20) / phi[0], (j01 - j12) / phi[1], (j12 - j20) / phi[2]])

    c0 = jnp.asarray(rng.uniform(0.0, 2.0, shape))
    return tr, phi, reaction, c0


@pytest.mark.parametrize("make, methods", [
    (lambda: grid.sphere(1e-3, 30, refine_at_m=6e-4, refine_ratio=4.0), ("sdirk2", "euler")),
    (lambda: grid.axisymmetric(1e-3, 2e-3, (12, 10)), ("sdirk2",)),
    (lambda: grid.cartesian3d((1e-3, 1e-3, 1e-3), (7, 6, 5)), ("sdirk2",)),
], ids=["sphere", "axisymmetric", "cartesian3d"])
def test_mass_conserved_to_round_off(make, methods):
    # Σ V φ c over all species and cells, 80 split steps (rel 1e-12)
    g = make()
    rng = np.random.default_rng(0)
    tr, phi, reaction, c0 = _closed_problem(g, rng)
    total = lambda c: jnp.sum(g.integrate(phi * c))  # noqa: E731
    m0 = float(total(c0))
    for method in methods:
        step = solver.strang_step(g, tr, reaction, transport_method=method)
        c, saved = jax.jit(lambda c: solver.integrate(step, c, [100.0, 200.0, 400.0], 5.0,
                                                      observe=total))(c0)
        assert np.all(np.isfinite(np.asarray(c)))
        assert float(jnp.max(jnp.abs(c - c0))) > 1e-3  # things did move
        np.testing.assert_allclose(np.asarray(saved), m0, rtol=1e-12)
    # explicit steps (upwind and limited convection) are conservative too: 50 steps
    dt = 0.5 * solver.explicit_stable_dt(g, tr, 3)
    for scheme in ("upwind", "limited"):
        c = _run_fixed(solver.explicit_step(g, tr, reaction, scheme=scheme), c0, dt, 50)
        assert float(total(c)) == pytest.approx(m0, rel=1e-12)


# ================================================================== property tests
N_PROP = 24
G_PROP = grid.sphere(1e-3, N_PROP)


@jax.jit
def _euler_transport(D, u, c, h):
    tr = fv.Transport(diffusivity=D, velocity=(u,))
    return solver.transport_step(G_PROP, tr, c, h, method="euler")


@jax.jit
def _upwind_explicit(D, u, c):
    tr = fv.Transport(diffusivity=D, velocity=(u,))
    cf = fv.axis_coefficients(G_PROP, tr, 0, 1, c.dtype)
    h = 1.0 / jnp.max(-cf.diag)  # the Gershgorin (positivity) limit of forward Euler
    return solver.explicit_step(G_PROP, tr, scheme="upwind")(0.0, h, c)


_coefficients = dict(
    log_d=hnp.arrays(np.float64, N_PROP, elements=st.floats(-12.0, -8.0)),
    vel=hnp.arrays(np.float64, N_PROP - 1, elements=st.floats(-1.0, 1.0)),
    log_u=st.floats(-8.0, -3.0),
    c0=hnp.arrays(np.float64, N_PROP, elements=st.floats(0.0, 1e3)),
)


def _random_transport(log_d, vel, log_u, c0):
    D = jnp.asarray(10.0**log_d)[None]
    # interior faces random (cell Péclet |u| h / D up to ~1e3 and beyond), boundaries closed
    u = jnp.asarray(np.concatenate([[0.0], vel * 10.0**log_u, [0.0]]))
    c = jnp.asarray(c0)[None]
    return D, u, c


@settings(max_examples=25, deadline=None)
@given(log_h=st.floats(-2.0, 6.0), **_coefficients)
def test_implicit_euler_positive_and_conservative(log_h, log_d, vel, log_u, c0):
    D, u, c = _random_transport(log_d, vel, log_u, c0)
    h = 10.0**log_h
    out = _euler_transport(D, u, c, h)
    scale = max(float(jnp.max(c)), 1e-300)
    assert float(jnp.min(out)) >= -1e-14 * scale
    # round-off of the line solve grows with the stiffness h·max|M| of I − hM (up to ~1e7
    # here: Courant numbers of 1e7); mass is conserved to that round-off
    cf = fv.axis_coefficients(G_PROP, fv.Transport(diffusivity=D, velocity=(u,)), 0, 1)
    stiffness = 1.0 + h * float(jnp.max(-cf.diag))
    m0, m1 = float(G_PROP.integrate(c)[0]), float(G_PROP.integrate(out)[0])
    assert m1 == pytest.approx(m0, rel=1e-14 * stiffness + 1e-13, abs=1e-30)


@settings(max_examples=25, deadline=None)
@given(**_coefficients)
def test_explicit_upwind_positive_at_stable_dt(log_d, vel, log_u, c0):
    D, u, c = _random_transport(log_d, vel, log_u, c0)
    out = _upwind_explicit(D, u, c)
    scale = max(float(jnp.max(c)), 1e-300)
    assert float(jnp.min(out)) >= -1e-14 * scale
    m0, m1 = float(G_PROP.integrate(c)[0]), float(G_PROP.integrate(out)[0])
    assert m1 == pytest.approx(m0, rel=1e-12, abs=1e-30)


# ================================================================== time accuracy
L_BIND = 200e-6
G_BIND = grid.slab(L_BIND, 40)


def _binding_problem(kon):
    """Ligand c diffuses (D = 1e-10 m²/s, slab of 200 µm, c = 1.5 at x = 0) and binds receptors
    b (not transported) with nonlinear kinetics db/dt = k_on c (B − b) − k_off b, B = 2."""
    tr = fv.Transport(diffusivity=jnp.asarray(1e-10), boundaries=((fv.Value(1.5), fv.Flux()),))
    B, koff = 2.0, 0.5

    def f(t, c):
        r = kon * c[0] * (B - c[1]) - koff * c[1]
        return jnp.stack([-r, r])

    x = G_BIND.centers[0]
    c0 = jnp.stack([jnp.asarray(1.0 + 0.5 * np.cos(np.pi * x / L_BIND)), jnp.zeros(40)])
    return tr, f, c0


def _runner(step):
    """jit-compiled run(c, h, n): n fixed steps of size h (one compilation per step function)."""
    return jax.jit(lambda c, h, n: jax.lax.fori_loop(0, n, lambda i, x: step(i * h, h, x), c))


def _run_fixed(step, c0, h, n):
    return _runner(step)(c0, h, n)


@pytest.mark.parametrize("method, expected", [("sdirk2", 2.0), ("euler", 1.0)])
def test_strang_time_order(method, expected):
    # reaction rates up to ~4 1/s, diffusion D/h² = 4 1/s: k Δt = 8 … 1 over the study
    tr, f, c0 = _binding_problem(kon=1.0)
    step = solver.strang_step(G_BIND, tr, f, transport_method=method, transported=(0,))
    T = 20.0
    run = _runner(step)
    ref = run(c0, T / 8192, 8192)
    errs = [float(jnp.max(jnp.abs(run(c0, T / n, n) - ref))) for n in (20, 40, 80)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > expected - 0.25), (errs, orders)
    assert np.all(orders < expected + 0.5), (errs, orders)


def test_stiff_nonlinear_binding_stays_physical():
    # stiff binding far from equilibrium (k_on B Δt ≈ 4): the second-order stage would go
    # negative; the per-cell backward-Euler fallback keeps the state physical and conserving
    kon, B, koff = 20.0, 2.0, 0.5
    f = lambda t, c: jnp.stack([-(kon * c[0] * (B - c[1]) - koff * c[1]),  # noqa: E731
                                kon * c[0] * (B - c[1]) - koff * c[1]])
    out = np.asarray(solver.reaction_step(f, 0.0, jnp.array([[1.5], [0.0]]), 0.1, 5))
    assert np.all(out >= -1e-12) and np.all(out[1] <= B + 1e-12), out
    assert abs(out.sum() - 1.5) < 1e-12
    raw = np.asarray(solver.reaction_step(f, 0.0, jnp.array([[1.5], [0.0]]), 0.1, 5,
                                          positive=False))
    assert raw.min() < 0  # the safeguard is what keeps it physical


def test_stiff_reaction_step_is_l_stable():
    # dc/dt = −k (c − 1): the stability function of the SDIRK2 of ``solver.reaction_step``
    # (Alexander, γ = 1 − 1/√2) has R(z) → 0 as z → −∞ (L-stable), so a linear rate with
    # k h ≫ 1 lands on its equilibrium (the trapezoidal rule would give R → −1, i.e. c ≈ −3
    # here); |R(−kh)| ≈ (1 − 2γ)/(γ² kh) ≈ 5/(kh) for large kh
    for kh in (1e2, 1e4, 1e6):
        f = lambda t, c, k=kh / 100.0: -k * (c - 1.0)  # noqa: E731
        out = np.asarray(solver.reaction_step(f, 0.0, jnp.full((1, 3), 5.0), 100.0))
        assert np.all(np.abs(out - 1.0) <= 4.0 * 5.0 / kh), (kh, out)


# ================================================================== limited convection
def _square(g, a, b):
    f = np.asarray(g.faces[0])
    return np.clip(np.minimum(f[1:], b) - np.maximum(f[:-1], a), 0.0, None) / np.diff(f)


@pytest.mark.parametrize("u", [1.0, -1.0])
def test_limited_scheme_bounded_and_sharper_than_upwind(u):
    g = grid.slab(1.0, 200)
    start, end = ((0.2, 0.4), (0.6, 0.8)) if u > 0 else ((0.6, 0.8), (0.2, 0.4))
    c0 = jnp.asarray(_square(g, *start))[None]
    exact = _square(g, *end)
    tr = fv.Transport(diffusivity=jnp.asarray(0.0), velocity=(jnp.asarray(u),),
                      boundaries=((fv.Outflow(), fv.Outflow()),))
    h = 0.4 / 200  # Courant 0.4 ≤ 1/2
    errors = {}
    for scheme in ("upwind", "limited"):
        step = solver.explicit_step(g, tr, scheme=scheme)
        c = _run_fixed(step, c0, h, 200)[0]
        assert float(jnp.min(c)) >= -1e-14 and float(jnp.max(c)) <= 1.0 + 1e-14
        errors[scheme] = float(jnp.mean(jnp.abs(c - exact)))
    assert errors["limited"] < 0.25 * errors["upwind"], errors


def test_limited_scheme_mirror_symmetric():
    # advecting a profile to the left must be the mirror image of advecting it to the right
    g = grid.slab(1.0, 100)
    x = g.centers[0]
    prof = np.exp(-(((x - 0.35) / 0.05) ** 2)) + (np.abs(x - 0.2) < 0.05)
    out = {}
    for u in (1.0, -1.0):
        tr = fv.Transport(diffusivity=jnp.asarray(0.0), velocity=(jnp.asarray(u),),
                          boundaries=((fv.Outflow(), fv.Outflow()),))
        c0 = jnp.asarray(prof if u > 0 else prof[::-1])[None]
        out[u] = np.asarray(_run_fixed(solver.explicit_step(g, tr, scheme="limited"), c0,
                                       0.004, 60)[0])
    np.testing.assert_allclose(out[-1.0][::-1], out[1.0], atol=1e-13)


# ================================================================== float32
def test_float32_matches_float64():
    g = grid.sphere(1e-3, 40)

    def run(dtype):
        tr = fv.Transport(diffusivity=jnp.asarray(1e-10, dtype),
                          capacity=jnp.asarray(0.4, dtype),
                          boundaries=((fv.Flux(), fv.Robin(h=jnp.asarray(1e-6, dtype),
                                                           c_ext=jnp.asarray(1.0, dtype))),))
        f = lambda t, c: jnp.stack([-0.01 * c[0] + 0.002 * c[1],  # noqa: E731
                                    0.01 * c[0] - 0.002 * c[1] - 1e-3 * c[1] ** 2])
        step = solver.strang_step(g, tr, f, transported=(0,))
        c0 = jnp.zeros((2, 40), dtype)
        final, saved = solver.integrate(step, c0, [600.0, 1800.0, 3600.0], 30.0,
                                        observe=lambda c: g.integrate(c))
        return final, saved

    c32, s32 = run(jnp.float32)
    c64, s64 = run(jnp.float64)
    assert c32.dtype == jnp.float32 and s32.dtype == jnp.float32
    assert c64.dtype == jnp.float64
    assert float(jnp.max(c64)) > 0.1
    np.testing.assert_allclose(np.asarray(c32, np.float64), np.asarray(c64),
                               rtol=1e-4, atol=1e-4 * float(jnp.max(c64)))
    np.testing.assert_allclose(np.asarray(s32, np.float64), np.asarray(s64), rtol=1e-4)


# ================================================================== interfaces
def test_flux_continuous_across_coefficient_jump():
    # two materials, D ratio 100, interface on a face of a non-uniform grid; c(0) = 1, c(L) = 0
    rng = np.random.default_rng(3)
    L, a = 1e-3, 4e-4
    left = np.sort(rng.uniform(0, a, 14))
    right = np.sort(rng.uniform(a, L, 21))
    faces = tuple(float(v) for v in np.concatenate([[0.0], left, [a], right, [L]]))
    g = grid.Grid("slab", (faces,))
    x = g.centers[0]
    D1, D2 = 1e-9, 1e-11
    D = jnp.asarray(np.where(x < a, D1, D2))
    bcs = ((fv.Value(1.0), fv.Value(0.0)),)
    tr = fv.Transport(diffusivity=D, boundaries=bcs)
    c, res = linalg.solve_steady(g, tr, 0.0, 0.0)
    q = 1.0 / (a / D1 + (L - a) / D2)  # flux density, mol/(m²·s)
    exact = np.where(x < a, 1.0 - q * x / D1, q * (L - x) / D2)
    np.testing.assert_allclose(np.asarray(c), exact, rtol=1e-12, atol=1e-13)
    # the face fluxes, from the transport operator, are all equal to q
    rate = np.asarray(fv.divergence(g, tr, jnp.asarray(c)[None]))[0]
    np.testing.assert_allclose(rate, 0.0, atol=1e-9 * q / np.min(np.diff(faces)))
    dl, dr = g.face_split(0)
    Dl, Dr = np.asarray(D)[:-1], np.asarray(D)[1:]
    face_flux = (np.asarray(c)[:-1] - np.asarray(c)[1:]) / (dl / Dl + dr / Dr)
    np.testing.assert_allclose(face_flux, q, rtol=1e-10)
    # the same steady state from the transient implicit solver
    step = solver.strang_step(g, tr, None, transport_method="euler")
    ct = _run_fixed(step, jnp.zeros((1, g.size)), 1e4, 40)
    np.testing.assert_allclose(np.asarray(ct[0]), exact, rtol=1e-10, atol=1e-12)


def test_steady_capacity_does_not_change_steady_state():
    g = grid.sphere(1e-3, 30)
    out = []
    for phi in (1.0, jnp.linspace(0.2, 0.9, 30)):
        tr = fv.Transport(diffusivity=1e-10, capacity=phi,
                          boundaries=((fv.Flux(), fv.Value(1.0)),))
        out.append(np.asarray(linalg.solve_steady(g, tr, 0.0, 1e-4)[0]))
    np.testing.assert_allclose(out[1], out[0], rtol=1e-13)


def test_steady_krylov_path_matches_1d():
    # axisymmetric (r, z) with no z dependence = the 1D cylinder (CG path vs tridiagonal path)
    R, alpha = 1e-3, 5.0
    K = 1e-12
    a = alpha**2 * K / R**2
    g1 = grid.cylinder(R, 24)
    g2 = grid.axisymmetric(R, 2e-3, (24, 5))
    b1 = ((fv.Flux(), fv.Value(0.0)),)
    steady = jax.jit(linalg.solve_steady, static_argnums=0)
    c1, _ = steady(g1, fv.Transport(diffusivity=K, boundaries=b1), a, a)
    c2, res = steady(
        g2, fv.Transport(diffusivity=K, boundaries=b1 + ((fv.Flux(), fv.Flux()),)), a, a)
    assert float(res) < 1e-9
    np.testing.assert_allclose(np.asarray(c2), np.asarray(c1)[:, None] * np.ones((1, 5)),
                               rtol=1e-8, atol=1e-10)


# ================================================================== bad input
def test_bad_grid_inputs():
    with pytest.raises(ValueError, match="non-positive spacing"):
        grid.Grid("slab", ((0.0, 1e-3, 1e-3, 2e-3),))
    with pytest.raises(ValueError, match="non-positive spacing"):
        grid.Grid("sphere", ((0.0, 2e-3, 1e-3),))
    with pytest.raises(ValueError, match=r"grid.geometry = 'torus' is unknown"):
        grid.Grid("torus", ((0.0, 1.0),))
    with pytest.raises(ValueError, match="non-finite"):
        grid.Grid("slab", ((0.0, float("nan"), 1.0),))
    with pytest.raises(ValueError, match="radius >= 0"):
        grid.Grid("cylinder", ((-1.0, 1.0),))
    with pytest.raises(ValueError, match="number of cells"):
        grid.slab(1.0, 0)


def test_bad_transport_inputs():
    g = grid.slab(1.0, 10)
    with pytest.raises(ValueError, match=r"transport\.diffusivity contains NaN"):
        fv.validate_transport(g, fv.Transport(diffusivity=jnp.full(10, jnp.nan)), 1)
    with pytest.raises(ValueError, match=r"transport\.diffusivity has value -1"):
        fv.validate_transport(g, fv.Transport(diffusivity=jnp.asarray([-1.0] + [1.0] * 9)), 1)
    with pytest.raises(ValueError, match=r"transport\.diffusivity has shape \(3,\)"):
        fv.validate_transport(g, fv.Transport(diffusivity=jnp.ones(3)), 1)
    with pytest.raises(ValueError, match=r"transport\.capacity has value 0"):
        fv.validate_transport(g, fv.Transport(diffusivity=1.0, capacity=0.0), 1)
    with pytest.raises(ValueError, match=r"transport\.velocity\[0\] has shape"):
        fv.validate_transport(g, fv.Transport(diffusivity=1.0, velocity=(jnp.ones(4),)), 1)
    with pytest.raises(TypeError, match=r"transport\.boundaries\[0\] holds 'wall'"):
        fv.validate_transport(g, fv.Transport(diffusivity=1.0,
                                               boundaries=((fv.Flux(), "wall"),)), 1)
    with pytest.raises(TypeError, match="unknown type"):
        fv.axis_coefficients(g, fv.Transport(diffusivity=1.0, boundaries=((fv.Flux(), "wall"),)),
                             0, 1)
    for h in (0.0, -1.0):
        with pytest.raises(ValueError, match="Robin.h"):
            fv.validate_transport(g, fv.Transport(diffusivity=1.0,
                                                  boundaries=((fv.Robin(h=h), fv.Flux()),)), 1)
    with pytest.raises(ValueError, match="scheme"):
        fv.divergence(g, fv.Transport(diffusivity=1.0), jnp.ones((1, 10)), scheme="central")
    with pytest.raises(ValueError, match="transport_method"):
        solver.transport_step(g, fv.Transport(diffusivity=1.0), jnp.ones((1, 10)), 1.0, "rk4")


def test_bad_time_inputs():
    step = solver.strang_step(grid.slab(1.0, 5), fv.Transport(diffusivity=1.0), None)
    c0 = jnp.ones((1, 5))
    with pytest.raises(ValueError, match="save_times contain NaN"):
        solver.integrate(step, c0, [1.0, float("nan")], 0.1)
    with pytest.raises(ValueError, match="non-decreasing"):
        solver.integrate(step, c0, [2.0, 1.0], 0.1)
    with pytest.raises(ValueError, match="max_dt"):
        solver.integrate(step, c0, [1.0], 0.0)


# ================================================================== gradients
def _objective(params, checkpoint):
    """Drug in the inner half of a sphere after 1 h; D and the uptake rate are parameters."""
    g = grid.sphere(1e-3, 20)
    D, k = params
    tr = fv.Transport(diffusivity=D * jnp.ones((1, 20)), boundaries=((fv.Flux(), fv.Value(1.0)),))
    f = lambda t, c: -k * c / (1.0 + c)  # noqa: E731  saturable uptake
    step = solver.strang_step(g, tr, f, newton_iterations=1)
    inner = jnp.asarray(g.centers[0] < 5e-4, jnp.float64)
    final, saved = solver.integrate(step, jnp.zeros((1, 20)), [1200.0, 3600.0], 60.0,
                                    observe=lambda c: g.integrate(c * inner)[0],
                                    checkpoint=checkpoint)
    return saved[-1] + 0.5 * saved[0]


def test_checkpointed_gradient_matches_plain_and_finite_differences():
    p = jnp.asarray([2e-10, 1e-3])
    g_plain = np.asarray(jax.jit(jax.grad(lambda q: _objective(q, False)))(p))
    g_ckpt = np.asarray(jax.jit(jax.grad(lambda q: _objective(q, True)))(p))
    np.testing.assert_allclose(g_ckpt, g_plain, rtol=1e-12)
    obj = jax.jit(lambda q: _objective(q, False))
    for i in range(2):
        e = np.zeros(2)
        e[i] = 1e-4 * float(p[i])
        fd = (float(obj(p + e)) - float(obj(p - e))) / (2 * e[i])
        assert g_plain[i] == pytest.approx(fd, rel=1e-6)
    assert abs(g_plain[0]) > 0 and g_plain[1] < 0


def test_transport_source_is_exact_for_uniform_source_and_reduces_split_error():
    """A zero-order source carried by Transport enters the implicit solve: for a uniform source
    in a closed slab, c(t) = s t exactly (any step); for a sharp source it is more accurate than
    the same source in the split reaction step."""
    g = grid.slab(1.0, 40)
    tr = fv.Transport(diffusivity=jnp.full((1, 40), 1e-2), source=jnp.full((1, 40), 2.0))
    step = solver.strang_step(g, tr, None)
    _, c = solver.integrate(step, jnp.zeros((1, 40)), [5.0], max_dt=2.5)
    np.testing.assert_allclose(np.asarray(c[-1]), 10.0, rtol=1e-12)
    x = g.centers[0]
    sharp = jnp.asarray(np.where(np.abs(x - 0.5) < 0.1, 1.0, 0.0))[None]

    def run(dt, in_transport):
        t = fv.Transport(diffusivity=jnp.full((1, 40), 1e-2),
                         source=sharp if in_transport else None)
        react = None if in_transport else (lambda t_, c_: sharp)
        st = solver.strang_step(g, t, react)
        return np.asarray(solver.integrate(st, jnp.zeros((1, 40)), [4.0], max_dt=dt,
                                           steps_per_macro=1)[1][-1])

    ref = run(0.01, True)
    err_split = np.abs(run(1.0, False) - ref).max()
    err_solve = np.abs(run(1.0, True) - ref).max()
    assert err_solve < err_split / 10, (err_solve, err_split)


# ================================================================== unsplit implicit step
def _dense_stage_solution(g, tr, c, h, decay):
    """SDIRK2 of the same semi-discrete operator by dense linear algebra (numpy)."""
    ns = c.shape[0]
    coefs = [fv.axis_coefficients(g, tr, a, ns, jnp.float64) for a in range(g.ndim)]
    src = np.asarray(sum(jnp.moveaxis(cf.source, -1, 1 + a) for a, cf in enumerate(coefs)))
    n = c.size

    def apply_m(x):  # (L − k) x per V φ (without sources)
        x = x.reshape(c.shape)
        out = -decay * x
        for a, cf in enumerate(coefs):
            xl = jnp.moveaxis(x, 1 + a, -1)
            lx = fv.apply_axis(cf._replace(source=jnp.zeros_like(cf.source)), xl)
            out = out + jnp.moveaxis(lx, -1, 1 + a)
        return out.reshape(-1)

    m = np.asarray(jax.vmap(apply_m)(jnp.eye(n))).T
    a = solver.GAMMA * h
    lhs = np.eye(n) - a * m
    c0 = np.asarray(c).reshape(-1)
    y1 = np.linalg.solve(lhs, c0 + a * src.reshape(-1))
    y2 = np.linalg.solve(lhs, c0 + solver.W * (y1 - c0) + a * src.reshape(-1))
    return y2.reshape(c.shape)


@pytest.mark.parametrize("geometry, convection", [("axisymmetric", False), ("cartesian2d", True)])
def test_unsplit_implicit_step_matches_dense_solve(geometry, convection):
    """solver.implicit_step (multigrid-preconditioned CG, or BiCGStab with convection) equals
    the dense SDIRK2 solution of the same operator to 1e-8 relative, on graded grids with
    varying D and φ, a sharp source and decay, at a step 100× the explicit limit."""
    rng = np.random.default_rng(4)
    faces = np.cumsum(np.r_[0.0, rng.uniform(0.5, 1.5, 16)]) * 1e-5
    g = grid.Grid(geometry, (tuple(faces), tuple(faces - (faces[-1] / 2 if geometry ==
                                                          "axisymmetric" else 0.0))))
    shape = (1,) + g.shape
    D = jnp.asarray(10 ** rng.uniform(-10, -9, shape))
    phi = jnp.asarray(rng.uniform(0.2, 1.0, shape))
    src = jnp.zeros(shape).at[0, 4:7, 5:9].set(1e-3)
    vel = None
    bcs = None
    if convection:
        vel = (jnp.full((1, 17, 16), 2e-6), None)
        bcs = ((fv.Inflow(0.0), fv.Outflow()), (fv.Flux(), fv.Flux()))
    tr = fv.Transport(diffusivity=D, capacity=phi, velocity=vel, boundaries=bcs, source=src)
    c = jnp.asarray(rng.uniform(0.0, 1.0, shape))
    h = 100.0 * solver.explicit_stable_dt(g, tr, 1)
    got = np.asarray(jax.jit(lambda c: solver.implicit_step(g, tr, c, h, decay=1e-3))(c))
    want = _dense_stage_solution(g, tr, c, h, 1e-3)
    assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-8


@pytest.mark.parametrize("geometry", ["axisymmetric", "cartesian3d"])
def test_fast_diagonalization_inverts_separable_stage_operator(geometry):
    """fdm.stage_inverse is the exact inverse of the volume-weighted SDIRK stage operator when
    the coefficients are uniform: graded axisymmetric (r, z) and 3D grids, two species with
    different D, a Robin and a Dirichlet wall, decay, at a step 1e4× the explicit limit:
    ‖W B (B⁻¹ W⁻¹ r) − r‖/‖r‖ ≤ 1e-11.  A spatially varying D is not separable (multigrid)."""
    from nanotransport import fdm, multigrid

    rng = np.random.default_rng(7)
    faces = [tuple(np.cumsum(np.r_[0.0, rng.uniform(0.5, 1.5, n)]) * 1e-5)
             for n in ((12, 10) if geometry == "axisymmetric" else (6, 8, 10))]
    g = grid.Grid(geometry, tuple(faces))
    nd = g.ndim
    d = jnp.asarray([1e-10, 3e-11]).reshape((2,) + (1,) * nd)
    bcs = [(fv.Flux(), fv.Flux())] * nd
    bcs[-1] = (fv.Robin(1e-6, 0.5), fv.Value(1.0))
    tr = fv.Transport(diffusivity=d, capacity=0.4, boundaries=tuple(bcs))
    decay = 1e-3
    assert solver._separable(g, tr, decay)
    assert not solver._separable(g, fv.Transport(diffusivity=jnp.full((2,) + g.shape, 1e-10)),
                                 decay)
    coefs = [fv.axis_coefficients(g, tr, a, 2, jnp.float64) for a in range(nd)]
    weight = jnp.broadcast_to(jnp.asarray(g.volume)[None] * 0.4, (2,) + g.shape)
    a_h = solver.GAMMA * 1e4 * solver.explicit_stable_dt(g, tr, 2)
    level = solver._stage_level(g, coefs, weight, a_h, jnp.full((2,) + g.shape, decay))
    inverse = fdm.stage_inverse(coefs, a_h, decay)
    r = jnp.asarray(rng.normal(size=(2,) + g.shape))
    back = multigrid.apply(level, inverse(r / weight))
    assert float(jnp.linalg.norm(back - r) / jnp.linalg.norm(r)) < 1e-11


def test_unsplit_step_conserves_and_differentiates():
    """Closed 3D box: Σ V φ c grows by exactly h Σ V s per step (to the Krylov tolerance,
    1e-9 relative); the gradient of the result with respect to D matches central finite
    differences to 1e-6."""
    g = grid.cartesian3d((1e-3,) * 3, (8, 8, 8))
    src = jnp.zeros((1, 8, 8, 8)).at[0, 3:5, 3:5, 3:5].set(1e-3)
    c0 = jnp.zeros((1, 8, 8, 8))
    h = 300.0

    def run(d):
        tr = fv.Transport(diffusivity=d, source=src)
        return solver.implicit_step(g, tr, solver.implicit_step(g, tr, c0, h), h)

    c = run(jnp.asarray(1e-10))
    added = 2 * h * float(jnp.sum(g.integrate(src)))
    assert abs(float(jnp.sum(g.integrate(c))) / added - 1.0) < 1e-9
    probe = lambda d: run(d)[0, 0, 0, 0]  # noqa: E731  a corner, far from the source
    grad = float(jax.grad(probe)(jnp.asarray(1e-10)))
    eps = 1e-13
    fd = (float(probe(jnp.asarray(1e-10 + eps))) - float(probe(jnp.asarray(1e-10 - eps)))) / (2 * eps)
    assert abs(grad / fd - 1.0) < 1e-6


def test_prepare_runs_once_per_macro_interval_and_matches_per_step_work():
    """``integrate(prepare=)``: data that depends on the step length only (here the exact
    propagator exp(A h) of a linear system) computed once per macro-interval gives the same
    states as computing it in every step, and the exact solution at the saved times."""
    a = jnp.array([[-2e-3, 1e-3], [2e-3, -1e-3]])  # closed two-compartment exchange, 1/s
    c0 = jnp.array([1.0, 0.0])
    times = [600.0, 1500.0, 3600.0]  # macro-intervals of different lengths
    per_step = lambda t, h, c: jax.scipy.linalg.expm(a * h) @ c  # noqa: E731
    shared = lambda t, h, c, phi: phi @ c  # noqa: E731
    calls = []

    def prepare(h):
        jax.debug.callback(lambda: calls.append(1))  # counts executions, not traces
        return jax.scipy.linalg.expm(a * h)

    _, ref = solver.integrate(per_step, c0, times, 60.0)
    _, got = solver.integrate(shared, c0, times, 60.0, prepare=prepare)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-13, atol=1e-15)
    exact = np.stack([np.asarray(jax.scipy.linalg.expm(a * t) @ c0) for t in times])
    np.testing.assert_allclose(np.asarray(got), exact, rtol=1e-12)
    lengths, _, steps_per_macro = solver.macro_schedule(times, 0.0, 60.0)
    assert len(calls) == len(lengths) < len(lengths) * steps_per_macro  # not once per step


def test_integrate_on_host_is_integrate_with_the_loop_outside():
    """``integrate_on_host`` (one compiled macro-interval per call, progress on the host) gives
    the saved states of ``integrate`` (round-off: the same steps), reports every macro-interval
    in order up to the last time, and a new progress function compiles nothing."""
    g = grid.slab(1.0, 30)
    tr = fv.Transport(diffusivity=jnp.full((1, 30), 1e-2), source=jnp.full((1, 30), 0.5))
    step = solver.strang_step(g, tr, lambda t, c: -0.3 * c * c)
    c0 = jnp.asarray(np.linspace(0.0, 1.0, 30))[None]
    save = [0.5, 2.0, 7.0]
    _, ref = solver.integrate(step, c0, save, max_dt=0.25)

    @functools.partial(jax.jit, static_argnums=3)
    def advance(state, t, length, n_sub):
        return solver.macro_interval(step, (state, t), length, n_sub)

    for _ in range(2):
        seen = []
        _, out = solver.integrate_on_host(advance, c0, save, max_dt=0.25,
                                          progress=lambda t: seen.append(float(t)))
        np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=1e-13, atol=1e-15)
        assert seen == sorted(seen) and seen[-1] == pytest.approx(7.0, rel=1e-12)
        assert len(seen) == len(solver.macro_schedule(save, 0.0, 0.25)[0])
    assert advance._cache_size() == 1


def test_expm_small_matches_scipy_over_many_scales():
    """The branch-free batched exponential (``linalg.expm_small``) against SciPy, for stable
    matrices with ‖A‖₁ from 1e-6 to 1e7 (a network segment's −Mτ reaches ~5e6)."""
    import scipy.linalg
    from nanotransport.engine import linalg as la
    rng = np.random.default_rng(3)
    b, c = rng.normal(size=(2, 30, 6, 6))
    a = -(b @ b.transpose(0, 2, 1) + 0.5 * np.eye(6)) + 0.3 * (c - c.transpose(0, 2, 1))
    a = a * np.logspace(-6, 7, 30)[:, None, None] / np.abs(a).sum(axis=1).max(axis=1)[:, None, None]
    got = np.asarray(la.expm_small(jnp.asarray(a)))
    for g, m in zip(got, a):
        want = scipy.linalg.expm(m)
        assert np.max(np.abs(g - want)) <= 1e-12 * np.max(np.abs(want)) + 1e-14


def test_krylov_starting_guess_does_not_leak_into_derivatives():
    """``implicit_step`` starts its second stage's Krylov solve from the first stage; the
    derivative systems that ``custom_linear_solve`` solves with the same routine must start
    from zero: a zero tangent gives a zero derivative, and a real one matches differences."""
    from nanotransport.engine import solver
    g = grid.cartesian3d((6e-4,) * 3, (11,) * 3)
    rng = np.random.default_rng(0)
    base = jnp.asarray(rng.uniform(0, 1e-3, size=(1, 11, 11, 11)))
    mask = jnp.asarray(rng.uniform(size=(1, 11, 11, 11)) < 0.1)
    c0 = jnp.asarray(rng.uniform(size=(1, 11, 11, 11)))
    tr = fv.Transport(diffusivity=3e-12 * jnp.ones((1, 11, 11, 11)),
                      capacity=0.3 * jnp.ones((1, 11, 11, 11)))

    def f(s):
        decay = base + jnp.where(mask, 1e-2 * jnp.exp(s), 0.0)
        return solver.implicit_step(g, tr, c0, 900.0, decay=decay)

    zero = jax.jvp(f, (0.0,), (0.0,))[1]
    assert float(jnp.max(jnp.abs(zero))) == 0.0
    tangent = jnp.sum(jax.jvp(f, (0.0,), (1.0,))[1])
    fd = (jnp.sum(f(1e-5)) - jnp.sum(f(-1e-5))) / 2e-5
    assert abs(float(tangent) / float(fd) - 1) < 1e-6


@pytest.mark.parametrize("x0_is_solution", [False, True])
def test_gmres_solves_a_nonsymmetric_system_and_reports_its_residual(x0_is_solution):
    """Restarted GMRES(8) on a nonsymmetric, diagonally dominant 60 × 60 system: the solution
    against LAPACK to 1e-9 relative, the reported residual estimate (the least-squares
    residual of the last cycle) against the true ‖b − A x‖/‖b‖ to 1e-12."""
    rng = np.random.default_rng(3)
    a = np.eye(60) * 4.0 + rng.normal(size=(60, 60)) * 0.25
    b = rng.normal(size=60)
    exact = np.linalg.solve(a, b)
    x0 = jnp.asarray(exact) if x0_is_solution else None
    x, res = jax.jit(lambda b: linalg.gmres(lambda v: jnp.asarray(a) @ v, b, x0,
                                            krylov_dim=8, restarts=40, rtol=1e-11))(b)
    x = np.asarray(x)
    assert np.linalg.norm(x - exact) <= 1e-9 * np.linalg.norm(exact)
    true_res = np.linalg.norm(b - a @ x) / np.linalg.norm(b)
    assert float(res) <= 1e-11 and abs(float(res) - true_res) <= 1e-12
