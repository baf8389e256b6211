"""Interstitial fluid pressure and flow (Baxter & Jain 1989; docs/model.md §4).

Steady Darcy–Starling problem on the tissue grid:

    −∇·(K ∇p) + (L_p S_v + L_pL S_L) p = L_p S_v p_e + L_pL S_L p_L        (Pa/s)
    u = −K ∇p                                                               (m/s)
    J_v = L_p S_v (p_e − p)                     fluid leaving vessels, per tissue volume (1/s)

with p_e = p_v − σ_0 (π_v − π_i), lymphatic drainage in normal tissue only (p_L = 0), K
harmonically averaged across the tumor margin (continuity of p and of K ∂p/∂n), symmetry at
r = 0 and zero flux at the outer edge of the normal tissue (which drains all filtered fluid by
its lymphatics; the margin must be thicker than √(K/(L_pS_v + L_pL S_L)), ~0.1 mm).  The problem
is linear and is solved once per parameter set (``linalg.solve_steady``, differentiable by the
implicit-function theorem).
"""
from __future__ import annotations

from typing import NamedTuple

import jax

from ..engine import fv, linalg
from ..engine.grid import Grid


class FluidState(NamedTuple):
    pressure: jax.Array  # p per cell, Pa
    velocity: tuple  # per axis, Darcy velocity on the faces, m/s
    filtration: jax.Array  # J_v per cell, 1/s
    lymph_drainage: jax.Array  # L_pL S_L (p − p_L) per cell, 1/s
    relative_residual: jax.Array


def solve_pressure(grid: Grid, hydraulic_k, lp_sv, p_eff, lymph, outer=None) -> FluidState:
    """Steady IFP and flow; ``outer`` is the boundary condition at the outer edge (default
    zero flux; ``fv.Value(0.0)`` gives the isolated tumor of the Baxter–Jain closed form)."""
    outer = fv.Flux() if outer is None else outer
    bcs = tuple((fv.Flux(), outer) for _ in range(grid.ndim))
    tr = fv.Transport(diffusivity=hydraulic_k[None], boundaries=bcs)
    sol = linalg.solve_steady(grid, tr, lp_sv * p_eff, reaction_rate=lp_sv + lymph)
    p = sol.solution
    u = tuple(f[0] for f in fv.face_fluxes(grid, tr, p[None]))
    return FluidState(p, u, lp_sv * (p_eff - p), lymph * p, sol.relative_residual)
