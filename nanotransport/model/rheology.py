"""Blood in microvessels: apparent viscosity and red-cell partition at bifurcations.

The empirical laws of Pries and Secomb, as written in Secomb's NetFlowV2 (docs/networks.md
gives the equations, their sources and the parameter values); diameters in µm, as fitted.

* **In vitro** (Pries et al. 1992), relative apparent viscosity in glass tubes::

      η_0.45(D) = 220 e^(−1.3 D) + 3.2 − 2.44 e^(−0.06 D^0.645)
      C(D) = (0.8 + e^(−0.075 D)) (−1 + 1/(1 + 1e-11 D¹²)) + 1/(1 + 1e-11 D¹²)
      η_rel = 1 + (η_0.45 − 1) ((1 − H_D)^C − 1) / ((1 − 0.45)^C − 1)

* **In vivo, 1994** (Pries et al. 1994 Circ Res 75:904), ``law = "pries1994"``: η*_0.45 =
  6 e^(−0.085 D) + 3.2 − 2.44 e^(−0.06 D^0.645) in place of η_0.45, and
  η_vivo = [1 + (η*_0.45 − 1) f(H_D) (D/(D − 1.1))²] (D/(D − 1.1))².

* **In vivo with the endothelial surface layer, 2005** (Pries & Secomb 2005 Am J Physiol 289:
  H2657), ``law = "pries2005"``: the layer (thickness W, µm) narrows the tube to
  D_ph = D − 2 W_ph for the red cells and to D_eff = D − 2 W_eff for the flow::

      W_as = W_max (D − D_off)/(D + D_50 − 2 D_off)             (D > D_off, else 0)
      W_peak = E_amp (D − D_off)/(D_crit − D_off)               (D_off < D ≤ D_crit)
             = E_amp e^(−E_width (D − D_crit))                  (D > D_crit)
      W_ph = W_as + E_peak W_peak,  W_eff = W_as + W_peak (1 + E_HD H_D)
      η_vivo = η_vitro(D_ph, H_D) (D / D_eff)⁴

* **Species**: the laws were fitted to human-sized red cells (92 fL); for an animal's mean
  cell volume ``mcv`` the diameter is scaled by (92/mcv)^(1/3) before the viscosity law.

* **Phase separation** at a diverging bifurcation (Pries & Secomb 2005; Handbook of
  Physiology 2008): a daughter branch taking the flow fraction FQ_B receives the red-cell
  flux fraction FQ_E::

      x₀ = 0.964 (1 − H_D,F)/D_F,  B = 1 + 6.98 (1 − H_D,F)/D_F,
      A = −13.29 (D_α²/D_β² − 1)/(D_α²/D_β² + 1) (1 − H_D,F)/D_F
      logit FQ_E = A + B logit((FQ_B − x₀)/(1 − 2 x₀)),  FQ_E = 0 or 1 beyond the ends

  (F: parent, α: this branch, β: its sibling).  Because B > 1 the law is already C¹ at its
  thresholds, but the logit of 0 is not finite; ``smoothed_fraction`` maps the argument into
  (0, 1) by a softplus of width ``width`` so that values and gradients stay finite.  It is
  symmetric, s(1 − x) = 1 − s(x), so the two daughters' fractions still sum to one.  A
  daughter with almost no flow must receive almost no cells (FQ_E/FQ_B → 0, else its
  haematocrit H_F FQ_E/FQ_B would blow up): each daughter's share is weighted by
  FQ_B²/(FQ_B² + (width/10)²) and the pair renormalized (a change of order (width/10 FQ_B)²
  elsewhere).
"""
from __future__ import annotations

import jax.numpy as jnp

HUMAN_MCV_FL = 92.0  #: mean red-cell volume the viscosity laws were fitted to, fL
LAWS = ("pries1994", "pries2005", "constant")

#: Pries & Secomb 2005, endothelial surface layer (µm, and dimensionless E_peak, E_HD)
ESL = {"D_off": 2.4, "D_crit": 10.5, "D_50": 100.0, "E_amp": 1.1, "E_width": 0.03,
       "E_peak": 0.6, "E_HD": 1.18, "W_max": 2.6}


def _shape_c(d_um):
    big = 1.0 / (1.0 + 1e-11 * d_um**12)
    return (0.8 + jnp.exp(-0.075 * d_um)) * (-1.0 + big) + big


def _hematocrit_factor(d_um, hd):
    c = _shape_c(d_um)
    return ((1.0 - hd)**c - 1.0) / ((1.0 - 0.45)**c - 1.0)


def in_vitro_relative_viscosity(d_um, hd):
    """η_rel of blood in a glass tube of diameter ``d_um`` µm at discharge haematocrit
    ``hd`` (Pries et al. 1992)."""
    eta45 = 220.0 * jnp.exp(-1.3 * d_um) + 3.2 - 2.44 * jnp.exp(-0.06 * d_um**0.645)
    return 1.0 + (eta45 - 1.0) * _hematocrit_factor(d_um, hd)


def in_vivo_relative_viscosity_1994(d_um, hd, w_um=1.1):
    """η_vivo of Pries et al. 1994 (``w_um``: the 1.1 µm of its (D/(D − 1.1))² term)."""
    eta45 = 6.0 * jnp.exp(-0.085 * d_um) + 3.2 - 2.44 * jnp.exp(-0.06 * d_um**0.645)
    narrow = (d_um / (d_um - w_um))**2
    return (1.0 + (eta45 - 1.0) * _hematocrit_factor(d_um, hd) * narrow) * narrow


def surface_layer_um(d_um, hd):
    """(W_ph, W_eff), µm: the endothelial surface layer's thickness seen by red cells and by
    the flow (Pries & Secomb 2005)."""
    p = ESL
    above = d_um > p["D_off"]
    d_safe = jnp.where(above, d_um, p["D_off"] + 1.0)
    w_as = jnp.where(above, p["W_max"] * (d_safe - p["D_off"])
                     / (d_safe + p["D_50"] - 2 * p["D_off"]), 0.0)
    rising = p["E_amp"] * (d_safe - p["D_off"]) / (p["D_crit"] - p["D_off"])
    falling = p["E_amp"] * jnp.exp(-p["E_width"] * (d_safe - p["D_crit"]))
    w_peak = jnp.where(above, jnp.where(d_um <= p["D_crit"], rising, falling), 0.0)
    return w_as + p["E_peak"] * w_peak, w_as + w_peak * (1.0 + p["E_HD"] * hd)


def in_vivo_relative_viscosity_2005(d_um, hd):
    """η_vivo with the endothelial surface layer (Pries & Secomb 2005)."""
    w_ph, w_eff = surface_layer_um(d_um, hd)
    return in_vitro_relative_viscosity(d_um - 2 * w_ph, hd) * (d_um / (d_um - 2 * w_eff))**4


def species_diameter_um(d_um, mcv_fl):
    """The human-equivalent diameter of a vessel in a species of mean cell volume ``mcv_fl``:
    D (92/mcv)^(1/3)."""
    return d_um * (HUMAN_MCV_FL / mcv_fl)**(1.0 / 3.0)


def relative_viscosity(law: str, d_um, hd, mcv_fl=HUMAN_MCV_FL):
    """η_vivo/η_plasma by ``law`` (one of ``LAWS``; "constant" gives 1: plasma-like)."""
    d = species_diameter_um(d_um, mcv_fl)
    if law == "pries1994":
        return in_vivo_relative_viscosity_1994(d, hd)
    if law == "pries2005":
        return in_vivo_relative_viscosity_2005(d, hd)
    if law == "constant":
        return jnp.ones_like(d * hd)
    raise ValueError(f"viscosity law {law!r}; allowed {', '.join(LAWS)}")


def smoothed_fraction(x, width):
    """x mapped smoothly into (0, 1): width·[softplus(x/width) − softplus((x − 1)/width)],
    clipped 1e-12 away from the ends so that its logit is finite."""
    s = width * (jnp.logaddexp(0.0, x / width) - jnp.logaddexp(0.0, (x - 1.0) / width))
    return jnp.clip(s, 1e-12, 1.0 - 1e-12)


def red_cell_fraction(flow_fraction, d_branch_um, d_sibling_um, d_parent_um, hd_parent,
                      width=1e-3):
    """FQ_E: the share of the parent's red-cell flux that a daughter branch receives when it
    takes ``flow_fraction`` of the parent's flow (Pries & Secomb 2005; module docstring).
    ``width`` = 0 gives the sharp law of the paper (not differentiable at its thresholds); a
    traced ``width`` (an array under ``jit``) is taken as positive: the smoothed law."""
    scale = (1.0 - hd_parent) / d_parent_um
    x0 = 0.964 * scale
    b = 1.0 + 6.98 * scale
    ratio = (d_branch_um / d_sibling_um)**2
    a = -13.29 * (ratio - 1.0) / (ratio + 1.0) * scale
    x = (flow_fraction - x0) / (1.0 - 2.0 * x0)
    if isinstance(width, (int, float)) and width <= 0:
        xs = jnp.clip(x, 1e-300, 1.0 - 1e-16)
        fqe = 1.0 / (1.0 + jnp.exp(-a - b * (jnp.log(xs) - jnp.log1p(-xs))))
        return jnp.where(x <= 0.0, 0.0, jnp.where(x >= 1.0, 1.0, fqe))
    xs = smoothed_fraction(x, width)
    fqe = 1.0 / (1.0 + jnp.exp(-a - b * (jnp.log(xs) - jnp.log1p(-xs))))
    # a branch with almost no flow must get almost no cells: FQ_E/FQ_B → 0 as FQ_B → 0 (the
    # smoothing alone leaves FQ_E ~ width^B there, and H_D = H_F FQ_E/FQ_B would blow up);
    # weight each daughter by FQ_B²/(FQ_B² + (width/10)²) and renormalize the pair (the sibling's
    # share is 1 − fqe by the law's symmetry), so the red cells are still conserved
    fq = jnp.clip(flow_fraction, 0.0, 1.0)
    w2 = (0.1 * width)**2
    own = fqe * fq**2 / (fq**2 + w2)
    sibling = (1.0 - fqe) * (1.0 - fq)**2 / ((1.0 - fq)**2 + w2)
    return own / jnp.maximum(own + sibling, 1e-300)
