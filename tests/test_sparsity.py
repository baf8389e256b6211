"""Structural sparsity of the local kinetics (``engine/sparsity.py``) and the sparse Newton
elimination (``linalg.sparse_lu``) that uses it: conservative patterns, exact factors, and the
same reaction step, values and derivatives, as the dense elimination."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nanotransport.engine import linalg, solver, sparsity
from nanotransport.model import scenario as scenarios
from nanotransport.model import simulate as sim
from nanotransport.model.transport import local_rates, n_state

jax.config.update("jax_enable_x64", True)


@jax.custom_jvp
def _smooth_positive(x):
    return jnp.logaddexp(x, 0.0)


_smooth_positive.defjvp(lambda p, t: (_smooth_positive(p[0]), jax.nn.sigmoid(p[0]) * t[0]))


def _toy(y):
    """Rows: 0 ← {0, 1}; 1 ← {2} and the condition on 3 (a select depends on its condition and
    both branches); 2 ← {4} through a jitted call; 3 ← {0} through a custom-jvp call; 4 ← {}
    (a constant); 5, 6 ← {5, 6} (a reshape and a slice of rows 5:7 kept row by row)."""
    inner = jax.jit(lambda v: jnp.sin(v) * 2.0)
    r0 = y[0] * y[1]
    r1 = jnp.where(y[3] > 0, y[2], 1.0)
    r2 = inner(y[4])
    r3 = _smooth_positive(y[0])
    r4 = jnp.ones_like(y[0])
    r56 = (y[5:7].reshape(2, -1) * 3.0).reshape(y[5:7].shape)
    r56 = r56 + jnp.flip(y[5:7], axis=0)  # rev along the tracked axis: not followed, joins
    return jnp.concatenate([jnp.stack([r0, r1, r2, r3, r4]), r56])


def test_pattern_of_a_known_function():
    y = jnp.ones((7, 4, 3))
    expected = np.zeros((7, 7), bool)
    for i, cols in {0: [0, 1], 1: [2, 3], 2: [4], 3: [0], 5: [5, 6], 6: [5, 6]}.items():
        expected[i, cols] = True
    np.testing.assert_array_equal(sparsity.species_pattern(_toy, y), expected)


def test_an_operation_not_followed_makes_everything_depend_on_everything():
    pattern = sparsity.species_pattern(lambda y: jnp.cumsum(y, axis=0) * y[0], jnp.ones((3, 5)))
    assert pattern.all()


def test_a_loop_is_not_read_as_one_pass():
    # two swaps of rows 0 and 1 are the identity: read as one pass, row 0 would depend on row 1
    # only; a loop takes the conservative rule
    swap_twice = lambda y: jax.lax.fori_loop(0, 2, lambda i, c: jnp.stack([c[1], c[0]]), y)  # noqa
    pattern = sparsity.species_pattern(swap_twice, jnp.ones((2, 3)))
    assert pattern[0, 0] and pattern[1, 1]


@pytest.mark.parametrize("name", ["doxil", "thermodox", "targeted", "conjugate"])
def test_the_model_kinetics_pattern_holds_every_numerical_nonzero(name):
    sc = scenarios.load(name, ["tumor.geometry=cartesian3d", "numerics.cells=4"])
    static = sim.structure(sc)
    inp, state = sim._prepare_jit(sc.params, static)
    names = sim._prepare(sc.params, static)[2]
    ns = n_state(names)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(0.1, 1.0, state[2].shape)) * 1e-3
    heat = None
    if "temperature" in names:
        x = x.at[names.index("temperature")].set(jnp.asarray(rng.uniform(37, 45, x.shape[1:])))
        heat = jnp.full(x.shape[1:], 1e5)

    def f(t, y):
        return local_rates(inp.kinetics, y, (1e-3, 2e-3, 1e-4), names, heat)

    pattern = sparsity.species_pattern(lambda y: f(0.0, y), x)[:ns, :ns]
    jac = np.asarray(jax.jit(lambda x: solver._state_jacobian(f, 0.0, x, ns))(x))
    jac = jac.reshape(ns, ns, -1)
    numerical = (jac != 0).any(-1)
    assert not (numerical & ~pattern).any(), np.argwhere(numerical & ~pattern)
    assert pattern.sum() <= numerical.sum() + 10  # conservative, but not dense
    sparse = jax.jit(lambda x: solver._sparse_state_jacobian(f, 0.0, x, ns, pattern))(x)
    for (i, j), v in sparse.items():
        np.testing.assert_allclose(v.ravel(), jac[i, j], rtol=1e-14, atol=0)


def test_colours_share_no_row_and_cover_every_column():
    rng = np.random.default_rng(4)
    for _ in range(20):
        pattern = rng.random((9, 9)) < 0.3
        colours = sparsity.column_colours(pattern)
        assert sorted(j for c in colours for j in c) == list(range(9))
        for c in colours:
            assert (pattern[:, list(c)].sum(1) <= 1).all()


def test_sparse_lu_solves_with_fill_in():
    rng = np.random.default_rng(5)
    n, batch = 8, 6
    pattern = (rng.random((n, n)) < 0.3) | np.eye(n, dtype=bool)
    pattern[n - 1, 0] = pattern[0, n - 1] = True  # an arrow: fill-in along row and column
    a = np.where(pattern[..., None], -rng.random((n, n, batch)), 0.0)
    a[np.arange(n), np.arange(n)] = 1.0 + np.abs(a).sum(1)  # diagonally dominant M-matrix
    entries = {(i, j): jnp.asarray(a[i, j]) for i in range(n) for j in range(n) if pattern[i, j]}
    lu = linalg.sparse_lu(entries, n)
    assert len(lu) > pattern.sum()  # fill-in was created
    b = rng.random((n, batch))
    x = np.asarray(linalg.sparse_lu_solve(lu, jnp.asarray(b)))
    for k in range(batch):
        np.testing.assert_allclose(a[:, :, k] @ x[:, k], b[:, k], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(x[:, k], np.linalg.solve(a[:, :, k], b[:, k]), rtol=1e-12)


def test_the_sparse_reaction_step_is_the_dense_one(monkeypatch):
    """The default scenario's kinetics over a 5-minute half step from a random state: the
    sparse elimination against the dense one, values and a forward derivative."""
    sc = scenarios.load("doxil", ["tumor.geometry=cartesian3d", "numerics.cells=6"])
    static = sim.structure(sc)
    inp, state = sim._prepare_jit(sc.params, static)
    names = sim._prepare(sc.params, static)[2]
    ns = n_state(names)
    x = jnp.asarray(np.random.default_rng(6).uniform(0.0, 1.0, state[2].shape)) * 1e-3
    plasma = (1e-3, 2e-3, 1e-4)

    def half(scale):
        return solver.reaction_step(
            lambda t, y: local_rates(inp.kinetics, y, tuple(scale * p for p in plasma), names),
            0.0, x, 300.0, 2, ns)

    sparse = jax.jit(lambda s: jax.jvp(half, (s,), (1.0,)))(1.0)
    assert solver._newton_pattern(lambda t, y: local_rates(inp.kinetics, y, plasma, names),
                                  0.0, x, ns) is not None
    monkeypatch.setattr(solver, "_newton_pattern", lambda *args: None)
    dense = jax.jit(lambda s: jax.jvp(half, (s,), (1.0,)))(1.0)
    for s, d in zip(sparse, dense):
        scale = np.abs(np.asarray(d)).max(axis=tuple(range(1, d.ndim)), keepdims=True)
        np.testing.assert_allclose(np.asarray(s) / np.where(scale > 0, scale, 1),
                                   np.asarray(d) / np.where(scale > 0, scale, 1), atol=1e-13)
