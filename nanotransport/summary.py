"""Scalar metrics of a simulation (``summary.json``), as differentiable JAX functions.

Names are stable public interfaces; units are in the names.  Tissue density is taken as
1 g/mL, so µg/g = µg/mL of tissue.  "Tumor" means every tumor cell of the grid (necrotic core
included) unless a name says otherwise; efficacy counts viable tumor cells only.

=====================================  ==========================================================
plasma_auc_free_ug_h_per_ml            ∫ free (non-encapsulated, bound + unbound) drug in plasma dt
plasma_auc_encapsulated_ug_h_per_ml    ∫ carrier-encapsulated drug in plasma dt
plasma_auc_total_ug_h_per_ml           sum of the two
plasma_peak_free_ug_per_ml             highest saved free-drug plasma concentration
tumor_drug_auc_ug_h_per_g              ∫ all drug in tumor tissue (every phase) dt, per g tumor
tumor_drug_peak_ug_per_g               highest tumor-mean drug concentration over all steps
tumor_intracellular_auc_ug_h_per_g     ∫ drug inside tumor cells dt, per g tumor
tumor_carrier_pct_id                   {saved time h: carriers in the tumor, % of injected dose}
tumor_carrier_pct_id_per_g             {saved time h: the same per g of tumor}
tumor_drug_pct_id                      {saved time h: all drug in the tumor, % of injected dose}
fraction_released                      share of the encapsulated dose released from carriers
                                       (plasma, tumor vessels, interstitium) by the end
efficacy                               1 − mean surviving fraction of viable tumor cells,
                                       SF = exp(−ω · ∫ a dt) per cell
mass_balance_error                     |dose given − (systemic compartments and sinks + all
                                       tissue drug + degraded drug)| / dose
=====================================  ==========================================================
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import pk, units
from .simulate import ACCUMULATORS, Result
from .tissue import Layout
from .transport import (INDEX, carriers_per_tissue_volume, drug_per_tissue_volume,
                        encapsulated_per_tissue_volume)

MW = units.DOXORUBICIN_MOLAR_MASS
TIME_SERIES = ("tumor_carrier_pct_id", "tumor_carrier_pct_id_per_g", "tumor_drug_pct_id")


def _acc(result: Result, name: str):
    return result.accumulators[..., ACCUMULATORS.index(name)]


def surviving_fraction(result: Result, omega_per_ng_h_per_1e5cells):
    """Per-cell surviving fraction at the end, SF = exp(−ω ∫ a dt) (a in ng/1e5 cells)."""
    maps = result.inputs.kinetics.maps
    cell_volume = maps.phi_c / maps.cell_density
    to_ng_per_1e5 = MW * 1e9 * 1e5 * cell_volume  # mol/m³ of cells → ng per 1e5 cells
    auc_ng_h = result.fields[-1, INDEX["intracellular_auc"]] * to_ng_per_1e5 / units.HOUR
    return jnp.exp(-omega_per_ng_h_per_1e5cells * auc_ng_h)


def efficacy(result: Result, lay: Layout, omega):
    """1 − mean SF over viable tumor cells (weighted by cell number)."""
    maps = result.inputs.kinetics.maps
    w = jnp.asarray(lay.grid.volume) * maps.cell_density * maps.viable_tumor
    return 1.0 - jnp.sum(w * surviving_fraction(result, omega)) / jnp.sum(w)


def metrics(result: Result, lay: Layout, omega) -> dict:
    """All summary metrics as JAX scalars (or arrays over saved times for the % ID series)."""
    inp = result.inputs
    maps = inp.kinetics.maps
    vol = jnp.asarray(lay.grid.volume)
    tumor_w = jnp.asarray(lay.tumor) * vol
    tumor_g = jnp.sum(tumor_w) / units.ML  # 1 g/mL
    to_ug_per_ml = MW  # mol/m³ → g/m³ = µg/mL
    h = units.HOUR
    dose = inp.dose_mol
    fields = result.fields

    def tumor_amount(per_volume):  # mol in the tumor at each saved time
        return jnp.sum(per_volume * tumor_w, axis=tuple(range(-lay.grid.ndim, 0)))

    carriers = tumor_amount(jax.vmap(lambda x: carriers_per_tissue_volume(maps, x))(fields))
    drug = tumor_amount(jax.vmap(lambda x: drug_per_tissue_volume(maps, x))(fields))
    free_plasma = result.systemic[:, pk.I_FREE_CENTRAL] / inp.pk_payload.v1

    final = fields[-1]
    y = result.systemic[-1]
    tissue_drug = jnp.sum((drug_per_tissue_volume(maps, final) + final[INDEX["degraded"]]) * vol)
    given = dose * jnp.clip(result.times_s[-1] / inp.infusion_s, 0.0, 1.0)
    balance = jnp.abs(given - (jnp.sum(y) + tissue_drug)) / dose

    enc_given = given * inp.encapsulated_fraction
    enc_left = (y[pk.I_ENC_CENTRAL] + y[pk.I_ENC_PERIPHERAL] + y[pk.I_SINK_RENAL]
                + y[pk.I_SINK_MPS] + y[pk.I_SINK_OTHER]
                + jnp.sum(encapsulated_per_tissue_volume(maps, final) * vol))
    released = jnp.where(enc_given > 0, (enc_given - enc_left) / jnp.where(
        enc_given > 0, enc_given, 1.0), 0.0)

    auc_free = _acc(result, "plasma_auc_free") * to_ug_per_ml / h
    auc_enc = _acc(result, "plasma_auc_encapsulated") * to_ug_per_ml / h
    return {
        "plasma_auc_free_ug_h_per_ml": auc_free,
        "plasma_auc_encapsulated_ug_h_per_ml": auc_enc,
        "plasma_auc_total_ug_h_per_ml": auc_free + auc_enc,
        "plasma_peak_free_ug_per_ml": jnp.max(free_plasma) * to_ug_per_ml,
        "tumor_drug_auc_ug_h_per_g": _acc(result, "tumor_drug_auc") * to_ug_per_ml / h,
        "tumor_drug_peak_ug_per_g": _acc(result, "tumor_drug_peak") * to_ug_per_ml,
        "tumor_intracellular_auc_ug_h_per_g":
            _acc(result, "tumor_intracellular_auc") * to_ug_per_ml / h,
        "tumor_carrier_pct_id": 100.0 * carriers / dose,
        "tumor_carrier_pct_id_per_g": 100.0 * carriers / dose / tumor_g,
        "tumor_drug_pct_id": 100.0 * drug / dose,
        "fraction_released": released,
        "efficacy": efficacy(result, lay, omega),
        "mass_balance_error": balance,
    }


def to_json_ready(values: dict, times_h) -> dict:
    """Convert metrics to plain Python: scalars to float, % ID series to {"<t> h": value}."""
    out = {}
    for k, v in values.items():
        v = np.asarray(v)
        if k in TIME_SERIES:
            out[k] = {f"{t:g}": float(x) for t, x in zip(times_h, v)}
        else:
            out[k] = float(v)
    return out
