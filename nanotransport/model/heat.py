"""Tissue heating: heat sources, far-field boundary, control and hyperthermia metrics
(docs/model.md §8).

    ρc ∂T/∂t = ∇·(k ∇T) + W(T) (T_a − T) + Q(x, t)         (W/m³; T in °C)

Far field (``far_field_boundaries``).  The grid ends a few mm outside the tumor, but the tissue
does not: outside the domain, perfused tissue with the boundary's k and W obeys
k ∇²θ = W θ (θ = T − T_a, no source there).  Its decaying solution fixes the exact outward
conduction flux on the outer boundary, a Robin condition written as the inward flux
h (T_a − T_face):

* sphere of radius R:  θ ∝ e^(−m r)/r  ⇒  −k ∂θ/∂r = k (m + 1/R) θ,   m = √(W/k)  (1/m);
* planar side:         θ ∝ e^(−m x)    ⇒  h = k m;
* cylinder of radius R (axisymmetric r side): θ ∝ K₀(m r) ⇒ h = k m K₁(mR)/K₀(mR), taken as its
  asymptote k (m + 1/(2R)) (relative error < 1/(8 (mR)²), ~0.3 % at mR = 6).

The sphere and planar conditions are exact for the steady problem, so a truncated domain gives
the infinite-domain solution (``verify.pennes_far_field``).  k and W are the boundary cells'
values at body temperature.

Sources (``heating.source``):

* ``ultrasound``: a Gaussian focused-ultrasound focus of absorbed power P (W),
  Q = P·g(x) with g = exp(−4 ln2 |x − x_f|²/FWHM²)/∫(…)dV (W/m³ per W), on during the window;
* ``controlled``: the same focus (MR-HIFU mild hyperthermia) with its power set by the controller
  below;
* ``regional``: a uniform power density over the target region (water bath, RF regional
  hyperthermia), Q = P·1_region/V_region, power set by the same controller;
* ``protocol``: a prescribed temperature in the target region, imposed by a stiff relaxation
  source Q = λ ρc (T_set(t) + z − T) (λ = ``protocol_relaxation_per_s``, integrated implicitly);
  the integral term z removes the steady offset that perfusion and conduction leave between the
  readout and T_set (dz/dt = (T_set − y)/T_i).

Set point (°C): ramp from T_a to the target over ``ramp_min`` from the start, plateau until
start + ``heating_duration_min``, then cool-down: ramp back to T_a over ``cooldown_min`` (0:
power off at the end).  The window is smooth, sigmoid((t − t_on)/τ)·sigmoid((t_off − t)/τ) with
τ = 20 s, t_off = end of the cool-down, so every quantity is differentiable in the start time
and the durations.

Target region (``heating.target_region``): ``probe`` (the set point is held at the probe point;
the protocol and regional sources act on the tumor, and region metrics are read there),
``tumor``, ``tumor+margin`` (cells within ``target_margin_mm`` of the tumor).
Readout y (``heating.control_readout``): the probe temperature, the volume-weighted ``mean`` over
the target region, or its ``t90`` (the temperature that 90 % of the region's volume exceeds,
i.e. its 10th percentile; ``soft_quantile``).

Controller (controlled, regional): PI with feed-forward and back-calculation anti-windup, in
smooth functions only,

    u = [(T_set − T_a) + τ dT_set/dt + K (T_set − y) + z] / G         (W, unlimited)
    P = sat(u) = P_max − s(P_max − s(u)),  s(x) = softplus(β x)/β,  β = 20/P_ref
    dz/dt = π(t) (K/T_i)(T_set − y) + G (P − u)/T_i                   (°C/s; on in the window)

π(t) is the smooth plateau indicator: the error is integrated during the plateau only
(conditional integration: during the ramp the feed-forward follows the set point, and an
integrator charged by the ramp's lag would overshoot), and the back-calculation term unwinds z
whenever the power limits bite.  G is the steady rise of the readout per absorbed watt (°C/W, one steady Pennes solve), so
(T_set − T_a)/G is the steady feed-forward power, τ dT_set/dt the power that drives the ramp:
if the field keeps the steady shape θ₁ (rise per watt) while the readout follows the set
point, the stored heat Σ ρc θ V grows by (Σ ρc θ₁ V) dT_set/dt / G, so τ = Σ ρc θ₁ V (s, the
stored heat per absorbed watt at steady state: the plant's energy time constant); P_ref = (target − T_a)/G, so the saturation is
smooth over 5 % of the plateau power (the source switches off to ~3 % of P_ref, not to 0).
The readout and z are sampled at the start of each step and held over it (a sampled
controller: its feedback term compares the readout with the set point at the sample time; the
feed-forward terms follow the set point continuously); z is advanced by one explicit step (stable for h < T_i).  z is carried in the
time loop's accumulators (``simulate``).

Hyperthermia metrics (ESHO quality guidelines, Trefná et al. 2017 Strahlenther Onkol 193:351;
Dobšíček Trefná et al. 2019 Int J Hyperthermia 36:664): T90, T50, T10 of the target region
(temperatures exceeded by 90/50/10 % of its volume), CEM43T90 = ∫ rate(T90) dt, time above the
release temperature, tumor volume fraction above it, normal-tissue maximum; all updated every
step (``update_running``).

The step is refined to ``numerics.heating_max_dt_min`` over the window of refined steps
(``simulate.structure``).
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import fv, linalg
from .cells import cem43_rate
from ..engine.grid import Grid

SOURCES = ("none", "ultrasound", "protocol", "controlled", "regional")
CONTROLLED = ("controlled", "regional")
REGIONS = ("probe", "tumor", "tumor+margin")
READOUTS = ("probe", "t90", "mean")
EDGE_S = 20.0  # smoothing time of the heating window, s
QUANTILE_SMOOTHING_C = 0.01  # τ of the soft quantile, °C
ABOVE_SMOOTHING_C = 0.05  # width of the smooth indicator T > T_m, °C
SATURATION_SHARPNESS = 20.0  # β·P_ref of the smooth power limits
BISECTIONS = 48

# running values carried through the time loop (after simulate.ACCUMULATORS), SI
ACCUMULATORS = (
    "integrator_c",              # z of the controller, °C
    "tumor_temperature_max_c",   # max over tumor cells and steps
    "normal_temperature_max_c",  # max over normal-tissue cells and steps
    "fraction_above_release_max",  # max over steps of the tumor volume fraction above T_m
    "fraction_above_release_plateau",  # ∫ plateau·fraction dt (s)
    "plateau_s",                 # ∫ plateau dt (s)
    "t90_plateau", "t50_plateau", "t10_plateau", "readout_plateau",  # ∫ plateau·T dt (°C·s)
    "control_error_plateau_max_c",  # max over steps of plateau·|T_set − y|
    "control_error_plateau_sq",  # ∫ plateau·(T_set − y)² dt (°C²·s)
    "cem43_t90_min",             # ∫ CEM43 rate of T90 dt (min)
    "time_t90_above_release_s", "time_t50_above_release_s",
    "heat_deposited_j", "heat_perfusion_j", "heat_boundary_j",  # ∫ power dt (J)
    "power_max_w",               # max of the absorbed power (W)
)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Heating:
    """Heating inputs, SI (a pytree)."""

    deposit: jax.Array  # power shape, 1/m³ (W/m³ per absorbed W); ∫ dV = 1
    region: jax.Array  # target-region mask (protocol region; readouts t90/mean)
    tumor: jax.Array  # tumor mask
    normal: jax.Array  # normal-tissue mask
    volume: jax.Array  # cell volumes, m³
    start_s: jax.Array
    duration_s: jax.Array
    ramp_s: jax.Array
    cooldown_s: jax.Array
    target_c: jax.Array
    power_w: jax.Array
    gain: jax.Array  # K of the controller (dimensionless)
    integral_time_s: jax.Array  # T_i, s
    time_constant_s: jax.Array  # τ = Σ ρc θ₁ V, stored heat per watt (ramp feed-forward), s
    max_power_w: jax.Array
    relaxation: jax.Array  # λ of the protocol, 1/s
    readout_gain_c_per_w: jax.Array  # G, °C per W at the readout (steady)
    arterial_c: jax.Array
    heat_capacity: jax.Array  # ρc per cell, J/(m³·K)
    temperature_transport: fv.Transport  # conduction and far-field boundary (energy ledger)


def focus_shape(grid: Grid, center_m, fwhm_m):
    """Normalized Gaussian focus g(x) (1/m³): ∫ g dV = 1 on the grid."""
    mesh = grid.mesh()
    offset = [jnp.asarray(x) for x in mesh]
    offset[0] = offset[0] - center_m  # the focus moves along the first axis
    if grid.geometry in ("sphere", "cylinder"):
        offset[0] = jnp.asarray(mesh[0])  # radial grids: the focus sits at the centre
    r2 = sum(x**2 for x in offset)
    g = jnp.exp(-4.0 * math.log(2.0) * r2 / fwhm_m**2)
    return g / jnp.sum(g * jnp.asarray(grid.volume))


def region_shape(grid: Grid, mask):
    """Uniform power density over a region, 1/m³ (∫ dV = 1)."""
    mask = jnp.asarray(mask)
    return mask / jnp.sum(mask * jnp.asarray(grid.volume))


def target_mask(grid: Grid, tumor: np.ndarray, region: str, radius_m: float,
                margin_m: float) -> np.ndarray:
    """Static mask of the target region (see the module docstring); for a ``probe`` target the
    tumor (where the protocol and the regional source act and the region metrics are read)."""
    if region in ("probe", "tumor"):
        return np.asarray(tumor, float)
    if region == "tumor+margin":
        dist = np.sqrt(sum(x**2 for x in grid.mesh()))
        return np.maximum(np.asarray(tumor, float), (dist < radius_m + margin_m).astype(float))
    raise ValueError(f"heating.target_region = {region!r}; allowed: {REGIONS}")


def far_field_boundaries(grid: Grid, conductivity, blood_sink, arterial_c):
    """Exact far-field (Robin) conditions of the temperature on every outer side; zero flux on
    the symmetry axis r = 0.  Returns per axis a (low, high) pair of ``fv`` conditions, with the
    transfer coefficient h (W/(m²·K), as the 'diffusivity' of temperature is k) taken from the
    boundary cells' k and W."""
    out = []
    for axis, metric in enumerate(grid.metrics):
        n = grid.shape[axis]
        sides = []
        for idx in (0, n - 1):
            face = grid.faces[axis][0 if idx == 0 else -1]
            if idx == 0 and metric != "linear" and face == 0.0:
                sides.append(fv.Flux())  # r = 0
                continue
            edge = lambda a: jax.lax.slice_in_dim(jnp.asarray(a), idx, idx + 1, axis=axis)  # noqa
            k, w = edge(conductivity), edge(blood_sink)
            m = jnp.sqrt(w / k)
            if metric == "sphere" and idx == n - 1:
                h = k * (m + 1.0 / float(face))
            elif metric == "cylinder" and idx == n - 1:
                h = k * (m + 0.5 / float(face))
            else:
                h = k * m
            if grid.ndim == 1:
                h = h.reshape(())
            sides.append(fv.Robin(h=h, c_ext=arterial_c))
        out.append(tuple(sides))
    return tuple(out)


def deviation_boundaries(boundaries):
    """The same conditions for the rise θ = T − T_a (external value 0)."""
    def dev(bc):
        if isinstance(bc, fv.Value):
            return fv.Value(0.0)
        if isinstance(bc, fv.Robin):
            return fv.Robin(h=bc.h, c_ext=0.0)
        return bc
    return tuple((dev(lo), dev(hi)) for lo, hi in boundaries)


# ------------------------------------------------------------------ schedule
def window(h: Heating, t):
    """Smooth on/off window of the heating (cool-down included), in [0, 1]; the off edge is
    centred 3τ_edge after the end, so the power is still 95 % on at the plateau's end."""
    off = h.start_s + h.duration_s + h.cooldown_s + 3.0 * EDGE_S
    return jax.nn.sigmoid((t - h.start_s) / EDGE_S) * jax.nn.sigmoid((off - t) / EDGE_S)


def plateau(h: Heating, t):
    """Smooth indicator of the plateau [start + ramp, start + duration], in [0, 1]."""
    return (jax.nn.sigmoid((t - h.start_s - h.ramp_s) / EDGE_S)
            * jax.nn.sigmoid((h.start_s + h.duration_s - t) / EDGE_S))


def _ramps(h: Heating, t, rate):
    """(up, down) shares of the ramps at t, each rising 0 → 1 linearly over its duration with
    corners rounded over τ_edge (``rate``: their time derivatives instead, 1/s)."""
    e = EDGE_S
    end = h.start_s + h.duration_s
    cool = jnp.maximum(h.cooldown_s, 1e-9)
    if rate:
        box = lambda a, b: jax.nn.sigmoid((t - a) / e) - jax.nn.sigmoid((t - b) / e)  # noqa
        up = box(h.start_s, h.start_s + h.ramp_s) / h.ramp_s
        down = box(end, end + h.cooldown_s) / cool
    else:
        ramp = lambda a, b, d: e * (jax.nn.softplus((t - a) / e)  # noqa: E731
                                    - jax.nn.softplus((t - b) / e)) / d
        up = ramp(h.start_s, h.start_s + h.ramp_s, h.ramp_s)
        down = ramp(end, end + h.cooldown_s, cool)
    return up, jnp.where(h.cooldown_s > 0, down, 0.0)


def setpoint(h: Heating, t):
    """Set point (°C): ramp from T_a over ramp_s, hold, ramp down over cooldown_s (no cool-down:
    held until the power is off); the ramps' corners are rounded over τ_edge = 20 s (the set
    point is the integral of ``setpoint_rate``), so it is smooth in t and the schedule."""
    up, down = _ramps(h, t, False)
    return h.arterial_c + (h.target_c - h.arterial_c) * (up - down)


def setpoint_rate(h: Heating, t):
    """dT_set/dt (°C/s) of ``setpoint`` (the ramp feed-forward uses it)."""
    up, down = _ramps(h, t, True)
    return (h.target_c - h.arterial_c) * (up - down)


# ------------------------------------------------------------------ readouts
def soft_quantile(values, weights, p, tau=QUANTILE_SMOOTHING_C, iterations=BISECTIONS):
    """Smooth weighted p-quantile: the q with Σ w σ((q − v)/τ) = p Σ w (a logistic-smoothed
    empirical CDF; τ = 0.01 °C for temperatures).  Found by bisection (no gradient), then one
    Newton step whose derivative is the implicit-function derivative −(∂F/∂v)/(∂F/∂q), so q is
    differentiable in the values and weights.  Within a few τ of the exact weighted quantile
    (a point mass at T gives T + τ·logit(p): T90 = T − 0.022 °C).
    ``p`` may be an array (one quantile per entry)."""
    values = jnp.asarray(values)
    dt = values.dtype  # float32 runs stay in float32
    weights = jnp.asarray(weights).astype(dt)
    w = (weights / jnp.sum(weights)).ravel()
    v = values.ravel()
    p = jnp.asarray(p, dt)
    big = jnp.asarray(1e30, dt)
    vs = jax.lax.stop_gradient(v)
    lo = jnp.min(jnp.where(w > 0, vs, big)) - 12 * tau
    hi = jnp.max(jnp.where(w > 0, vs, -big)) + 12 * tau

    def cdf(q):
        return jnp.sum(w * jax.nn.sigmoid((q[..., None] - v) / tau), axis=-1)

    wg = jax.lax.stop_gradient(w)

    def body(state):
        k, a, b = state
        mid = 0.5 * (a + b)
        below = jnp.sum(wg * jax.nn.sigmoid((mid[..., None] - vs) / tau), axis=-1) < p
        return k + 1, jnp.where(below, mid, a), jnp.where(below, b, mid)

    # a while loop (no gradient flows through the bisection: its inputs are stopped)
    _, a, b = jax.lax.while_loop(lambda st: st[0] < iterations, body,
                                 (0, jnp.broadcast_to(lo, p.shape).astype(dt),
                                  jnp.broadcast_to(hi, p.shape).astype(dt)))
    q0 = jax.lax.stop_gradient(0.5 * (a + b))
    s = jax.nn.sigmoid((q0[..., None] - v) / tau)
    slope = jnp.sum(w * s * (1 - s), axis=-1) / tau
    return q0 - (cdf(q0) - p) / slope


def readout(h: Heating, mode: str, temperature, probe: tuple):
    """Controller readout y (°C): probe temperature, region mean, or region T90."""
    if mode == "probe":
        return temperature[probe]
    w = h.region * h.volume
    if mode == "mean":
        return jnp.sum(w * temperature) / jnp.sum(w)
    if mode == "t90":
        return soft_quantile(temperature, w, 0.1)
    raise ValueError(f"heating.control_readout = {mode!r}; allowed: {READOUTS}")


# ------------------------------------------------------------------ sources and control
def _soft_positive(x, beta):
    return jax.nn.softplus(beta * x) / beta


def controller_power(h: Heating, t, y, z, t_sample=None):
    """(P, u): saturated and unlimited power (W) of the PI controller at time t, with the
    readout y and integrator z sampled at ``t_sample`` (default t): the feed-forward terms
    follow the set point at t, the feedback compares y with the set point at its sample time."""
    t_sample = t if t_sample is None else t_sample
    t_set = setpoint(h, t)
    u = ((t_set - h.arterial_c) + h.time_constant_s * setpoint_rate(h, t)
         + h.gain * (setpoint(h, t_sample) - y) + z) / h.readout_gain_c_per_w
    p_ref = (h.target_c - h.arterial_c) / h.readout_gain_c_per_w
    beta = SATURATION_SHARPNESS / jnp.maximum(p_ref, 1e-12)
    p = h.max_power_w - _soft_positive(h.max_power_w - _soft_positive(u, beta), beta)
    return p, u


def integrator_rate(h: Heating, mode: str, t, y, z):
    """dz/dt (°C/s): integral action (and back-calculation anti-windup for the controlled
    sources), switched on by the window."""
    err = setpoint(h, t) - y
    if mode in CONTROLLED:
        p, u = controller_power(h, t, y, z)
        rate = (plateau(h, t) * h.gain * err
                + h.readout_gain_c_per_w * (p - u)) / h.integral_time_s
    elif mode == "protocol":
        rate = err / h.integral_time_s  # no feed-forward to wind up against: always on
    else:
        rate = jnp.zeros_like(err)
    return window(h, t) * rate


def source_function(h: Heating, mode: str, t, y, z, t_sample=None):
    """Q(T) per cell at time t (W/m³), as a function of the local temperature T; y and z are
    the readout and integrator sampled at ``t_sample`` (the step's start) and held over the
    step."""
    on = window(h, t)
    if mode == "ultrasound":
        return lambda temp: on * h.power_w * h.deposit
    if mode == "protocol":
        t_set = setpoint(h, t) + z
        return lambda temp: on * h.relaxation * h.heat_capacity * h.region * (t_set - temp)
    if mode in CONTROLLED:
        power, _ = controller_power(h, t, y, z, t_sample)
        return lambda temp: on * power * h.deposit
    raise ValueError(f"heating.source = {mode!r}; allowed: {SOURCES}")


def readout_gain(grid: Grid, conductivity, blood_sink, deposit, boundaries, weights, mode,
                 probe: tuple, heat_capacity):
    """(G, τ): steady rise of the readout per absorbed watt (°C/W), from one steady Pennes
    solve for the rise θ₁ per watt (boundaries for θ), read as the controller reads T; and the
    stored heat per watt τ = Σ ρc θ₁ V (s)."""
    tr = fv.Transport(diffusivity=conductivity[None], boundaries=boundaries)
    theta = linalg.solve_steady(grid, tr, deposit, reaction_rate=blood_sink).solution
    tau = jnp.sum(heat_capacity * theta * jnp.asarray(grid.volume))
    if mode == "probe":
        return theta[probe], tau
    if mode == "mean":
        return jnp.sum(weights * theta) / jnp.sum(weights), tau
    return soft_quantile(theta, weights, 0.1), tau


def probe_index(grid: Grid, offset_m: float) -> tuple:
    """Index of the cell nearest to the tumor centre shifted by ``offset_m`` along axis 0."""
    target = np.zeros(grid.ndim)
    target[0] = offset_m
    if grid.geometry == "axisymmetric":
        target[0] = abs(offset_m)
    idx = tuple(int(np.argmin(np.abs(c - x))) for c, x in zip(grid.centers, target))
    return idx


# ------------------------------------------------------------------ running metrics
def boundary_loss(grid: Grid, h: Heating, temperature):
    """Heat leaving through the outer boundary (W): outward conduction flux × face area."""
    fluxes = fv.face_fluxes(grid, h.temperature_transport, temperature[None])
    total = 0.0
    for axis, f in enumerate(fluxes):
        area = jnp.asarray(grid.face_area(axis), temperature.dtype)
        n = grid.shape[axis]
        lo = jax.lax.slice_in_dim(f[0] * area, 0, 1, axis=axis)
        hi = jax.lax.slice_in_dim(f[0] * area, n, n + 1, axis=axis)
        total = total + jnp.sum(hi) - jnp.sum(lo)
    return total


def update_running(h: Heating, grid: Grid, mode: str, readout_mode: str, probe: tuple, t, dt,
                   temp0, temp1, acc, release_c, perfusion_sink):
    """Advance the running heating values (``ACCUMULATORS``) over one step [t, t + dt].

    Maxima are taken at the end of the step, integrals by the trapezoidal rule over the step
    (second order; the energy integrals use the held controller power, as the step does).
    ``perfusion_sink(T)`` is W(T) per cell (W/(m³·K))."""
    a = dict(zip(ACCUMULATORS, [acc[i] for i in range(len(ACCUMULATORS))]))
    t1 = t + dt
    z = a["integrator_c"]
    y0 = readout(h, readout_mode, temp0, probe)
    w_region = h.region * h.volume
    tumor_w = h.tumor * h.volume
    ind = lambda x: jax.nn.sigmoid((x - release_c) / ABOVE_SMOOTHING_C)  # noqa: E731

    def at_end(tt, temp):
        """The integrands at one end of the step, each under its accumulator's name (the
        controller's power with the readout held at the step's start, as the step uses it)."""
        q = source_function(h, mode, tt, y0, z, t)(temp) if mode != "none" else 0.0 * temp
        y = readout(h, readout_mode, temp, probe)
        q90, q50, q10 = soft_quantile(temp, w_region, jnp.asarray([0.1, 0.5, 0.9]))
        above = jnp.sum(tumor_w * ind(temp)) / jnp.sum(tumor_w)
        pl = plateau(h, tt)
        err = setpoint(h, tt) - y
        return dict(
            above=above, fraction_above_release_plateau=pl * above, plateau_s=pl,
            t90_plateau=pl * q90, t50_plateau=pl * q50, t10_plateau=pl * q10,
            readout_plateau=pl * y, error=err, control_error_plateau_sq=pl * err**2,
            cem43_t90_min=cem43_rate(q90), time_t90_above_release_s=ind(q90),
            time_t50_above_release_s=ind(q50), heat_deposited_j=jnp.sum(q * h.volume),
            heat_perfusion_j=jnp.sum(perfusion_sink(temp) * (temp - h.arterial_c) * h.volume),
            heat_boundary_j=boundary_loss(grid, h, temp))

    # both ends in one vmapped evaluation, traced and compiled once (the heat bookkeeping was
    # a quarter of a heated step's program when each end was traced on its own)
    ends = jax.vmap(at_end)(jnp.stack([t, t1]).astype(temp0.dtype), jnp.stack([temp0, temp1]))
    integrated = {k: a[k] + 0.5 * dt * (v[0] + v[1]) for k, v in ends.items()
                  if k in ACCUMULATORS}
    err1 = ends["error"][1]
    new = {
        **integrated,
        "integrator_c": z + dt * integrator_rate(h, mode, t, y0, z),
        "tumor_temperature_max_c": jnp.maximum(a["tumor_temperature_max_c"], jnp.max(
            jnp.where(h.tumor > 0, temp1, -jnp.inf))),
        "normal_temperature_max_c": jnp.maximum(a["normal_temperature_max_c"], jnp.max(
            jnp.where(h.normal > 0, temp1, -jnp.inf))),
        "fraction_above_release_max": jnp.maximum(a["fraction_above_release_max"],
                                                  ends["above"][1]),
        # strict plateau (the end is inside it: the set point holds until then)
        "control_error_plateau_max_c": jnp.maximum(a["control_error_plateau_max_c"], jnp.where(
            (t1 >= h.start_s + h.ramp_s) & (t1 <= h.start_s + h.duration_s), jnp.abs(err1), 0.0)),
        "power_max_w": jnp.maximum(a["power_max_w"], ends["heat_deposited_j"][1]),  # W at t1
    }
    return jnp.stack([jnp.asarray(new[k], acc.dtype) for k in ACCUMULATORS])
