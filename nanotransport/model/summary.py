"""Scalar metrics of a simulation (``summary.json``), as differentiable JAX functions.

Names are stable public interfaces; units are in the names.  Tissue density is taken as
1 g/mL, so µg/g = µg/mL of tissue.  "Tumor" means every tumor cell of the grid (necrotic core
included) unless a name says otherwise; efficacy counts viable tumor cells only.

=====================================  ==========================================================
plasma_auc_free_ug_h_per_ml            ∫ free (non-encapsulated, bound + unbound) drug in plasma dt
plasma_auc_encapsulated_ug_h_per_ml    ∫ carrier-encapsulated drug in plasma dt
plasma_auc_total_ug_h_per_ml           sum of the two
plasma_peak_free_ug_per_ml             highest free-drug plasma concentration over all steps
tumor_drug_auc_ug_h_per_g              ∫ all drug in tumor tissue (every phase) dt, per g tumor
tumor_drug_peak_ug_per_g               highest tumor-mean drug concentration over all steps
tumor_intracellular_auc_ug_h_per_g     ∫ drug inside tumor cells (exchangeable + DNA-bound +
                                       internalized carriers' payload) dt, per g tumor
tumor_carrier_pct_id                   {saved time h: carriers in the tumor, % of injected dose}
tumor_carrier_pct_id_per_g             {saved time h: the same per g of tumor}
tumor_drug_pct_id                      {saved time h: all drug in the tumor, % of injected dose}
tumor_drug_ug_per_g                    {saved time h: tumor-mean drug, every phase, µg/g}
tumor_nuclear_ug_per_g                 {saved time h: tumor-mean DNA-bound drug, µg/g}
tumor_nuclear_auc_fraction             ∫ DNA-bound drug dt / ∫ all tumor drug dt (exact, per step)
tumor_payload_<where>_fraction         share of tumor drug at the end in the vessel plasma,
                                       interstitium, carriers on cells (receptor-bound),
                                       macrophages, cancer cells (cytoplasm and internalized
                                       carriers) and nucleus (DNA-bound); they sum to 1
tumor_carrier_macrophage_fraction      share of tumor carriers held by macrophages at the end
fraction_released                      share of the encapsulated dose released from carriers
                                       (plasma, tissue vessels, interstitium, cells) by the end
released_in_*_fraction                 where it was released (plasma, tissue_vessels,
                                       interstitium, cells), share of the dose
tumor_intracellular_fraction           share of tumor drug inside cells at the end
                                       (exchangeable, DNA-bound, internalized carriers' payload)
tumor_bound_internalized_fraction      share of tumor carriers bound or internalized at the end
carrier_renal_fraction                 carriers cleared by the kidneys by the end, share of dose
carrier_mps_fraction                   carriers taken up by liver and spleen macrophages (MPS)
cem43_normal_tissue_max_min            highest thermal dose in normal tissue (CEM43, min)
cem43_tumor_mean_min                   (heated scenarios) mean thermal dose of the tumor
heating metrics                        (heated scenarios; ``heating_metrics``) ESHO T90/T50/T10
                                       of the target region, CEM43T90, time and volume above the
                                       release temperature, maxima, heat ledger
efficacy                               1 − mean surviving fraction of viable tumor cells,
                                       SF = exp(−ω · ∫ n dt) per cell, n DNA-bound drug
imaging_*                              imaging readouts over the saved times (``imaging.py``):
                                       tumor and reference ROI means of the PSF-blurred label
                                       image (%ID/g, %ID/kg, kBq/mL), tumor-to-reference ratio,
                                       %ID in the tumor ROI
mass_balance_error                     |dose given − (systemic compartments and sinks + all
                                       tissue drug + degraded drug)| / dose
=====================================  ==========================================================
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import cells, imaging, pk
from ..engine import export_cache, units
from .heat import soft_quantile
from .simulate import ACCUMULATORS, RUNNING, Result
from .transport import (carriers_per_tissue_volume, drug_per_tissue_volume,
                        encapsulated_per_tissue_volume, intracellular_per_tissue_volume,
                        payload_locations)

MW = units.DOXORUBICIN_MOLAR_MASS
HEATING_SERIES = ("heating_t90_c", "heating_t50_c", "heating_t10_c")
TIME_SERIES = ("tumor_carrier_pct_id", "tumor_carrier_pct_id_per_g", "tumor_drug_pct_id",
               "tumor_drug_ug_per_g", "tumor_nuclear_ug_per_g", *imaging.TIME_SERIES,
               *HEATING_SERIES)


def _acc(result: Result, name: str):
    return result.accumulators[..., ACCUMULATORS.index(name)]


def _running(result: Result, name: str):
    return result.accumulators[..., len(ACCUMULATORS) + RUNNING.index(name)]


def _kill_exponent(result: Result):
    """ω ∫ n dt per cell (``cells.kill_exponent``), n the DNA-bound (nuclear) drug, ω the
    result's ``drug.kill_coefficient_per_ng_h_per_1e5cells``."""
    maps = result.inputs.kinetics.maps
    return cells.kill_exponent(result.field("nuclear_auc")[-1], maps.phi_c, maps.cell_density,
                               result.kill_coefficient)


def surviving_fraction(result: Result):
    """Per-cell surviving fraction at the end, SF = exp(−ω ∫ n dt), n the DNA-bound (nuclear)
    drug in ng/1e5 cells: doxorubicin kills through DNA (topoisomerase II poisoning)."""
    return jnp.exp(-_kill_exponent(result))


def efficacy(result: Result):
    """1 − mean SF over viable tumor cells (weighted by cell number), summed as
    mean(−expm1(−ω ∫ n dt)) so that small efficacies keep their relative precision."""
    maps = result.inputs.kinetics.maps
    w = jnp.asarray(result.layout.grid.volume) * maps.cell_density * maps.viable_tumor
    killed = -jnp.expm1(-_kill_exponent(result))
    return jnp.sum(w * killed) / jnp.sum(w)


def metrics(result: Result, with_imaging: bool = False) -> dict:
    """All summary metrics as JAX scalars (or arrays over saved times for the % ID series);
    ``with_imaging``: also the imaging readouts (``imaging.metrics``, set up from the result's
    scenario and layout).  One compiled program per result structure (inlined where it is
    called inside another trace): evaluated op by op it took 2 s of a 6-s warm CLI run, in
    ~70 tiny compilations that the persistent cache does not keep.  Its traced program is kept
    by ``export_cache`` when that is on (the command line)."""
    return export_cache.call("summary.metrics", _metrics_jit, (result,), (with_imaging,))


@functools.partial(jax.jit, static_argnums=(1,))
def _metrics_jit(result: Result, with_imaging: bool) -> dict:
    """``metrics``, compiled (its traced program kept by ``export_cache`` when that is on)."""
    lay = result.layout
    inp = result.inputs
    maps = inp.kinetics.maps
    names = result.species
    vol = jnp.asarray(lay.grid.volume)
    tumor_w = jnp.asarray(lay.tumor) * vol
    tumor_g = jnp.sum(tumor_w) / units.ML  # 1 g/mL
    space = tuple(range(-lay.grid.ndim, 0))
    to_ug_per_ml = MW  # mol/m³ → g/m³ = µg/mL
    h = units.HOUR
    given_dose = inp.dose_mol
    dose = jnp.where(given_dose > 0, given_dose, 1.0)  # per-dose shares: 0 (not NaN) for dose 0
    fields = result.fields

    def tumor_amount(per_volume):  # mol in the tumor (at each saved time if batched)
        return jnp.sum(per_volume * tumor_w, axis=space)

    per_time = lambda fn: jax.vmap(lambda x: fn(maps, x, names))(fields)  # noqa: E731
    carriers = tumor_amount(per_time(carriers_per_tissue_volume))
    drug = tumor_amount(per_time(drug_per_tissue_volume))
    free_plasma = result.systemic[:, pk.I_FREE_CENTRAL] / inp.pk_payload.v1

    final = fields[-1]
    y = result.systemic[-1]
    carrier_renal, carrier_mps, _ = inp.pk_payload.carrier_fates(result.systemic_carrier[-1])
    field = lambda n: final[names.index(n)]  # noqa: E731
    tissue_drug = jnp.sum((drug_per_tissue_volume(maps, final, names) + field("degraded")) * vol)
    given = given_dose * jnp.clip(result.times_s[-1] / inp.infusion_s, 0.0, 1.0)
    balance = jnp.abs(given - (jnp.sum(y) + tissue_drug)) / dose

    enc_given = given * inp.encapsulated_fraction
    enc_left = (inp.pk_payload.encapsulated_amount(y)
                + jnp.sum(encapsulated_per_tissue_volume(maps, final, names) * vol))
    safe = lambda num, den: jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)  # noqa
    released = enc_given - enc_left
    released_vessel = jnp.sum(field("released_vessel") * vol)
    released_interstitium = jnp.sum(field("released_interstitium") * vol)
    released_cells = jnp.sum(field("released_cells") * vol)

    tumor_drug_end = tumor_amount(drug_per_tissue_volume(maps, final, names))
    tumor_inside_end = tumor_amount(intracellular_per_tissue_volume(maps, final, names))
    bound = (final[names.index("bound")] + final[names.index("internalized")]
             if "bound" in names else jnp.zeros_like(vol))

    where = payload_locations(maps, final, names)
    nuclear_t = tumor_amount(per_time(lambda mp, x, nm: payload_locations(mp, x, nm)["nucleus"]))
    macrophage_carriers = tumor_amount(final[names.index("macrophage")])
    nuclear_auc = tumor_amount(maps.phi_c * field("nuclear_auc"))  # mol·s in the tumor
    tumor_ml = jnp.sum(tumor_w) / units.ML

    auc_free = _acc(result, "plasma_auc_free") * to_ug_per_ml / h
    auc_enc = _acc(result, "plasma_auc_encapsulated") * to_ug_per_ml / h
    out = {
        "plasma_auc_free_ug_h_per_ml": auc_free,
        "plasma_auc_encapsulated_ug_h_per_ml": auc_enc,
        "plasma_auc_total_ug_h_per_ml": auc_free + auc_enc,
        "plasma_peak_free_ug_per_ml": jnp.maximum(jnp.max(free_plasma), _running(
            result, "plasma_free_max")) * to_ug_per_ml,
        "tumor_drug_auc_ug_h_per_g": _acc(result, "tumor_drug_auc") * to_ug_per_ml / h,
        "tumor_drug_peak_ug_per_g": _acc(result, "tumor_drug_peak") * to_ug_per_ml,
        "tumor_intracellular_auc_ug_h_per_g":
            _acc(result, "tumor_intracellular_auc") * to_ug_per_ml / h,
        "tumor_carrier_pct_id": 100.0 * carriers / dose,
        "tumor_carrier_pct_id_per_g": 100.0 * carriers / dose / tumor_g,
        "tumor_drug_pct_id": 100.0 * drug / dose,
        "tumor_drug_ug_per_g": drug * MW * 1e6 / tumor_ml,
        "tumor_nuclear_ug_per_g": nuclear_t * MW * 1e6 / tumor_ml,
        "tumor_nuclear_auc_fraction": safe(nuclear_auc / tumor_w.sum(),
                                           _acc(result, "tumor_drug_auc")),
        **{f"tumor_payload_{k}_fraction": safe(tumor_amount(v), tumor_drug_end)
           for k, v in where.items()},
        "tumor_carrier_macrophage_fraction": safe(macrophage_carriers, carriers[-1]),
        "tumor_intracellular_fraction": safe(tumor_inside_end, tumor_drug_end),
        "tumor_bound_internalized_fraction": safe(tumor_amount(bound), carriers[-1]),
        "fraction_released": safe(released, enc_given),
        "released_in_plasma_fraction": safe(released - released_vessel - released_interstitium
                                             - released_cells, dose),
        "released_in_tissue_vessels_fraction": released_vessel / dose,
        "released_in_interstitium_fraction": released_interstitium / dose,
        "released_in_cells_fraction": released_cells / dose,
        "carrier_renal_fraction": carrier_renal / dose,
        "carrier_mps_fraction": carrier_mps / dose,
        "efficacy": efficacy(result),
        "mass_balance_error": balance,
    }
    if "temperature" in names:
        normal = jnp.asarray(lay.normal) > 0
        out["cem43_normal_tissue_max_min"] = jnp.max(jnp.where(normal, field("cem43"), 0.0))
        out["cem43_tumor_mean_min"] = jnp.sum(field("cem43") * tumor_w) / jnp.sum(tumor_w)
        out.update(heating_metrics(result))
    else:
        out["cem43_normal_tissue_max_min"] = jnp.zeros(())
    if with_imaging:
        out.update(imaging.metrics(result))
    return out


def heating_metrics(result: Result) -> dict:
    """Hyperthermia metrics of a heated run (ESHO quality guidelines; ``heat``), from the running
    values updated every step inside the solver (maxima and integrals), except the T90/T50/T10
    series, which are read at the saved times.

    =====================================  =====================================================
    heating_t90_c, heating_t50_c,          {saved time h: temperature exceeded by 90/50/10 % of
    heating_t10_c                          the target region's volume} (°C; smooth quantile)
    t90_plateau_c, t50_plateau_c,          time averages over the plateau (°C)
    t10_plateau_c, readout_plateau_c
    control_error_plateau_max_c            max of |set point − readout| at the step ends in the
                                           plateau [start + ramp, start + duration]
    control_error_plateau_rms_c            rms of it over the plateau
    cem43_t90_min                          ∫ CEM43 rate of T90 dt (min)
    time_t90_above_release_min             time with T90 (T50) above the release temperature
    time_t50_above_release_min             (smooth indicator, 0.05 °C)
    tumor_fraction_above_release_max       largest tumor volume fraction above T_m (any step)
    tumor_fraction_above_release_plateau   its time average over the plateau
    tumor_temperature_max_c                highest tumor temperature (any cell, any step)
    normal_tissue_temperature_max_c        highest normal-tissue temperature
    heating_power_max_w                    largest absorbed power (W)
    heat_deposited_j, heat_perfusion_j,    ∫ absorbed power, perfusion loss and loss through
    heat_boundary_j, heat_stored_j         the outer boundary dt; stored heat Σ ρc (T − T_a) V
                                           at the end (J): deposited = stored + losses
    =====================================  =====================================================
    """
    h = result.inputs.heating
    names = result.species
    temps = result.fields[:, names.index("temperature")]
    run = lambda k: _running(result, k)  # noqa: E731
    plateau = jnp.maximum(run("plateau_s"), 1e-30)
    w = h.region * h.volume
    q = jax.vmap(lambda temp: soft_quantile(temp, w, jnp.asarray([0.1, 0.5, 0.9])))(temps)
    stored = jnp.sum(h.heat_capacity * (temps[-1] - h.arterial_c) * h.volume)
    return {
        "heating_t90_c": q[:, 0], "heating_t50_c": q[:, 1], "heating_t10_c": q[:, 2],
        "t90_plateau_c": run("t90_plateau") / plateau,
        "t50_plateau_c": run("t50_plateau") / plateau,
        "t10_plateau_c": run("t10_plateau") / plateau,
        "readout_plateau_c": run("readout_plateau") / plateau,
        "control_error_plateau_max_c": run("control_error_plateau_max_c"),
        "control_error_plateau_rms_c": jnp.sqrt(run("control_error_plateau_sq") / plateau),
        "cem43_t90_min": run("cem43_t90_min"),
        "time_t90_above_release_min": run("time_t90_above_release_s") / units.MIN,
        "time_t50_above_release_min": run("time_t50_above_release_s") / units.MIN,
        "tumor_fraction_above_release_max": run("fraction_above_release_max"),
        "tumor_fraction_above_release_plateau": run("fraction_above_release_plateau") / plateau,
        "tumor_temperature_max_c": run("tumor_temperature_max_c"),
        "normal_tissue_temperature_max_c": run("normal_temperature_max_c"),
        "heating_power_max_w": run("power_max_w"),
        "heat_deposited_j": run("heat_deposited_j"),
        "heat_perfusion_j": run("heat_perfusion_j"),
        "heat_boundary_j": run("heat_boundary_j"),
        "heat_stored_j": stored,
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
