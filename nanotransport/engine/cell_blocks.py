"""Per-cell work in cache-sized blocks of cells.

The local kinetics of ``solver.reaction_step`` are independent per grid cell, and their Newton
iterations hold per-cell temporaries many times the state (the n × n Jacobians, their LU
factors, the tangents of n forward products). Written over the whole grid, every operation
streams all of them through memory: at 48³ cells and 10 species one Jacobian is 88 MB, and the
step is bound by memory bandwidth. Mapped over blocks of ~2,000 cells (``jax.lax.map``), the same
operations work on a block that stays in the processor's cache, and give bit-identical results:
the default scenario's reaction half step at 48³ took 0.26 s in blocks of 1,024-2,048 cells
against 0.78 s over the whole grid with the dense elimination, 0.10 s against 0.24 s with the
sparse one (``sparsity.py``) (2-core CPU; ``benchmarks/cell_blocks.py`` measures it).

On a GPU the whole grid is one parallel kernel and blocks would serialize it, so blocks are
used on the CPU only (``CELLS_PER_BLOCK``), and only where the grid has at least two blocks.

The function mapped receives the state and ``cell_data``, a pytree of the arrays it reads per
cell. Its leaves are classified by shape against the grid's cell shape (the state's trailing
axes): a leaf whose trailing axes broadcast to the cell shape is per cell and is cut into blocks
(a leaf whose trailing axes are all 1 is reshaped to broadcast against a block); any other leaf
(scalars, species vectors, face arrays) is passed whole. A leaf varying along some cell axes
must therefore carry all of them (size 1 where it is constant), as NumPy broadcasting would need.
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# cells per block on the CPU: the default scenario's reaction half step at 48³ took 0.102 s in
# blocks of 2,048 cells against 0.239 s over the whole grid; 1,024: 0.111 s, 4,096: 0.105 s,
# 8,192: 0.129 s (2-core VM, benchmarks/cell_blocks.py, sparse elimination)
CELLS_PER_BLOCK = 2048


def block_layout(n_cells: int, cells_per_block: int | None) -> tuple[int, int] | None:
    """(number of blocks, cells per block) for ``n_cells`` cells, or None for no blocks.

    ``cells_per_block``: None is ``CELLS_PER_BLOCK`` on a CPU backend and no blocks elsewhere;
    0 is no blocks. Blocks are used when the grid holds at least two; they are made equal (the
    last padded with copies of the last cell)."""
    if cells_per_block is None:
        cells_per_block = CELLS_PER_BLOCK if jax.default_backend() == "cpu" else 0
    if cells_per_block < 0:
        raise ValueError(f"cells_per_block = {cells_per_block}; allowed: ≥ 0 (0: no blocks)")
    if cells_per_block == 0 or n_cells < 2 * cells_per_block:
        return None
    n_blocks = -(-n_cells // cells_per_block)
    return n_blocks, -(-n_cells // n_blocks)


def _kind(shape: tuple, cell_shape: tuple) -> str:
    """'cells' (cut into blocks), 'uniform' (trailing axes all 1) or 'whole' (passed as is)."""
    k = len(cell_shape)
    if len(shape) < k or k == 0:
        return "whole"
    tail = shape[len(shape) - k:]
    if not all(s in (1, n) for s, n in zip(tail, cell_shape)):
        return "whole"
    return "uniform" if all(s == 1 for s in tail) else "cells"


def _split(a, cell_shape: tuple, n_blocks: int, size: int):
    """(*lead, *cell_shape) → (n_blocks, *lead, size), the cells in C order, padded with
    copies of the last cell."""
    k, n = len(cell_shape), math.prod(cell_shape)
    lead = a.shape[:a.ndim - k]
    flat = jnp.broadcast_to(a, lead + cell_shape).reshape(lead + (n,))
    flat = jnp.pad(flat, [(0, 0)] * len(lead) + [(0, n_blocks * size - n)], mode="edge")
    return jnp.moveaxis(flat.reshape(lead + (n_blocks, size)), -2, 0)


def map_blocks(fn: Callable, c, cell_data, layout: tuple[int, int]):
    """fn(c_block, data_block) over the blocks of ``layout`` (``block_layout``): c (n, *cells)
    and its result of the same shape; ``cell_data`` cut as the module docstring says."""
    cell_shape = tuple(c.shape[1:])
    n_blocks, size = layout
    leaves, tree = jax.tree.flatten(cell_data)
    kinds = [_kind(tuple(np.shape(a)), cell_shape) for a in leaves]
    mapped = [_split(jnp.asarray(a), cell_shape, n_blocks, size)
              for a, kind in zip(leaves, kinds) if kind == "cells"]

    def block(args):
        c_block, data_blocks = args
        blocks = iter(data_blocks)
        data = [next(blocks) if kind == "cells" else
                jnp.reshape(a, np.shape(a)[:np.ndim(a) - len(cell_shape)] + (1,))
                if kind == "uniform" else a for a, kind in zip(leaves, kinds)]
        return fn(c_block, jax.tree.unflatten(tree, data))

    out = jax.lax.map(block, (_split(c, cell_shape, n_blocks, size), mapped))
    n = math.prod(cell_shape)
    return jnp.moveaxis(out, 0, -2).reshape(c.shape[:1] + (-1,))[:, :n].reshape(c.shape)
