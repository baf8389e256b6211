"""Engine conveniences for problems built by hand (issue #19 item 5): grids on any box,
sources and sinks on regions and points, probes and region averages (``engine/regions.py``),
and the ``StepWarning`` of ``solver.integrate``.  float64 (tests/conftest.py); tolerances are
stated per test."""
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nanotransport import fv, grid, linalg, regions, solver

L = 1e-3
BOX = grid.cartesian3d((L, 2 * L, L), (6, 7, 5), origin_m=(-L / 2, -0.3e-3, 2e-3))


# ------------------------------------------------------------------ grids with an origin
def test_grids_with_origin_start_at_origin():
    """Faces start exactly at the origin and end at origin + length (1e-15 relative); the old
    calls (no origin) still start at 0 and give the same faces as before."""
    assert [f[0] for f in BOX.faces] == [-L / 2, -0.3e-3, 2e-3]
    np.testing.assert_allclose([f[-1] for f in BOX.faces], [L / 2, 1.7e-3, 3e-3], rtol=1e-15)
    g2 = grid.cartesian2d((2.0, 3.0), (4, 5), origin_m=(-1.0, 0.5))
    assert (g2.faces[0][0], g2.faces[1][0]) == (-1.0, 0.5)
    assert g2.faces[0][-1] == pytest.approx(1.0, rel=1e-15)
    ax = grid.axisymmetric(1e-3, 4e-3, (5, 8), z_origin_m=-2e-3)
    assert ax.faces[0][0] == 0.0 and ax.faces[1][0] == -2e-3
    assert ax.faces[1][-1] == pytest.approx(2e-3, rel=1e-15)
    assert grid.cartesian3d((1.0, 1.0, 1.0), (2, 3, 4)).faces == tuple(
        grid.axis_faces(1.0, n) for n in (2, 3, 4))
    assert grid.cartesian2d((1.0, 2.0), (3, 4)).faces[1] == grid.axis_faces(2.0, 4)
    with pytest.raises(ValueError, match=r"origin_m = \(0.0, 0.0\); allowed: 3 finite"):
        grid.cartesian3d((1.0, 1.0, 1.0), (2, 2, 2), origin_m=(0.0, 0.0))
    with pytest.raises(ValueError, match="z_origin_m = nan"):
        grid.axisymmetric(1.0, 1.0, (2, 2), z_origin_m=float("nan"))


# ------------------------------------------------------------------ sources and sinks
REGION_CASES = {
    "slab": (grid.slab(2e-3, 40, start_m=-1e-3), (0.2e-3,), 0.35e-3),
    "sphere": (grid.sphere(1e-3, 30), (0.0,), 0.4e-3),
    "axisymmetric": (grid.axisymmetric(1e-3, 2e-3, (10, 20), z_origin_m=-1e-3), (0.0, 0.1e-3),
                     0.5e-3),
    "box": (BOX, (0.1e-3, 0.6e-3, 2.5e-3), 0.45e-3),
}


@pytest.mark.parametrize("name", sorted(REGION_CASES))
def test_sources_integrate_to_the_rate(name):
    """Σ s V = Q to 1e-12 relative for a ball, a point and a hand-made mask, for a scalar rate,
    a negative one (a sink) and one per species; zero outside the region."""
    g, centre, radius = REGION_CASES[name]
    ball = regions.ball(g, centre, radius)
    assert 1 < ball.sum() < g.size
    odd = np.zeros(g.shape, dtype=bool)
    odd.flat[::3] = True
    for mask in (ball, regions.cell_mask(g, centre), odd):
        for q in (2.5e-12, -7e-15):
            s = regions.region_source(g, mask, rate_mol_per_s=q)
            assert s.shape == g.shape
            assert float(g.integrate(s)) == pytest.approx(q, rel=1e-12)
            assert not np.any(np.asarray(s)[~mask])
        per_species = regions.region_source(g, mask, jnp.asarray([1e-12, 3e-12]))
        assert per_species.shape == (2,) + g.shape
        np.testing.assert_allclose(g.integrate(per_species), [1e-12, 3e-12], rtol=1e-12)
    point = regions.point_source(g, centre, 4e-12)
    assert np.count_nonzero(np.asarray(point)) == 1
    assert float(g.integrate(point)) == pytest.approx(4e-12, rel=1e-12)


def test_point_outside_the_domain_names_the_point_and_bounds():
    with pytest.raises(ValueError, match=r"point_m = \(0.0, 0.0, 0.0031\) lies outside the grid; "
                       r"allowed: x ∈ \[-0.0005, 0.0005\] m, y ∈ \[-0.0003, 0.0017\] m, "
                       r"z ∈ \[0.002, 0.003\] m"):
        regions.point_source(BOX, (0.0, 0.0, 3.1e-3), 1e-12)
    with pytest.raises(ValueError,
                       match=r"point_m = \(-0.0001,\) lies outside .* r ∈ \[0, 0.001\]"):
        regions.probe(grid.sphere(1e-3, 10), jnp.ones(10), -1e-4)
    with pytest.raises(ValueError, match="point_m = .*allowed: 3 finite coordinate"):
        regions.cell_index(BOX, (0.0, 0.0))


def test_region_arguments_are_checked():
    g = grid.sphere(1e-3, 10)
    with pytest.raises(ValueError, match="off the axis of the sphere grid .*allowed: r = 0"):
        regions.ball(g, (1e-4,), 1e-4)
    with pytest.raises(ValueError, match=r"holds no cell centre .*radius_m >= 5e-05 m"):
        regions.ball(g, (0.0,), 1e-5)
    with pytest.raises(ValueError, match="radius_m = -1"):
        regions.ball(g, (0.0,), -1.0)
    with pytest.raises(ValueError,
                       match=r"region has dtype float64 .*boolean mask of shape \(10,\)"):
        regions.region_source(g, np.ones(10), 1.0)
    with pytest.raises(ValueError, match="region selects no cell"):
        regions.region_average(g, jnp.ones(10), np.zeros(10, dtype=bool))
    with pytest.raises(ValueError, match=r"rate_constant_per_s = -0.1; allowed: >= 0"):
        regions.region_sink(g, regions.ball(g, (0.0,), 5e-4), -0.1)
    with pytest.raises(ValueError, match=r"c has shape \(3, 9\); allowed: \(\.\.\., \*\(10,\)\)"):
        regions.region_total(g, jnp.ones((3, 9)))


def test_region_sink_is_the_rate_constant_on_the_region():
    """k on the region, 0 elsewhere, with leading species axes; at the steady state of a closed
    sphere with a source Q and the sink on an inner ball, k Σ_ball V c = Q (1e-10 relative)."""
    g = grid.sphere(1e-3, 40)
    inner = regions.ball(g, (0.0,), 5e-4)
    k = regions.region_sink(g, inner, 1e-2)
    np.testing.assert_array_equal(np.asarray(k), np.where(inner, 1e-2, 0.0))
    assert regions.region_sink(g, inner, jnp.asarray([1.0, 2.0])).shape == (2, 40)
    q = 3e-15
    tr = fv.Transport(diffusivity=1e-9, source=regions.point_source(g, 8e-4, q))
    step = jax.jit(lambda c: solver.implicit_step(g, tr, c, 1e5, decay=k))
    c = jnp.zeros((1, 40))
    for _ in range(30):
        c = step(c)
    assert float(1e-2 * regions.region_total(g, c[0], inner)) == pytest.approx(q, rel=1e-10)


# ------------------------------------------------------------------ probes and averages
def test_probe_returns_the_value_of_the_cell_holding_the_point():
    """Exact values of a field with a distinct number per cell, with (time, species) axes."""
    c = jnp.arange(2 * 3 * BOX.size, dtype=float).reshape((2, 3) + BOX.shape)
    x, y, z = BOX.centers
    for idx in ((0, 0, 0), (5, 6, 4), (2, 3, 1)):
        centre = (x[idx[0]], y[idx[1]], z[idx[2]])
        np.testing.assert_array_equal(regions.probe(BOX, c, centre), c[(..., *idx)])
    # near a face, on an interior face (the cell above) and on the domain's upper corner
    fx = BOX.faces[0]
    assert regions.cell_index(BOX, (fx[2] - 1e-12, y[0], z[0]))[0] == 1
    assert regions.cell_index(BOX, (fx[2], y[0], z[0]))[0] == 2
    assert regions.cell_index(BOX, tuple(f[-1] for f in BOX.faces)) == (5, 6, 4)
    assert float(regions.probe(grid.slab(1.0, 4), jnp.arange(4.0), 0.6)) == 2.0


def test_region_average_and_total():
    """Constant field: its value (1e-14); on unequal cells the mean is volume-weighted
    (Σ V c / Σ V, 1e-14, not the plain mean); linear field on a uniform slab: the value at the
    region's centre (1e-13); the total with a capacity is Σ V φ c (1e-13)."""
    for g, centre, radius in REGION_CASES.values():
        mask = regions.ball(g, centre, radius)
        assert float(regions.region_average(g, 3.7 * jnp.ones(g.shape), mask)) \
            == pytest.approx(3.7, rel=1e-14)
        first = g.mesh()[0]  # x or r at the cell centres
        weighted = np.sum(g.volume * mask * first) / np.sum(g.volume * mask)
        assert float(regions.region_average(g, first, mask)) == pytest.approx(weighted, rel=1e-14,
                                                                               abs=1e-20)
    sphere = REGION_CASES["sphere"][0]
    r = sphere.centers[0]
    assert float(regions.region_average(sphere, r)) > 1.4 * np.mean(r)  # outer cells weigh more
    g = grid.slab(2.0, 40, start_m=-1.0)
    x = g.centers[0]
    c = jnp.stack([2.0 + 5.0 * x, -1.0 + 0.5 * x])  # (species, cells)
    mask = (x > -0.4) & (x < 0.9)  # cells 12..37: faces -0.4 and 0.9, centre 0.25
    np.testing.assert_allclose(regions.region_average(g, c, mask), [2.0 + 1.25, -1.0 + 0.125],
                               rtol=1e-13)
    np.testing.assert_allclose(regions.region_average(g, c), [2.0, -1.0], rtol=1e-13)
    phi = jnp.linspace(0.1, 0.4, 40)
    np.testing.assert_allclose(regions.region_total(g, c, mask, capacity=phi),
                               np.sum(g.volume * mask * np.asarray(phi) * np.asarray(c), axis=-1),
                               rtol=1e-13)
    assert float(regions.region_total(g, jnp.ones(40), mask)) == pytest.approx(1.3, rel=1e-13)


def test_helpers_under_jit_and_grad():
    """Rate → source → implicit step → probe, average and total is linear in the rate: the
    gradient with respect to it is the response to a unit rate (1e-12); same values under jit;
    a traced capacity differentiates too."""
    g = grid.cartesian2d((1e-3, 1e-3), (6, 6), origin_m=(-5e-4, -5e-4))
    ball = regions.ball(g, (0.0, 0.0), 2e-4)

    def readout(q, phi):
        tr = fv.Transport(diffusivity=1e-9, capacity=phi,
                          source=regions.point_source(g, (0.0, 0.0), q))
        c = solver.implicit_step(g, tr, jnp.zeros((1, 6, 6)), 10.0)
        return (regions.probe(g, c, (1e-4, -1e-4))[0] + regions.region_average(g, c, ball)[0]
                + regions.region_total(g, c, ball, capacity=phi)[0] * 1e6)

    value = float(jax.jit(readout)(1.0, 0.5))
    assert value > 0
    assert float(readout(1.0, 0.5)) == pytest.approx(value, rel=1e-12)
    dq, dphi = jax.jit(jax.grad(readout, argnums=(0, 1)))(2.0, 0.5)
    assert float(dq) == pytest.approx(value, rel=1e-12)
    eps = 1e-6
    fd = (float(jax.jit(readout)(2.0, 0.5 + eps)) - float(jax.jit(readout)(2.0, 0.5 - eps))) \
        / (2 * eps)
    assert float(dphi) == pytest.approx(fd, rel=1e-6)


# ------------------------------------------------------------------ point sources, solved
def test_steady_point_source_in_a_sphere_matches_the_closed_form():
    """c(r) = Q/(4πD) (1/r − 1/R) for a point source at the centre of a sphere held at c = 0:
    max |c − exact| over r ≥ 0.1 R, relative to exact at 0.1 R, below 1e-3 on 100 cells
    (measured 8.4e-4), falling 3.5-4.5x from 100 to 200 cells (second order; measured 3.8)."""
    R, D, q = 1e-3, 1e-9, 2e-15
    errors = []
    for n in (100, 200):
        g = grid.sphere(R, n)
        tr = fv.Transport(diffusivity=D, boundaries=((fv.Flux(), fv.Value(0.0)),))
        c = np.asarray(linalg.solve_steady(g, tr, regions.point_source(g, 0.0, q)).solution)
        r = g.centers[0]
        far = r >= 0.1 * R
        exact = q / (4 * math.pi * D) * (1 / r - 1 / R)
        errors.append(np.max(np.abs(c - exact)[far]) / np.max(exact[far]))
    assert errors[0] < 1e-3
    assert 3.5 < errors[0] / errors[1] < 4.5


@pytest.mark.parametrize("g, point", [(grid.sphere(1e-3, 25), (0.0,)),
                                      (BOX, (0.2e-3, 0.5e-3, 2.3e-3))],
                         ids=["sphere", "box"])
def test_closed_domain_mass_grows_like_rate_times_time(g, point):
    """No flux out: Σ V φ c = Q t after every implicit_step (1e-10 relative; 1D tridiagonal,
    3D Krylov with the exact fast-diagonalization preconditioner)."""
    q, phi = 5e-15, 0.3
    tr = fv.Transport(diffusivity=2e-10, capacity=phi, source=regions.point_source(g, point, q))
    step = jax.jit(lambda c: solver.implicit_step(g, tr, c, 120.0))
    c = jnp.zeros((1,) + g.shape)
    for k in range(1, 6):
        c = step(c)
        total = float(regions.region_total(g, c[0], capacity=phi))
        assert total == pytest.approx(q * 120.0 * k, rel=1e-10)
    assert float(regions.probe(g, c[0], point)) == float(jnp.max(c))


# ------------------------------------------------------------------ StepWarning
def _count_steps(save_times, max_dt, **kwargs):
    """Run integrate with a step that counts steps and sums their lengths."""
    step = lambda t, h, s: s + jnp.asarray([1.0, h])  # noqa: E731
    final, _ = solver.integrate(step, jnp.zeros(2), save_times, max_dt, **kwargs)
    return int(final[0]), float(final[1])


def test_step_warning_fires_when_saves_split_the_steps():
    """Saves every 10 s over 1000 s at max_dt = 10 s: the fewest steps are 100, the default
    √100 = 10 steps per macro-interval make 1000 steps of 1 s; steps_per_macro=1 takes 100."""
    times = np.arange(1, 101) * 10.0
    with pytest.warns(solver.StepWarning, match=r"takes 1000 steps where the saved times and "
                      r"max_dt need 100: steps_per_macro = 10 .* down to 1 s where 10 s"):
        n, t = _count_steps(times, 10.0)
    assert (n, t) == (1000, pytest.approx(1000.0, rel=1e-12))
    advance = lambda s, t, length, n_sub: (s + length, t + length)  # noqa: E731
    with pytest.warns(solver.StepWarning, match="takes 1000 steps"):
        solver.integrate_on_host(advance, jnp.zeros(()), times, 10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", solver.StepWarning)
        assert _count_steps(times, 10.0, steps_per_macro=1)[0] == 100


def test_step_warning_silent_in_the_normal_case():
    """Equal steps within a factor 2 of max_dt, a short first interval, a fine window, and
    the default model's schedules (doxil, thermodox with its heating window) do not warn."""
    from nanotransport import scenario, simulate

    cases = [([100.0, 200.0, 400.0], 5.0, {}), ([3600.0], 7.0, {}), ([1.0, 3600.0], 60.0, {}),
             ([600.0, 3600.0], 60.0, {"fine_windows": ((100.0, 700.0, 2.0),)})]
    for name in ("doxil", "thermodox"):
        sc = scenario.load(name)
        sched = simulate._schedule(sc, simulate.structure(sc))
        cases.append((sched["save_times"], sched["max_dt"],
                      {"fine_windows": sched["fine_windows"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", solver.StepWarning)
        for times, max_dt, kwargs in cases:
            n, t = _count_steps(times, max_dt, **kwargs)
            assert t == pytest.approx(times[-1], rel=1e-12)
