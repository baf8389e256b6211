"""Size, temperature and cell laws (docs/model.md §3, §5, §6, §7): pure JAX functions in SI units.

Every function is elementwise (NumPy broadcasting), has no Python branch on array values and has
finite gradients everywhere: where a formula is singular outside its branch (log λ at λ = 0, √φ at
φ = 0, Pe = Jv/PS at PS = 0) the argument is replaced by a harmless value before the formula is
evaluated and the result is selected afterwards (the "double where" trick).

Laws
----
- Free diffusivity, Stokes–Einstein: D_0 = k_B T / (6 π μ r_s).
- Vessel-wall pores, Dechadilok & Deen 2006: diffusive hindrance H(λ), convective hindrance
  W(λ) = (1 − λ)² K_c(λ), reflection σ = 1 − W(λ), with λ = r_s / r_pore; H = W = 0 for λ ≥ 1.
- Heterogeneous pores: log-normal pore radii (area-weighted), averaged by Gauss–Hermite quadrature:
  P = γ ⟨H⟩ D_0 / L_wall, L_p = γ ⟨r²⟩ / (8 μ L_wall), σ = 1 − ⟨r² W⟩ / ⟨r²⟩.
- Transvascular solute flux, Kedem–Katchalsky with the Patlak form:
  Φ = Jv (1 − σ) c_p + PS (c_p − c_i) Pe / (exp(Pe) − 1), Pe = Jv (1 − σ) / PS.
- Interstitial matrix, fibre-matrix (Ogston) law: h = exp(−√φ_f (1 + r_s/r_f)); convective
  retardation R_F = h^k with a milder k.
- Systemic clearance: logistic renal switch in d; MPS factor g·(1 + (d/d_M)^n).
- Release: k_rel(T) = k_leak + k_max · sigmoid((T − T_m)/ΔT).
- Cells (El-Kareh & Secomb 2000): U = V_max [f/(f + K_e) − a/(a + K_i)], SF = exp(−ω · exposure),
  and a log-sum-exp smooth maximum for a differentiable peak exposure.
"""
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from ..engine.units import BOLTZMANN, NM, celsius_to_kelvin

BODY_TEMPERATURE_K = celsius_to_kelvin(37.0)  # 310.15 K
WATER_VISCOSITY_37C_PA_S = 6.92e-4  # water at 37 °C (docs/model.md §5)

# --------------------------------------------------------------------------------------------
# Free diffusion


def stokes_einstein_diffusivity(diameter_m, temperature_K=BODY_TEMPERATURE_K,
                                viscosity_Pa_s=WATER_VISCOSITY_37C_PA_S):
    """Free diffusivity D_0 = k_B T / (6 π μ r_s), r_s = d/2 (m²/s).

    Stokes–Einstein relation for a sphere of hydrodynamic diameter ``diameter_m`` (m) in a fluid
    of viscosity μ (Pa·s) at temperature T (K). Water at 37 °C: 6.57e-11 m²/s at d = 10 nm.
    """
    radius = 0.5 * jnp.asarray(diameter_m)
    return BOLTZMANN * temperature_K / (6.0 * math.pi * viscosity_Pa_s * radius)


# --------------------------------------------------------------------------------------------
# Single cylindrical pore: Dechadilok & Deen 2006, Ind Eng Chem Res 45:6953

_H_COEFFS = (1.0, -1.56034, 0.528155, 1.91521, -2.81903, 0.270788, 1.10115, -0.435933)  # λ⁰…λ⁷
_LAMBDA_FIT_MAX = 0.95  # upper end of the Dechadilok–Deen fit for H


def _h_fit(lam):
    """Dechadilok–Deen polynomial for H at 0 < λ ≤ 0.95 (no guard against λ = 0)."""
    poly = 0.0
    for c in reversed(_H_COEFFS):  # Horner
        poly = poly * lam + c
    return poly + 1.125 * lam * jnp.log(lam)


# H and dH/dλ at λ = 0.95, in double precision at import
_H_AT_FIT_MAX = (sum(c * _LAMBDA_FIT_MAX**k for k, c in enumerate(_H_COEFFS))
                 + 1.125 * _LAMBDA_FIT_MAX * math.log(_LAMBDA_FIT_MAX))
_H_SLOPE_AT_FIT_MAX = (sum(k * c * _LAMBDA_FIT_MAX**(k - 1) for k, c in enumerate(_H_COEFFS))
                       + 1.125 * (math.log(_LAMBDA_FIT_MAX) + 1.0))
# Tail H = H(0.95)·((1 − λ)/0.05)^n; n matches the slope at 0.95 (n ≈ 1.69 > 1).
_H_TAIL_EXPONENT = -_H_SLOPE_AT_FIT_MAX * (1.0 - _LAMBDA_FIT_MAX) / _H_AT_FIT_MAX


def pore_diffusive_hindrance(lam):
    """Diffusive hindrance H(λ) of a sphere in a cylindrical pore (dimensionless), λ = r_s/r_pore.

    H(λ) = 1 + (9/8) λ ln λ − 1.56034 λ + 0.528155 λ² + 1.91521 λ³ − 2.81903 λ⁴ + 0.270788 λ⁵
             + 1.10115 λ⁶ − 0.435933 λ⁷ for 0 ≤ λ ≤ 0.95 (Dechadilok & Deen 2006, Ind Eng Chem Res
    45:6953; it includes the partition coefficient (1 − λ)²). The fit ends at 0.95; for
    0.95 < λ < 1 this module continues it by H = H(0.95)·((1 − λ)/0.05)^n, with n ≈ 1.69 chosen so
    that value and slope match at 0.95: positive, decreasing, and reaching 0 with zero slope at
    λ = 1 (a smoothing choice of this module; H(0.95) ≈ 1.6e-6). H = 0 for λ ≥ 1, H = 1 at λ ≤ 0.
    The gradient at exactly λ = 0 is returned as 0 (the true one is −∞).
    """
    lam = jnp.clip(lam, 0.0, 1.0)
    in_fit = (lam > 0.0) & (lam <= _LAMBDA_FIT_MAX)
    fit = _h_fit(jnp.where(in_fit, lam, 0.5))
    tail = _H_AT_FIT_MAX * ((1.0 - lam) / (1.0 - _LAMBDA_FIT_MAX)) ** _H_TAIL_EXPONENT
    return jnp.where(in_fit, fit, jnp.where(lam > _LAMBDA_FIT_MAX, tail, 1.0))


def pore_convective_hindrance(lam):
    """Convective hindrance W(λ) = (1 − λ)² K_c(λ) (dimensionless), 0 for λ ≥ 1.

    K_c(λ) = (1 + 3.867 λ − 1.907 λ² − 0.834 λ³) / (1 + 1.867 λ − 0.741 λ²)
    (Dechadilok & Deen 2006, Ind Eng Chem Res 45:6953). W → 0 with zero slope at λ = 1.
    """
    lam = jnp.clip(lam, 0.0, 1.0)
    k_c = (1.0 + lam * (3.867 - lam * (1.907 + 0.834 * lam))) / (1.0 + lam * (1.867 - 0.741 * lam))
    return (1.0 - lam) ** 2 * k_c


def reflection_coefficient(lam):
    """Osmotic/solvent-drag reflection coefficient σ = 1 − W(λ) (dimensionless), 1 for λ ≥ 1.

    Dechadilok & Deen 2006, Ind Eng Chem Res 45:6953.
    """
    return 1.0 - pore_convective_hindrance(lam)


# --------------------------------------------------------------------------------------------
# Heterogeneous pores and vessel-wall coefficients (docs/model.md §5)


class PoreAverage(NamedTuple):
    """Dimensionless wall factors of a log-normal pore population."""

    diffusive: jax.Array  # ⟨H(λ)⟩, multiplies γ D_0 / L_wall to give P
    hydraulic: jax.Array  # ⟨r²⟩ / r_median², multiplies L_p of a median pore
    reflection: jax.Array  # σ_eff = 1 − ⟨r² W(λ)⟩ / ⟨r²⟩


def lognormal_pore_average(particle_radius_m, pore_radius_median_m, pore_radius_log_sd,
                           n_nodes=32):
    """Average pore hindrances over a log-normal distribution of pore radius.

    Choice: the pore *area* fraction γ is distributed log-normally in r, ln r ~ N(ln r_med, s²)
    with s = ``pore_radius_log_sd``. Pores act in parallel, so
      diffusive  ⟨H⟩ = ∫ H(r_s/r) dN                  (area-weighted; P = γ ⟨H⟩ D_0 / L_wall)
      hydraulic  ⟨r²⟩/r_med² = exp(2 s²)              (Poiseuille per area ∝ r², L_p = γ⟨r²⟩/(8μL))
      reflection σ_eff = 1 − ⟨r² W(r_s/r)⟩ / ⟨r²⟩     (flow-weighted)
    where ⟨·⟩ is the normal average in ln r, computed with ``n_nodes``-point Gauss–Hermite
    quadrature (nodes fixed at trace time), so the result is smooth in the particle radius even
    where λ of the median pore crosses 1. With s → 0 it reduces to the single-pore values.
    Log-normal pore sizes in tumors: Hobbs et al. 1998, PNAS 95:4607 (cutoffs 0.2–1.2 µm).
    """
    r_s, r_med, s = jnp.broadcast_arrays(particle_radius_m, pore_radius_median_m,
                                         pore_radius_log_sd)
    dtype = jnp.result_type(r_s, r_med, s, float)
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    nodes = jnp.asarray(nodes, dtype)
    weights = jnp.asarray(weights / weights.sum(), dtype)
    scale = jnp.exp(s[..., None] * nodes)  # r / r_med at each node
    lam = r_s[..., None] / (r_med[..., None] * scale)
    area_flow = scale**2
    hydraulic = jnp.sum(weights * area_flow, axis=-1)
    return PoreAverage(
        diffusive=jnp.sum(weights * pore_diffusive_hindrance(lam), axis=-1),
        hydraulic=hydraulic,
        reflection=1.0 - jnp.sum(weights * area_flow * pore_convective_hindrance(lam),
                                 axis=-1) / hydraulic,
    )


class WallCoefficients(NamedTuple):
    """Vessel-wall transport coefficients."""

    permeability: jax.Array  # P, m/s
    hydraulic_conductivity: jax.Array  # L_p, m/(Pa·s)
    reflection: jax.Array  # σ, dimensionless


def vessel_wall_coefficients(diameter_m, pore_radius_median_m, pore_radius_log_sd,
                             pore_area_fraction, wall_thickness_m,
                             viscosity_Pa_s=WATER_VISCOSITY_37C_PA_S,
                             temperature_K=BODY_TEMPERATURE_K):
    """Pore-theory wall coefficients for a particle of diameter d (m) (docs/model.md §5).

      P   = γ ⟨H(λ)⟩ D_0(d) / L_wall                          (m/s)
      L_p = γ r_med² (⟨r²⟩/r_med²) / (8 μ L_wall)             (m/(Pa·s), Poiseuille)
      σ   = 1 − ⟨r² W(λ)⟩ / ⟨r²⟩
    with γ the pore area fraction, L_wall the wall (pore) length and the averages of
    ``lognormal_pore_average``. Pore theory rarely reproduces measured tumor values exactly
    (e.g. P ≈ 2e-10 m/s at ~90 nm, 3e-9 m/s at ~10 nm; L_p = 2.10e-11 m/(Pa·s), Baxter & Jain
    1989): model users may override P and L_p directly with measured values instead.
    """
    avg = lognormal_pore_average(0.5 * jnp.asarray(diameter_m), pore_radius_median_m,
                                 pore_radius_log_sd)
    gamma_per_length = pore_area_fraction / wall_thickness_m
    d0 = stokes_einstein_diffusivity(diameter_m, temperature_K, viscosity_Pa_s)
    return WallCoefficients(
        permeability=gamma_per_length * avg.diffusive * d0,
        hydraulic_conductivity=gamma_per_length * jnp.asarray(pore_radius_median_m) ** 2
        * avg.hydraulic / (8.0 * viscosity_Pa_s),
        reflection=avg.reflection,
    )


# --------------------------------------------------------------------------------------------
# Transvascular flux (docs/model.md §5)

_PATLAK_SERIES_MAX = 1e-2  # |Pe| below this: Taylor series (truncation error < 1e-22)
_PATLAK_PE_MAX = 700.0  # above this Pe/(e^Pe − 1) < 1e-301: clamp to keep exp finite


def patlak_weight(pe):
    """Patlak weight B(Pe) = Pe / (exp(Pe) − 1) (dimensionless); B(0) = 1, B(Pe) = B(−Pe) − Pe.

    For |Pe| < 1e-2 the Taylor series 1 − Pe/2 + Pe²/12 − Pe⁴/720 + Pe⁶/30240 (Bernoulli numbers)
    is used; otherwise the overflow-free form |Pe|·exp(−max(Pe, 0)) / (−expm1(−|Pe|)), with Pe
    clamped at 700 (where B < 1e-301). Value and gradient are smooth and finite for any finite Pe:
    B → 0 for Pe → +∞ and B ≈ −Pe for Pe → −∞.
    """
    small = jnp.abs(pe) < _PATLAK_SERIES_MAX
    x = jnp.minimum(jnp.where(small, 1.0, pe), _PATLAK_PE_MAX)
    abs_x = jnp.abs(x)
    exact = abs_x * jnp.exp(-jnp.maximum(x, 0.0)) / -jnp.expm1(-abs_x)
    y = jnp.where(small, pe, 0.0)
    y2 = y * y
    series = 1.0 - 0.5 * y + y2 * (1.0 / 12.0 - y2 * (1.0 / 720.0 - y2 / 30240.0))
    return jnp.where(small, series, exact)


def transvascular_flux(Jv, sigma, PS, c_plasma, c_int):
    """Solute flux from plasma into the interstitium per tissue volume (mol/(m³·s)).

    Kedem–Katchalsky with the Patlak exponential form (Patlak, Goldstein & Hoffman 1963, J Theor
    Biol 5:426 *(verify)*; as used by Baxter & Jain 1989, Microvasc Res 37:77):
      Pe = Jv (1 − σ) / PS
      Φ  = Jv (1 − σ) c_p + PS (c_p − c_i) Pe / (exp(Pe) − 1)
    Jv: fluid filtration per tissue volume (1/s, = L_p S_v Δp_eff); PS: permeability × surface
    density (1/s); c_p, c_i: plasma and interstitial concentrations (mol/m³).
    Limits: Pe → 0: Φ = PS (c_p − c_i) + Jv (1 − σ)(c_p + c_i)/2; PS = 0 (pure convection):
    Φ = Jv (1 − σ) c_p for Jv > 0 and Jv (1 − σ) c_i for Jv < 0 (upwind); Jv = 0: Φ = PS(c_p − c_i).
    Value and gradients are finite in all these cases.
    """
    convective = Jv * (1.0 - sigma)
    has_ps = PS > 0.0
    ps_safe = jnp.where(has_ps, PS, 1.0)
    # PS·B(Pe) → max(−Jv(1−σ), 0) as PS → 0
    conductance = jnp.where(has_ps, ps_safe * patlak_weight(convective / ps_safe),
                            jax.nn.relu(-convective))
    return convective * c_plasma + conductance * (c_plasma - c_int)


# --------------------------------------------------------------------------------------------
# Interstitial matrix (docs/model.md §5)


class FibreMatrix(NamedTuple):
    """Effective fibre network of the interstitium for the Ogston law."""

    fibre_volume_fraction: float  # φ_f
    fibre_radius_m: float  # r_f, effective (collagen/GAG) fibre radius


# Calibrated defaults (a modelling choice, not measurements): doxorubicin (~1 nm) is hindered
# < 2× everywhere; in collagen-rich stroma 25–30-nm solutes are 5–10× slower than in the default
# tumor (Pluen et al. 2001, PNAS 98:4628) and 100-nm carriers are nearly immobile (h ≈ 1e-4).
# h at d = 1 / 30 / 100 nm: normal 0.73 / 0.23 / 0.022; tumor 0.76 / 0.38 / 0.068;
# collagen-rich 0.58 / 0.044 / 1.2e-4. Normal tissue hinders macromolecules more than the default
# tumor, whose interstitial space is larger (Nugent & Jain 1984, Cancer Res 44:238).
NORMAL_MATRIX = FibreMatrix(fibre_volume_fraction=0.08, fibre_radius_m=4.0 * NM)
TUMOR_MATRIX = FibreMatrix(fibre_volume_fraction=0.06, fibre_radius_m=5.0 * NM)
COLLAGEN_RICH_MATRIX = FibreMatrix(fibre_volume_fraction=0.2, fibre_radius_m=2.5 * NM)
RETARDATION_COEFFICIENT = 0.5  # k in R_F = h^k (modelling choice)


def _ogston_exponent(diameter_m, fibre_volume_fraction, fibre_radius_m):
    """√φ_f (1 + r_s/r_f), with a finite gradient at φ_f = 0."""
    phi = jnp.asarray(fibre_volume_fraction)
    positive = phi > 0.0
    sqrt_phi = jnp.where(positive, jnp.sqrt(jnp.where(positive, phi, 1.0)), 0.0)
    return sqrt_phi * (1.0 + 0.5 * jnp.asarray(diameter_m) / fibre_radius_m)


def matrix_diffusive_hindrance(diameter_m, fibre_volume_fraction=TUMOR_MATRIX.fibre_volume_fraction,
                               fibre_radius_m=TUMOR_MATRIX.fibre_radius_m):
    """Fibre-matrix diffusive hindrance h = D_eff / D_0 = exp(−√φ_f (1 + r_s/r_f)) (dimensionless).

    Ogston-type law for a sphere of radius r_s = d/2 in a random network of fibres of radius r_f
    and volume fraction φ_f (Ogston 1958, Trans Faraday Soc 54:1754; Ogston, Preston & Wells 1973,
    Proc R Soc Lond A 333:297). Collagen-rich tumors slow macromolecules 5–10× (Pluen et al. 2001,
    PNAS 98:4628). Defaults: ``TUMOR_MATRIX``; see also ``NORMAL_MATRIX``,
    ``COLLAGEN_RICH_MATRIX``. At φ_f = 0 the gradient in φ_f is returned as 0 (true one: −∞).
    """
    return jnp.exp(-_ogston_exponent(diameter_m, fibre_volume_fraction, fibre_radius_m))


def retardation_factor(diameter_m, fibre_volume_fraction=TUMOR_MATRIX.fibre_volume_fraction,
                       fibre_radius_m=TUMOR_MATRIX.fibre_radius_m,
                       coefficient=RETARDATION_COEFFICIENT):
    """Convective retardation R_F = exp(−k √φ_f (1 + r_s/r_f)) = h^k, 0 < R_F ≤ 1 (dimensionless).

    Solutes are dragged by interstitial flow more slowly than the fluid; convective hindrance in
    fibre matrices is milder than diffusive hindrance, so this module takes the Ogston exponent
    with a smaller coefficient k = 0.5 (a smooth modelling choice, not a fitted law).
    """
    return jnp.exp(-coefficient * _ogston_exponent(diameter_m, fibre_volume_fraction,
                                                   fibre_radius_m))


# --------------------------------------------------------------------------------------------
# Extravascular distribution of small particles (docs/model.md §3)

#: Albumin, the calibration particle of the whole-body exchange: Stokes diameter 7.1 nm; its
#: transcapillary escape rate ≈ 5 %/h of the plasma pool in healthy adults (Fleck et al. 1985
#: Lancet 1:781) *(verify)*; ≈ 60 % of the body's albumin is extravascular, i.e. 1.4× the
#: plasma pool (Rothschild, Oratz & Schreiber 1972 N Engl J Med 286:748) *(verify)*.
ALBUMIN_DIAMETER_NM = 7.1
ALBUMIN_ESCAPE_RATE_PER_H = 0.05
ALBUMIN_EXTRAVASCULAR_RATIO = 1.4
#: Small pores (endothelial junctions) of continuous capillaries, as ``tissue.JUNCTION_PORES``.
_JUNCTION_RADIUS_M, _JUNCTION_LOG_SD = 5.0 * NM, 0.2


def ogston_partition(diameter_m, fibre_volume_fraction, fibre_radius_m):
    """Share of a fibre matrix's fluid volume open to a sphere of radius r_s = d/2 (Ogston 1958):
    K_av = exp(−φ_f (1 + r_s/r_f)²) (dimensionless)."""
    return jnp.exp(-fibre_volume_fraction
                   * (1.0 + 0.5 * jnp.asarray(diameter_m) / fibre_radius_m) ** 2)


def extravascular_exchange(diameter_nm):
    """Whole-body exchange of a particle between plasma and the body's interstitium through the
    endothelial junctions of continuous capillaries, scaled from albumin (adult human):

      k_out(d) = k_alb · [⟨H⟩_j(d) D_0(d)] / [⟨H⟩_j(d_alb) D_0(d_alb)]     (1/h, plasma → tissue)
      V_e/V_p(d) = R_alb · K_av(d)/K_av(d_alb)                            (extravascular volume)

    with ⟨H⟩_j the diffusive pore hindrance over the junction population (5 nm, log-sd 0.2)
    and K_av the Ogston partition of the normal matrix (``NORMAL_MATRIX``).  Returns
    (k_out in 1/h, V_e/V_p).  Particles above ~10 nm do not cross (H = 0 for λ ≥ 1): they keep
    only their carrier set's own peripheral compartment."""
    def flux_and_room(d_nm):
        d = jnp.asarray(d_nm) * NM
        h = lognormal_pore_average(0.5 * d, _JUNCTION_RADIUS_M, _JUNCTION_LOG_SD).diffusive
        room = ogston_partition(d, NORMAL_MATRIX.fibre_volume_fraction,
                                NORMAL_MATRIX.fibre_radius_m)
        return h * stokes_einstein_diffusivity(d), room

    flux, room = flux_and_room(diameter_nm)
    flux_alb, room_alb = flux_and_room(ALBUMIN_DIAMETER_NM)
    return (ALBUMIN_ESCAPE_RATE_PER_H * flux / flux_alb,
            ALBUMIN_EXTRAVASCULAR_RATIO * room / room_alb)


# --------------------------------------------------------------------------------------------
# Systemic clearance (docs/model.md §3)

_LOGISTIC_10_90 = 2.0 * math.log(9.0)  # 10–90 % width of a logistic, in units of its scale


def renal_filtration_fraction(diameter_nm, cutoff_nm=5.5, width_nm=0.7):
    """Fraction of the renal (glomerular) clearance available to a particle (dimensionless).

    Logistic switch 1 / (1 + exp((d − d_c)/s)), s = width / (2 ln 9), so that ``width_nm`` is the
    10–90 % transition width: ≈ 1 below a hydrodynamic diameter of 5.5 nm, ≈ 0 above
    (Choi et al. 2007, Nat Biotechnol 25:1165).
    """
    scale = width_nm / _LOGISTIC_10_90
    return jax.nn.sigmoid((cutoff_nm - jnp.asarray(diameter_nm)) / scale)


def mps_uptake_factor(diameter_nm, d_mps_nm=175.0, exponent=3.0, surface_factor=1.0):
    """MPS (liver/spleen macrophage) clearance multiplier g·(1 + (d/d_M)^n) (dimensionless).

    CL_MPS = CL_MPS0 · g(surface) · (1 + (d/d_M)^n), d_M ≈ 150–200 nm, n ≈ 2–4 (docs/model.md §3; a
    modelling choice). The surface factor g is also a modelling choice: PEG-coated ("stealth")
    ≈ 0.1–0.3, bare neutral 1, cationic or hydrophobic (opsonised) > 1.
    """
    return surface_factor * (1.0 + (jnp.asarray(diameter_nm) / d_mps_nm) ** exponent)


# --------------------------------------------------------------------------------------------
# Release (docs/model.md §6)


def release_rate(temperature_C, release_temperature_C, transition_width_C, k_leak_per_s,
                 k_max_per_s):
    """Payload release rate k_rel(T) = k_leak + k_max · sigmoid((T − T_m)/ΔT) (1/s).

    T, T_m, ΔT in °C. Lyso-thermosensitive liposomes: T_m ≈ 41.3–41.7 °C, k_max ≈ 0.046 1/s
    (60 % in 20 s, Mills & Needham 2004), ΔT ≈ 0.3–0.7 °C; non-thermosensitive carriers: k_max = 0.
    Lowering T_m raises release at body temperature (37 °C) through the same law: the premature
    release (toxicity) side of the design trade-off.
    """
    return k_leak_per_s + k_max_per_s * jax.nn.sigmoid(
        (temperature_C - release_temperature_C) / transition_width_C)


# --------------------------------------------------------------------------------------------
# Cells (docs/model.md §7), El-Kareh & Secomb 2000, Neoplasia 2:325 — constants in the paper's units
# (*(verify)* in docs/model.md; documented defaults, not exact-match targets)

UPTAKE_V_MAX_NG_PER_1E5_CELLS_PER_MIN = 0.28
UPTAKE_K_E_UG_PER_ML = 0.219
UPTAKE_K_I_NG_PER_1E5_CELLS = 1.37


def cell_uptake_rate(f, a, v_max, k_e, k_i):
    """Net uptake of free drug into cells U = V_max [f/(f + K_e) − a/(a + K_i)].

    f: extracellular free drug (units of K_e), a: intracellular drug (units of K_i); U has the
    units of V_max. Any consistent units (the solver uses SI; the paper uses µg/mL, ng/10⁵ cells
    and ng/(10⁵ cells·min)). El-Kareh & Secomb 2000, Neoplasia 2:325.
    """
    return v_max * (f / (f + k_e) - a / (a + k_i))


def equilibrium_intracellular(f, k_e, k_i):
    """Intracellular drug at which uptake balances efflux: a = K_i f / K_e (units of K_i).

    El-Kareh & Secomb 2000: 6.26 ng/10⁵ cells at f = 1 µg/mL.
    """
    return k_i * f / k_e


def surviving_fraction(exposure, omega):
    """Surviving fraction SF = exp(−ω · exposure) (dimensionless).

    exposure: peak intracellular drug (or an AUC), ω in inverse units of exposure
    (El-Kareh & Secomb 2000: ω ≈ 0.66 per ng/10⁵ cells, *(verify)*).
    """
    return jnp.exp(-omega * exposure)


def smooth_max(x, axis=-1, temperature=1.0):
    """Smooth maximum τ · log Σ exp(x/τ) along ``axis`` (units of x).

    Log-sum-exp: max(x) ≤ smooth_max ≤ max(x) + τ ln n, n the number of entries; the gradient is
    softmax(x/τ), finite and spread over near-maximal entries. τ → 0 recovers the maximum.
    """
    return temperature * logsumexp(jnp.asarray(x) / temperature, axis=axis)
