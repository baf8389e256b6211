"""``simulate(scenario) -> Result``: the whole model as one pure JAX function.

One time step of length h from t (second order; the systemic model is exact):

1. systemic payload and carrier states advance exactly over h with the propagators (Φ, γ) of
   ``pk.propagator`` (computed once per macro-interval, where h is constant), with the
   infusion input averaged over the step (so the infused amount is exact);
2. the tissue advances by Strang splitting, R(h/2) T(h) R(h/2): local kinetics with SDIRK2
   (stiff vessel transit and release are handled implicitly) using the systemic plasma
   concentrations interpolated linearly over the step, and implicit transport (SDIRK2) of the
   interstitial species;
3. what the tissue took from the blood during the step (the ``net_*`` counters, volume-integrated)
   is removed from the systemic central compartments, so the drug ledger (systemic compartments
   and sinks + every tissue phase + degraded drug) equals the dose given, to round-off.

Structure (grid, saved times, step size, precision) is static; every number of the scenario is a
float leaf, so ``jax.grad``/``jax.vmap`` over ``scenario.params`` work without code changes.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import cells, heat, organs, pk, properties as props
from ..engine import export_cache, fv, solver, units
from .fluid import FluidState, solve_pressure
from .scenario import Scenario
from .tissue import Layout, layout, tissue_maps
from .transport import (Kinetics, drug_per_tissue_volume, intracellular_per_tissue_volume,
                        local_rates, n_state, n_transported, perfusion_factor, species_names)

BODY_TEMPERATURE_C = 37.0
DEFAULT_SAVE_TIMES_H = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.0, 18.0, 24.0, 36.0, 48.0,
                        60.0, 72.0, 96.0, 120.0, 168.0)
ACCUMULATORS = ("plasma_auc_free", "plasma_auc_encapsulated", "tumor_drug_auc",
                "tumor_drug_peak", "tumor_intracellular_auc")
# running values after ACCUMULATORS in Result.accumulators: the heating controller's integrator
# and hyperthermia metrics (``heat.ACCUMULATORS``), and the plasma free-drug maximum over steps
RUNNING = heat.ACCUMULATORS + ("plasma_free_max",)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Inputs:
    """Everything the time loop needs, SI (a pytree)."""

    kinetics: Kinetics
    transport: fv.Transport
    fluid: FluidState
    pk_payload: pk.SystemicParameters
    pk_carrier: pk.SystemicParameters
    dose_mol: jax.Array
    infusion_s: jax.Array
    encapsulated_fraction: jax.Array
    heating: heat.Heating | None


@dataclasses.dataclass(frozen=True)
class Result:
    """Saved output of one simulation (SI; a pytree, batched along a leading axis by vmap).

    Self-describing: it carries the scenario it ran (``params``, user units, as given to
    ``run``, and the static ``structure``) and its tissue ``layout``, so every metric
    (``summary.metrics``, ``objective.objective``) needs only the result."""

    times_s: jax.Array  # (n_t,)
    fields: jax.Array  # (n_t, len(species), *grid.shape), per-phase concentrations, mol/m³
    systemic: jax.Array  # (n_t, n) payload systemic state (its params' state_names), mol
    systemic_carrier: jax.Array  # (n_t, n) carrier-particle state, mol drug-equivalent
    accumulators: jax.Array  # (len(ACCUMULATORS),) at the end time
    inputs: Inputs
    params: dict  # the scenario's numbers (user units), as given to ``run``
    species: tuple  # names of the species axis of ``fields`` (static)
    structure: tuple  # ``structure(scenario)``: static fields and switches (static)
    layout: Layout  # grid, region masks and map multipliers (static)

    def field(self, name: str):
        """Saved field of one species, (n_t, *grid.shape)."""
        return self.fields[:, self.species.index(name)]

    @property
    def scenario(self) -> Scenario:
        """The scenario that ran (its numbers as given to ``run``, private switches dropped)."""
        return Scenario(self.params, public_static(self.structure),
                        maps=dict(self.structure).get("_maps"))

    @property
    def kill_coefficient(self):
        """ω of the surviving fraction SF = exp(−ω ∫ n dt), per (ng/1e5 cells)·h."""
        return self.params["drug.kill_coefficient_per_ng_h_per_1e5cells"]


jax.tree_util.register_dataclass(
    Result, data_fields=["times_s", "fields", "systemic", "systemic_carrier", "accumulators",
                         "inputs", "params"], meta_fields=["species", "structure", "layout"])


def public_static(structure: tuple) -> tuple:
    """The scenario's static fields of a ``structure`` (its private ``_`` switches dropped)."""
    return tuple((k, v) for k, v in structure if not k.startswith("_"))


def save_times_h(scenario: Scenario) -> np.ndarray:
    """Saved times (h): the scenario's list, or a default set up to ``t_end_h``."""
    t_end = float(scenario["numerics.t_end_h"])
    given = list(scenario["numerics.save_times_h"])
    times = given or [t for t in DEFAULT_SAVE_TIMES_H if t < t_end]
    if not times or times[-1] < t_end:
        times = list(times) + [t_end]
    return np.asarray(times, dtype=float)


def _dtype(scenario: Scenario):
    if scenario["numerics.precision"] == "float64":
        if not jax.config.jax_enable_x64:
            raise ValueError("numerics.precision = 'float64' needs jax_enable_x64; call "
                             "jax.config.update('jax_enable_x64', True) first (the CLI does), "
                             "or set numerics.precision = 'float32'")
        return jnp.float64
    return jnp.float32


def systemic_parameters(scenario: Scenario) -> tuple[pk.SystemicParameters, jax.Array]:
    """Systemic PK parameters of the payload and the dose in mol: the compartmental set, or
    with ``patient.systemic_model = "organs"`` the organ model built on its carrier part
    (``organs.organ_parameters``).

    The carrier type and species pick a sourced parameter set (``pk.CARRIER_SETS``: Doxil-fitted
    PEG-liposome, PK1 conjugate); its carrier clearance holds at the set's reference diameter
    and PEGylated surface and is scaled from there by the size and surface laws (MPS uptake,
    renal filtration)."""
    s = scenario.params
    species = scenario["patient.species"]
    make, d_ref = pk.CARRIER_SETS[scenario["formulation.carrier"]][species]
    if species == "human":
        bsa = s["patient.body_surface_area_m2"]
        base = make(bsa)
        dose_mol = units.mg_to_mol(s["dose.dose_mg_per_m2"] * bsa)
    else:
        mass = s["patient.body_mass_kg"]
        base = make(mass)
        dose_mol = units.mg_to_mol(s["dose.dose_mg_per_kg"] * mass)
    d = s["formulation.diameter_nm"]
    d_m, n = s["patient.mps_threshold_nm"], s["patient.mps_exponent"]
    cl_ref = base.cl_carrier * s["patient.carrier_clearance_scale"]
    share = s["patient.carrier_mps_share"]
    size_law = props.mps_uptake_factor(d, d_m, n, s["formulation.surface_factor"]) \
        / props.mps_uptake_factor(d_ref, d_m, n, 1.0)
    renal = s["patient.gfr_ml_per_min"] * units.ML / units.MIN * props.renal_filtration_fraction(
        d, s["patient.renal_cutoff_nm"], s["patient.renal_cutoff_width_nm"])
    leak = props.release_rate(BODY_TEMPERATURE_C, s["formulation.release_temperature_C"],
                              s["formulation.release_transition_width_C"],
                              s["formulation.leak_rate_per_h"] / units.HOUR,
                              s["formulation.release_max_rate_per_s"])
    k12, k21 = _extravascular_rates(base, d, d_ref, species, s)
    params = base.replace(cl_renal=renal, cl_mps=cl_ref * share * size_law,
                          cl_other=cl_ref * (1.0 - share), k_leak_plasma=leak,
                          fu_plasma=s["drug.unbound_fraction_plasma"], k12=k12, k21=k21)
    if scenario["patient.systemic_model"] == "organs":
        params = organs.organ_parameters(params, species, s)
    return params, dose_mol


def _extravascular_rates(base: pk.SystemicParameters, d, d_ref: float, species: str, s: dict):
    """Carrier exchange rates (k12, k21, 1/s) with the extravascular space of the body.

    A carrier set's own peripheral compartment (k12,set, k21,set) holds at its reference
    diameter d_ref. A particle small enough to cross the endothelial junctions (d ≲ 10 nm)
    adds the size-dependent exchange of ``properties.extravascular_exchange`` beyond that of the
    reference size, lumped with the set's compartment (docs/model.md §3):

      Δk = k_out(d) − k_out(d_ref),   k12 = k12,set + Δk
      V_per/V_p = k12,set/k21,set + (V_e/V_p)(d) · Δk⁺/(Δk⁺ + k12,set),   k21 = k12 / (V_per/V_p)

    The weight Δk⁺/(Δk⁺ + k12,set) lets the added volume appear only as fast as its exchange
    does, so the rates are continuous in d.  Mouse rates scale as (body mass/70 kg)^−0.25,
    like the mouse sets."""
    k_out, ratio = props.extravascular_exchange(d)
    k_out_ref, _ = props.extravascular_exchange(d_ref)
    scale = 1.0 if species == "human" else (s["patient.body_mass_kg"] / 70.0) ** -0.25
    delta = scale * (k_out - k_out_ref) / units.HOUR
    k12 = base.k12 + delta
    gain = jnp.maximum(delta, 0.0)
    k21_set = jnp.asarray(base.k21)
    set_ratio = jnp.where(k21_set > 0, base.k12 / jnp.where(k21_set > 0, k21_set, 1.0), 0.0)
    volume_ratio = set_ratio + ratio * gain / (gain + base.k12 + 1e-30)
    k21 = jnp.where(k12 > 0, k12 / jnp.maximum(volume_ratio, 1e-12), 0.0)
    return k12, k21


def flags(scenario: Scenario) -> tuple[bool, bool]:
    """(heating, targeting) switches of a scenario (static structure); "targeting" adds the
    cell-associated carrier pools, needed for receptor binding or fluid-phase endocytosis."""
    heating = scenario["heating.source"] != "none"
    targeting = (float(scenario["formulation.ligands_per_particle"]) > 0
                 or float(scenario["formulation.pinocytosis_rate_per_h"]) > 0)
    return heating, targeting


def _boundaries(grid, names, temperature=None):
    """Zero flux for solutes everywhere; for temperature the given per-axis (low, high)
    conditions (``heat.far_field_boundaries``: exact far-field Robin conditions on the outer
    sides, zero flux on the symmetry axis r = 0)."""
    if "temperature" not in names:
        return None
    solutes = [fv.Flux()] * 3
    return tuple((tuple(solutes + [lo]), tuple(solutes + [hi])) for lo, hi in temperature)


def model_inputs(scenario: Scenario, lay: Layout, names: tuple) -> Inputs:
    """All SI inputs of the time loop (pure; differentiable in ``scenario.params``)."""
    s = scenario.params
    maps = tissue_maps(lay, scenario)
    fluid = solve_pressure(lay.grid, maps.hydraulic_k, maps.lp_sv, maps.p_eff, maps.lymph)
    pk_payload, dose_mol = systemic_parameters(scenario)
    k_on, k_off = cells.effective_binding_rates(s["formulation.binding_on_rate_per_m_per_s"],
                                                s["formulation.dissociation_constant_nm"],
                                                s["formulation.ligands_per_particle"])
    per_h = 1.0 / units.HOUR
    kin = Kinetics(
        maps=maps, filtration=fluid.filtration, lymph=fluid.lymph_drainage,
        release_temperature_C=s["formulation.release_temperature_C"],
        release_width_c=s["formulation.release_transition_width_C"],
        leak_rate=s["formulation.leak_rate_per_h"] * per_h,
        max_release_rate=s["formulation.release_max_rate_per_s"],
        breakdown_rate=s["formulation.interstitial_breakdown_rate_per_h"] * per_h,
        degradation_rate=s["drug.degradation_rate_per_h"] * per_h,
        unbound_fraction=s["drug.unbound_fraction_plasma"],
        **cells.uptake_constants(s, maps.phi_c, maps.cell_density),
        digestion_rate=s["formulation.macrophage_release_rate_per_h"] * per_h,
        pinocytosis_rate=s["formulation.pinocytosis_rate_per_h"] * per_h,
        label_retained_fraction=s["imaging.label_retained_fraction"],
        receptors=maps.receptors,
        particle_payload=s["formulation.drug_molecules_per_particle"],
        k_on=k_on, k_off=k_off,
        k_int=s["formulation.internalization_rate_per_h"] * per_h,
        k_release_cell=s["formulation.intracellular_release_rate_per_h"] * per_h,
        k_degrade_internalized=s["formulation.internalized_degradation_rate_per_h"] * per_h,
        perfusion_increase_per_C=s["heating.perfusion_increase_per_C"],
        arterial_temperature_C=s["heating.arterial_temperature_C"],
    )
    phi_e = maps.phi_e
    grid = lay.grid
    diff = [phi_e * maps.d_carrier, phi_e * maps.d_carrier, phi_e * maps.d_free]
    cap = [phi_e, phi_e, phi_e]
    rfs = [_face_mean(maps.rf_carrier, a) for a in range(grid.ndim)]
    vel = [[rf * u, rf * u, u] for u, rf in zip(fluid.velocity, rfs)]
    heating = None
    if "temperature" in names:
        diff.append(maps.thermal_conductivity)
        cap.append(maps.heat_capacity)
        for v in vel:
            v.append(jnp.zeros_like(v[0]))
        temp_bcs = heat.far_field_boundaries(grid, maps.thermal_conductivity,
                                             maps.blood_heat_sink,
                                             s["heating.arterial_temperature_C"])
        heating = heating_inputs(scenario, lay, maps, temp_bcs)
    transport = fv.Transport(diffusivity=jnp.stack(diff), capacity=jnp.stack(cap),
                             velocity=tuple(jnp.stack(v) for v in vel),
                             boundaries=_boundaries(grid, names, temp_bcs if heating else None))
    enc = s["formulation.encapsulated_fraction"]
    return Inputs(kin, transport, fluid, pk_payload, pk_payload.replace(k_leak_plasma=0.0),
                  jnp.asarray(dose_mol), jnp.asarray(s["dose.infusion_duration_min"] * units.MIN),
                  jnp.asarray(enc), heating)


def heating_inputs(scenario: Scenario, lay: Layout, maps, boundaries) -> heat.Heating:
    """Heat-source inputs: power shape, target region, schedule, controller gains (the readout
    gain from one steady Pennes solve); ``boundaries`` are the temperature's (low, high) pairs."""
    s = scenario.params
    grid = lay.grid
    probe = heat.probe_index(grid, float(scenario["heating.probe_offset_mm"]) * units.MM)
    region = jnp.asarray(heat.target_mask(
        grid, lay.tumor, scenario["heating.target_region"],
        float(scenario["tumor.radius_mm"]) * units.MM,
        float(scenario["heating.target_margin_mm"]) * units.MM))
    if scenario["heating.source"] == "regional":
        deposit = heat.region_shape(grid, region)
    else:
        deposit = heat.focus_shape(grid, s["heating.focus_offset_mm"] * units.MM,
                                   s["heating.focus_fwhm_mm"] * units.MM)
    volume = jnp.asarray(grid.volume)
    # the gain is for the rise θ = T − T_a: the far field holds θ → 0
    gain, tau = heat.readout_gain(grid, maps.thermal_conductivity, maps.blood_heat_sink, deposit,
                                  heat.deviation_boundaries(boundaries), region * volume,
                                  scenario["heating.control_readout"], probe, maps.heat_capacity)
    return heat.Heating(
        deposit=deposit, region=region, tumor=jnp.asarray(lay.tumor),
        normal=jnp.asarray(lay.normal), volume=volume,
        start_s=s["heating.heating_start_min"] * units.MIN,
        duration_s=s["heating.heating_duration_min"] * units.MIN,
        ramp_s=s["heating.ramp_min"] * units.MIN, cooldown_s=s["heating.cooldown_min"] * units.MIN,
        target_c=s["heating.target_temperature_C"], power_w=s["heating.power_w"],
        gain=s["heating.control_gain"],
        integral_time_s=s["heating.control_integral_time_min"] * units.MIN,
        time_constant_s=tau,
        max_power_w=s["heating.max_power_w"],
        relaxation=s["heating.protocol_relaxation_per_s"], readout_gain_c_per_w=gain,
        arterial_c=s["heating.arterial_temperature_C"], heat_capacity=maps.heat_capacity,
        temperature_transport=fv.Transport(diffusivity=maps.thermal_conductivity[None],
                                           capacity=jnp.ones_like(maps.thermal_conductivity),
                                           boundaries=boundaries))


def _face_mean(cell_values, axis):
    """Arithmetic mean of neighbouring cells on the faces normal to ``axis`` (edge values on
    boundary faces)."""
    n = cell_values.shape[axis]
    take = lambda a, b: jax.lax.slice_in_dim(cell_values, a, b, axis=axis)  # noqa: E731
    inner = 0.5 * (take(1, n) + take(0, n - 1))
    return jnp.concatenate([take(0, 1), inner, take(n - 1, n)], axis=axis)


def _plasma(inp: Inputs, y, yc):
    """Plasma concentrations (carriers, encapsulated, total free), mol/m³."""
    vp = inp.pk_payload.plasma_volume
    return (yc[pk.I_ENC_CENTRAL] / vp, y[pk.I_ENC_CENTRAL] / vp,
            y[pk.I_FREE_CENTRAL] / inp.pk_payload.v1)


def make_step(inp: Inputs, lay: Layout, names: tuple, heating_mode: str = "none",
              probe: tuple = (0,), newton_iterations: int = 2, readout_mode: str = "probe",
              convection: str = "upwind") -> tuple[Callable, Callable]:
    """(step, prepare) of the coupled model for ``solver.integrate``:
    ``step(t, h, state, propagators)``, state = (y_payload, y_carrier, fields, accumulators);
    the accumulators are ``ACCUMULATORS`` then ``RUNNING`` (the heating controller's integrator
    and the running hyperthermia metrics, ``heat.update_running``, and the plasma free-drug
    maximum),
    and ``prepare(h)`` → the exact systemic propagators (Φ, γ) over h (``pk.propagator``) of
    payload and carrier, computed once per macro-interval (a matrix exponential per step was a
    large share of a batched GPU step: under ``vmap`` every squaring of its loop runs).
    ``convection``: the scheme of the interstitial transport, 'upwind' or 'limited'
    (``solver.transport_step``; the scenario's ``numerics.convection``)."""
    grid = lay.grid
    dtype = inp.kinetics.filtration.dtype  # the run's precision (inputs are cast to it)
    tumor_w = (jnp.asarray(lay.tumor) * jnp.asarray(grid.volume)).astype(dtype)
    tumor_volume = jnp.sum(tumor_w)
    i_net = np.asarray([names.index(n) for n in ("net_carrier", "net_payload", "net_free")])
    n_tr, n_st = n_transported(names), n_state(names)
    b_payload = pk.infusion_input(inp.pk_payload, inp.dose_mol, inp.infusion_s,
                                  inp.encapsulated_fraction)
    b_carrier = b_payload.at[pk.I_FREE_CENTRAL].set(0.0)
    maps = inp.kinetics.maps
    i_temp = names.index("temperature") if "temperature" in names else None

    def tumor_mean(x, quantity):
        return jnp.sum(tumor_w * quantity(x)) / tumor_volume

    drug = lambda z: drug_per_tissue_volume(maps, z, names)  # noqa: E731
    inside = lambda z: intracellular_per_tissue_volume(maps, z, names)  # noqa: E731

    # time-invariant: computed once, outside the time loop (and so are their tangents)
    transport_coefs = solver.transport_coefficients(grid, inp.transport, n_tr, dtype)
    faces = (solver.convection_faces(grid, inp.transport, n_tr, dtype)
             if convection == "limited" else None)

    def prepare(h):
        return (pk.propagator(inp.pk_payload, h, b_payload),
                pk.propagator(inp.pk_carrier, h, b_carrier))

    def step(t, h, state, propagators):
        y, yc, x, acc = state
        (phi, gamma), (phi_c, gamma_c) = propagators
        fraction = jnp.clip(inp.infusion_s - t, 0.0, h) / h  # share of the step under infusion
        # exact for a constant input b·fraction over the step (γ is linear in b)
        y1 = phi @ y + fraction * gamma
        yc1 = phi_c @ yc + fraction * gamma_c
        s0, s1 = _plasma(inp, y, yc), _plasma(inp, y1, yc1)
        n_acc = len(ACCUMULATORS)
        if i_temp is not None:  # controller readout and integrator, held over the step
            y_read = heat.readout(inp.heating, readout_mode, x[i_temp], probe)
            z_int = acc[n_acc + heat.ACCUMULATORS.index("integrator_c")]

        def rates(tt, xx, per_cell):  # per_cell: (kinetics, heating), cut into cell blocks
            kinetics, heating = per_cell
            w = (tt - t) / h
            sys = tuple(a + w * (b - a) for a, b in zip(s0, s1))
            q = None
            if i_temp is not None:
                q = heat.source_function(heating, heating_mode, tt, y_read, z_int, t)(xx[i_temp])
            return local_rates(kinetics, xx, sys, names, q)

        def transport(xx):
            return xx.at[:n_tr].set(solver.transport_step(
                grid, inp.transport, xx[:n_tr], h, coefficients=transport_coefs,
                convection=convection, faces=faces))

        def half(xx, k):  # R(h/2), then T(h) after the first half only (traced once)
            xx = solver.reaction_step(rates, t + 0.5 * h * k, xx, 0.5 * h, newton_iterations,
                                      n_st, cell_data=(inp.kinetics, inp.heating))
            # under vmap the cond is a select: T runs in both halves, the second is discarded
            return jax.lax.cond(k == 0, transport, lambda xx: xx, xx), None

        x1, _ = jax.lax.scan(half, x, jnp.arange(2.0, dtype=x.dtype))
        drawn = grid.integrate(x1[i_net] - x[i_net])  # mol taken from the blood
        y1 = y1.at[pk.I_ENC_CENTRAL].add(-drawn[1]).at[pk.I_FREE_CENTRAL].add(-drawn[2])
        yc1 = yc1.at[pk.I_ENC_CENTRAL].add(-drawn[0])

        drug0, drug1 = tumor_mean(x, drug), tumor_mean(x1, drug)
        _, e_a, f_a = s0
        _, e_b, f_b = _plasma(inp, y1, yc1)
        acc_new = jnp.stack([
            acc[0] + 0.5 * h * (f_a + f_b),
            acc[1] + 0.5 * h * (e_a + e_b),
            acc[2] + 0.5 * h * (drug0 + drug1),
            jnp.maximum(acc[3], drug1),
            acc[4] + 0.5 * h * (tumor_mean(x, inside) + tumor_mean(x1, inside)),
        ])
        n_heat = len(heat.ACCUMULATORS)
        running = acc[n_acc:n_acc + n_heat]
        if i_temp is not None:
            kin = inp.kinetics
            running = heat.update_running(
                inp.heating, grid, heating_mode, readout_mode, probe, t, h, x[i_temp],
                x1[i_temp], running, kin.release_temperature_C,
                lambda temp: maps.blood_heat_sink * perfusion_factor(kin, temp))
        acc = jnp.concatenate([acc_new, running.astype(acc.dtype),
                               jnp.maximum(acc[-1], f_b)[None]])
        # keep the carry's dtypes (float32 runs with x64 enabled elsewhere must not promote)
        return (y1.astype(y.dtype), yc1.astype(yc.dtype), x1.astype(x.dtype),
                acc.astype(state[3].dtype))

    return step, prepare


def _prepare(params: dict, static: tuple, description: str = ""):
    """(scenario, layout, species names, Inputs, initial state) of a run: the scenario rebuilt
    from its numbers and structure, every input cast to the run's precision."""
    st = dict(static)
    scenario = Scenario(params, public_static(static), description, st.get("_maps"))
    lay = layout(scenario)
    dtype = _dtype(scenario)
    scenario = Scenario({k: jnp.asarray(v, dtype) for k, v in params.items()}, scenario.static,
                        description, scenario.maps)
    names = species_names(st["_heating"], st["_targeting"])
    # the tissue maps start from the layout's float64 arrays: cast every input to the run's
    # precision, or a float32 run computes its kinetics and transport in float64; Python
    # floats (zero fluxes, the carrier's zero leak) too, so no input is weakly typed (the
    # export cache keys programs by their inputs' types, and a stored export's are strong)
    inp = jax.tree.map(lambda a: a.astype(dtype) if isinstance(a, (jax.Array, np.ndarray))
                       and jnp.issubdtype(a.dtype, jnp.floating) else
                       jnp.asarray(a, dtype) if isinstance(a, float) else a,
                       model_inputs(scenario, lay, names))
    x0 = jnp.zeros((len(names),) + lay.grid.shape, dtype)
    if "temperature" in names:
        x0 = x0.at[names.index("temperature")].set(inp.heating.arterial_c)
    n_sys = inp.pk_payload.n_state
    state0 = (jnp.zeros(n_sys, dtype), jnp.zeros(n_sys, dtype), x0,
              jnp.zeros(len(ACCUMULATORS) + len(RUNNING), dtype))
    return scenario, lay, names, inp, state0


def _step_of(scenario: Scenario, lay: Layout, names: tuple, inp: Inputs):
    """(step, prepare) of ``make_step`` for the scenario's heating settings."""
    probe = heat.probe_index(lay.grid, float(scenario["heating.probe_offset_mm"]) * units.MM)
    return make_step(inp, lay, names, scenario["heating.source"], probe,
                     readout_mode=scenario["heating.control_readout"],
                     convection=scenario["numerics.convection"])


def _schedule(scenario: Scenario, static: tuple) -> dict:
    """The time grid of ``solver.integrate``: saved times (s), largest step, refined windows."""
    window = dict(static)["_heating_window_s"]
    fine = ()
    if window is not None:
        fine = ((window[0], window[1], float(scenario["numerics.heating_max_dt_min"]) * units.MIN),)
    return dict(save_times=save_times_h(scenario) * units.HOUR,
                max_dt=float(scenario["numerics.max_dt_min"]) * units.MIN, fine_windows=fine)


def _observe(state):
    return state[0], state[1], state[2]


def run(params: dict, static: tuple, description: str = "", progress: Callable | None = None
        ) -> Result:
    """Pure function of the scenario's numbers (``params``) for a fixed structure ``static``
    (from ``structure(scenario)``).  ``progress(t_seconds)``, if given, is called from inside
    the loop (``jax.debug.callback``); ``simulate`` reports progress from the host instead."""
    scenario, lay, names, inp, state0 = _prepare(params, static, description)
    step, prepare = _step_of(scenario, lay, names, inp)
    sched = _schedule(scenario, static)
    final, saved = solver.integrate(step, state0, observe=_observe, checkpoint=True,
                                    progress=progress, prepare=prepare, **sched)
    y, yc, fields = saved
    return Result(jnp.asarray(sched["save_times"], state0[0].dtype), fields, y, yc, final[3],
                  inp, dict(params), names, static, lay)


@functools.partial(jax.jit, static_argnums=(1,))
def _prepare_jit(params: dict, static: tuple):
    return _prepare(params, static)[3:]


@functools.partial(jax.jit, static_argnums=(4, 5))
def _advance_jit(inp: Inputs, state, t, length, static: tuple, n_sub: int):
    """One macro-interval of the run of structure ``static`` (``solver.macro_interval``)."""
    st = dict(static)
    scenario = Scenario({}, public_static(static), "", st.get("_maps"))
    lay = layout(scenario)
    names = species_names(st["_heating"], st["_targeting"])
    step, prepare = _step_of(scenario, lay, names, inp)
    return solver.macro_interval(step, (state, t), length, n_sub, prepare)


def _host_run_start(params: dict, static: tuple) -> tuple:
    """(scenario, compiled inputs, initial state, schedule) of a run on the host: the inputs
    through the export cache, shared by ``run_with_progress`` and ``standin_result``."""
    scenario = Scenario(params, public_static(static), "", dict(static).get("_maps"))
    inp, state0 = export_cache.call("simulate.prepare", _prepare_jit, (params,), (static,))
    return scenario, inp, state0, _schedule(scenario, static)


def _host_result(scenario: Scenario, static: tuple, inp, saved, accumulators, sched) -> Result:
    """The ``Result`` of a run on the host from its saved (y, yc, fields) and accumulators."""
    y, yc, fields = saved
    st = dict(static)
    return Result(jnp.asarray(sched["save_times"], y.dtype), fields, y, yc, accumulators, inp,
                  dict(scenario.params), species_names(st["_heating"], st["_targeting"]),
                  static, layout(scenario))


def run_with_progress(params: dict, static: tuple, progress: Callable) -> Result:
    """``run`` with the loop over macro-intervals on the host (``solver.integrate_on_host``):
    ``progress(t_seconds)`` after each; the compiled pieces (inputs, one macro-interval) hold
    no host callback, so they are compiled once per structure whatever the progress function
    and can be kept by JAX's persistent compilation cache, and their traced programs by the
    export cache (``export_cache.call``, off unless configured).  Forward only."""
    scenario, inp, state0, sched = _host_run_start(params, static)

    def advance(state, t, length, n_sub):
        return export_cache.call("simulate.advance", _advance_jit, (inp, state, t, length),
                                 (static, n_sub))

    final, saved = solver.integrate_on_host(advance, state0, observe=_observe,
                                            progress=progress, **sched)
    return _host_result(scenario, static, inp, saved, final[3], sched)


def standin_result(scenario: Scenario) -> Result:
    """A ``Result`` with the structure, shapes, dtypes and placement of what
    ``simulate(scenario, progress=...)`` returns, without running it: every saved time holds
    the initial state (the run's compiled inputs, ``_prepare_jit``, which the run then reuses).

    For compiling the programs that read a result (summary metrics, the objective, the
    result's arrays) in a second thread while the run itself compiles (the command line's
    cold start); its values mean nothing."""
    static = structure(scenario)
    run_scenario, inp, state0, sched = _host_run_start(scenario.params, static)
    n_saved = len(sched["save_times"])
    saved = jax.tree_util.tree_map(lambda x: jnp.stack([x] * n_saved), _observe(state0))
    return _host_result(run_scenario, static, inp, saved, state0[3], sched)


_run_jit = jax.jit(run, static_argnums=(1, 2))
LABELS = {"formulation.name", "drug.name", "outputs.figures"}


def heating_window_s(start_s: float, end_s: float) -> tuple:
    """Window of refined steps for heating from ``start_s`` to ``end_s`` (s): 5 min before to
    30 min after, rounded out to 30-min marks (so nearby schedules share a compilation)."""
    mark = 30 * units.MIN
    return (max(0.0, math.floor((start_s - 5 * units.MIN) / mark) * mark),
            math.ceil((end_s + 30 * units.MIN) / mark) * mark)


def structure(scenario: Scenario) -> tuple:
    """The static structure of a run: the static fields that change the computation (labels
    excluded, so renaming a formulation does not recompile), the heating/targeting switches and
    the window of refined steps around heating: ``numerics.heating_window_min`` when given
    (scans over heating times set it to cover their range, so one compilation serves the
    scan), else from the scenario's concrete start, duration and cool-down."""
    heating, targeting = flags(scenario)
    window = None
    if heating:
        given = list(scenario["numerics.heating_window_min"])
        if given:
            window = (float(given[0]) * units.MIN, float(given[1]) * units.MIN)
        else:
            start = float(scenario["heating.heating_start_min"]) * units.MIN
            end = start + (float(scenario["heating.heating_duration_min"])
                           + float(scenario["heating.cooldown_min"])) * units.MIN
            window = heating_window_s(start, end)
    extra = (("_heating", heating), ("_heating_window_s", window), ("_targeting", targeting))
    if scenario.maps is not None:  # the maps file's arrays (static, hashed by content)
        extra += (("_maps", scenario.maps),)
    return tuple((k, v) for k, v in scenario.static if k not in LABELS) + extra


def simulate(scenario: Scenario, progress: Callable | None = None) -> Result:
    """Run a scenario (compiled once per structure; new numbers do not recompile).

    ``progress(t_seconds)``, if given, is called on the host after each macro-interval
    (``run_with_progress``); it changes nothing that is compiled."""
    _dtype(scenario)
    if progress is not None:
        return run_with_progress(scenario.params, structure(scenario), progress)
    return _run_jit(scenario.params, structure(scenario), "")
