"""Tissue heating: heat sources for the Pennes bioheat equation (MODEL.md §8).

    ρc ∂T/∂t = ∇·(k ∇T) + W(T) (T_a − T) + Q(x, t)         (W/m³; T in °C)

Sources (``heating.source``):

* ``ultrasound``: a Gaussian focused-ultrasound focus of absorbed power P (W),
  Q = P·g(x) with g = exp(−4 ln2 |x − x_f|²/FWHM²)/∫(…)dV (W/m³ per W), on during the
  heating window;
* ``protocol``: a prescribed temperature protocol in the tumor — ramp from 37 °C to the target
  over ``ramp_min``, hold, off at the end of the window — imposed by a stiff relaxation source
  Q = λ ρc (T_set(t) − T) in tumor cells (λ = ``protocol_relaxation_per_s``, integrated
  implicitly, so the tumor follows T_set within ~1/λ s and normal tissue heats by conduction);
* ``controlled``: the ultrasound focus with its power adjusted to hold the target (following the
  same ramp) at a probe point, as clinical hyperthermia does: P = softplus(P_ff + K (T_set −
  T_probe)/G), where G is the steady temperature rise at the probe per absorbed watt (one steady
  Pennes solve) and P_ff = (T_set − T_a)/G the feedforward power; T_probe is the probe
  temperature at the start of the step.

The window is smooth, sigmoid((t − t_on)/τ)·sigmoid((t_off − t)/τ) with τ = 20 s, so every
quantity is differentiable in the start time and the duration.  The step is refined to
``numerics.heating_max_dt_min`` from 5 min before the window to 30 min after it (rounded out
to 30-min marks, so nearby schedules share one compilation).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from . import fv, linalg
from .grid import Grid

SOURCES = ("none", "ultrasound", "protocol", "controlled")
EDGE_S = 20.0  # smoothing time of the heating window, s


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Heating:
    """Heating inputs, SI (a pytree)."""

    focus: jax.Array  # g(x), 1/m³ (W/m³ per absorbed W)
    tumor: jax.Array  # tumor mask (protocol region)
    start_s: jax.Array
    duration_s: jax.Array
    ramp_s: jax.Array
    target_c: jax.Array
    power_w: jax.Array
    gain: jax.Array  # K of the controller
    relaxation: jax.Array  # λ of the protocol, 1/s
    probe_gain_c_per_w: jax.Array  # G, °C per W at the probe (steady)
    arterial_c: jax.Array
    heat_capacity: jax.Array  # ρc per cell, J/(m³·K)


def focus_shape(grid: Grid, center_m, fwhm_m):
    """Normalized Gaussian focus g(x) (1/m³): ∫ g dV = 1 on the grid."""
    mesh = grid.mesh()
    offset = [jnp.asarray(x) for x in mesh]
    offset[0] = offset[0] - center_m  # the focus moves along the first axis
    if grid.geometry in ("sphere", "cylinder"):
        offset[0] = jnp.asarray(mesh[0])  # radial grids: the focus sits at the centre
    r2 = sum(x**2 for x in offset)
    g = jnp.exp(-4.0 * math.log(2.0) * r2 / fwhm_m**2)
    return g / jnp.sum(g * jnp.asarray(grid.volume))


def window(h: Heating, t):
    """Smooth on/off window of the heating, in [0, 1]."""
    return (jax.nn.sigmoid((t - h.start_s) / EDGE_S)
            * jax.nn.sigmoid((h.start_s + h.duration_s - t) / EDGE_S))


def setpoint(h: Heating, t):
    """Target temperature at time t: ramp from T_a to the target over ramp_s, then hold (°C)."""
    frac = jnp.clip((t - h.start_s) / h.ramp_s, 0.0, 1.0)
    return h.arterial_c + (h.target_c - h.arterial_c) * frac


def source_function(h: Heating, mode: str, t, probe_temperature):
    """Q(T) per cell at time t (W/m³), as a function of the local temperature T."""
    on = window(h, t)
    if mode == "ultrasound":
        return lambda temp: on * h.power_w * h.focus
    if mode == "protocol":
        t_set = setpoint(h, t)
        return lambda temp: on * h.relaxation * h.heat_capacity * h.tumor * (t_set - temp)
    if mode == "controlled":
        t_set = setpoint(h, t)
        raw = ((t_set - h.arterial_c) + h.gain * (t_set - probe_temperature)) / h.probe_gain_c_per_w
        power = jax.nn.softplus(raw * 4.0) / 4.0  # ≥ 0, smooth
        return lambda temp: on * power * h.focus
    raise ValueError(f"heating.source = {mode!r}; allowed: {SOURCES}")


def probe_gain(grid: Grid, conductivity, blood_sink, focus, probe_index, boundaries):
    """Steady temperature rise at the probe per absorbed watt (°C/W): one Pennes solve."""
    tr = fv.Transport(diffusivity=conductivity[None], boundaries=boundaries)
    sol = linalg.solve_steady(grid, tr, focus, reaction_rate=blood_sink)
    return sol.solution[probe_index]


def probe_index(grid: Grid, offset_m: float) -> tuple:
    """Index of the cell nearest to the tumor centre shifted by ``offset_m`` along axis 0."""
    target = np.zeros(grid.ndim)
    target[0] = offset_m
    if grid.geometry == "axisymmetric":
        target[0] = abs(offset_m)
    idx = tuple(int(np.argmin(np.abs(c - x))) for c, x in zip(grid.centers, target))
    return idx
