"""Species, their layout and the local kinetics of every grid cell (docs/model.md §5-§8).

Concentrations are per volume of their own phase (mol/m³; carriers in mol of drug-equivalent
at loading, so carrier and payload start equal); bound, internalized and phagocytosed carriers
are per tissue volume; balances are per tissue volume.  Per cell:

vessel phase (plasma, well mixed, fed by arterial plasma at the systemic concentration; w_b here
is the *plasma* flow (1 − Hct)·blood flow):
    φ_v dc_v/dt = w_b (C_sys − c_v) − Φ_c
    φ_v de_v/dt = w_b (E_sys − e_v) − k_rel(T) φ_v e_v − Φ_e
    φ_v df_v/dt = w_b (F_sys − f_v) + k_rel(T) φ_v e_v − Φ_f
interstitium (plus transport ∇·(R_F u c − φ_e D ∇c) for carriers, ∇·(u f − φ_e D_f ∇f) for drug):
    φ_e dc/dt = Φ_c − λ_L c − k_b φ_e c − J_bind − (k_M + k_p) φ_e c
    φ_e de/dt = Φ_e − λ_L e − (k_rel(T) + k_b) φ_e e − J_bind,e − (k_M + k_p) φ_e e
    φ_e df/dt = Φ_f − λ_L f + (k_rel(T) + k_b) φ_e e + k_rel(T) e_b + k_D e_M
                − φ_c U(f_u,i f, a) − k_deg φ_e f
macrophages (phagocytosed carriers m and their payload e_M, per tissue volume):
    dm/dt = k_M φ_e c − k_D m,        de_M/dt = k_M φ_e e − k_D e_M
cells (a: exchangeable intracellular drug, n: DNA-bound drug in the nucleus, per cell volume):
    φ_c da/dt = φ_c U(f_u,i f, a) − φ_c J_N + (k_rel,cell + k_deg,q) e_q,
    U = V_max [f_u,i f/(f_u,i f + K_e) − a/(a + K_i)]
    dn/dt = J_N = k_N a (1 − n/N_max) − k_N,off n
receptor binding, internalization and fluid-phase endocytosis (only with targeting or
pinocytosis; ``cells.binding_rates``):
    db/dt = k_on c R_free − (k_off + k_int) b,       de_b/dt = k_on e R_free − (k_off + k_int + k_rel) e_b
    dq/dt = k_int b + k_p φ_e c − k_deg,q q,         de_q/dt = k_int e_b + k_p φ_e e − (k_rel,cell + k_deg,q) e_q
    R_free = R_T − (b + q)/N  (receptors per tissue volume, one per particle of N drug molecules)
temperature (only with heating; Pennes, plus conduction in the transport step):
    ρc dT/dt = W(T) (T_a − T) + Q(t, x),    dCEM43/dt = R^(43 − T)/60   (min/s)

Φ is the Kedem–Katchalsky/Patlak flux (``properties.transvascular_flux``) with J_v = L_p S_v
(p_e − p); only unbound drug crosses membranes: f_u,p of plasma free drug and f_u,i of
interstitial free drug (``tissue.interstitial_unbound_fraction``: interstitial fluid holds
plasma proteins at the ratio of the oncotic pressures), and cells take up unbound drug.
λ_L = L_pL S_L p is lymphatic drainage (returns solute to the systemic plasma); k_b is carrier
breakdown in the interstitium; k_rel(T) the release law at the local temperature; perfusion may
rise with T.  k_M is phagocytosis by tissue macrophages (per region, scaled by the carrier's
size and surface with the MPS law of ``properties.mps_uptake_factor``) and k_D their digestion
of carriers, which frees the payload into the interstitium; k_p is fluid-phase endocytosis by
cancer cells (polymer conjugates enter cells this way and release drug in lysosomes).

Counters (no transport, nothing depends on them) keep the ledger exact: ``net_*`` = amount taken
from the blood per tissue volume (arterial inflow − venous outflow − lymph return), ``degraded``,
``released_*`` = payload released in vessels / interstitium / cells / macrophages,
``intracellular_auc`` = ∫ (a + n) dt, ``nuclear_auc`` = ∫ n dt (the exposure of the kill
model), ``label_residue`` = the imaging label left in cells by carriers digested in macrophages
and cancer cells (a residualizing label such as ¹¹¹In-DTPA stays in lysosomes), ``cem43``
(thermal dose, min).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from . import properties as props
from .cells import binding_rates, cem43_rate
from .tissue import TissueMaps

TRANSPORTED_BASE = ("carrier", "payload", "free")
STATE_BASE = ("carrier_vessel", "payload_vessel", "free_vessel", "intracellular", "nuclear",
              "macrophage", "macrophage_payload")
TARGETING = ("bound", "bound_payload", "internalized", "internalized_payload")
COUNTERS_BASE = ("intracellular_auc", "nuclear_auc", "net_carrier", "net_payload", "net_free",
                 "degraded", "released_vessel", "released_interstitium", "released_cells",
                 "released_macrophages", "label_residue")


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
    nuclear_binding_rate: jax.Array  # k_N, 1/s
    nuclear_release_rate: jax.Array  # k_N,off, 1/s
    nuclear_capacity: jax.Array  # N_max, mol/m³ cells
    digestion_rate: jax.Array  # k_D of phagocytosed carriers, 1/s
    pinocytosis_rate: jax.Array  # k_p, fluid-phase endocytosis by cancer cells, 1/s
    label_retained_fraction: jax.Array  # share of an imaging label kept where a carrier is digested
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
    nuc, mac, mac_e = v["nuclear"], v["macrophage"], v["macrophage_payload"]
    temp = v.get("temperature", body_temperature_c)
    c_sys, e_sys, f_sys = systemic
    k_rel = release_rate(kin, temp)
    wb = m.perfusion * perfusion_factor(kin, temp)
    jv = kin.filtration
    f_unbound = m.unbound_fraction_interstitial * f
    flux_c = props.transvascular_flux(jv, m.sigma_carrier, m.ps_carrier, cv, c)
    flux_e = props.transvascular_flux(jv, m.sigma_carrier, m.ps_carrier, ev, e)
    flux_f = props.transvascular_flux(jv, m.sigma_free, m.ps_free, kin.unbound_fraction * fv,
                                      f_unbound)
    in_c, in_e, in_f = wb * (c_sys - cv), wb * (e_sys - ev), wb * (f_sys - fv)
    release_v = k_rel * m.phi_v * ev
    release_i = (k_rel + kin.breakdown_rate) * m.phi_e * e
    uptake = props.cell_uptake_rate(f_unbound, a, kin.uptake_vmax, kin.uptake_ke, kin.uptake_ki)
    to_nucleus = (kin.nuclear_binding_rate * a * (1.0 - nuc / kin.nuclear_capacity)
                  - kin.nuclear_release_rate * nuc)
    phag_c, phag_e = m.phagocytosis * m.phi_e * c, m.phagocytosis * m.phi_e * e
    pino_c, pino_e = kin.pinocytosis_rate * m.phi_e * c, kin.pinocytosis_rate * m.phi_e * e
    digested = kin.digestion_rate * mac_e
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
        bind["carrier"], bind["payload"] = bind["carrier"] - pino_c, bind["payload"] - pino_e
        bind["internalized"] = bind["internalized"] + pino_c
        bind["internalized_payload"] = bind["internalized_payload"] + pino_e
    rates = {
        "carrier": (flux_c - lymph * c - kin.breakdown_rate * m.phi_e * c + bind["carrier"]
                    - phag_c) / m.phi_e,
        "payload": (flux_e - lymph * e - release_i + bind["payload"] - phag_e) / m.phi_e,
        "free": (flux_f - lymph * f + release_i + bind["to_free"] + digested - m.phi_c * uptake
                 - degraded) / m.phi_e,
        "carrier_vessel": (in_c - flux_c) / m.phi_v,
        "payload_vessel": (in_e - release_v - flux_e) / m.phi_v,
        "free_vessel": (in_f + release_v - flux_f) / m.phi_v,
        "intracellular": uptake - to_nucleus + bind["to_cells"] / m.phi_c,
        "nuclear": to_nucleus,
        "macrophage": phag_c - kin.digestion_rate * mac,
        "macrophage_payload": phag_e - digested,
        "bound": bind["bound"], "bound_payload": bind["bound_payload"],
        "internalized": bind["internalized"], "internalized_payload": bind["internalized_payload"],
        "intracellular_auc": a + nuc,
        "nuclear_auc": nuc,
        "net_carrier": in_c - lymph * c,
        "net_payload": in_e - lymph * e,
        "net_free": in_f - lymph * f,
        "degraded": degraded,
        "released_vessel": release_v,
        "released_interstitium": release_i + bind["to_free"],
        "released_cells": bind["to_cells"],
        "released_macrophages": digested,
        "label_residue": kin.label_retained_fraction * (
            kin.digestion_rate * mac
            + kin.k_degrade_internalized * v.get("internalized", zero)),
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
            + maps.phi_e * (g("payload") + g("free"))
            + maps.phi_c * (g("intracellular") + g("nuclear"))
            + g("bound_payload") + g("internalized_payload") + g("macrophage_payload"))


def carriers_per_tissue_volume(maps: TissueMaps, x, names):
    """Carrier particles (drug-equivalent at loading) per tissue volume, mol/m³."""
    g = lambda n: _get(x, names, n)  # noqa: E731
    return (maps.phi_v * g("carrier_vessel") + maps.phi_e * g("carrier") + g("bound")
            + g("internalized") + g("macrophage"))


def label_per_tissue_volume(maps: TissueMaps, x, names):
    """Imaging label per tissue volume (carrier drug-equivalent), mol/m³: on carriers in every
    phase, plus what digested carriers left in cells (``label_residue``)."""
    return carriers_per_tissue_volume(maps, x, names) + _get(x, names, "label_residue")


def encapsulated_per_tissue_volume(maps: TissueMaps, x, names):
    """Drug still inside carriers per tissue volume, mol/m³."""
    g = lambda n: _get(x, names, n)  # noqa: E731
    return (maps.phi_v * g("payload_vessel") + maps.phi_e * g("payload") + g("bound_payload")
            + g("internalized_payload") + g("macrophage_payload"))


def intracellular_per_tissue_volume(maps: TissueMaps, x, names):
    """Drug inside cancer cells (exchangeable, DNA-bound, payload of internalized carriers),
    mol/m³."""
    return (maps.phi_c * (_get(x, names, "intracellular") + _get(x, names, "nuclear"))
            + _get(x, names, "internalized_payload"))


def payload_locations(maps: TissueMaps, x, names) -> dict:
    """Where the drug is, per tissue volume (mol/m³): ``vessel`` (plasma in tissue vessels,
    encapsulated and free), ``interstitium`` (in carriers and free), ``carriers_on_cells``
    (receptor-bound carriers' payload), ``macrophages`` (phagocytosed carriers' payload),
    ``cancer_cells`` (exchangeable intracellular drug and internalized carriers' payload) and
    ``nucleus`` (DNA-bound).  They sum to ``drug_per_tissue_volume``."""
    g = lambda n: _get(x, names, n)  # noqa: E731
    return {
        "vessel": maps.phi_v * (g("payload_vessel") + g("free_vessel")),
        "interstitium": maps.phi_e * (g("payload") + g("free")),
        "carriers_on_cells": g("bound_payload") + 0.0 * maps.phi_v,
        "macrophages": g("macrophage_payload") + 0.0 * maps.phi_v,
        "cancer_cells": maps.phi_c * g("intracellular") + g("internalized_payload"),
        "nucleus": maps.phi_c * g("nuclear"),
    }
