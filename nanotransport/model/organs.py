"""Whole-body organ model of carrier and drug: a linear PBPK model (docs/model.md §3b).

SI inside: amounts in mol (doxorubicin, in a carrier or free), volumes in m³, flows and
clearances in m³/s, rates in 1/s.  Like ``pk.SystemicParameters`` it is a linear system

    dy/dt = A y + b(t)

solved exactly by ``pk.propagator``/``pk.trajectory`` (which accept either parameter type), so
the tumor's finite-volume model couples to it as to the compartmental model: it draws carriers
from ``enc_central`` and free drug from ``free_central`` (indices 0 and 2 in both models).

State (``STATE_NAMES``), organs o ∈ ``ORGANS``, MPS organs m ∈ ``MPS_ORGANS``:

=========================  =================================================================
``enc_central``            drug in carriers circulating in plasma (volume V_p of the carrier set)
``enc_peripheral``         drug in carriers outside the blood in normal tissues (k12, k21 of the
                           carrier set), shared among organs by ``peripheral_shares`` for readout
``free_central``           free drug (bound + unbound) in plasma, physiological volume V_pl
``drug_<o>``               free (non-encapsulated) drug in organ o, bound to tissue or not
``macrophage_<m>``         drug in carriers taken up by macrophages of liver, spleen, bone marrow
``sink_renal``             carriers filtered by the kidney (small particles)
``sink_other``             carriers cleared by other routes
``sink_hepatic``           free drug eliminated by the liver (metabolism and bile)
``sink_urine``             free drug excreted in urine
=========================  =================================================================

Rates (F_o = Q_o·R_bp, the plasma-equivalent flow of blood flow Q_o at blood:plasma ratio R_bp;
C_o = drug_o/V_o; K_o the tissue:plasma partition coefficient of doxorubicin):

    d enc_central/dt   = −(CL_ren + CL_MPS + CL_oth)/V_p·enc_c − k12 enc_c + k21 enc_p − k_leak enc_c
    d enc_peripheral/dt = k12 enc_c − k21 enc_p
    d macrophage_m/dt  = s_m CL_MPS/V_p · enc_c − k_mac macrophage_m          (Σ s_m = 1)
    d free_central/dt  = k_leak enc_c + Σ_o F_o (C_o/K_o − C_pl) − CL_urine C_pl
    d drug_o/dt        = F_o (C_pl − C_o/K_o) − CL_liver C_o/K_o [o = liver] + k_mac macrophage_o
    d sink_*/dt        = the matching outflows

Flow-limited, well-stirred organs with linear (low-concentration) binding: the venous plasma
leaving organ o is at C_o/K_o; hepatic clearance acts on it (well-stirred liver), urinary
excretion on plasma.  Every column of A sums to zero, so the amounts plus sinks equal the dose
given, to round-off.  The spleen drains into the systemic blood here, not into the portal vein
(a simplification: the liver sees the spleen's outflow at the same concentration either way
once equilibrated).

Readouts (``concentrations``) are what a biodistribution study measures in an organ
homogenate: the organ's free drug, its carrier payload (peripheral share + macrophages), and the
plasma trapped in its vessels (``residual_plasma`` × plasma concentration).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import units
from ..engine.linalg import small_solve
from . import pk

ORGANS = ("liver", "spleen", "kidney", "heart", "skin", "marrow", "muscle", "rest")
MPS_ORGANS = ("liver", "spleen", "marrow")
#: tissues a study may report (``rest`` is the remainder of the body, never sampled)
TISSUES = ("plasma",) + ORGANS[:-1] + ("tumor",)
#: drug = total doxorubicin (free + in carriers), carrier = the carrier itself (drug-equivalent)
ANALYTES = ("drug", "free_drug", "encapsulated_drug", "carrier")

N_ORGANS = len(ORGANS)
I_ENC_CENTRAL, I_ENC_PERIPHERAL, I_FREE_CENTRAL = 0, 1, 2
I_DRUG = 3  # first organ drug state
I_MACROPHAGE = I_DRUG + N_ORGANS
I_SINK_RENAL = I_MACROPHAGE + len(MPS_ORGANS)
I_SINK_OTHER, I_SINK_HEPATIC, I_SINK_URINE = I_SINK_RENAL + 1, I_SINK_RENAL + 2, I_SINK_RENAL + 3
STATE_NAMES = (("enc_central", "enc_peripheral", "free_central")
               + tuple(f"drug_{o}" for o in ORGANS)
               + tuple(f"macrophage_{m}" for m in MPS_ORGANS)
               + ("sink_renal", "sink_other", "sink_hepatic", "sink_urine"))
MPS_INDEX = tuple(ORGANS.index(m) for m in MPS_ORGANS)


@dataclasses.dataclass(frozen=True)
class OrganParameters:
    """Whole-body organ model parameters (SI).  A JAX pytree (every field a leaf).

    Carrier (same names and meaning as ``pk.SystemicParameters``): plasma_volume, cl_renal,
    cl_mps, cl_other, k12, k21, k_leak_plasma.
    Free drug: plasma_volume_drug V_pl (m³, physiological plasma), volumes V_o (m³, shape (8,)),
    plasma_flows F_o (m³/s), partition K_o (1), cl_hepatic (m³/s, on the liver's venous plasma),
    cl_urine (m³/s, on plasma), fu_plasma.
    Readout and MPS: residual_plasma (plasma volume per organ volume in a homogenate, (8,)),
    mps_shares s_m ((3,), liver, spleen, marrow; Σ = 1), peripheral_shares ((8,), Σ = 1),
    macrophage_release k_mac (1/s).
    """

    plasma_volume: jax.Array
    cl_renal: jax.Array
    cl_mps: jax.Array
    cl_other: jax.Array
    k12: jax.Array
    k21: jax.Array
    k_leak_plasma: jax.Array
    plasma_volume_drug: jax.Array
    volumes: jax.Array
    plasma_flows: jax.Array
    partition: jax.Array
    cl_hepatic: jax.Array
    cl_urine: jax.Array
    fu_plasma: jax.Array
    residual_plasma: jax.Array
    mps_shares: jax.Array
    peripheral_shares: jax.Array
    macrophage_release: jax.Array

    n_state: ClassVar[int] = len(STATE_NAMES)
    n_active: ClassVar[int] = I_SINK_RENAL
    state_names: ClassVar[tuple] = STATE_NAMES

    def replace(self, **changes) -> "OrganParameters":
        """Copy with some fields changed (works inside jit)."""
        return dataclasses.replace(self, **changes)

    @property
    def v1(self):
        """Volume of the free drug's central (plasma) compartment, m³ (``pk`` naming)."""
        return self.plasma_volume_drug

    @property
    def cl_carrier(self):
        """Total carrier clearance CL_renal + CL_MPS + CL_other (m³/s)."""
        return self.cl_renal + self.cl_mps + self.cl_other

    def matrix(self) -> jax.Array:
        """The rate matrix A (1/s), (n_state, n_state); column j = rates out of state j."""
        return _rate_matrix(self)

    def free_block(self):
        """(first, last + 1, distribution volumes V_pl, V_o K_o) of the free-drug states
        (plasma and organs): A restricted to them is similar, by diag(√V), to a symmetric
        matrix (``pk.half_lives``)."""
        dtype = jnp.result_type(self.volumes, self.partition, float)
        return I_FREE_CENTRAL, I_DRUG + N_ORGANS, jnp.concatenate([
            jnp.asarray(self.plasma_volume_drug, dtype)[None],
            jnp.asarray(self.volumes, dtype) * jnp.asarray(self.partition, dtype)])

    def encapsulated_amount(self, y):
        """Drug still inside carriers or removed with them (mol): what has not been released."""
        return (y[..., I_ENC_CENTRAL] + y[..., I_ENC_PERIPHERAL]
                + jnp.sum(y[..., I_MACROPHAGE:I_SINK_RENAL], axis=-1)
                + y[..., I_SINK_RENAL] + y[..., I_SINK_OTHER])

    def carrier_fates(self, y):
        """(renal, MPS, other) cumulative carrier amounts (mol) of a carrier-tracking state
        ``y`` (no leak): MPS = taken up by macrophages, digested or not (what digestion released
        is in the tracker's free-drug states)."""
        mps = jnp.sum(y[..., I_FREE_CENTRAL:I_SINK_RENAL], axis=-1) \
            + y[..., I_SINK_HEPATIC] + y[..., I_SINK_URINE]
        return y[..., I_SINK_RENAL], mps, y[..., I_SINK_OTHER]


jax.tree_util.register_dataclass(
    OrganParameters, data_fields=[f.name for f in dataclasses.fields(OrganParameters)],
    meta_fields=[])


@jax.jit
def _rate_matrix(p: OrganParameters) -> jax.Array:
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(p), float)
    f = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    n = len(STATE_NAMES)
    a = jnp.zeros((n, n), dtype)
    vp = f(p.plasma_volume)
    k_ren, k_mps, k_oth = f(p.cl_renal) / vp, f(p.cl_mps) / vp, f(p.cl_other) / vp
    k12, k21, kl = f(p.k12), f(p.k21), f(p.k_leak_plasma)
    # carriers in plasma and outside the blood
    a = a.at[I_ENC_CENTRAL, I_ENC_CENTRAL].set(-(k_ren + k_mps + k_oth + k12 + kl))
    a = a.at[I_ENC_PERIPHERAL, I_ENC_CENTRAL].set(k12)
    a = a.at[I_FREE_CENTRAL, I_ENC_CENTRAL].set(kl)
    a = a.at[I_SINK_RENAL, I_ENC_CENTRAL].set(k_ren)
    a = a.at[I_SINK_OTHER, I_ENC_CENTRAL].set(k_oth)
    mac = jnp.arange(I_MACROPHAGE, I_SINK_RENAL)
    a = a.at[mac, I_ENC_CENTRAL].set(f(p.mps_shares) * k_mps)
    a = a.at[I_ENC_CENTRAL, I_ENC_PERIPHERAL].set(k21)
    a = a.at[I_ENC_PERIPHERAL, I_ENC_PERIPHERAL].set(-k21)
    # macrophages release their payload into their organ's free drug
    k_mac = f(p.macrophage_release)
    a = a.at[mac, mac].set(-k_mac)
    a = a.at[I_DRUG + jnp.asarray(MPS_INDEX), mac].set(k_mac)
    # free drug: plasma ⇄ flow-limited organs, elimination
    vpl = f(p.plasma_volume_drug)
    flows = f(p.plasma_flows)
    organ = jnp.arange(I_DRUG, I_DRUG + N_ORGANS)
    a = a.at[I_FREE_CENTRAL, I_FREE_CENTRAL].set(-(jnp.sum(flows) + f(p.cl_urine)) / vpl)
    a = a.at[organ, I_FREE_CENTRAL].set(flows / vpl)
    a = a.at[I_SINK_URINE, I_FREE_CENTRAL].set(f(p.cl_urine) / vpl)
    out = 1.0 / (f(p.volumes) * f(p.partition))  # venous plasma concentration per amount
    hepatic = jnp.zeros(N_ORGANS, dtype).at[ORGANS.index("liver")].set(f(p.cl_hepatic))
    a = a.at[organ, organ].set(-(flows + hepatic) * out)
    a = a.at[I_FREE_CENTRAL, organ].set(flows * out)
    return a.at[I_SINK_HEPATIC, organ].set(hepatic * out)


# --------------------------------------------------------------------------------------
# Readouts
# --------------------------------------------------------------------------------------


def concentrations(params: OrganParameters, y, y_carrier=None) -> dict:
    """Concentrations (mol/m³; per m³ of tissue, homogenate density 1 g/mL) of every tissue of
    ``TISSUES`` except the tumor, for each analyte of ``ANALYTES``: a dict
    ``{(tissue, analyte): array (...,)}`` from payload amounts ``y`` (..., n_state) and, for the
    ``carrier`` analyte, carrier-tracking amounts ``y_carrier`` (no leak; default ``y``)."""
    y = jnp.asarray(y)
    yc = y if y_carrier is None else jnp.asarray(y_carrier)
    vp, vpl = params.plasma_volume, params.plasma_volume_drug
    enc_pl, free_pl = y[..., I_ENC_CENTRAL] / vp, y[..., I_FREE_CENTRAL] / vpl
    car_pl = yc[..., I_ENC_CENTRAL] / vp
    out = {("plasma", "drug"): enc_pl + free_pl, ("plasma", "free_drug"): free_pl,
           ("plasma", "encapsulated_drug"): enc_pl, ("plasma", "carrier"): car_pl}

    def carried(z, i):  # carrier payload outside the blood in organ i (mol)
        amount = params.peripheral_shares[i] * z[..., I_ENC_PERIPHERAL]
        if i in MPS_INDEX:
            amount = amount + z[..., I_MACROPHAGE + MPS_INDEX.index(i)]
        return amount

    for i, organ in enumerate(ORGANS[:-1]):
        v, trapped = params.volumes[i], params.residual_plasma[i]
        free = y[..., I_DRUG + i] / v + trapped * free_pl
        enc = carried(y, i) / v + trapped * enc_pl
        out[(organ, "drug")] = free + enc
        out[(organ, "free_drug")] = free
        out[(organ, "encapsulated_drug")] = enc
        out[(organ, "carrier")] = carried(yc, i) / v + trapped * car_pl
    return out


# --------------------------------------------------------------------------------------
# Physiology and parameter sets
# --------------------------------------------------------------------------------------

#: Organ volumes (fraction of body mass, density 1 g/mL) and blood flows (fraction of cardiac
#: output) of ``ORGANS`` without ``rest`` (the remainder: body mass − blood − listed organs; its
#: flow: cardiac output − listed flows).  Sources: docs/organs.md, table "Physiology".
PHYSIOLOGY = {
    "mouse": dict(
        volume=dict(liver=0.055, spleen=0.005, kidney=0.017, heart=0.005, skin=0.165,
                    marrow=0.016, muscle=0.384),
        flow=dict(liver=0.161, spleen=0.011, kidney=0.091, heart=0.066, skin=0.058,
                  marrow=0.031, muscle=0.16),
        blood=0.049,
    ),
    "human": dict(
        volume=dict(liver=0.0257, spleen=0.0026, kidney=0.0044, heart=0.0047, skin=0.0371,
                    marrow=0.016, muscle=0.400),
        flow=dict(liver=0.255, spleen=0.03, kidney=0.175, heart=0.040, skin=0.058,
                  marrow=0.031, muscle=0.17),
        blood=0.079,
    ),
}

HUMAN_REFERENCE_MASS_KG = 70.0  # at the reference body-surface area of 1.8 m²
HUMAN_REFERENCE_BSA_M2 = 1.8


def cardiac_output(species: str, body_mass_kg):
    """Cardiac output (m³/s): mouse 0.275·BW^0.75 L/min (Brown et al. 1997), human
    187·BW^0.81 mL/min (White 1968), BW in kg."""
    if species == "mouse":
        return 0.275 * body_mass_kg ** 0.75 * units.LITRE / units.MIN
    return 187.0 * body_mass_kg ** 0.81 * units.ML / units.MIN


def physiology(species: str, body_mass_kg, haematocrit):
    """(plasma volume m³, organ volumes (8,) m³, organ blood flows (8,) m³/s) of ``ORGANS``."""
    table = PHYSIOLOGY[species]
    vol = np.asarray([table["volume"][o] for o in ORGANS[:-1]], float)
    flo = np.asarray([table["flow"][o] for o in ORGANS[:-1]], float)
    rest_volume = 1.0 - table["blood"] - vol.sum()
    rest_flow = 1.0 - flo.sum()
    if rest_volume <= 0 or rest_flow <= 0:
        raise ValueError(f"physiology of {species}: the listed organs exceed the body "
                         f"(rest volume {rest_volume:.3f}, rest flow {rest_flow:.3f})")
    mass_m3 = body_mass_kg * 1e-3  # 1 kg = 1e-3 m³ at 1 g/mL
    volumes = jnp.asarray(np.append(vol, rest_volume)) * mass_m3
    flows = jnp.asarray(np.append(flo, rest_flow)) * cardiac_output(species, body_mass_kg)
    plasma = table["blood"] * mass_m3 * (1.0 - haematocrit)
    return plasma, volumes, flows


def body_mass(species: str, s: dict):
    """Body mass (kg): the mouse's, or for a human 70 kg × BSA/1.8 m² (the compartmental sets
    scale with BSA in the same way)."""
    if species == "mouse":
        return s["patient.body_mass_kg"]
    return HUMAN_REFERENCE_MASS_KG * s["patient.body_surface_area_m2"] / HUMAN_REFERENCE_BSA_M2


def hepatic_clearance(target, liver_plasma_flow):
    """Clearance on the liver's venous plasma (m³/s) that makes the observed hepatic plasma
    clearance equal ``target``: the well-stirred liver clears F·CL/(F + CL) of plasma, so
    CL = F·target/(F − target); ``target`` must stay below the liver's plasma flow F."""
    return liver_plasma_flow * target / (liver_plasma_flow - target)


def organ_parameters(base: pk.SystemicParameters, species: str, s: dict) -> OrganParameters:
    """The organ model of a scenario: carriers as in the compartmental set ``base`` (already
    scaled by the size and surface laws), free drug in flow-limited organs with the species'
    physiology, the scenario's partition coefficients and elimination, MPS uptake split among
    liver, spleen and marrow, where macrophages release the payload into the organ."""
    mass = body_mass(species, s)
    v_pl, volumes, flows = physiology(species, mass, s["patient.haematocrit"])
    plasma_flows = flows * s["drug.blood_to_plasma_ratio"]
    partition = jnp.stack([s[f"organs.partition_{o}"] for o in ORGANS])
    urine = s["drug.urinary_excretion_fraction"] * base.cl
    liver_flow = plasma_flows[ORGANS.index("liver")]
    cl_liver = hepatic_clearance((1.0 - s["drug.urinary_excretion_fraction"]) * base.cl,
                                 liver_flow)
    weights = jnp.stack([s[f"organs.mps_share_{m}"] for m in MPS_ORGANS])
    non_mps = jnp.asarray([0.0 if o in MPS_ORGANS else 1.0 for o in ORGANS])
    peripheral = volumes * non_mps / jnp.sum(volumes * non_mps)
    trapped = jnp.full((N_ORGANS,), s["organs.residual_plasma_fraction"])
    return OrganParameters(
        plasma_volume=base.plasma_volume, cl_renal=base.cl_renal, cl_mps=base.cl_mps,
        cl_other=base.cl_other, k12=base.k12, k21=base.k21, k_leak_plasma=base.k_leak_plasma,
        plasma_volume_drug=v_pl, volumes=volumes, plasma_flows=plasma_flows,
        partition=partition, cl_hepatic=cl_liver, cl_urine=urine, fu_plasma=base.fu_plasma,
        residual_plasma=trapped, mps_shares=weights / jnp.sum(weights),
        peripheral_shares=peripheral,
        macrophage_release=s["formulation.macrophage_release_rate_per_h"] / units.HOUR)


# --------------------------------------------------------------------------------------
# Organ exposure (the objective's toxicity terms)
# --------------------------------------------------------------------------------------

#: organ exposures of ``exposure_auc``: name → (organ, what); "free": free drug in the organ,
#: "payload": drug still inside carriers that left the blood into the organ (the carrier-borne
#: exposure that makes hand-foot syndrome a toxicity of long-circulating liposomes)
EXPOSURES = {"heart_free": ("heart", "free"), "skin_payload": ("skin", "payload"),
             "marrow_free": ("marrow", "free"), "plasma_encapsulated": ("plasma", "payload")}


def _readout_rows(params: OrganParameters, dtype):
    """Rows (len(EXPOSURES), n_state) mapping amounts to the exposed concentrations (mol/m³)."""
    rows = []
    for organ, what in EXPOSURES.values():
        if organ == "plasma":
            rows.append(jnp.zeros((len(STATE_NAMES),), dtype).at[I_ENC_CENTRAL].set(
                1.0 / params.plasma_volume))
            continue
        i = ORGANS.index(organ)
        r = jnp.zeros((len(STATE_NAMES),), dtype)
        if what == "free":
            r = r.at[I_DRUG + i].set(1.0)
        else:
            r = r.at[I_ENC_PERIPHERAL].set(params.peripheral_shares[i])
            if i in MPS_INDEX:
                r = r.at[I_MACROPHAGE + MPS_INDEX.index(i)].set(1.0)
        rows.append(r / params.volumes[i])
    return jnp.stack(rows)


@jax.jit
def exposure_auc(params: OrganParameters, dose_mol, infusion_s, fraction_encapsulated, t_end_s):
    """Exact AUCs over [0, t_end] (mol·s/m³) of the ``EXPOSURES`` concentrations, for a dose
    infused over ``infusion_s`` (0: bolus), shape (len(EXPOSURES),).

    Integrating dy_r/dt = A_r y_r + b over [0, T] for the non-sink states gives
    ∫_0^T y_r dt = A_r⁻¹ (y_r(T) − U(T)), with U(T) the amount given by T (A_r is invertible:
    every state drains to a sink); y(T) is the exact solution (``pk.simulate``).  (Integrating
    an augmented system [[A, 0], [I, 0]] instead gives the same numbers with ~1e-9 relative
    round-off from its long matrix exponential, enough to spoil finite-difference checks.)"""
    a = params.matrix()
    dtype = a.dtype
    n = params.n_active
    y_end = pk.simulate(params, jnp.stack([jnp.asarray(t_end_s, dtype)]), dose_mol, infusion_s,
                        fraction_encapsulated)[0]
    u = pk.dose_vector(dose_mol, fraction_encapsulated, dtype, a.shape[0])
    tinf = jnp.asarray(infusion_s, dtype)
    given = jnp.where(tinf > 0, jnp.clip(t_end_s / jnp.where(tinf > 0, tinf, 1.0), 0.0, 1.0), 1.0)
    w = small_solve(a[:n, :n], y_end[:n] - given * u[:n])
    return _readout_rows(params, dtype)[:, :n] @ w


def exposure_series(params: OrganParameters, times_s, dose_mol, infusion_s,
                    fraction_encapsulated):
    """The ``EXPOSURES`` concentrations (mol/m³) at ``times_s``, shape (len(times), 4)
    (``pk.trajectory``; the tumor's draw on the blood, < 1e-3 of the dose, neglected)."""
    y = pk.trajectory(params, times_s, dose_mol, infusion_s, fraction_encapsulated)
    return y @ _readout_rows(params, y.dtype).T


# --------------------------------------------------------------------------------------
# Predictions at observed points (``nanotransport fit``)
# --------------------------------------------------------------------------------------


def predict(scenario, times_s, tissue_index, analyte_index):
    """(values, dose_mol): the model's concentrations (mol/m³, per m³ of tissue at 1 g/mL;
    ``carrier`` in drug-equivalent) at observed points (``times_s``, indices into ``TISSUES``
    and ``ANALYTES``), and the dose (mol).  Organs from the exact systemic solution
    (``pk.simulate``, payload and carrier tracking); tumor rows from a run of the whole model
    (``simulate.simulate``) saved at the tumor rows' times.  Needs
    ``patient.systemic_model = "organs"``; differentiable in ``scenario.params``."""
    from . import simulate as sim  # the organ model sits below the simulation

    params, dose = sim.systemic_parameters(scenario)
    if not isinstance(params, OrganParameters):
        raise ValueError("patient.systemic_model = 'compartments' has no organs; set "
                         "patient.systemic_model = 'organs' to predict organ concentrations")
    s = scenario.params
    times = jnp.asarray(times_s)
    tissue = np.asarray(tissue_index)
    analyte = np.asarray(analyte_index)
    infusion = s["dose.infusion_duration_min"] * units.MIN
    fe = s["formulation.encapsulated_fraction"]
    y = pk.simulate(params, times, dose, infusion, fe)
    yc = pk.simulate(params.replace(k_leak_plasma=0.0), times, dose * fe, infusion, 1.0)
    conc = concentrations(params, y, yc)
    table = jnp.stack([jnp.stack([conc[(t, a)] if t != "tumor" else jnp.zeros_like(times)
                                  for a in ANALYTES], axis=-1) for t in TISSUES], axis=-2)
    n = np.arange(len(tissue))
    values = table[n, tissue, analyte]
    is_tumor = tissue == TISSUES.index("tumor")
    if is_tumor.any():
        values = values.at[np.flatnonzero(is_tumor)].set(
            _tumor(scenario, np.asarray(times_s)[is_tumor], analyte[is_tumor]))
    return values, dose


def _tumor(scenario, times_s, analyte):
    """Tumor-average concentrations (mol/m³ of tumor) of ``analyte`` indices at ``times_s``."""
    from . import simulate as sim, transport as tr

    hours = sorted({float(t) / units.HOUR for t in times_s})
    run = scenario.replace(**{"numerics.save_times_h": hours,
                              "numerics.t_end_h": max(hours[-1],
                                                      float(scenario["numerics.t_end_h"]))})
    result = sim.simulate(run)
    lay, names, maps = result.layout, result.species, result.inputs.kinetics.maps
    w = jnp.asarray(lay.tumor) * jnp.asarray(lay.grid.volume)
    mean = lambda q: jax.vmap(lambda x: jnp.sum(w * q(maps, x, names)) / jnp.sum(w))(  # noqa
        result.fields)
    drug, enc = mean(tr.drug_per_tissue_volume), mean(tr.encapsulated_per_tissue_volume)
    per_analyte = jnp.stack([drug, drug - enc, enc, mean(tr.carriers_per_tissue_volume)], -1)
    saved = sim.save_times_h(run) * units.HOUR  # static: the run's saved times (s)
    rows = [int(np.argmin(np.abs(saved - float(t)))) for t in times_s]
    return per_analyte[np.asarray(rows), np.asarray(analyte)]
