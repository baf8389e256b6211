"""Tissue temperature of a network run, and the carriers' release rate it sets.

The network model (``studies/network_run``) heats its tissue box with the scenario's
``heating.*`` fields, *quasi-steadily*: the temperature keeps the shape of one steady Pennes
solution and follows the heating schedule in amplitude,

    T(x, t) = T_a + a(t) θ(x),      −∇·(k ∇θ) + W θ = Q₁(x)      (θ in K per unit of a)

with the tissue's conductivity k (W/(m·K)) and perfusion sink W = ω_b ρ_b c_b (W/(m³·K)) of the
tumor inside its sphere and of normal tissue outside it (the continuum model's fields,
docs/model.md §8), and the exact far-field (Robin) condition of perfused tissue on the box
faces (``heat.far_field_boundaries``): the box ends, the tissue does not.  The source shape Q₁
and the amplitude a(t) per ``heating.source``:

* ``ultrasound``: the Gaussian focus per absorbed watt (``heat.focus_shape``, its centre at
  ``heating.focus_offset_mm`` from the tumor centre along x), a(t) = P · window(t);
* ``controlled``: the same focus, ``regional``: a uniform power density over the target
  region (``heat.region_shape``); the controller holds the readout (probe, mean or T90 of the
  target region) at the set point, so a(t) = (T_set(t) − T_a) · window(t) / y(θ), y the readout
  of θ;
* ``protocol``: the target region held at the set point by the stiff relaxation source
  λρc (1 − θ) in the region (as the continuum model's protocol source), scaled as above.

T_set(t) and window(t) are the continuum model's schedule (``heat.setpoint``, ``heat.window``:
ramp, plateau, cool-down, smooth edges).  *Quasi-steady* neglects the tissue's thermal
response time ρc/(W + k/ℓ²) (about a minute for a tumor, ℓ the heated size): the temperature
follows the schedule at once.  Blood in a segment is at the temperature of the tissue around
it (capillaries equilibrate in well under their transit time).

Release (docs/model.md §6): k_rel(T) = k_leak + k_max σ((T − T_m)/ΔT) (``properties
.release_rate``) per tissue cell at its temperature, and per segment at the length-weighted mean
temperature of the cells it crosses (``network_delivery.HeatedRelease``).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ..engine import fv, linalg
from ..engine import grid as grids
from . import heat


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The heating schedule, SI (``heat.window`` and ``heat.setpoint`` read these fields)."""

    start_s: float
    duration_s: float
    ramp_s: float
    cooldown_s: float
    target_c: float
    arterial_c: float


@dataclasses.dataclass(frozen=True)
class Thermal:
    """Per tissue cell (grid shape): conductivity k (W/(m·K)), perfusion sink W
    (W/(m³·K)) and heat capacity ρc (J/(m³·K))."""

    conductivity: np.ndarray
    blood_sink: np.ndarray
    heat_capacity: np.ndarray


@dataclasses.dataclass(frozen=True)
class TissueTemperature:
    """T(x, t) = T_a + a(t) θ(x) (module docstring)."""

    shape: jnp.ndarray  # θ per cell, grid shape, normalized to a maximum of 1
    source: str  # heating.source
    schedule: Schedule
    scale: float  # K: the peak rise per W (ultrasound) or per K of set-point rise, 1/y(θ)

    def amplitude(self, t):
        """a(t), K: the rise where θ = 1."""
        if self.source == "none":
            return jnp.zeros_like(jnp.asarray(t, float))
        on = heat.window(self.schedule, t)
        if self.source == "ultrasound":
            return self.scale * on
        return self.scale * (heat.setpoint(self.schedule, t) - self.schedule.arterial_c) * on

    def cells(self, t):
        """Temperature of every tissue cell at ``t``, °C."""
        return self.schedule.arterial_c + self.amplitude(t) * self.shape


def steady_shape(grid: grids.Grid, thermal: Thermal, source: str, *, region: np.ndarray,
                 focus_offset_m: float, focus_fwhm_m: float, relaxation_per_s: float):
    """θ(x) (grid shape) of one steady Pennes solve for ``source`` (module docstring).
    ``grid`` must have its origin at the tumor centre (the focus sits on its x axis).
    ``region``: the target region's mask (grid shape)."""
    k = jnp.asarray(thermal.conductivity)
    sink = jnp.asarray(thermal.blood_sink)
    boundaries = heat.deviation_boundaries(heat.far_field_boundaries(grid, k, sink, 0.0))
    tr = fv.Transport(diffusivity=k[None], boundaries=boundaries)
    if source == "protocol":
        stiff = relaxation_per_s * jnp.asarray(thermal.heat_capacity) * jnp.asarray(region)
        return linalg.solve_steady(grid, tr, stiff, reaction_rate=sink + stiff).solution
    if source == "regional":
        deposit = heat.region_shape(grid, region)
    else:
        deposit = heat.focus_shape(grid, focus_offset_m, focus_fwhm_m)
    return linalg.solve_steady(grid, tr, deposit, reaction_rate=sink).solution


def readout(theta, region: np.ndarray, volume, mode: str, probe: tuple):
    """What the controller reads of θ: the probe cell, the volume-weighted ``mean`` over the
    target region, or its ``t90`` (10th percentile by volume, ``heat.soft_quantile``)."""
    weights = jnp.asarray(region) * jnp.asarray(volume)
    if mode == "probe":
        return theta[probe]
    if mode == "mean":
        return jnp.sum(weights * theta) / jnp.sum(weights)
    return heat.soft_quantile(theta, weights, 0.1)
