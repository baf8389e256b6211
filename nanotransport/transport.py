"""Species, their layout and the local kinetics of every grid cell (MODEL.md §5-§8).

Concentrations are per volume of their own phase (mol/m³; carriers in mol of drug-equivalent
at loading, so carrier and payload start equal); bound and internalized carriers are per tissue
volume; balances are per tissue volume.  Per cell:

vessel phase (plasma, well mixed, fed by arterial plasma at the systemic concentration):
    φ_v dc_v/dt = w_b (C_sys − c_v) − Φ_c
    φ_v de_v/dt = w_b (E_sys − e_v) − k_rel(T) φ_v e_v − Φ_e
    φ_v df_v/dt = w_b (F_sys − f_v) + k_rel(T) φ_v e_v − Φ_f
interstitium (plus transport ∇·(R_F u c − φ_e D ∇c) for carriers, ∇·(u f − φ_e D_f ∇f) for drug):
    φ_e dc/dt = Φ_c − λ_L c − k_b φ_e c − J_bind
    φ_e de/dt = Φ_e − λ_L e − (k_rel(T) + k_b) φ_e e − J_bind,e
    φ_e df/dt = Φ_f − λ_L f + (k_rel(T) + k_b) φ_e e + k_rel(T) e_b − φ_c U(f, a) − k_deg φ_e f
cells:
    φ_c da/dt = φ_c U(f, a) + (k_rel,cell + k_deg,q) e_q,   U = V_max [f/(f + K_e) − a/(a + K_i)]
receptor binding and internalization (only with targeting; ``cells.binding_rates``):
    db/dt = k_on c R_free − (k_off + k_int) b,       de_b/dt = k_on e R_free − (k_off + k_int + k_rel) e_b
    dq/dt = k_int b − k_deg,q q,                       de_q/dt = k_int e_b − (k_rel,cell + k_deg,q) e_q
    R_free = R_T − (b + q)/N  (receptors per tissue volume, one per particle of N drug molecules)
temperature (only with heating; Pennes, plus conduction in the transport step):
    ρc dT/dt = W(T) (T_a − T) + Q(t, x),    dCEM43/dt = R^(43 − T)/60   (min/s)

Φ is the Kedem–Katchalsky/Patlak flux (``properties.transvascular_flux``) with J_v = L_p S_v
(p_e − p); only the unbound fraction f_u of plasma free drug crosses the wall.  λ_L = L_pL S_L p is
lymphatic drainage (returns solute to the systemic plasma); k_b is carrier breakdown in the
interstitium; k_rel(T) the release law at the local temperature; perfusion may rise with T.

Counters (no transport, nothing depends on them) keep the ledger exact: ``net_*`` = amount taken
from the blood per tissue volume (arterial inflow − venous outflow − lymph return), ``degraded``,
``released_*`` = payload released in vessels / interstitium / cells, ``intracellular_auc`` =
∫ a dt (the exposure of the kill model), ``cem43`` (thermal dose, min).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from . import properties as props
from .cells import binding_rates, cem43_rate
from .tissue import TissueMaps

TRANSPORTED_BASE = ("carrier", "payload", "free")
STATE_BASE = ("carrier_vessel", "payload_vessel", "free_vessel", "intracellular")
TARGETING = ("bound", "bound_payload", "internalized", "internalized_payload")
COUNTERS_BASE = ("intracellular_auc", "net_carrier", "net_payload", "net_free", "degraded",
                 "released_vessel", "released_interstitium", "released_cells")


def species_names(heating: bool, targeting: bool) -> tuple[str, ...]:
    """Species order: transported, then other implicit states, then counters."""
    return (TRANSPORTED_BASE + (("temperature",) if heating else ()) + STATE_BASE
            + (TARGETING if targeting else ()) + COUNTERS_BASE + (("cem43",) if heating else ()))


def n_transported(names) -> int:
    return 4 if "temperature" in names else 3


def n_state(names) -> int:
    """Number of species solved implicitly (the rest are counters)."""
    return names.index(COUNTERS_BASE[0])


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Kinetics:
    """Per-cell rate parameters, SI (a pytree)."""

    maps: TissueMaps
    filtration: jax.Array  # J_v, 1/s
    lymph: jax.Array  # λ_L, 1/s
    release_temperature_C: jax.Array  # T_m of the release law, °C
    release_width_c: jax.Array  # ΔT, °C
    leak_rate: jax.Array  # k_leak, 1/s
    max_release_rate: jax.Array  # k_max, 1/s
    breakdown_rate: jax.Array  # k_b, 1/s
    degradation_rate: jax.Array  # k_deg of free drug, 1/s
    unbound_fraction: jax.Array  # f_u in plasma
    uptake_vmax: jax.Array  # mol/(m³ cells · s)
    uptake_ke: jax.Array  # mol/m³
    uptake_ki: jax.Array  # mol/m³ cells
    receptors: jax.Array  # R_T, mol/m³ tissue
    particle_payload: jax.Array  # N, drug molecules per particle
    k_on: jax.Array  # effective association rate, m³/(mol s)
    k_off: jax.Array  # effective dissociation rate, 1/s
    k_int: jax.Array  # internalization, 1/s
    k_release_cell: jax.Array  # payload release from internalized carriers, 1/s
    k_degrade_internalized: jax.Array  # degradation of internalized carriers, 1/s
    perfusion_increase_per_C: jax.Array  # fractional perfusion rise per °C above 37
    arterial_temperature_C: jax.Array


def release_rate(kin: Kinetics, temperature_c):
    """k_rel(T) = k_leak + k_max sigmoid((T − T_m)/ΔT), 1/s."""
    return props.release_rate(temperature_c, kin.release_temperature_C, kin.release_width_c,
                              kin.leak_rate, kin.max_release_rate)


def perfusion_factor(kin: Kinetics, temperature_c):
    """w_b(T)/w_b(37 °C) = 1 + κ·softplus(T − 37) (smooth; 1 at body temperature)."""
    return 1.0 + kin.perfusion_increase_per_C * jax.nn.softplus(4.0 * (temperature_c - 37.0)) / 4.0


def local_rates(kin: Kinetics, x, systemic, names, heat_source=None, body_temperature_c=37.0):
    """dx/dt of the local (per-cell) kinetics, species in the order of ``names``.

    Args:
        kin: rate parameters.
        x: species (len(names), *shape).
        systemic: (C_sys, E_sys, F_sys) plasma concentrations of carriers, encapsulated drug and
            total free drug (mol/m³).
        heat_source: Q per cell (W/m³) when temperature is a species.
    """
    m = kin.maps
    v = {n: x[i] for i, n in enumerate(names)}
    c, e, f = v["carrier"], v["payload"], v["free"]
    cv, ev, fv, a = v["carrier_vessel"], v["payload_vessel"], v["free_vessel"], v["intracellular"]
    temp = v.get("temperature", body_temperature_c)
    c_sys, e_sys, f_sys = systemic
    k_rel = release_rate(kin, temp)
    wb = m.perfusion * perfusion_factor(kin, temp)
    jv = kin.filtration
    flux_c = props.transvascular_flux(jv, m.sigma_carrier, m.ps_carrier, cv, c)
    flux_e = props.transvascular_flux(jv, m.sigma_carrier, m.ps_carrier, ev, e)
    flux_f = props.transvascular_flux(jv, m.sigma_free, m.ps_free, kin.unbound_fraction * fv, f)
    in_c, in_e, in_f = wb * (c_sys - cv), wb * (e_sys - ev), wb * (f_sys - fv)
    release_v = k_rel * m.phi_v * ev
    release_i = (k_rel + kin.breakdown_rate) * m.phi_e * e
    uptake = props.cell_uptake_rate(f, a, kin.uptake_vmax, kin.uptake_ke, kin.uptake_ki)
    lymph = kin.lymph
    degraded = kin.degradation_rate * m.phi_e * f
    zero = jnp.zeros_like(c)
    bind = {k: zero for k in ("carrier", "payload", "bound", "bound_payload", "internalized",
                              "internalized_payload", "to_free", "to_cells")}
    if "bound" in v:
        bind = binding_rates(c, e, v["bound"], v["bound_payload"], v["internalized"],
                             v["internalized_payload"], kin.receptors, kin.particle_payload,
                             kin.k_on, kin.k_off, kin.k_int, k_rel, kin.k_release_cell,
                             kin.k_degrade_internalized)
    rates = {
        "carrier": (flux_c - lymph * c - kin.breakdown_rate * m.phi_e * c + bind["carrier"])
        / m.phi_e,
        "payload": (flux_e - lymph * e - release_i + bind["payload"]) / m.phi_e,
        "free": (flux_f - lymph * f + release_i + bind["to_free"] - m.phi_c * uptake - degraded)
        / m.phi_e,
        "carrier_vessel": (in_c - flux_c) / m.phi_v,
        "payload_vessel": (in_e - release_v - flux_e) / m.phi_v,
        "free_vessel": (in_f + release_v - flux_f) / m.phi_v,
        "intracellular": uptake + bind["to_cells"] / m.phi_c,
        "bound": bind["bound"], "bound_payload": bind["bound_payload"],
        "internalized": bind["internalized"], "internalized_payload": bind["internalized_payload"],
        "intracellular_auc": a,
        "net_carrier": in_c - lymph * c,
        "net_payload": in_e - lymph * e,
        "net_free": in_f - lymph * f,
        "degraded": degraded,
        "released_vessel": release_v,
        "released_interstitium": release_i + bind["to_free"],
        "released_cells": bind["to_cells"],
    }
    if "temperature" in v:
        rates["temperature"] = (m.blood_heat_sink * perfusion_factor(kin, temp)
                                * (kin.arterial_temperature_C - temp) + heat_source) / m.heat_capacity
        rates["cem43"] = cem43_rate(temp)
    return jnp.stack([jnp.broadcast_to(rates[n], c.shape) for n in names])


def _get(x, names, name):
    return x[names.index(name)] if name in names else 0.0


def drug_per_tissue_volume(maps: TissueMaps, x, names):
    """All drug (payload + free, every phase, bound and internalized) per tissue volume, mol/m³."""
    g = lambda n: _get(x, names, n)  # noqa: E731
    return (maps.phi_v * (g("payload_vessel") + g("free_vessel"))
            + maps.phi_e * (g("payload") + g("free")) + maps.phi_c * g("intracellular")
            + g("bound_payload") + g("internalized_payload"))


def carriers_per_tissue_volume(maps: TissueMaps, x, names):
    """Carrier particles (drug-equivalent at loading) per tissue volume, mol/m³."""
    g = lambda n: _get(x, names, n)  # noqa: E731
    return (maps.phi_v * g("carrier_vessel") + maps.phi_e * g("carrier") + g("bound")
            + g("internalized"))


def encapsulated_per_tissue_volume(maps: TissueMaps, x, names):
    """Drug still inside carriers per tissue volume, mol/m³."""
    g = lambda n: _get(x, names, n)  # noqa: E731
    return (maps.phi_v * g("payload_vessel") + maps.phi_e * g("payload") + g("bound_payload")
            + g("internalized_payload"))


def intracellular_per_tissue_volume(maps: TissueMaps, x, names):
    """Drug inside cells (free intracellular + payload of internalized carriers), mol/m³."""
    return maps.phi_c * _get(x, names, "intracellular") + _get(x, names, "internalized_payload")
