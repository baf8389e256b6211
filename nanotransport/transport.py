"""Species, their transport coefficients and the local kinetics of every grid cell.

Concentrations are per volume of their own phase (mol/m³; carriers in mol of drug-equivalent
at loading, so carrier and payload start equal); balances are per tissue volume (times the
phase fraction).  Per cell (MODEL.md §5-§7):

vessel phase (plasma, well mixed, fed by arterial plasma at the systemic concentration):
    φ_v dc_v/dt = w_b (C_sys − c_v) − Φ_c
    φ_v de_v/dt = w_b (E_sys − e_v) − k_rel φ_v e_v − Φ_e
    φ_v df_v/dt = w_b (F_sys − f_v) + k_rel φ_v e_v − Φ_f
interstitium (plus transport: ∇·(R_F u c − φ_e D ∇c) for carriers, ∇·(u f − φ_e D_f ∇f) for drug):
    φ_e dc/dt = Φ_c − λ_L c − k_b φ_e c
    φ_e de/dt = Φ_e − λ_L e − (k_rel + k_b) φ_e e
    φ_e df/dt = Φ_f − λ_L f + (k_rel + k_b) φ_e e − φ_c U(f, a) − k_deg φ_e f
cells:
    da/dt = U(f, a) = V_max [f/(f + K_e) − a/(a + K_i)]         (El-Kareh & Secomb 2000)

Φ is the Kedem–Katchalsky/Patlak transvascular flux (``properties.transvascular_flux``) with
J_v = L_p S_v (p_e − p); only the unbound fraction f_u of plasma free drug crosses the wall.
λ_L = L_pL S_L (p − p_L) is lymphatic drainage (returns solute to the systemic plasma); k_b is
carrier breakdown in the interstitium (its payload becomes free drug); k_rel(T) the release law.

Counters (no transport) keep the ledger exact: ``net_*`` = amount taken from the blood per
tissue volume (arterial inflow − venous outflow − lymph return), ``degraded`` = free drug
degraded, ``intracellular_auc`` = ∫ a dt (the exposure of the kill model).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from . import properties as props
from .tissue import TissueMaps

SPECIES = (
    "carrier", "payload", "free",  # interstitial, transported
    "carrier_vessel", "payload_vessel", "free_vessel",  # vessel phase
    "intracellular",  # drug in cells
    "intracellular_auc", "net_carrier", "net_payload", "net_free", "degraded",  # counters
)
INDEX = {name: i for i, name in enumerate(SPECIES)}
TRANSPORTED = (0, 1, 2)
N_SPECIES = len(SPECIES)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Kinetics:
    """Per-cell rate parameters, SI (a pytree)."""

    maps: TissueMaps
    filtration: jax.Array  # J_v, 1/s
    lymph: jax.Array  # λ_L, 1/s
    release_rate: jax.Array  # k_rel(T) in tissue (vessel phase and interstitium), 1/s
    breakdown_rate: jax.Array  # k_b, 1/s
    degradation_rate: jax.Array  # k_deg of free drug, 1/s
    unbound_fraction: jax.Array  # f_u in plasma
    uptake_vmax: jax.Array  # mol/(m³ cells · s)
    uptake_ke: jax.Array  # mol/m³
    uptake_ki: jax.Array  # mol/m³ cells


def local_rates(kin: Kinetics, x, systemic):
    """dx/dt of the local (per-cell) kinetics.

    Args:
        kin: rate parameters.
        x: species concentrations (N_SPECIES, *shape).
        systemic: (C_sys, E_sys, F_sys) plasma concentrations of carriers, encapsulated drug and
            total free drug (mol/m³).
    """
    m = kin.maps
    c, e, f, cv, ev, fv, a = (x[i] for i in range(7))
    c_sys, e_sys, f_sys = systemic
    jv = kin.filtration
    flux_c = props.transvascular_flux(jv, m.sigma_carrier, m.ps_carrier, cv, c)
    flux_e = props.transvascular_flux(jv, m.sigma_carrier, m.ps_carrier, ev, e)
    flux_f = props.transvascular_flux(jv, m.sigma_free, m.ps_free, kin.unbound_fraction * fv, f)
    in_c, in_e, in_f = (m.perfusion * (s - v) for s, v in ((c_sys, cv), (e_sys, ev),
                                                           (f_sys, fv)))
    release_v = kin.release_rate * m.phi_v * ev
    release_i = (kin.release_rate + kin.breakdown_rate) * m.phi_e * e
    uptake = props.cell_uptake_rate(f, a, kin.uptake_vmax, kin.uptake_ke, kin.uptake_ki)
    lymph = kin.lymph
    degraded = kin.degradation_rate * m.phi_e * f
    rates = [
        (flux_c - lymph * c - kin.breakdown_rate * m.phi_e * c) / m.phi_e,
        (flux_e - lymph * e - release_i) / m.phi_e,
        (flux_f - lymph * f + release_i - m.phi_c * uptake - degraded) / m.phi_e,
        (in_c - flux_c) / m.phi_v,
        (in_e - release_v - flux_e) / m.phi_v,
        (in_f + release_v - flux_f) / m.phi_v,
        uptake,
        a,
        in_c - lymph * c,
        in_e - lymph * e,
        in_f - lymph * f,
        degraded,
    ]
    return jnp.stack([jnp.broadcast_to(r, c.shape) for r in rates])


def drug_per_tissue_volume(maps: TissueMaps, x):
    """All drug (payload + free, every phase) per tissue volume, mol/m³."""
    i = INDEX
    return (maps.phi_v * (x[i["payload_vessel"]] + x[i["free_vessel"]])
            + maps.phi_e * (x[i["payload"]] + x[i["free"]]) + maps.phi_c * x[i["intracellular"]])


def carriers_per_tissue_volume(maps: TissueMaps, x):
    """Carrier particles (drug-equivalent at loading) per tissue volume, mol/m³."""
    return maps.phi_v * x[INDEX["carrier_vessel"]] + maps.phi_e * x[INDEX["carrier"]]


def encapsulated_per_tissue_volume(maps: TissueMaps, x):
    """Drug still inside carriers per tissue volume, mol/m³."""
    return maps.phi_v * x[INDEX["payload_vessel"]] + maps.phi_e * x[INDEX["payload"]]
