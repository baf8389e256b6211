"""Systemic pharmacokinetics: a linear compartment model in JAX (docs/model.md §3, §6).

SI inside: amounts in mol, volumes in m³, clearances in m³/s, rates in 1/s, time in s,
concentrations in mol/m³.  User-facing parameter-set functions take ``body_surface_area_m2``
(human) or ``body_mass_kg`` (mouse) and return SI values for the whole body.

Model
-----
The systemic state is a small vector ``y`` of amounts (mol of doxorubicin, counted as drug
whether it is inside a carrier or free), obeying

    dy/dt = A y + b(t)

with ``A = rate_matrix(params)`` constant for a given formulation (and differentiable in its
parameters) and ``b`` a piecewise-constant infusion input (mol/s).  Because the model is
linear and ``A`` is constant, one step of length ``dt`` with constant ``b`` has the exact
solution ``step_exact`` (matrix exponential of the augmented matrix ``[[A, b], [0, 0]]``), so
the tissue solver can advance the systemic state together with the tumour without any
time-step restriction from the systemic kinetics.

State order (``STATE_NAMES``; indices ``I_*``):

====  ===================  ==============================================================
 idx  name                 meaning
====  ===================  ==============================================================
  0   ``enc_central``      drug encapsulated in carriers circulating in plasma (volume V_p)
  1   ``enc_peripheral``   drug in carriers in a peripheral carrier compartment (k12, k21;
                           may have zero exchange)
  2   ``free_central``     free (non-encapsulated) drug, central compartment V1
                           (total = protein-bound + unbound)
  3   ``free_shallow``     free drug, shallow (fast-equilibrating) tissue compartment V2
  4   ``free_deep``        free drug, deep (slowly equilibrating) tissue compartment V3
  5   ``sink_renal``       cumulative carrier payload cleared by the kidney
  6   ``sink_mps``         cumulative carrier payload cleared by the MPS (liver/spleen)
  7   ``sink_other``       cumulative carrier payload cleared by other routes
  8   ``sink_free``        cumulative free drug eliminated (metabolism + biliary + renal)
====  ===================  ==============================================================

Rate equations (V_p = plasma_volume, CL_c = CL_renal + CL_MPS + CL_other):

    d enc_central/dt    = −(CL_c/V_p + k12 + k_leak) enc_central + k21 enc_peripheral + b_enc
    d enc_peripheral/dt = k12 enc_central − k21 enc_peripheral
    d free_central/dt   = k_leak enc_central − (CL + Q2 + Q3)/V1 free_central
                          + Q2/V2 free_shallow + Q3/V3 free_deep + b_free
    d free_shallow/dt   = Q2/V1 free_central − Q2/V2 free_shallow
    d free_deep/dt      = Q3/V1 free_central − Q3/V3 free_deep
    d sink_renal/dt     = CL_renal/V_p enc_central      (likewise MPS, other)
    d sink_free/dt      = CL/V1 free_central

Every column of ``A`` sums to zero, so the total amount (all compartments + sinks) equals
the dose given so far, exactly (to round-off).

Modelling choices (state them, docs/model.md asks for it):

* Carrier leakage of payload (``k_leak_plasma``, the ``k_rel(T_body)`` of docs/model.md §6) acts
  in the circulating compartment only; carriers in the peripheral carrier compartment do not
  release (they return to plasma or are eventually cleared from it).
* Carrier clearance removes the carrier *with its payload* into the sinks (drug released
  later inside macrophages is not returned to the free-drug pool).
* Free-drug clearances and volumes refer to the **total** (bound + unbound) plasma
  concentration, as in the label.  The unbound fraction ``fu_plasma`` (0.25: 75 % protein
  binding, doxorubicin US label) is carried for the tissue solver: **only unbound drug crosses
  membranes** (vessel wall, cell membrane), so transvascular exchange of free drug must use
  ``fu_plasma * free_total``.
* Encapsulated concentration in plasma is ``enc_central / V_p``; free total is
  ``free_central / V1``.

Metrics (formulas)
------------------
Let ``A_r`` be the 5×5 block of ``A`` for the non-sink states, ``u`` the total input into
them (dose split by ``fraction_encapsulated``), ``c`` the row vector mapping amounts to a
plasma concentration (e.g. total: ``c = [1/V_p, 0, 1/V1, 0, 0]``).  For a stable linear
system, whatever the infusion schedule,

    AUC_∞   = ∫_0^∞ c y_r dt = −c A_r⁻¹ u
    AUMC_∞  = ∫_0^∞ t c y_r dt = c A_r⁻² u                (bolus; infusion adds T/2 to MRT)
    CL      = dose / AUC_∞                                 (non-compartmental, total drug)
    MRT     = AUMC_∞ / AUC_∞                               (bolus)
    V_ss    = CL · MRT = dose · AUMC_∞ / AUC_∞²

For free doxorubicin (elimination from the central compartment of a mammillary model) this
gives exactly CL = CL_free and V_ss = V1 + V2 + V3; for a pure carrier (no leak)
CL = CL_c and V_ss = V_p (1 + k12/k21).  Half-lives are ln 2 / λ for the eigenvalues −λ of
the carrier 2×2 block (closed form) and of the free-drug 3×3 block (symmetrised with
diag(√V) and solved with ``eigvalsh``), sorted fast → slow.

Parameter sets and calibration: see ``human_free_doxorubicin``,
``human_pegylated_liposome`` (calibrated to the Doxil label), ``mouse_free_doxorubicin``,
``mouse_pegylated_liposome``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from ..engine import units
from ..engine import linalg

# --------------------------------------------------------------------------------------
# State layout
# --------------------------------------------------------------------------------------

STATE_NAMES = (
    "enc_central",
    "enc_peripheral",
    "free_central",
    "free_shallow",
    "free_deep",
    "sink_renal",
    "sink_mps",
    "sink_other",
    "sink_free",
)
N_STATE = len(STATE_NAMES)
N_ACTIVE = 5  # non-sink states come first
I_ENC_CENTRAL, I_ENC_PERIPHERAL, I_FREE_CENTRAL, I_FREE_SHALLOW, I_FREE_DEEP = range(5)
I_SINK_RENAL, I_SINK_MPS, I_SINK_OTHER, I_SINK_FREE = range(5, 9)

LN2 = math.log(2.0)

# Plasma protein binding of doxorubicin: 74-76 %, "about 75 %" (doxorubicin US label §12.3).
DOXORUBICIN_UNBOUND_FRACTION = 0.25


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SystemicParameters:
    """Systemic PK parameters (SI, whole body).  A JAX pytree: every field is a float leaf.

    Carrier (encapsulated drug):
        plasma_volume   V_p, central volume of the carrier (m³)
        cl_renal        renal carrier clearance (m³/s); size laws live elsewhere
        cl_mps          mononuclear-phagocyte-system (liver/spleen) carrier clearance (m³/s)
        cl_other        other carrier clearance (m³/s)
        k12, k21        carrier exchange with a peripheral carrier compartment (1/s); 0 = none
        k_leak_plasma   payload leakage from circulating carriers to free drug (1/s)
    Free drug (3-compartment mammillary model; referred to total plasma concentration):
        v1, cl          central volume (m³), elimination clearance (m³/s)
        q2, v2          shallow compartment: inter-compartmental clearance (m³/s), volume (m³)
        q3, v3          deep compartment: inter-compartmental clearance (m³/s), volume (m³)
        fu_plasma       unbound fraction in plasma (only unbound drug crosses membranes)
    """

    plasma_volume: float
    cl_renal: float
    cl_mps: float
    cl_other: float
    k12: float
    k21: float
    k_leak_plasma: float
    v1: float
    cl: float
    q2: float
    v2: float
    q3: float
    v3: float
    fu_plasma: float = DOXORUBICIN_UNBOUND_FRACTION

    #: the solvers below take this class or ``organs.OrganParameters``: both put the carriers
    #: in plasma at index 0, those outside the blood at 1 and free drug in plasma at 2, their
    #: sinks last (``n_active`` states before them), and answer ``matrix()``
    n_state: ClassVar[int] = N_STATE
    n_active: ClassVar[int] = N_ACTIVE
    state_names: ClassVar[tuple] = STATE_NAMES

    def matrix(self) -> jnp.ndarray:
        """The rate matrix A (1/s) (``rate_matrix``)."""
        return _compartment_matrix(self)

    def free_block(self):
        """(first, last + 1, distribution volumes) of the free-drug states: A restricted to
        them is similar, by diag(√V), to a symmetric matrix."""
        return I_FREE_CENTRAL, I_FREE_DEEP + 1, jnp.stack(
            [jnp.asarray(v, _dtype(self)) for v in (self.v1, self.v2, self.v3)])

    def encapsulated_amount(self, y):
        """Drug still inside carriers or removed with them (mol): what has not been released."""
        return (y[..., I_ENC_CENTRAL] + y[..., I_ENC_PERIPHERAL] + y[..., I_SINK_RENAL]
                + y[..., I_SINK_MPS] + y[..., I_SINK_OTHER])

    def carrier_fates(self, y):
        """(renal, MPS, other) cumulative carrier amounts (mol) of a carrier-tracking state."""
        return y[..., I_SINK_RENAL], y[..., I_SINK_MPS], y[..., I_SINK_OTHER]

    def replace(self, **changes) -> "SystemicParameters":
        """Copy with some fields changed (works inside jit: values may be tracers)."""
        return dataclasses.replace(self, **changes)

    @property
    def cl_carrier(self):
        """Total carrier clearance CL_renal + CL_MPS + CL_other (m³/s)."""
        return self.cl_renal + self.cl_mps + self.cl_other


jax.tree_util.register_dataclass(
    SystemicParameters,
    data_fields=[f.name for f in dataclasses.fields(SystemicParameters)],
    meta_fields=[],
)


# --------------------------------------------------------------------------------------
# Rate matrix, input, exact step
# --------------------------------------------------------------------------------------


def _dtype(params: SystemicParameters):
    """Floating dtype of the parameters (float64 under x64 for Python floats)."""
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def rate_matrix(params) -> jnp.ndarray:
    """The constant rate matrix A (1/s) of ``params`` (compartmental: (9, 9); organ model:
    ``organs.STATE_NAMES``), for dy/dt = A y + b."""
    return params.matrix()


@jax.jit
def _compartment_matrix(params: SystemicParameters) -> jnp.ndarray:
    """The compartmental rate matrix A (1/s), shape (9, 9), for dy/dt = A y + b.

    Column j holds the rates out of state j; every column sums to zero (mass conservation).
    """
    p = params
    dt_ = _dtype(p)
    f = lambda x: jnp.asarray(x, dt_)  # noqa: E731
    vp, v1, v2, v3 = f(p.plasma_volume), f(p.v1), f(p.v2), f(p.v3)
    k_ren, k_mps, k_oth = f(p.cl_renal) / vp, f(p.cl_mps) / vp, f(p.cl_other) / vp
    k12, k21, kl = f(p.k12), f(p.k21), f(p.k_leak_plasma)
    cl, q2, q3 = f(p.cl), f(p.q2), f(p.q3)
    z = jnp.zeros((), dt_)
    #        enc_c                           enc_p  free_c               shallow   deep    sinks
    rows = [
        [-(k_ren + k_mps + k_oth + k12 + kl), k21, z, z, z, z, z, z, z],
        [k12, -k21, z, z, z, z, z, z, z],
        [kl, z, -(cl + q2 + q3) / v1, q2 / v2, q3 / v3, z, z, z, z],
        [z, z, q2 / v1, -q2 / v2, z, z, z, z, z],
        [z, z, q3 / v1, z, -q3 / v3, z, z, z, z],
        [k_ren, z, z, z, z, z, z, z, z],
        [k_mps, z, z, z, z, z, z, z, z],
        [k_oth, z, z, z, z, z, z, z, z],
        [z, z, cl / v1, z, z, z, z, z, z],
    ]
    return jnp.stack([jnp.stack(r) for r in rows])


def dose_vector(dose_mol, fraction_encapsulated, dtype=None, n_state=N_STATE) -> jnp.ndarray:
    """Amounts (mol) put into the state by a bolus: ``fraction_encapsulated`` of the dose as
    encapsulated drug in plasma, the rest as free drug in the central compartment."""
    dose = jnp.asarray(dose_mol, dtype)
    fe = jnp.asarray(fraction_encapsulated, dose.dtype)
    u = jnp.zeros((n_state,), dose.dtype)
    u = u.at[I_ENC_CENTRAL].set(fe * dose)
    return u.at[I_FREE_CENTRAL].set((1.0 - fe) * dose)


def infusion_input(params: SystemicParameters, dose_mol, infusion_duration_s,
                   fraction_encapsulated) -> jnp.ndarray:
    """Constant input vector b (mol/s), shape (9,), of a zero-order infusion of ``dose_mol``
    over ``infusion_duration_s`` (> 0): ``fraction_encapsulated`` enters as encapsulated drug
    in plasma, the rest as free drug in the central compartment.  Zero outside the infusion.
    """
    return dose_vector(dose_mol, fraction_encapsulated, _dtype(params),
                       params.n_state) / infusion_duration_s


def _augmented(a, b):
    """[[A, b], [0, 0]], shape (10, 10)."""
    n = a.shape[0]
    m = jnp.zeros((n + 1, n + 1), a.dtype)
    return m.at[:n, :n].set(a).at[:n, n].set(b)


def propagator(params: SystemicParameters, dt, input_rate=None):
    """(Φ, γ) with y(t + dt) = Φ y(t) + γ exactly, for constant input ``input_rate`` (mol/s).

    Φ = exp(A dt), γ = ∫_0^dt exp(A s) ds · b, both read off exp(M dt) with the augmented
    matrix M = [[A, b], [0, 0]].  Compute once per (formulation, dt) and reuse when stepping.
    Round-off: ≈ 2^s·ε relative, s = max(0, ⌈log2(‖M dt‖₁/5.37)⌉) squarings (1e-13 for
    steps of hours with the human sets).
    """
    dtype = _dtype(params)
    b = jnp.zeros((params.n_state,), dtype) if input_rate is None else jnp.asarray(input_rate, dtype)
    return _propagator(params, jnp.asarray(dt, dtype), b)


@jax.jit
def _propagator(params, dt, b):
    a = rate_matrix(params)
    e = linalg.expm_small(_augmented(a, b.astype(a.dtype)) * dt.astype(a.dtype))
    n = a.shape[0]
    return e[:n, :n], e[:n, n]


def step_exact(params: SystemicParameters, y, dt, input_rate=None) -> jnp.ndarray:
    """Exact solution y(t + dt) of dy/dt = A y + b for constant b = ``input_rate`` (mol/s).

    Uses the matrix exponential (``engine.linalg.expm_small``) of the augmented matrix [[A, b], [0, 0]] (differentiable
    in the parameters, y, dt and b).
    """
    phi, gamma = propagator(params, dt, input_rate)
    return phi @ jnp.asarray(y, phi.dtype) + gamma


# --------------------------------------------------------------------------------------
# Simulation and plasma concentrations
# --------------------------------------------------------------------------------------


def _fraction(encapsulated):
    if isinstance(encapsulated, bool):
        return 1.0 if encapsulated else 0.0
    return encapsulated


def simulate(params: SystemicParameters, times, dose_mol, infusion_duration_s,
             encapsulated=True) -> jnp.ndarray:
    """Amounts (mol) at ``times`` (s, ≥ 0, measured from the start of the infusion), shape
    (len(times), 9), for one dose given as a zero-order infusion of ``infusion_duration_s``
    (0 = bolus at t = 0).

    ``encapsulated``: True = carrier formulation (all drug encapsulated at t = 0), False = free
    drug; a float in [0, 1] is taken as the encapsulated fraction.

    Each time is computed directly (no accumulation of steps), with the infusion stop as an
    exact breakpoint:  y(t) = exp(A·max(t − T, 0)) · y_inf(min(t, T)),  where y_inf is the exact
    solution under constant infusion.  Differentiable in params, dose, T and times.
    """
    t = jnp.atleast_1d(jnp.asarray(times))
    n = t.shape[0]
    nb = max(8, 1 << (n - 1).bit_length())  # pad to a power of two: fewer recompilations
    t = jnp.concatenate([t, jnp.broadcast_to(t[-1:], (nb - n,))])
    return _simulate(params, t, dose_mol, infusion_duration_s, _fraction(encapsulated))[:n]


@jax.jit
def _simulate(params, times, dose_mol, infusion_duration_s, fraction_encapsulated):
    a = rate_matrix(params)
    dtype = a.dtype
    t = jnp.maximum(jnp.asarray(times, dtype), 0.0)
    tinf = jnp.asarray(infusion_duration_s, dtype)
    is_inf = tinf > 0
    tinf_safe = jnp.where(is_inf, tinf, 1.0)
    u = dose_vector(dose_mol, fraction_encapsulated, dtype, a.shape[0])
    rate = jnp.where(is_inf, u / tinf_safe, 0.0)
    y_bolus = jnp.where(is_inf, 0.0, u)
    m_inf = _augmented(a, rate)
    m_off = _augmented(a, jnp.zeros_like(rate))
    t1 = jnp.minimum(t, jnp.where(is_inf, tinf, 0.0))  # time under infusion
    t2 = t - t1  # time after the infusion stopped
    # one batched matrix exponential for both phases of every output time
    e = linalg.expm_small(jnp.concatenate([m_inf[None] * t1[:, None, None],
                                           m_off[None] * t2[:, None, None]]))
    e1, e2 = e[: t.shape[0]], e[t.shape[0]:]
    z0 = jnp.concatenate([y_bolus, jnp.ones((1,), dtype)])
    z1 = jnp.einsum("nij,j->ni", e1, z0)
    return jnp.einsum("nij,nj->ni", e2, z1)[:, :a.shape[0]]


def trajectory(params: SystemicParameters, times, dose_mol, infusion_duration_s,
               encapsulated=True) -> jnp.ndarray:
    """Amounts (mol) at non-decreasing ``times`` (s, ≥ 0), shape (len(times), 9): the same
    exact solution as ``simulate``, computed by propagating from each time to the next,

        z(t_i) = exp(M_i (t_i − t_{i−1})) z(t_{i−1}),   z = [y; 1],  M_i = [[A, b_i], [0, 0]],

    with the infusion stop T inserted as a breakpoint, so that every interval lies under the
    infusion (b = dose/T) or after it (b = 0).  Each interval's exponential has the small norm
    of its own length (few or no squarings, against up to ⌈log2(‖A‖ t_end/θ₁₃)⌉ per time in
    ``simulate``), and z is carried from interval to interval by ``jax.lax.scan`` (one
    matrix-vector product each; the log-depth ``jax.lax.associative_scan`` of the matrix
    products it replaced took 1.9 s against 1.05 s to compile for the objective's 256 times on
    the 2-core CPU, and either runs in well under a millisecond).  For a series on many times
    (the objective's plasma peak): about 3× cheaper than ``simulate`` on the same times, value
    and derivatives; round-off grows with the number of intervals (≈ n·ε relative, 1e-13 for
    256 times)."""
    t = jnp.atleast_1d(jnp.asarray(times))
    fraction = _fraction(encapsulated)
    return _trajectory(params, t, dose_mol, infusion_duration_s, fraction)


@jax.jit
def _trajectory(params, times, dose_mol, infusion_duration_s, fraction_encapsulated):
    a = rate_matrix(params)
    dtype = a.dtype
    n = times.shape[0]
    t = jnp.maximum(jnp.asarray(times, dtype), 0.0)
    tinf = jnp.asarray(infusion_duration_s, dtype)
    is_inf = tinf > 0
    u = dose_vector(dose_mol, fraction_encapsulated, dtype, a.shape[0])
    rate = jnp.where(is_inf, u / jnp.where(is_inf, tinf, 1.0), 0.0)
    z0 = jnp.concatenate([jnp.where(is_inf, 0.0, u), jnp.ones((1,), dtype)])
    # the times with T inserted at its place: t' (n + 1), position `pos` of T
    pos = jnp.sum(t < tinf)
    i = jnp.arange(n + 1)
    t_ext = jnp.where(i < pos, t[jnp.minimum(i, n - 1)],
                      jnp.where(i == pos, tinf, t[jnp.maximum(i - 1, 0)]))
    start = jnp.concatenate([jnp.zeros((1,), dtype), t_ext[:-1]])
    under = (t_ext <= tinf) & is_inf  # interval (start, t_ext] under the infusion
    m = jnp.where(under[:, None, None], _augmented(a, rate)[None],
                  _augmented(a, jnp.zeros_like(rate))[None]) * (t_ext - start)[:, None, None]
    def advance(z, e):
        z = e @ z
        return z, z

    _, z = jax.lax.scan(advance, z0, linalg.expm_small(m))  # z_i = E_i ⋯ E_0 z_0
    keep = jnp.arange(n) + (jnp.arange(n) >= pos)  # drop the inserted T
    return z[keep, :a.shape[0]]


class PlasmaConcentrations(NamedTuple):
    """Plasma concentrations (mol/m³), or their AUCs (mol·s/m³)."""

    encapsulated: jnp.ndarray  # enc_central / V_p
    free_total: jnp.ndarray  # free_central / V1 (bound + unbound)
    free_unbound: jnp.ndarray  # fu_plasma · free_total: what crosses membranes
    total: jnp.ndarray  # encapsulated + free_total (what a plasma assay of total drug sees)


def plasma_concentrations(params: SystemicParameters, y) -> PlasmaConcentrations:
    """Plasma concentrations (mol/m³) from amounts ``y`` (..., 9)."""
    y = jnp.asarray(y)
    enc = y[..., I_ENC_CENTRAL] / params.plasma_volume
    free = y[..., I_FREE_CENTRAL] / params.v1
    return PlasmaConcentrations(enc, free, params.fu_plasma * free, enc + free)


def encapsulated_fraction_in_plasma(params: SystemicParameters, y):
    """Fraction of the drug circulating in plasma that is carrier-encapsulated."""
    c = plasma_concentrations(params, y)
    return c.encapsulated / c.total


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def _active_block(params):
    """A_r, the non-sink block of A.  A compartment switched off (no exchange at all: e.g. no
    peripheral carrier compartment, k12 = k21 = 0, or Q2 = 0) is decoupled, never fed and has a
    zero eigenvalue; its diagonal is set to −1 (any non-zero value) so that A_r is invertible
    without changing any result.  (A compartment that is fed but never emptied stays singular:
    its AUC is infinite.)"""
    a = rate_matrix(params)[:params.n_active, :params.n_active]
    diag = jnp.diagonal(a)
    absent = (diag == 0) & (jnp.sum(jnp.abs(a), axis=1) == 0)
    return a - jnp.diag(jnp.where(absent, 1.0, 0.0).astype(a.dtype))


@jax.jit
def _unit_moments(params, fraction_encapsulated):
    """(−A_r⁻¹ u, A_r⁻² u) for a unit dose u split by ``fraction_encapsulated``."""
    ar = _active_block(params)
    u = dose_vector(1.0, fraction_encapsulated, ar.dtype, params.n_state)[:params.n_active]
    w0 = -linalg.small_solve(ar, u)
    return w0, -linalg.small_solve(ar, w0)


def _plasma_rows(params, dtype):
    """Rows c (4, n_active) mapping active amounts to PlasmaConcentrations fields."""
    vp, v1, fu = params.plasma_volume, params.v1, params.fu_plasma
    z = jnp.zeros((params.n_active,), dtype)
    enc = z.at[I_ENC_CENTRAL].set(1.0 / jnp.asarray(vp, dtype))
    free = z.at[I_FREE_CENTRAL].set(1.0 / jnp.asarray(v1, dtype))
    return enc, free, fu * free, enc + free


def amount_auc(params: SystemicParameters, dose_mol, encapsulated=True) -> jnp.ndarray:
    """∫_0^∞ y_r dt (mol·s) for the 5 non-sink states: −A_r⁻¹ u (any infusion schedule)."""
    return dose_mol * _unit_moments(params, _fraction(encapsulated))[0]


def auc(params: SystemicParameters, dose_mol, encapsulated=True) -> PlasmaConcentrations:
    """AUC over [0, ∞) of each plasma concentration (mol·s/m³), analytically: −c A_r⁻¹ u.

    Independent of the infusion duration (linear model).
    """
    w = amount_auc(params, dose_mol, encapsulated)
    return PlasmaConcentrations(*(r @ w for r in _plasma_rows(params, w.dtype)))


def aumc(params: SystemicParameters, dose_mol, encapsulated=True) -> PlasmaConcentrations:
    """∫_0^∞ t C(t) dt for a bolus (mol·s²/m³): c A_r⁻² u.  (A zero-order infusion of length T
    adds T/2 to the mean residence time.)"""
    w = dose_mol * _unit_moments(params, _fraction(encapsulated))[1]
    return PlasmaConcentrations(*(r @ w for r in _plasma_rows(params, w.dtype)))


def clearance(params: SystemicParameters, encapsulated=True):
    """Non-compartmental total-drug plasma clearance CL = dose / AUC_∞(total) (m³/s).

    Free formulation: equals ``params.cl`` exactly.  Carrier formulation: ≈ CL_c + k_leak·V_p
    (leaked drug leaves the carrier's small volume into the very large free-drug volume),
    slightly less because leaked free drug also contributes to the total AUC.
    """
    return 1.0 / auc(params, 1.0, encapsulated).total


def mean_residence_time(params: SystemicParameters, encapsulated=True, infusion_duration_s=0.0):
    """MRT of total drug in plasma: AUMC/AUC (bolus) + T/2 (zero-order infusion of length T)."""
    return aumc(params, 1.0, encapsulated).total / auc(params, 1.0, encapsulated).total \
        + 0.5 * infusion_duration_s


def steady_state_volume(params: SystemicParameters, encapsulated=True):
    """Non-compartmental V_ss = CL · MRT = dose · AUMC / AUC² (m³), on total plasma drug.

    Free formulation: exactly V1 + V2 + V3.  Carrier without leak: V_p (1 + k12/k21).
    """
    return clearance(params, encapsulated) * mean_residence_time(params, encapsulated)


def carrier_clearance_total(params: SystemicParameters):
    """CL_renal + CL_MPS + CL_other (m³/s): clearance of the carrier particles themselves."""
    return params.cl_renal + params.cl_mps + params.cl_other


def elimination_fractions(params: SystemicParameters, encapsulated=True) -> jnp.ndarray:
    """Fraction of the dose ending in each sink as t → ∞ (compartmental: renal, MPS, other,
    free drug; organ model: ``organs.STATE_NAMES``' sinks).

    Sinks at ∞ = K (−A_r⁻¹ u), K the sink rows of A.  They sum to 1.
    """
    k = rate_matrix(params)[params.n_active:, :params.n_active]
    return k @ amount_auc(params, 1.0, encapsulated)


class HalfLives(NamedTuple):
    """Eigenvalue half-lives (s), sorted fast → slow."""

    carrier: jnp.ndarray  # (2,): distribution, elimination of encapsulated drug
    free: jnp.ndarray  # (3,): α, β, γ of free drug (organ model: one per free-drug state)


@jax.jit
def half_lives(params: SystemicParameters) -> HalfLives:
    """Half-lives ln 2/λ from the eigenvalues of the carrier 2×2 and free-drug blocks of A
    (3×3 compartmental, plasma and the organs in the organ model).

    Carrier block [[−(k10 + k12 + k_leak), k21], [k12, −k21]]: λ = (s ± √(s² − 4 d))/2 with
    s = k10 + k12 + k_leak + k21, d = (k10 + k_leak) k21 (the textbook α/β), written as
    √((a11 − a22)² + 4 a12 a21) for accuracy; slow λ = d / fast λ.
    Without a peripheral carrier compartment (k12 = k21 = 0) the second carrier half-life is
    ``inf`` (the decoupled, empty compartment's zero eigenvalue).
    Free block: similar (via D = diag(√V)) to the symmetric matrix D⁻¹ A D, whose eigenvalues
    ``eigvalsh`` gives stably and differentiably.
    """
    a = rate_matrix(params)
    a11, a12, a21, a22 = a[0, 0], a[0, 1], a[1, 0], a[1, 1]
    s = -(a11 + a22)
    d = a11 * a22 - a12 * a21
    lam_fast = 0.5 * (s + jnp.sqrt((a11 - a22) ** 2 + 4.0 * a12 * a21))
    lam_slow = d / lam_fast
    carrier = LN2 / jnp.stack([lam_fast, lam_slow])

    first, end, volumes = params.free_block()
    sq = jnp.sqrt(volumes.astype(a.dtype))
    af = a[first:end, first:end]
    sym = af * sq[None, :] / sq[:, None]
    sym = 0.5 * (sym + sym.T)
    lam = -jnp.linalg.eigvalsh(sym)  # ascending eigenvalues → descending rates
    free = LN2 / lam  # fast → slow
    return HalfLives(carrier, free)


# --------------------------------------------------------------------------------------
# Parameter sets
# --------------------------------------------------------------------------------------

_L = units.LITRE
_L_PER_H = units.LITRE / units.HOUR
_PER_H = 1.0 / units.HOUR

# Free doxorubicin, per m² of body-surface area (fit described in human_free_doxorubicin).
_DOX_V1_L = 17.89  # L/m²
_DOX_CL_L_H = 30.72  # L/h/m² (512 mL/min/m²)
_DOX_Q2_L_H = 36.00  # shallow, L/h/m²
_DOX_V2_L = 59.79  # shallow, L/m²
_DOX_Q3_L_H = 78.45  # deep, L/h/m²
_DOX_V3_L = 913.3  # deep, L/m²


def human_free_doxorubicin(body_surface_area_m2: float = 1.8) -> SystemicParameters:
    """Free (conventional) doxorubicin, adult human, volumes/clearances ∝ BSA.

    Fitted to the doxorubicin US label §12.3 (multiphasic disposition; dose-independent over
    30-70 mg/m²; distribution half-life ≈ 5 min; terminal half-life 20-48 h; clearance
    324-809 mL/min/m²; V_ss 809-1214 L/m²; plasma protein binding ≈ 75 %).

    How the numbers were obtained: V1 fixed at 17.9 L/m² (= 32.2 L per 1.8 m², the central
    volume of Kunarajah et al. 2017, Cancer Chemother Pharmacol 79:1209, Table 2); the other five
    (CL, Q2, V2, Q3, V3) solved (scipy ``least_squares`` on log ratios, residual < 1e-15) so that
    t½ = 5 min, 1.5 h, 30 h, CL = √(324·809) = 512 mL/min/m² and V_ss = √(809·1214) =
    991 L/m² (geometric mid-points of the label ranges).  The intermediate half-life 1.5 h is
    the commonly quoted 1-2 h β phase (Speth et al. 1988, Clin Pharmacokinet 15:15) *(verify)*.
    Rounded to 4 digits: V1 17.89 L/m², CL 30.72 L/h/m², shallow Q2 36.00 L/h/m² and V2
    59.79 L/m², deep Q3 78.45 L/h/m² and V3 913.3 L/m².

    The carrier fields are inert placeholders (used with ``encapsulated=False``); the carrier
    leak is zero so no carrier input ever appears as free drug.
    """
    s = body_surface_area_m2
    return SystemicParameters(
        plasma_volume=2.72 * _L * s,  # placeholder (unused for free drug)
        cl_renal=0.0,
        cl_mps=0.0,
        cl_other=0.041 * _L_PER_H * s,  # placeholder (unused for free drug)
        k12=0.0,
        k21=0.0,
        k_leak_plasma=0.0,
        v1=_DOX_V1_L * _L * s,
        cl=_DOX_CL_L_H * _L_PER_H * s,
        q2=_DOX_Q2_L_H * _L_PER_H * s,
        v2=_DOX_V2_L * _L * s,
        q3=_DOX_Q3_L_H * _L_PER_H * s,
        v3=_DOX_V3_L * _L * s,
        fu_plasma=DOXORUBICIN_UNBOUND_FRACTION,
    )


# Pegylated liposomal doxorubicin (Doxil), per m² (fit described in human_pegylated_liposome).
_PLD_VP_L = 2.369  # L/m², carrier central volume
_PLD_CL_L_H = 0.03210  # L/h/m², total carrier clearance CL_renal + CL_MPS + CL_other
_PLD_K12_H = 0.01992  # 1/h, plasma → peripheral carrier compartment
_PLD_K21_H = 0.1107  # 1/h, peripheral carrier compartment → plasma
# Leakage in plasma (k_leak of docs/model.md §6 at 37 °C): modelling choice *(verify)*, 0.002/h,
# i.e. ≈ 5 % of the circulating payload per day; it makes ≈ 13 % of the dose reach the body as
# free drug while keeping > 99 % of plasma drug encapsulated (label: "at least 90 %").
_PLD_K_LEAK_H = 2.0e-3
# Split of the carrier clearance of a ~85-100 nm PEGylated liposome: renal = 0 (far above the
# ~5.5 nm renal cut-off, Choi et al. 2007, Nat Biotechnol 25:1165), the rest mostly MPS
# (liver/spleen macrophages).  The 80/20 MPS/other split is a modelling choice *(verify)*: only
# the total carrier clearance is calibrated.
_PLD_MPS_SHARE = 0.8

#: Doxil label (US prescribing information, Table 8), 30-min infusion, plasma total doxorubicin.
#: Units: CL L/h/m², V_ss L/m², AUC µg·h/mL, half-lives h, C_max µg/mL.  (The 10 mg/m² C_max,
#: 4.12 µg/mL, is from the same table but not in docs/model.md: *(verify)*.)
DOXIL_LABEL = {
    20.0: dict(cl=0.041, v_ss=2.72, auc=590.0, t_half_1=5.2, t_half_2=55.0, c_max=8.34),
    10.0: dict(cl=0.056, v_ss=2.83, auc=277.0, t_half_1=4.7, t_half_2=52.3, c_max=4.12),
}
DOXIL_INFUSION_H = 0.5


def human_pegylated_liposome(body_surface_area_m2: float = 1.8) -> SystemicParameters:
    """Pegylated liposomal doxorubicin (Doxil/Caelyx), adult human, volumes/clearances ∝ BSA.

    Carrier part calibrated to the Doxil label (Table 8: 20 mg/m², 30-min infusion; CL
    0.041 L/h/m², V_ss 2.72 L/m², AUC 590 µg·h/mL, t½ 5.2 h and 55 h, C_max 8.34 µg/mL; "at
    least 90 % of the drug in plasma is liposome-encapsulated").  Free-drug part: the free
    doxorubicin fit (``human_free_doxorubicin``) for the drug that leaks out.

    How the numbers were obtained (``fit_human_pegylated_liposome`` reproduces them): with
    k_leak = 0.002/h, renal = 0 and the free-drug parameters fixed, scipy ``least_squares`` on
    the six log ratios model/label (CL = dose/AUC_∞ and V_ss = CL·MRT of total plasma drug,
    carrier eigenvalue half-lives, C_max at the end of the infusion) over (V_p, CL_c, k12, k21),
    then rounded to 4 digits: V_p 2.369 L/m², CL_c 0.03210 L/h/m², k12 0.01992/h,
    k21 0.1107/h.  Fit quality at 20 mg/m² (model vs label): CL 0.0368 vs 0.041 (−10.2 %),
    V_ss 2.80 vs 2.72 (+2.8 %), AUC 543 vs 590 (−8.0 %), t½ 5.20 vs 5.2 h (+0.03 %), 53.7 vs
    55 h (−2.4 %), C_max 8.37 vs 8.34 µg/mL (+0.3 %).  The label's own numbers are not mutually
    consistent: dose/AUC = 20/590 = 0.0339 L/h/m² ≠ 0.041, and CL = dose/AUC holds exactly in
    any linear model, so CL and AUC share the misfit.

    Linearity: the model's CL, V_ss and half-lives do not depend on dose, whereas the label's
    10 mg/m² row differs (CL 0.056, V_ss 2.83, AUC 277, t½ 4.7 h and 52.3 h).  At 10 mg/m² the
    model gives CL 0.0368 (−34 %; but the label's own dose/AUC there is 0.0361), V_ss 2.80
    (−1.2 %), AUC 271 (−2.0 %), t½ 5.20 h (+10.7 %) and 53.7 h (+2.6 %), C_max 4.18 vs 4.12
    µg/mL (+1.6 %).  Dose-dependent
    (saturable MPS) clearance, reported clinically and in mice (Gabizon et al. 2002, J Drug
    Target 10:539), is outside this linear model.
    """
    s = body_surface_area_m2
    cl_c = _PLD_CL_L_H * _L_PER_H * s
    free = human_free_doxorubicin(body_surface_area_m2)
    return free.replace(
        plasma_volume=_PLD_VP_L * _L * s,
        cl_renal=0.0,
        cl_mps=_PLD_MPS_SHARE * cl_c,
        cl_other=(1.0 - _PLD_MPS_SHARE) * cl_c,
        k12=_PLD_K12_H * _PER_H,
        k21=_PLD_K21_H * _PER_H,
        k_leak_plasma=_PLD_K_LEAK_H * _PER_H,
    )


def liposome_label_metrics(params: SystemicParameters, dose_mg_per_m2: float,
                           body_surface_area_m2: float = 1.8,
                           infusion_duration_h: float = DOXIL_INFUSION_H) -> dict:
    """The Doxil-label quantities of the model, in label units (per m² where the label is).

    cl (L/h/m²) = dose/AUC_∞; v_ss (L/m²) = CL·MRT (bolus MRT, i.e. corrected for the
    infusion); auc (µg·h/mL) total plasma drug; t_half_1, t_half_2 (h) carrier eigenvalue
    half-lives; c_max (µg/mL) total plasma drug, maximum over a fine grid over the first 2 h
    that contains the end of the infusion (64 points).
    """
    s = body_surface_area_m2
    dose = units.mg_to_mol(dose_mg_per_m2 * s)
    tinf = infusion_duration_h * units.HOUR
    hl = half_lives(params).carrier / units.HOUR
    t = jnp.concatenate([jnp.linspace(0.0, 2.0 * units.HOUR, 63), jnp.array([tinf])])
    c = plasma_concentrations(params, simulate(params, t, dose, tinf, True)).total
    return dict(
        cl=clearance(params, True) / _L_PER_H / s,
        v_ss=steady_state_volume(params, True) / _L / s,
        auc=units.mol_per_m3_to_ug_per_ml(auc(params, dose, True).total) / units.HOUR,
        t_half_1=hl[0],
        t_half_2=hl[1],
        c_max=units.mol_per_m3_to_ug_per_ml(jnp.max(c)),
    )


def fit_human_pegylated_liposome(dose_mg_per_m2: float = 20.0) -> dict:
    """Re-run the calibration behind ``human_pegylated_liposome`` (needs float64 and scipy).

    Least squares on log(model/label) for the six label quantities of ``DOXIL_LABEL[dose]``
    over log(V_p, CL_c, k12, k21) (per m², L and 1/h), k_leak and the free-drug parameters
    fixed.  Returns the unrounded values {"vp_l", "cl_l_h", "k12_h", "k21_h"} and the residuals.
    """
    import numpy as np
    from scipy.optimize import least_squares

    base = human_pegylated_liposome(1.0)
    target = DOXIL_LABEL[dose_mg_per_m2]
    keys = ("cl", "v_ss", "auc", "t_half_1", "t_half_2", "c_max")

    def make(x):
        vp, cl_c, k12, k21 = np.exp(x)
        return base.replace(plasma_volume=vp * _L, cl_mps=_PLD_MPS_SHARE * cl_c * _L_PER_H,
                            cl_other=(1 - _PLD_MPS_SHARE) * cl_c * _L_PER_H,
                            k12=k12 * _PER_H, k21=k21 * _PER_H)

    def residuals(x):
        m = liposome_label_metrics(make(x), dose_mg_per_m2, 1.0)
        return np.log([float(m[k]) / target[k] for k in keys])

    x0 = np.log([_PLD_VP_L, _PLD_CL_L_H, _PLD_K12_H, _PLD_K21_H])
    sol = least_squares(residuals, x0, xtol=1e-10, ftol=1e-10)
    vp, cl_c, k12, k21 = np.exp(sol.x)
    return dict(vp_l=vp, cl_l_h=cl_c, k12_h=k12, k21_h=k21, log_residuals=dict(zip(keys, sol.fun)))


# Mouse ------------------------------------------------------------------------------------

_HUMAN_REF_MASS_KG = 70.0
_HUMAN_REF_BSA_M2 = 1.8
# Mouse plasma volume: blood volume ≈ 72 mL/kg (Diehl et al. 2001, J Appl Toxicol 21:15)
# × (1 − haematocrit ≈ 0.45) ≈ 40 mL/kg *(verify)*.
_MOUSE_PLASMA_ML_PER_KG = 40.0
# PEGylated liposomal doxorubicin in mice: terminal half-life ≈ 20 h *(verify)*; distribution
# volume close to the plasma volume and ~all plasma drug liposome-associated (Gabizon,
# Barenholz & Bialer 1993, Pharm Res 10:703, rodents and dogs).
_MOUSE_PLD_T_HALF_H = 20.0


def mouse_free_doxorubicin(body_mass_kg: float = 0.025) -> SystemicParameters:
    """Free doxorubicin in a mouse (default 25 g), by allometric scaling of the human fit.

    Volumes ∝ body mass, clearances ∝ (body mass)^0.75 from the human set for a 70 kg /
    1.8 m² adult; so all half-lives scale as (mass)^0.25 (≈ 7.3× shorter at 25 g: α ≈ 0.7 min,
    β ≈ 12 min, terminal ≈ 4.1 h) and CL ≈ 96 mL/min/kg.  This is *(verify)*: mouse studies
    report longer terminal plasma half-lives in some strains and doses (e.g. Gustafson et al.
    2002, J Pharm Sci 91:1488, physiologically based model for mice); replace by a fitted
    mouse set when the data are at hand.  Unbound fraction kept at 0.25 *(verify)*.
    """
    h = human_free_doxorubicin(_HUMAN_REF_BSA_M2)
    rv = body_mass_kg / _HUMAN_REF_MASS_KG
    rc = rv ** 0.75
    return h.replace(
        plasma_volume=_MOUSE_PLASMA_ML_PER_KG * units.ML * body_mass_kg,
        cl_other=h.cl_other * rc,
        v1=h.v1 * rv, cl=h.cl * rc, q2=h.q2 * rc, v2=h.v2 * rv, q3=h.q3 * rc, v3=h.v3 * rv,
    )


def mouse_pegylated_liposome(body_mass_kg: float = 0.025) -> SystemicParameters:
    """Pegylated liposomal doxorubicin (Doxil-like, ~100 nm) in a mouse (default 25 g).

    One circulating carrier compartment (no peripheral carrier compartment) of the plasma
    volume (≈ 40 mL/kg, i.e. 1.0 mL at 25 g *(verify)*), terminal half-life 20 h *(verify)*
    (Gabizon et al. 1993, Pharm Res 10:703; Gabizon et al. 2002, J Drug Target 10:539, who
    also show saturation of clearance at 2.5-20 mg/kg: this linear set is for the low-dose
    range), leak 0.002/h as in the human set *(verify)*, carrier clearance 80 % MPS / 20 %
    other, no renal.  Free drug: ``mouse_free_doxorubicin``.
    """
    free = mouse_free_doxorubicin(body_mass_kg)
    vp = _MOUSE_PLASMA_ML_PER_KG * units.ML * body_mass_kg
    k_leak = _PLD_K_LEAK_H * _PER_H
    k_el = LN2 / (_MOUSE_PLD_T_HALF_H * units.HOUR)
    cl_c = (k_el - k_leak) * vp
    return free.replace(
        plasma_volume=vp,
        cl_renal=0.0,
        cl_mps=_PLD_MPS_SHARE * cl_c,
        cl_other=(1.0 - _PLD_MPS_SHARE) * cl_c,
        k12=0.0,
        k21=0.0,
        k_leak_plasma=k_leak,
    )


# HPMA copolymer-doxorubicin (PK1) ---------------------------------------------------------

# Thomson et al. 1999, Br J Cancer 81:99 (population PK, 33 patients, abstract): bound
# (polymer-attached) doxorubicin two-compartment, CL 0.194 L/h, V1 = 4.48 (1 + 0.00074·dose mg) L,
# V2 7.94 L, inter-compartmental clearance 0.685 L/h, median half-lives 2.7 h and 49 h.  Per
# patient; scaled here by BSA/1.8 m².  V1 is the low-dose value (the dose term is outside a
# linear model; at 280 mg/m² it would be 37 % larger).
_PK1_V1_L = 4.48
_PK1_V2_L = 7.94
_PK1_Q_L_H = 0.685
_PK1_CL_L_H = 0.194
# Free doxorubicin in plasma was ~1000x below bound (Thomson et al. 1999): at quasi-steady state
# C_free/C_bound = k_leak·V1/CL_free, so k_leak = 1e-3 × 55.3 L/h / 4.48 L ≈ 0.0123/h (with the
# free-drug clearance of ``human_free_doxorubicin`` at 1.8 m²).  The bound-drug clearance
# 0.194 L/h includes this release: the carrier's own clearance is 0.194 − k_leak·V1.
PK1_LEAK_PER_H = 0.0123


def human_hpma_conjugate(body_surface_area_m2: float = 1.8) -> SystemicParameters:
    """HPMA copolymer-doxorubicin (PK1, ~30 kDa, ~10 nm), adult human.

    Carrier part: Thomson et al. 1999 (see the constants above): V_p = V1, k12 = Q/V1,
    k21 = Q/V2 (the peripheral carrier compartment is the extravascular space a ~10-nm polymer
    reaches through normal capillaries), CL_c = 0.194 L/h, all size-independent ("other") at the
    reference diameter 10 nm, of which the payload release ``PK1_LEAK_PER_H`` is a part (the
    scenario sets its leak to it, ``conjugate.toml``).  Half-lives 2.58 h and 50.0 h (paper:
    2.7 h and 49 h).  Free-drug part: the free
    doxorubicin fit."""
    r = body_surface_area_m2 / _HUMAN_REF_BSA_M2
    free = human_free_doxorubicin(body_surface_area_m2)
    return free.replace(
        plasma_volume=_PK1_V1_L * _L * r, cl_renal=0.0, cl_mps=0.0,
        cl_other=(_PK1_CL_L_H - PK1_LEAK_PER_H * _PK1_V1_L) * _L_PER_H * r,
        k12=_PK1_Q_L_H / _PK1_V1_L * _PER_H, k21=_PK1_Q_L_H / _PK1_V2_L * _PER_H,
        k_leak_plasma=0.0)


def mouse_hpma_conjugate(body_mass_kg: float = 0.025) -> SystemicParameters:
    """PK1 in a mouse by allometric scaling of the human set (volumes ∝ mass, clearances ∝
    mass^0.75 from 70 kg), like ``mouse_free_doxorubicin`` *(verify)*."""
    h = human_hpma_conjugate(_HUMAN_REF_BSA_M2)
    rv = body_mass_kg / _HUMAN_REF_MASS_KG
    rc = rv ** 0.75
    free = mouse_free_doxorubicin(body_mass_kg)
    return free.replace(plasma_volume=h.plasma_volume * rv, cl_renal=0.0, cl_mps=0.0,
                        cl_other=h.cl_other * rc, k12=h.k12 * rc / rv, k21=h.k21 * rc / rv,
                        k_leak_plasma=0.0)


#: Systemic parameter set and reference diameter (nm) of each carrier type and species:
#: ``CARRIER_SETS[carrier][species]`` → (function of BSA (human) or body mass (mouse), d_ref).
#: Micelles have no sourced set of their own: they use the PEG-liposome carrier clearance with
#: the size and surface laws, and their own leakage (``micelle.toml``).
CARRIER_SETS = {
    "liposome": {"human": (human_pegylated_liposome, 90.0),
                 "mouse": (mouse_pegylated_liposome, 90.0)},
    "micelle": {"human": (human_pegylated_liposome, 90.0),
                "mouse": (mouse_pegylated_liposome, 90.0)},
    "conjugate": {"human": (human_hpma_conjugate, 10.0), "mouse": (mouse_hpma_conjugate, 10.0)},
    "none": {"human": (human_pegylated_liposome, 90.0),
             "mouse": (mouse_pegylated_liposome, 90.0)},
}
