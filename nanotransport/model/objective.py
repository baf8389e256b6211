"""The design objective: efficacy minus weighted, normalized toxicity (docs/model.md §10).

    J = E − w_ca·Tox_cardiac,auc − w_cp·Tox_cardiac,peak − w_hf·Tox_hand-foot − w_th·Tox_thermal

* E = 1 − mean surviving fraction of viable tumor cells (``summary.efficacy``).
* Tox_cardiac,auc = AUC of free drug in plasma / AUC of free doxorubicin given at the same dose
  and infusion (exact, from the systemic model: dose/CL).
* Tox_cardiac,peak = smooth peak of free drug in plasma / peak of that free-doxorubicin
  reference (at the end of its infusion).  The peak is taken from the exact systemic solution
  on 256 times (dense around the end of the infusion, then log-spaced to t_end; propagated
  from each time to the next, ``pk.trajectory``; the tumor's
  draw on the plasma, < 1e-3 of the dose, is neglected there) as a log-sum-exp whose
  temperature is a smooth 0.2 % of the series' size (bias ≤ 2 %), so it is differentiable.
* Tox_hand-foot = AUC of carrier-encapsulated drug in plasma / that of PEG-liposomal
  doxorubicin (the species' reference carrier) at the same dose: hand-foot syndrome is the
  toxicity of long-circulating liposomes, so free doxorubicin (no encapsulated drug) is no
  useful reference here (documented departure from "free drug at the same dose").
* Tox_thermal = softplus((CEM43_max,normal − threshold)/s)·s / threshold with s = 5 % of the
  threshold: zero below the tolerated thermal dose, linear above, smooth in between.

Every term is a smooth function of every parameter (no hard max, clip or branch on traced
values), so J can be differentiated with respect to any of them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from . import pk
from ..engine import units
from .scenario import Scenario
from .simulate import Result, systemic_parameters
from .summary import efficacy, metrics

TERMS = ("efficacy", "tox_cardiac_auc", "tox_cardiac_peak", "tox_hand_foot", "tox_thermal")
WEIGHTS = {"tox_cardiac_auc": "objective.weight_cardiac_auc",
           "tox_cardiac_peak": "objective.weight_cardiac_peak",
           "tox_hand_foot": "objective.weight_hand_foot",
           "tox_thermal": "objective.weight_thermal"}


def references(scenario: Scenario, dose_mol, infusion_s):
    """(free-drug AUC, free-drug peak, encapsulated AUC) of the references, mol·s/m³ and mol/m³."""
    params, _ = systemic_parameters(scenario)
    free_ref = params.replace(k_leak_plasma=0.0)
    auc_free = pk.auc(free_ref, dose_mol, encapsulated=False).free_total
    y_end = pk.simulate(free_ref, jnp.stack([infusion_s]), dose_mol, infusion_s, False)[0]
    peak_free = pk.plasma_concentrations(free_ref, y_end).free_total
    if scenario["patient.species"] == "human":
        lipo = pk.human_pegylated_liposome(scenario.params["patient.body_surface_area_m2"])
    else:
        lipo = pk.mouse_pegylated_liposome(scenario.params["patient.body_mass_kg"])
    auc_enc = pk.auc(lipo, dose_mol, encapsulated=True).encapsulated
    return auc_free, peak_free, auc_enc


def smooth_peak(series):
    """Differentiable peak of a positive series: log-sum-exp with temperature τ = 0.2 % of the
    series' 8-norm mean (itself smooth and within a factor N^(1/8) of the max), so the bias is
    at most τ·ln N ≈ 2 % and nothing is cut out of the gradient."""
    scale = jnp.mean(series**8) ** (1.0 / 8.0)
    tau = 0.002 * scale + 1e-300
    return tau * jax.nn.logsumexp(series / tau) - tau * jnp.log(series.shape[0])


def free_plasma_series(scenario: Scenario, dose_mol, infusion_s, t_end_s):
    """Free-drug plasma concentration (mol/m³) of the systemic model on 256 times."""
    params, _ = systemic_parameters(scenario)
    early = jnp.linspace(0.0, 2.0, 128) * infusion_s
    late = jnp.exp(jnp.linspace(jnp.log(2.0 * infusion_s), jnp.log(jnp.maximum(
        t_end_s, 2.0 * infusion_s)), 129)[1:])
    y = pk.trajectory(params, jnp.concatenate([early, late]), dose_mol, infusion_s,
                      scenario.params["formulation.encapsulated_fraction"])
    return pk.plasma_concentrations(params, y).free_total


def terms(result: Result) -> dict:
    """Efficacy and each normalized toxicity term (dimensionless JAX scalars) of a result."""
    scenario = result.scenario
    s = scenario.params
    inp = result.inputs
    m = metrics(result)
    auc_free_ref, peak_free_ref, auc_enc_ref = references(scenario, inp.dose_mol, inp.infusion_s)
    h = units.HOUR
    mw = units.DOXORUBICIN_MOLAR_MASS
    free_series = free_plasma_series(scenario, inp.dose_mol, inp.infusion_s, result.times_s[-1])
    threshold = s["objective.cem43_threshold_min"]
    scale = 0.05 * threshold
    cem = m["cem43_normal_tissue_max_min"]
    return {
        "efficacy": efficacy(result),
        "tox_cardiac_auc": m["plasma_auc_free_ug_h_per_ml"] * h / mw / auc_free_ref,
        "tox_cardiac_peak": smooth_peak(free_series) / peak_free_ref,
        "tox_hand_foot": m["plasma_auc_encapsulated_ug_h_per_ml"] * h / mw / auc_enc_ref,
        "tox_thermal": jax.nn.softplus((cem - threshold) / scale) * scale / threshold,
    }


def weighted_toxicity(t: dict, params: dict):
    """Σ weight·Tox over the toxicity terms ``t`` (weights from the scenario's ``params``), so
    that J = efficacy − weighted toxicity; scans call it ``toxicity``."""
    return sum(params[w] * t[k] for k, w in WEIGHTS.items())


def objective(result: Result) -> tuple:
    """(J, terms): the weighted objective and its terms (weights from the result's scenario)."""
    t = terms(result)
    return t["efficacy"] - weighted_toxicity(t, result.params), t

