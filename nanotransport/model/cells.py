"""Cell-level kinetics: receptor binding and internalization of targeted carriers, thermal dose.

Receptor binding (docs/model.md §7), per tissue volume, carriers counted in drug-equivalent (one
particle carries N drug molecules and occupies one receptor):

    R_free = R_T − (b + q)/N
    db/dt   = k_on c R_free − (k_off + k_int) b                   (bound carriers)
    de_b/dt = k_on e R_free − (k_off + k_int + k_rel) e_b         (their payload; leaks at k_rel)
    dq/dt   = k_int b − k_deg,q q                                 (internalized carriers)
    de_q/dt = k_int e_b − (k_rel,cell + k_deg,q) e_q              (payload released inside cells)

with c, e the interstitial carrier and payload concentrations (per fluid volume).  At constant c
and k_int = 0 the bound particles approach R_T c_p/(c_p + K_d), K_d = k_off/k_on, c_p = c/N,
exponentially at rate k_on c_p + k_off (tested to 1e-8).

Multivalent avidity (modelling choice, documented): with n ligands per particle the effective
rates are k_on,eff = k_on n/(n + n_½) and k_off,eff = k_off,mono/(1 + n/n_½) with n_½ = 10, so a
particle without ligands does not bind and avidity lowers K_d by up to orders of magnitude.

Thermal dose (Sapareto & Dewey 1984): CEM43 = ∫ R^(43 − T) σ((T − 39 °C)/0.2 °C) dt / 60 (min),
R = 0.25 below 43 °C and 0.5 above; the switch in log R is a steep sigmoid (0.1 °C) so the dose
is differentiable.  Below 39 °C no thermal dose is counted (the clinical convention: the
Arrhenius relation is not established there, and R = 0.25 would make 37 °C add 1/4096 min per
min, ~1 min in 72 h); the cutoff is the smooth factor σ((T − 39)/0.2): 1 − 7e-3 at 40 °C, 1/2 at
39 °C, 4.5e-5 at 37 °C (so 72 h at 37 °C count 5e-5 min).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..engine import units

AVIDITY_HALF_LIGANDS = 10.0


def uptake_constants(s, phi_c, cell_density) -> dict:
    """The drug's uptake and nuclear-binding constants (El-Kareh & Secomb 2000, Neoplasia 2:325;
    scenario fields ``drug.uptake_*``, ``drug.nuclear_*``, given per 10⁵ cells in ng, µg/mL,
    min and h) in SI per m³ of cells, for cells of volume φ_c/ρ_cells (``phi_c``: cell volume
    fraction, ``cell_density``: cells per m³ of tissue): V_max (mol/(m³·s)), K_e (mol/m³ of
    fluid), K_i and N_max (mol/m³ of cells), k_N and k_N,off (1/s).  Keys as the fields of
    ``transport.Kinetics``; the continuum model and the network model's tissue share them."""
    cell_volume = phi_c / cell_density  # m³ per cell
    per_1e5_cells_ng = 1e-9 / 1e5 / units.DOXORUBICIN_MOLAR_MASS / cell_volume  # → mol/m³ cells
    per_h = 1.0 / units.HOUR
    return {
        "uptake_vmax": s["drug.uptake_vmax_ng_per_1e5cells_min"] / units.MIN * per_1e5_cells_ng,
        "uptake_ke": s["drug.uptake_ke_ug_per_ml"] * units.UG_PER_ML_TO_MOL_PER_M3,
        "uptake_ki": s["drug.uptake_ki_ng_per_1e5cells"] * per_1e5_cells_ng,
        "nuclear_binding_rate": s["drug.nuclear_binding_rate_per_h"] * per_h,
        "nuclear_release_rate": s["drug.nuclear_release_rate_per_h"] * per_h,
        "nuclear_capacity": s["drug.nuclear_capacity_ng_per_1e5cells"] * per_1e5_cells_ng,
    }


def kill_exponent(nuclear_auc, phi_c, cell_density, omega):
    """ω ∫ n dt of the kill model (SF = exp(−ω ∫ n dt)): ``nuclear_auc`` ∫ n dt of the DNA-bound
    drug in mol·s per m³ of cells, converted to ng·h per 10⁵ cells for cells of volume
    φ_c/ρ_cells; ω (``drug.kill_coefficient_per_ng_h_per_1e5cells``) in 1/(ng·h/10⁵ cells).
    The continuum model (``summary``) and the network model's tissue share it."""
    cell_volume = phi_c / cell_density  # m³ per cell
    to_ng_per_1e5 = units.DOXORUBICIN_MOLAR_MASS * 1e9 * 1e5 * cell_volume
    return omega * (nuclear_auc * to_ng_per_1e5 / units.HOUR)


def effective_binding_rates(k_on_per_m_s, k_d_nm, ligands_per_particle):
    """(k_on,eff in m³/(mol·s), k_off,eff in 1/s) of a multivalent particle.

    k_on is given in 1/(M·s); 1 M = 1000 mol/m³."""
    n = ligands_per_particle
    k_on = k_on_per_m_s * 1e-3 * n / (n + AVIDITY_HALF_LIGANDS)
    k_off_mono = k_on_per_m_s * k_d_nm * 1e-9  # 1/s
    return k_on, k_off_mono / (1.0 + n / AVIDITY_HALF_LIGANDS)


def binding_rates(c, e, b, eb, q, eq, receptors, n_payload, k_on, k_off, k_int, k_rel,
                  k_release_cell, k_degrade):
    """Rates (per tissue volume, drug-equivalent) of the binding model; returns a dict with the
    changes of interstitial ``carrier`` and ``payload`` (per tissue volume), ``bound``,
    ``bound_payload``, ``internalized``, ``internalized_payload`` and the payload flows
    ``to_free`` (leak of bound carriers) and ``to_cells`` (release inside cells)."""
    r_free = receptors - (b + q) / n_payload
    bind_c = k_on * c * r_free - k_off * b
    bind_e = k_on * e * r_free - k_off * eb
    to_cells = (k_release_cell + k_degrade) * eq
    return {
        "carrier": -bind_c, "payload": -bind_e,
        "bound": bind_c - k_int * b,
        "bound_payload": bind_e - (k_int + k_rel) * eb,
        "internalized": k_int * b - k_degrade * q,
        "internalized_payload": k_int * eb - to_cells,
        "to_free": k_rel * eb, "to_cells": to_cells,
    }


_LN_R_LOW, _LN_R_HIGH = math.log(0.25), math.log(0.5)


CEM43_CUTOFF_C, CEM43_CUTOFF_WIDTH_C = 39.0, 0.2


def cem43_rate(temperature_c):
    """d(CEM43)/dt in minutes per second: R^(43 − T) σ((T − 39)/0.2)/60, R = 0.25 (T < 43 °C),
    0.5 (T ≥ 43 °C); no dose below 39 °C (smooth cutoff, module docstring)."""
    ln_r = _LN_R_LOW + (_LN_R_HIGH - _LN_R_LOW) * jax.nn.sigmoid((temperature_c - 43.0) / 0.1)
    cutoff = jax.nn.sigmoid((temperature_c - CEM43_CUTOFF_C) / CEM43_CUTOFF_WIDTH_C)
    return jnp.exp(ln_r * (43.0 - temperature_c)) * cutoff / 60.0
