"""Simulated imaging of a labelled carrier (docs/model.md §9): what a PET/SPECT (or MRI/optical)
scanner would show of a simulation.

The label rides on the carrier particles, in every phase of a grid cell::

    n_label(x, t) = φ_v c_v + φ_e c + b + q + m + r     (mol drug-equivalent per m³ of tissue)

(vascular, interstitial, receptor-bound, internalized and phagocytosed carriers, and the residue
r that carriers digested inside cells leave: a share ``imaging.label_retained_fraction`` of
their label, 1 for residualizing labels such as ¹¹¹In-DTPA or ⁸⁹Zr that stay trapped in
lysosomes; label of carriers broken down outside cells is taken as cleared).  The image, in % of the injected dose per gram of tissue (1 g/mL), is
that concentration blurred by the scanner's point-spread function::

    I(x, t) = 100 · (PSF ∗ n_label)(x, t) / D_carrier / (10⁶ g/m³)        (%ID/g)

with D_carrier the injected carriers (mol drug-equivalent).  ``%ID/g`` is decay-corrected (the
convention of biodistribution studies); the activity concentration the scanner counts is
``A(x, t) = A_0 · I(x, t)/100 · ρ · 2^(−t/T½)`` (kBq/mL) with A_0 the injected activity and
T½ the label's half-life (¹¹¹In 2.80 d, ⁶⁴Cu 12.7 h, ⁸⁹Zr 78.4 h; MRI/optical labels do not
decay).

PSF: an isotropic 3D Gaussian of full width at half maximum FWHM (σ = FWHM / (2 √(2 ln 2))),
applied as a linear operator on the cells of the grid.  It is separable in every geometry here
(x, y, z of Cartesian grids; r and z of the axisymmetric grid, whose in-plane part is the 2D
radial kernel of a ring; the 1D sphere uses the 3D radial kernel of a spherical shell), so it
is one small matrix per axis.  Entry P_ij of an axis is the fraction of the activity spread
uniformly over source cell j that the blur puts into cell i; the blurred concentration is
c'_i = Σ_j P_ij V_j c_j / V_i.  The kernel integrates to one, so blurring conserves the total
activity of any distribution whose blur stays on the grid.  At the edge of the simulated region
(the tumor and a margin of normal tissue) the tissue beyond is taken to continue with the edge
cell's concentration (zero-gradient extension): it blurs into the grid as activity leaves, so a
uniform field stays uniform and the reference region near the edge is not darkened.  Closed forms:
Cartesian axes integrate the Gaussian CDF over both cells (Ψ(u) = u Φ(u) + φ(u)); the sphere
integrates the shell kernel p(r | r') = r/(r' σ √(2π)) [e^{−(r−r')²/2σ²} − e^{−(r+r')²/2σ²}]
in closed form; the ring kernel p(r | r') = r/σ² e^{−(r−r')²/2σ²} i0e(r r'/σ²) is integrated
numerically.

Regions of interest: the tumor ROI is the tumor cells; the reference ("muscle") ROI stands for
normal tissue far from the tumor, read as the normal tissue at the outer edge of the grid
without blurring (by the zero-gradient extension, distant tissue looks like the edge, and the
PSF leaves a uniform field unchanged; the thin margin itself would be lit by spill-out from the
tumor).  Time-activity curves are volume-weighted ROI means at the saved times.  For a tumor a
few FWHM across, partial-volume loss lowers the tumor ROI mean, as on a real scanner.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from ..engine import units
from ..engine.grid import Grid
from .scenario import Scenario, ScenarioError
from .tissue import Layout
from .transport import label_per_tissue_volume

# half-lives, hours (NNDC/ENSDF: ¹¹¹In 2.8047 d, ⁶⁴Cu 12.701 h, ⁸⁹Zr 78.41 h)
LABEL_HALF_LIFE_H = {"In-111": 2.8047 * 24.0, "Cu-64": 12.701, "Zr-89": 78.41, "none": math.inf}
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
GRAM_PER_M3 = 1e6  # tissue density 1 g/mL
_GAUSS_NODES = 6  # Gauss–Legendre nodes across a source cell (radial kernels)


def half_life_h(label: str) -> float:
    """Half-life of a label in hours (inf for a non-decaying MRI/optical label)."""
    if label not in LABEL_HALF_LIFE_H:
        raise ScenarioError(f"imaging.label = {label!r} is unknown; allowed: one of "
                             + ", ".join(repr(k) for k in LABEL_HALF_LIFE_H))
    return LABEL_HALF_LIFE_H[label]


def decay_factor(times_s, label: str):
    """Fraction of the label's activity left after ``times_s``: 2^(−t/T½) (1 for 'none')."""
    t_half = half_life_h(label)
    times_s = jnp.asarray(times_s)
    if math.isinf(t_half):
        return jnp.ones_like(times_s)
    return jnp.exp2(-times_s / (t_half * units.HOUR))


# ------------------------------------------------------------------ point-spread function
def _psi(u):
    """Ψ(u) = u Φ(u) + φ(u), the antiderivative of the standard normal CDF Φ."""
    return u * special.ndtr(u) + np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)


def _linear_cdf(faces: np.ndarray, sigma: float):
    """x ↦ fraction of the activity spread uniformly over cell j, blurred by a 1D Gaussian,
    that lies below x: (σ/Δx_j) [Ψ((x − a_j)/σ) − Ψ((x − b_j)/σ)], shape (*x.shape, n)."""
    lo, hi = faces[:-1], faces[1:]

    def cdf(x):
        x = np.asarray(x)[..., None]
        return sigma / (hi - lo) * (_psi((x - lo) / sigma) - _psi((x - hi) / sigma))

    return cdf


def _source_nodes(lo, hi, power):
    """Gauss–Legendre nodes in each source cell [lo, hi] and weights ∝ r^power (volume)."""
    x, w = np.polynomial.legendre.leggauss(_GAUSS_NODES)
    r = 0.5 * (lo + hi)[:, None] + 0.5 * (hi - lo)[:, None] * x[None, :]
    wts = w[None, :] * r**power
    return r, wts / wts.sum(axis=1, keepdims=True)


def _shell_cdf(faces: np.ndarray, sigma: float):
    """r ↦ fraction below radius r of spherical-shell sources spread uniformly over cell j's
    volume and blurred by a 3D Gaussian (closed form of ∫ p(r | r') dr), shape (*r.shape, n)."""
    rp, w = _source_nodes(faces[:-1], faces[1:], 2)  # (n, k)
    s2 = sigma * math.sqrt(2.0)

    def cdf(r):
        r = np.asarray(r)[..., None, None]
        gauss = np.exp(-((r + rp) / s2) ** 2) - np.exp(-((r - rp) / s2) ** 2)
        c = (sigma / (rp * math.sqrt(2.0 * math.pi)) * gauss
             + 0.5 * (special.erf((r - rp) / s2) + special.erf((r + rp) / s2)))
        return np.sum(c * w, axis=-1)

    return cdf


def _ring_cdf(faces: np.ndarray, sigma: float):
    """r ↦ fraction below radius r of ring sources spread uniformly over cell j's area and
    blurred by a 2D Gaussian: the ring kernel integrated numerically (trapezoid) on a fine
    radius grid (spacing ≤ σ/8 and ≤ 1/8 of the smallest cell) up to 8σ past the last face."""
    rp, w = _source_nodes(faces[:-1], faces[1:], 1)
    end = faces[-1] + 8.0 * sigma
    step = max(min(sigma / 8.0, np.min(np.diff(faces)) / 8.0), (end - faces[0]) / 20000)
    fine = np.linspace(faces[0], end, int(math.ceil((end - faces[0]) / step)) + 1)
    r = fine[:, None, None]
    dens = (r / sigma**2 * np.exp(-((r - rp) ** 2) / (2 * sigma**2))
            * special.i0e(r * rp / sigma**2))
    cum = np.concatenate([np.zeros((1,) + dens.shape[1:]),
                          np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine)[:, None, None],
                                    axis=0)])
    cum = np.sum(cum / cum[-1] * w, axis=-1)  # (n_fine, n); each ring's kernel sums to 1

    def cdf(x):
        x = np.asarray(x, float)
        return np.stack([np.interp(x, fine, cum[:, j]) for j in range(cum.shape[1])], axis=-1)

    return cdf


def _fractions(faces: np.ndarray, cdf) -> np.ndarray:
    """P_ij = cdf_j(b_i) − cdf_j(a_i): the share of source cell j's activity in target cell i."""
    return cdf(faces[1:]) - cdf(faces[:-1])


def _outside_low(faces: np.ndarray, sigma: float) -> np.ndarray:
    """Per target cell of a Cartesian axis, the blur of a unit concentration on (−∞, a_0)
    averaged over the cell: (σ/Δx_i) [Ψ((a_0 − a_i)/σ) − Ψ((a_0 − b_i)/σ)]."""
    lo, hi = faces[:-1], faces[1:]
    return sigma / (hi - lo) * (_psi((faces[0] - lo) / sigma) - _psi((faces[0] - hi) / sigma))


def psf_matrices(grid: Grid, fwhm_m: float) -> tuple[np.ndarray, ...] | None:
    """Per axis, the matrix B with c' = B c along that axis (c per tissue volume), or None for
    an ideal scanner (FWHM 0).  B_ij = P_ij V_j / V_i, plus the edge extension: the tissue
    beyond the grid is taken to continue with the edge cell's concentration, so the blur of
    that outside region (for a uniform field, 1 − Σ_j P_ij V_j / V_i on each side) is added to
    the edge cell's column.  Rows then sum to 1 (a uniform field stays uniform) and columns
    conserve Σ_i V_i c'_i = Σ_j V_j c_j for activity whose blur stays on the grid."""
    if fwhm_m < 0 or not math.isfinite(fwhm_m):
        raise ScenarioError(f"imaging.psf_fwhm_mm = {fwhm_m / units.MM:g} is invalid; allowed: "
                             "a number in [0, 100] (0: no blurring)")
    if fwhm_m == 0:
        return None
    sigma = fwhm_m / FWHM_PER_SIGMA
    out = []
    for axis, metric in enumerate(grid.metrics):
        faces = np.asarray(grid.faces[axis], float)
        vol = grid._axis_volume(axis)
        if metric == "linear":
            b = _fractions(faces, _linear_cdf(faces, sigma)) * vol[None, :] / vol[:, None]
            low = _outside_low(faces, sigma)
            high = _outside_low(-faces[::-1], sigma)[::-1]  # mirror image of the low side
            b[:, 0] += low
            b[:, -1] += high
        else:
            if metric == "sphere":
                cdf = _shell_cdf(faces, sigma)
            elif grid.geometry == "axisymmetric":
                cdf = _ring_cdf(faces, sigma)
            else:
                raise ValueError(f"PSF blurring of a {grid.geometry} grid is not supported; "
                                 "allowed: sphere, slab, cartesian2d, axisymmetric, cartesian3d")
            b = _fractions(faces, cdf) * vol[None, :] / vol[:, None]
            b[:, -1] += 1.0 - b.sum(axis=1)  # a uniform field on all space stays uniform
        out.append(b)
    return tuple(out)


def blur(field, matrices, ndim: int):
    """Apply the per-axis PSF matrices to the trailing ``ndim`` axes of ``field``."""
    if matrices is None:
        return field
    for k, b in enumerate(matrices):
        axis = field.ndim - ndim + k
        field = jnp.moveaxis(jnp.tensordot(jnp.asarray(b, field.dtype), field,
                                           axes=([1], [axis])), 0, axis)
    return field


# ------------------------------------------------------------------ setup and readouts
@dataclasses.dataclass(frozen=True, eq=False)
class Imaging:
    """Static imaging set-up of a scenario: label, PSF matrices and regions of interest."""

    label: str
    half_life_h: float
    fwhm_mm: float
    injected_activity_mbq: float
    matrices: tuple | None  # per-axis PSF matrices (numpy), None for an ideal scanner
    tumor_weights: np.ndarray  # cell volume × tumor mask, m³
    reference_weights: np.ndarray  # cell volume × normal tissue at the grid's outer edge, m³

    def __hash__(self):
        return hash((self.label, self.fwhm_mm, self.injected_activity_mbq))


def _outer_edge(grid: Grid) -> np.ndarray:
    """1.0 in the cells on the outer boundary of the grid (both ends of a Cartesian axis, the
    outer end of a radial one)."""
    edge = np.zeros(grid.shape, bool)
    for axis, metric in enumerate(grid.metrics):
        idx = [-1] if metric != "linear" else [0, -1]
        for i in idx:
            sl = [slice(None)] * grid.ndim
            sl[axis] = i
            edge[tuple(sl)] = True
    return edge.astype(float)


def setup(scenario: Scenario, lay: Layout) -> Imaging:
    """Imaging set-up from the scenario's ``[imaging]`` section and the tissue layout."""
    label = scenario["imaging.label"]
    fwhm_mm = float(scenario["imaging.psf_fwhm_mm"])
    vol = lay.grid.volume
    reference = vol * lay.normal * _outer_edge(lay.grid)
    if not np.any(reference > 0):
        raise ScenarioError("tumor.margin_mm: the grid has no normal tissue at its outer edge "
                             "for the imaging reference region; allowed: a margin > 0 around "
                             "the tumor")
    return Imaging(label, half_life_h(label), fwhm_mm,
                   float(scenario["imaging.injected_activity_mbq"]),
                   psf_matrices(lay.grid, fwhm_mm * units.MM), vol * lay.tumor, reference)


def label_pct_id_per_g(result):
    """Decay-corrected label concentration before blurring (an ideal scanner), %ID/g,
    shape (n_t, *grid.shape)."""
    maps = result.inputs.kinetics.maps
    n = jax.vmap(lambda x: label_per_tissue_volume(maps, x, result.species))(result.fields)
    dose = result.inputs.dose_mol
    return 100.0 * n / jnp.where(dose > 0, dose, 1.0) / GRAM_PER_M3  # dose 0: 0 %ID, not NaN


def image_pct_id_per_g(ideal, im: Imaging):
    """The simulated image: the ideal label concentration blurred by the scanner's PSF."""
    return blur(ideal, im.matrices, im.tumor_weights.ndim)


def activity_kbq_per_ml(pct_id_per_g, times_s, im: Imaging):
    """What the scanner counts: A_0 · (%ID/g)/100 · 1 g/mL · 2^(−t/T½), kBq/mL."""
    decay = decay_factor(times_s, im.label).reshape((-1,) + (1,) * (pct_id_per_g.ndim - 1))
    return im.injected_activity_mbq * 1e3 * pct_id_per_g / 100.0 * decay


def _roi_mean(image, weights):
    w = jnp.asarray(weights, image.dtype)
    axes = tuple(range(-w.ndim, 0))
    return jnp.sum(image * w, axis=axes) / jnp.sum(w)


def metrics(result, im: Imaging | None = None) -> dict:
    """Imaging readouts over the saved times (arrays of shape (n_t,)): tumor ROI mean of the
    blurred image (%ID/g, %ID/kg, kBq/mL) and %ID inside the tumor ROI; the reference ROI
    (muscle far from the tumor, whose image the PSF does not change) and the tumor-to-reference
    ratio.  ``im``: the set-up, by default ``setup`` of the result's own scenario and layout."""
    if im is None:
        im = setup(result.scenario, result.layout)
    ideal = label_pct_id_per_g(result)
    tumor = _roi_mean(image_pct_id_per_g(ideal, im), im.tumor_weights)
    ref = _roi_mean(ideal, im.reference_weights)
    tumor_g = float(np.sum(im.tumor_weights)) * GRAM_PER_M3
    decay = decay_factor(result.times_s, im.label)
    return {
        "imaging_tumor_pct_id_per_g": tumor,
        "imaging_tumor_pct_id_per_kg": 1e3 * tumor,
        "imaging_tumor_pct_id": tumor * tumor_g,
        "imaging_reference_pct_id_per_g": ref,
        # 0 where the reference holds no activity (t = 0): the ratio is undefined there
        "imaging_tumor_to_reference": jnp.where(ref > 0, tumor / jnp.where(ref > 0, ref, 1.0),
                                                0.0),
        "imaging_tumor_kbq_per_ml": im.injected_activity_mbq * 1e3 * tumor / 100.0 * decay,
    }


TIME_SERIES = ("imaging_tumor_pct_id_per_g", "imaging_tumor_pct_id_per_kg", "imaging_tumor_pct_id",
               "imaging_reference_pct_id_per_g", "imaging_tumor_to_reference",
               "imaging_tumor_kbq_per_ml")
