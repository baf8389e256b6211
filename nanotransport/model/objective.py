"""The design objective: efficacy minus weighted, normalized toxicity (docs/model.md §10).

    J = E − w_ca·Tox_cardiac,auc − w_cp·Tox_cardiac,peak − w_hf·Tox_hand-foot
          − w_bm·Tox_marrow − w_th·Tox_thermal

* E = 1 − mean surviving fraction of viable tumor cells (``summary.efficacy``).

With the organ model (``patient.systemic_model = "organs"``, the default) each toxicity reads the
exposure of the organ where it happens (``organs.EXPOSURES``), normalized by a named reference:

* Tox_cardiac,auc = AUC of free drug in the heart / that of free doxorubicin given at the same
  dose and infusion (reference "free doxorubicin, same dose").  Exact AUCs over the run
  (``organs.exposure_auc``).
* Tox_cardiac,peak = smooth peak of free drug in the heart / that of the same reference.  Peaks
  are taken on 256 times of the exact solution (dense around the end of the infusion, then
  log-spaced to t_end; ``organs.exposure_series``) as a log-sum-exp whose temperature is a
  smooth 0.2 % of the series' size (bias ≤ 2 %), so they are differentiable.
* Tox_hand-foot = AUC of the payload carriers bring into the skin (drug still encapsulated in
  carriers outside the skin's blood) / that of PEG-liposomal doxorubicin (the species'
  reference carrier, diameter 90 nm) at the same dose (reference "PEG-liposomal doxorubicin,
  same dose"; where that carrier never leaves the blood, as in the mouse sets, the
  encapsulated-drug plasma AUC ratio instead).  Hand-foot syndrome is the toxicity of long-circulating liposomes, not of free
  doxorubicin at the same dose, whose free drug reaches the skin as it reaches every organ:
  the free drug in skin (which the organ model also has) would rank free doxorubicin above
  PEG-liposomal doxorubicin (2.5× at the doxil scenario's dose), against the clinic.
* Tox_marrow = AUC of free drug in the bone marrow / that of free doxorubicin at the same dose
  (myelosuppression; in the marrow carriers taken up by macrophages release their payload).

With the compartmental model (``"compartments"``) no organ has a concentration and the plasma
proxies stand in: free-drug plasma AUC (cardiac AUC and marrow) and peak (cardiac peak) against
free doxorubicin, encapsulated-drug plasma AUC against PEG-liposomal doxorubicin (hand-foot).
The tumor's draw on the blood, < 1e-3 of the dose, is neglected in the references and the
organ exposures.

* Tox_thermal = softplus((CEM43_max,normal − threshold)/s)·s / threshold with s = 5 % of the
  threshold: zero below the tolerated thermal dose, linear above, smooth in between.

Every term is a smooth function of every parameter (no hard max, clip or branch on traced
values), so J can be differentiated with respect to any of them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from . import organs, pk
from ..engine import export_cache, units
from .scenario import Scenario
from .simulate import Result, systemic_parameters
from .summary import efficacy, metrics

TERMS = ("efficacy", "tox_cardiac_auc", "tox_cardiac_peak", "tox_hand_foot", "tox_marrow",
         "tox_thermal")
WEIGHTS = {"tox_cardiac_auc": "objective.weight_cardiac_auc",
           "tox_cardiac_peak": "objective.weight_cardiac_peak",
           "tox_hand_foot": "objective.weight_hand_foot",
           "tox_marrow": "objective.weight_marrow",
           "tox_thermal": "objective.weight_thermal"}
#: the named reference of each toxicity term (organ model)
REFERENCES = {"tox_cardiac_auc": "free doxorubicin, same dose and infusion",
              "tox_cardiac_peak": "free doxorubicin, same dose and infusion",
              "tox_hand_foot": "PEG-liposomal doxorubicin (90 nm), same dose and infusion",
              "tox_marrow": "free doxorubicin, same dose and infusion",
              "tox_thermal": "the tolerated normal-tissue thermal dose objective.cem43_threshold_min"}


def _ratio(num, den):
    """num/den, and 0 where the reference exposure is 0 (a zero dose: no drug, no toxicity);
    safe under differentiation (no 0/0 on either branch)."""
    has = den > 0
    return jnp.where(has, num / jnp.where(has, den, 1.0), 0.0)


def reference_parameters(scenario: Scenario, params=None):
    """(free doxorubicin, PEG-liposomal doxorubicin) systemic parameters of the scenario's
    patient: the same systemic model, species, body and drug, other formulation (``params``:
    the scenario's own systemic parameters, when already built)."""
    if params is None:
        params, _ = systemic_parameters(scenario)
    species = scenario["patient.species"]
    s = scenario.params
    free_ref = params.replace(k_leak_plasma=0.0)
    if species == "human":
        lipo = pk.human_pegylated_liposome(s["patient.body_surface_area_m2"])
    else:
        lipo = pk.mouse_pegylated_liposome(s["patient.body_mass_kg"])
    lipo = lipo.replace(fu_plasma=s["drug.unbound_fraction_plasma"])
    if isinstance(params, organs.OrganParameters):
        lipo = organs.organ_parameters(lipo, species, s)
    return free_ref, lipo


def _times(infusion_s, t_end_s):
    """256 times: dense over twice the infusion, then log-spaced to t_end."""
    early = jnp.linspace(0.0, 2.0, 128) * infusion_s
    late = jnp.exp(jnp.linspace(jnp.log(2.0 * infusion_s), jnp.log(jnp.maximum(
        t_end_s, 2.0 * infusion_s)), 129)[1:])
    return jnp.concatenate([early, late])


def smooth_peak(series):
    """Differentiable peak of a positive series: log-sum-exp with temperature τ = 0.2 % of the
    series' 8-norm mean (itself smooth and within a factor N^(1/8) of the max), so the bias is
    at most τ·ln N ≈ 2 % and nothing is cut out of the gradient."""
    scale = jnp.mean(series**8) ** (1.0 / 8.0)
    tau = 0.002 * scale + 1e-300
    return tau * jax.nn.logsumexp(series / tau) - tau * jnp.log(series.shape[0])


def free_plasma_series(scenario: Scenario, dose_mol, infusion_s, t_end_s, params=None):
    """Free-drug plasma concentration (mol/m³) of the systemic model on 256 times
    (``params``: the scenario's systemic parameters, when already built)."""
    if params is None:
        params, _ = systemic_parameters(scenario)
    y = pk.trajectory(params, _times(infusion_s, t_end_s), dose_mol, infusion_s,
                      scenario.params["formulation.encapsulated_fraction"])
    return pk.plasma_concentrations(params, y).free_total


def organ_toxicity(scenario: Scenario, dose_mol, infusion_s, t_end_s, params=None) -> dict:
    """The organ model's cardiac (AUC, peak), hand-foot and marrow terms (dimensionless)
    (``params``: the scenario's organ parameters, when already built)."""
    if params is None:
        params, _ = systemic_parameters(scenario)
    free_ref, lipo = reference_parameters(scenario, params)
    fe = scenario.params["formulation.encapsulated_fraction"]
    keys = list(organs.EXPOSURES)
    # the three parameter sets (the formulation, free drug, PEG-liposome) stacked and mapped:
    # one traced copy of the exposure integrals instead of three (a third of the objective's
    # compile time)
    dtype = jnp.result_type(params.plasma_volume)
    sets = jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v, dtype) for v in x]),
                        params, free_ref, lipo)
    given = jnp.stack([jnp.asarray(f, dtype) for f in (fe, 0.0, 1.0)])
    auc, auc_free, auc_lipo = jax.vmap(
        lambda p, f: organs.exposure_auc(p, dose_mol, infusion_s, f, t_end_s))(sets, given)
    times = _times(infusion_s, t_end_s)
    heart = keys.index("heart_free")
    peak, peak_free = jax.vmap(
        lambda p, f: smooth_peak(organs.exposure_series(p, times, dose_mol, infusion_s,
                                                        f)[:, heart]))(
        jax.tree.map(lambda x: x[:2], sets), given[:2])
    marrow = keys.index("marrow_free")
    return {"tox_cardiac_auc": _ratio(auc[heart], auc_free[heart]),
            "tox_cardiac_peak": _ratio(peak, peak_free),
            "tox_hand_foot": _hand_foot(auc, auc_lipo, keys),
            "tox_marrow": _ratio(auc[marrow], auc_free[marrow])}


def _hand_foot(auc, auc_lipo, keys):
    """Skin payload AUC over the reference's; where the reference carrier never leaves the
    blood (the mouse sets have no extravascular carrier compartment), the encapsulated-drug
    plasma AUC over the reference's instead (the compartmental proxy)."""
    skin, plasma = keys.index("skin_payload"), keys.index("plasma_encapsulated")
    return jnp.where(auc_lipo[skin] > 0, _ratio(auc[skin], auc_lipo[skin]),
                     _ratio(auc[plasma], auc_lipo[plasma]))


def plasma_toxicity(result: Result, m: dict) -> dict:
    """The compartmental model's plasma proxies of the cardiac, hand-foot and marrow terms."""
    scenario = result.scenario
    inp = result.inputs
    free_ref, lipo = reference_parameters(scenario, inp.pk_payload)
    auc_free_ref = pk.auc(free_ref, inp.dose_mol, encapsulated=False).free_total
    y_end = pk.simulate(free_ref, jnp.stack([inp.infusion_s]), inp.dose_mol, inp.infusion_s,
                        False)[0]
    peak_free_ref = pk.plasma_concentrations(free_ref, y_end).free_total
    auc_enc_ref = pk.auc(lipo, inp.dose_mol, encapsulated=True).encapsulated
    h = units.HOUR
    mw = units.DOXORUBICIN_MOLAR_MASS
    free_series = free_plasma_series(scenario, inp.dose_mol, inp.infusion_s, result.times_s[-1],
                                     inp.pk_payload)
    cardiac = _ratio(m["plasma_auc_free_ug_h_per_ml"] * h / mw, auc_free_ref)
    return {"tox_cardiac_auc": cardiac,
            "tox_cardiac_peak": _ratio(smooth_peak(free_series), peak_free_ref),
            "tox_hand_foot": _ratio(m["plasma_auc_encapsulated_ug_h_per_ml"] * h / mw,
                                    auc_enc_ref),
            "tox_marrow": cardiac}


def terms(result: Result) -> dict:
    """Efficacy and each normalized toxicity term (dimensionless JAX scalars) of a result."""
    scenario = result.scenario
    s = scenario.params
    inp = result.inputs
    m = metrics(result)
    if isinstance(inp.pk_payload, organs.OrganParameters):
        tox = organ_toxicity(scenario, inp.dose_mol, inp.infusion_s, result.times_s[-1],
                             inp.pk_payload)
    else:
        tox = plasma_toxicity(result, m)
    threshold = s["objective.cem43_threshold_min"]
    scale = 0.05 * threshold
    cem = m["cem43_normal_tissue_max_min"]
    return {"efficacy": efficacy(result), **tox,
            "tox_thermal": jax.nn.softplus((cem - threshold) / scale) * scale / threshold}


def weighted_toxicity(t: dict, params: dict):
    """Σ weight·Tox over the toxicity terms ``t`` (weights from the scenario's ``params``), so
    that J = efficacy − weighted toxicity; scans call it ``toxicity``."""
    return sum(params[w] * t[k] for k, w in WEIGHTS.items())


def objective(result: Result) -> tuple:
    """(J, terms): the weighted objective and its terms (weights from the result's scenario)."""
    t = terms(result)
    return t["efficacy"] - weighted_toxicity(t, result.params), t


def compiled_objective(result: Result) -> tuple:
    """``objective`` as one compiled program (its traced program kept by ``export_cache`` when
    that is on): evaluated op by op it compiled ~160 small programs, 6 s of a warm CLI run."""
    return export_cache.call("objective.objective", _objective_jit, (result,))


_objective_jit = jax.jit(objective)
