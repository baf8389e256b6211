"""The local kinetics solved in blocks of cells (``engine/cell_blocks.py``) give the same result,
and the same derivatives, as over the whole grid."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nanotransport.engine import cell_blocks, solver

jax.config.update("jax_enable_x64", True)

SHAPE = (5, 4, 3)  # 60 cells: blocks of 7 cells make 9 blocks, the last padded by 3


def _data():
    """Per-cell data of every kind ``map_blocks`` tells apart: a full map, a map constant along
    two axes, a uniform (1, 1, 1) array, a scalar and a species vector."""
    rng = np.random.default_rng(1)
    return {"kon": jnp.asarray(rng.uniform(5.0, 40.0, SHAPE)),
            "sites": jnp.asarray(rng.uniform(1.0, 3.0, (SHAPE[0], 1, 1))),
            "koff": jnp.full((1, 1, 1), 0.5),
            "decay": 0.05,
            "weights": jnp.array([1.0, 2.0])}


def _rates(t, c, d):
    """Stiff binding c₀ + s ⇌ c₁ with per-cell rates, a first-order loss of c₀ and a counter
    of the loss: nonlinear and far from equilibrium, so some cells take the positivity
    fallback (a per-block ``lax.cond``)."""
    bind = d["kon"] * c[0] * (d["sites"] - c[1]) - d["koff"] * c[1]
    loss = d["decay"] * d["weights"][0] * c[0] * (1.0 + 0.1 * jnp.sin(t))
    return jnp.stack([-bind - loss, bind, loss])


def _state():
    rng = np.random.default_rng(2)
    return jnp.concatenate([jnp.asarray(rng.uniform(0.5, 2.0, (1,) + SHAPE)),
                            jnp.asarray(rng.uniform(0.0, 0.5, (1,) + SHAPE)),
                            jnp.zeros((1,) + SHAPE)])


def _step(c, data, cells_per_block, h=0.1):
    return solver.reaction_step(_rates, 0.3, c, h, n_state=2, cell_data=data,
                                cells_per_block=cells_per_block)


def test_layout():
    assert cell_blocks.block_layout(60, 7) == (9, 7)
    assert cell_blocks.block_layout(60, 0) is None
    assert cell_blocks.block_layout(60, 31) is None  # fewer than two blocks: the whole grid
    assert cell_blocks.block_layout(64, 30) == (3, 22)
    with pytest.raises(ValueError, match="cells_per_block = -1"):
        cell_blocks.block_layout(60, -1)


def test_blocks_give_the_whole_grid_result():
    c, data = _state(), _data()
    whole = np.asarray(jax.jit(lambda c, d: _step(c, d, 0))(c, data))
    blocks = np.asarray(jax.jit(lambda c, d: _step(c, d, 7))(c, data))
    # some cells took the backward-Euler fallback (the second-order result went negative)
    second_order = np.asarray(solver.reaction_step(_rates, 0.3, c, 0.1, n_state=2,
                                                   positive=False, cell_data=data,
                                                   cells_per_block=0))
    assert (second_order[:2] < 0).any() and (second_order[:2] >= 0).any()
    np.testing.assert_allclose(blocks, whole, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(blocks.sum(0), np.asarray(c).sum(0), rtol=1e-13)  # conserved


def test_blocks_give_the_whole_grid_derivatives_and_batches():
    c, data = _state(), _data()

    def final(kon_scale, cells_per_block):
        d = dict(data, kon=data["kon"] * kon_scale)
        return jnp.sum(_step(c, d, cells_per_block)[1])

    for mode in (jax.jacfwd, jax.grad):
        whole = mode(lambda s: final(s, 0))(1.3)
        blocks = mode(lambda s: final(s, 7))(1.3)
        np.testing.assert_allclose(blocks, whole, rtol=1e-12)
    scales = jnp.array([0.5, 1.0, 2.0])
    batched = jax.vmap(lambda s: final(s, 7))(scales)
    np.testing.assert_allclose(batched, [final(s, 0) for s in scales], rtol=1e-13)


def test_data_that_does_not_broadcast_to_the_cells_is_passed_whole():
    # a (2,) species vector on a grid whose last axis has 3 cells is not per-cell data
    kinds = [cell_blocks._kind(s, SHAPE) for s in [(), (2,), (2, 5, 4, 3), (5, 1, 1), (1, 1, 1),
                                                    (6, 4, 3), (4, 3)]]
    assert kinds == ["whole", "whole", "cells", "cells", "uniform", "whole", "whole"]
