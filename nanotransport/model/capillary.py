"""A resolved microvessel: one capillary and its Krogh tissue cylinder (2D axisymmetric r, z).

The tissue-scale model (``simulate.py``, ``transport.py``) treats the plasma of every grid cell as
one well-mixed compartment fed by arterial blood.  This module resolves what that compartment
hides: the concentration falls along the vessel as drug crosses the wall, and a thermosensitive
carrier releases its payload *during transit* through a heated segment.  It serves as a
microscale check of the well-mixed assumption and as a tool of its own (issue "Drug delivery
model II", item 5).

Geometry
--------
A capillary of radius r_c and length L (lumen 0 < r < r_c, 0 < z < L) inside a tissue cylinder
r_c < r < R_k (Krogh cylinder).  Defaults (``CapillaryParameters.default``): r_c = 5 µm,
R_k = 50 µm, L = 0.5 mm, mean plasma velocity U = 0.5 mm/s (transit time L/U = 1 s).
R_k = 50 µm means a vessel surface density S_v = 2 r_c/R_k² = 40 /cm and φ_v = (r_c/R_k)² = 0.01;
the tumor S_v = 200 /cm of docs/model.md §4 would need R_k ≈ 22 µm.

Lumen (1D in z, plasma, per volume of plasma; A_l = π r_c², wall perimeter 2π r_c)
------------------------------------------------------------------------------------
Species: carriers c_l, encapsulated drug e_l, total free drug f_l (bound + unbound), mol/m³.

    A_l ∂c_l/∂t + ∂(U A_l c_l)/∂z = − 2π r_c Φ_c
    A_l ∂e_l/∂t + ∂(U A_l e_l)/∂z = − k_rel(T(z)) A_l e_l − 2π r_c Φ_e
    A_l ∂f_l/∂t + ∂(U A_l f_l)/∂z = + k_rel(T(z)) A_l e_l − 2π r_c Φ_f
    inflow at z = 0: the systemic plasma concentrations (c, e, f)_in;  free outflow at z = L.

*Plug flow, cross-section well mixed* (documented choice).  The lumen is one cell across; its
concentration is the cross-sectional mean, which for plug flow is also the mixing-cup (flow-
weighted) value, so the convective flux is exactly U A_l c.  With a Poiseuille profile the
mixing-cup value differs from the area mean only when the cross-section is *not* mixed; radial
mixing is fast here (r_c²/D ≈ 0.06 s for doxorubicin vs a 1-s transit; red-cell motion mixes
further) and the wall is the limiting resistance (P r_c/D ≈ 0.01 for the drug, ≈ 1e-4 for
liposomes), so the wall concentration equals the mean to < 1 %.  U is the mean plasma velocity;
the red cells are not modelled (the lumen is all plasma).  Axial dispersion is neglected.

Vessel wall (docs/model.md §5, per unit wall area, mol/(m²·s))
--------------------------------------------------------
    Φ_s = J_v (1 − σ_s) c_p + P_s (c_p − c_w) Pe/(exp(Pe) − 1),   Pe = J_v (1 − σ_s)/P_s
(``properties.transvascular_flux`` with PS → P), c_p the lumen concentration (for the free drug
only the unbound part f_u f_l crosses), c_w the interstitial concentration at the wall.  J_v
(m/s, fluid filtration per wall area) is 0 by default; when set it enters only this law: the
interstitial fluid flow it drives is not modelled (its Péclet number J_v R_k/D is < 1e-2 for the
drug with tumor L_p).  The wall concentration c_w is eliminated with the half-cell diffusive
resistance of the first tissue cell (δ its centre-to-wall distance, g = φ_e D/δ):
    Φ_s = [g/(g + b)]·Φ_s(c_p, c_P),     b = P_s B(Pe)  (the conductance of Φ in c_w),
which for J_v = 0 is the series law 1/(1/P + δ/(φ_e D)) of ``fv.Robin``.

Tissue (r_c < r < R_k, per volume of interstitium or of cells; φ_e + φ_c = 1 locally)
-----------------------------------------------------------------------------------
    φ_e ∂c/∂t = ∇·(φ_e D_c ∇c) − k_b φ_e c
    φ_e ∂e/∂t = ∇·(φ_e D_c ∇e) − (k_rel(T) + k_b) φ_e e
    φ_e ∂f/∂t = ∇·(φ_e D_f ∇f) + (k_rel(T) + k_b) φ_e e − φ_c U(f, a) − k_deg φ_e f
          da/dt = U(f, a) = V_max [f/(f + K_e) − a/(a + K_i)]        (El-Kareh & Secomb 2000)
zero flux at r = R_k and at z = 0, L; at r = r_c the wall flux Φ enters.  D are the hindered
interstitial diffusivities, k_b carrier breakdown (its payload becomes free drug), k_deg
degradation of free drug (0 by default).  ``perfect_sink=True`` holds the tissue side of the
wall at zero (no back-flux), the Renkin–Crone limit of the verification.
The temperature T(z) is prescribed along z only, the same in lumen and tissue: 37 °C, or
``HeatedSegment``: T = 37 + (T_heat − 37)·σ((z − z0)/w)·σ((z1 − z)/w), σ the logistic function.

Numerics and the ledger
-----------------------
One step of length h is Strang-split, R(h/2) T(h) R(h/2), with the transport itself direction-
split, T(h) = X_r(h/2) X_z(h) X_r(h/2).  Every piece is a step of the engine (``solver``): the
two-stage, L-stable, stiffly accurate SDIRK of Alexander (γ = 1 − 1/√2).  What is this module's
own is the geometry and how the lumen, the wall and the tissue are assembled into the lines:

* X_r, radial sweep: for every z and species the line (lumen cell, tissue cells 0 … n_r − 1) is
  one tridiagonal system (``solver.line_stages``) — radial diffusion (``fv.axis_coefficients``, zero flux at R_k) plus the
  wall exchange, which is linear: the lumen row loses (A_w/(A_l Δz))·Φ and the first tissue row
  gains (A_w/(V φ_e))·Φ, the same Φ·A_w (mol/s).  Exchange and radial diffusion are implicit
  *together*: splitting them (exchange in the local step) lets the thin wall cell fill up while
  it is cut off from the tissue behind it, which under-predicted delivery by ~20 % at h = 0.2 s.
* X_z, axial sweep (``solver.line_stages``): tissue axial diffusion (zero flux at z = 0, L)
  and lumen convection, first-order upwind (``fv.axis_coefficients`` with
  ``Inflow``/``Outflow``).
* R, local (per cell, ``solver.reaction_step``: SDIRK2, Newton on the exact per-cell
  Jacobian, backward Euler where a cell would turn negative): interstitial release, breakdown,
  degradation and the nonlinear uptake, with the degraded and broken-down amounts as counter
  species.  Lumen release is linear and integrated exactly (e_l e^{−k h}).
* The amounts through z = 0, z = L and the wall are integrated from the stage values with the
  Butcher weights (1 − γ, γ), i.e. with the quadrature the scheme itself uses, so each is exact
  for the discrete balance; every sweep conserves Σ (volume × concentration) to round-off (the
  Newton iterations too: mass is a linear invariant of the kinetics).
* Counters: the amount that crossed the wall (per species and z cell), degraded free drug and
  broken-down carriers.  The drug ledger
      lumen (e_l + f_l) + interstitium (e + f) + cells (a) + degraded + outflow − inflow − initial
  closes to round-off (tested ≤ 1e-10 relative), and separately for the lumen
  (lumen + outflow + crossed − inflow) and the tissue (tissue + degraded − crossed), which shows
  that what leaves the lumen through the wall is what enters the tissue.
* Orders: first order in Δz (upwind lumen), second order in time (Strang, SDIRK2) and in r on
  smooth grids.  The radial grid is graded, finer at the wall.  Geometry (r_c, R_k, L) and the
  grid are static (read as Python floats); every other parameter is a float leaf, so ``jax.grad``
  and ``jax.vmap`` over them work.

Well-mixed (tissue-scale) comparison
------------------------------------
``well_mixed_prediction`` runs the *tissue-scale kinetics* (``transport.local_rates``) on one cell
that is the whole Krogh cylinder: φ_v = (r_c/R_k)², w_b = U π r_c²/V, P S_v = P 2π r_c L/V with
V = π R_k² L, φ_e and φ_c scaled by (1 − φ_v).  Two assumptions separate it from this model:

1. The vessel phase is a stirred tank: its plasma concentration is the *outflow* concentration,
   c_in/(1 + x) instead of the plug-flow profile c_in e^{−x z/L} (x = PS/F), and it drives the
   exchange everywhere with that one value instead of the profile's mean (1 − e^{−x})/x.  So
   for drug coming from the inlet it *overestimates the outflow concentration and
   underestimates extraction and delivery*: single-pass E = x/(1 + x) vs 1 − e^{−x}; initial
   delivery ratio 0.988 / 0.955 / 0.79 at x = 0.025 / 0.1 / 1.  Measured with a radially
   well-mixed tissue (D_f = 1e-8 m²/s) over 30-300 s: 0.988-0.991, 0.947-0.961, 0.81-0.83.
   For drug *produced in the lumen* (intravascular release) the bias reverses and is larger:
   the released free drug rises along the vessel from 0, its mean is about half the outflow
   value the tank uses, so the tissue-scale model overestimates delivery of intravascularly
   released drug about 2× (uniformly heated vessel, 42 °C, ThermoDox-like: 1.6-1.8× over
   30-300 s; liposomes at 37 °C: free drug 1.8×, total drug 1.08-1.10×).
2. The tissue is one cell: no radial gradient.  The wall is not the only resistance when
   P R_k/(φ_e D) is not small (≈ 0.5 for doxorubicin with the defaults), so a single cell
   over-predicts delivery: +5.5 % at x = 0.025 (default D_f), which at x = 0.1 nearly
   cancels the tank's −4.5 % (net +1 % to +2 %).  At x = 1: 0.89-0.90 net.
Carriers and their payload (PS/F ~ 1e-4, wall-limited) agree within 1.5 %.  These are known
limitations of the well-mixed vessel phase, largest for thermosensitive release.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import fv, solver, units
from . import properties as props
from ..engine.grid import Grid, axis_faces

BODY_TEMPERATURE_C = 37.0

TISSUE = ("carrier", "payload", "free", "intracellular")  # result.tissue species
LUMEN = ("carrier", "encapsulated", "free")  # result.lumen species
_I_C, _I_E, _I_F, _I_A = range(4)

def _register(cls, meta=()):
    data = [f.name for f in dataclasses.fields(cls) if f.name not in meta]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=list(meta))


# ============================================================================ parameters
@dataclasses.dataclass(frozen=True)
class CapillaryParameters:
    """Parameters of the resolved capillary model, SI (a pytree: every field is a float leaf).

    Geometry (static: read as Python floats to build the grid)
        capillary_radius_m       r_c
        krogh_radius_m           R_k, outer radius of the tissue cylinder
        length_m                 L
    Flow and wall
        plasma_velocity_m_per_s  U, mean plasma velocity (plug flow)
        filtration_m_per_s       J_v, fluid filtration per wall area (0: pure diffusion)
        carrier_permeability_m_per_s, carrier_reflection       P, σ of carriers and payload
        free_permeability_m_per_s, free_reflection             P, σ of the (unbound) free drug
        unbound_fraction         f_u of free drug in plasma
    Tissue
        interstitial_fraction    φ_e (φ_c = 1 − φ_e; the vessel is resolved, so no φ_v)
        carrier_diffusivity_m2_per_s, free_diffusivity_m2_per_s   hindered interstitial D
        cell_density_per_m3      cells per m³ of tissue
        uptake_vmax_mol_per_cell_s, uptake_ke_mol_per_m3, uptake_ki_mol_per_cell   El-Kareh & Secomb
        breakdown_rate_per_s     k_b, interstitial carrier breakdown
        degradation_rate_per_s   k_deg, free drug degradation (0; large: perfect sink)
    Release (docs/model.md §6)
        release_temperature_C, release_width_C, leak_rate_per_s, release_max_rate_per_s
        body_temperature_C       temperature outside a heated segment
    """

    capillary_radius_m: float
    krogh_radius_m: float
    length_m: float
    plasma_velocity_m_per_s: float
    filtration_m_per_s: float
    carrier_permeability_m_per_s: float
    carrier_reflection: float
    free_permeability_m_per_s: float
    free_reflection: float
    unbound_fraction: float
    interstitial_fraction: float
    carrier_diffusivity_m2_per_s: float
    free_diffusivity_m2_per_s: float
    cell_density_per_m3: float
    uptake_vmax_mol_per_cell_s: float
    uptake_ke_mol_per_m3: float
    uptake_ki_mol_per_cell: float
    breakdown_rate_per_s: float
    degradation_rate_per_s: float
    release_temperature_C: float
    release_width_C: float
    leak_rate_per_s: float
    release_max_rate_per_s: float
    body_temperature_C: float = BODY_TEMPERATURE_C

    def replace(self, **changes) -> "CapillaryParameters":
        """Copy with some fields changed (values may be tracers, except the geometry)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def default(cls, carrier_diameter_nm: float = 90.0) -> "CapillaryParameters":
        """Tumor capillary with a lyso-thermosensitive (ThermoDox-like) liposome of doxorubicin.

        Sources (values marked *(verify)* are commonly cited figures, documented defaults):
        - r_c = 5 µm: capillary diameter 5-10 µm; R_k = 50 µm: half the intercapillary distance
          of ~100 µm in tumors (diffusion distances 50-100 µm) *(verify)*; L = 0.5 mm.
        - U = 0.5 mm/s: capillary red-cell velocities 0.1-1 mm/s, slower and erratic in tumors
          (Jain 1988 Cancer Res 48:2641) *(verify)*.
        - Carrier wall permeability from the same calibration as the tissue model (``tissue.py``,
          schema ``carrier_permeability_scale_per_m``): P = (γ/L)·⟨H(λ)⟩·D_0 with γ/L = 49 /m,
          log-normal pores of median radius 400 nm and log-sd 0.5 (Hobbs et al. 1998 PNAS
          95:4607); ≈ 2e-10 m/s at 90 nm (measured 2e-10, PMC7078505 Table 2).  σ from
          ``properties.lognormal_pore_average``.
        - Free doxorubicin: P = 1 µm/s (docs/model.md §5: 1-3 µm/s, *(verify)*), σ = 0,
          f_u = 0.25 (75 % protein binding, doxorubicin US label), D = 3.4e-10 m²/s
          (El-Kareh & Secomb 2000) times the tumor fibre-matrix hindrance at 1.2 nm.
        - φ_e = 0.4, 3e8 cells/mL (tumor defaults of the scenario schema; docs/model.md §7).
        - Uptake V_max = 0.28 ng/(1e5 cells·min), K_e = 0.219 µg/mL, K_i = 1.37 ng/1e5 cells
          (El-Kareh & Secomb 2000, Neoplasia 2:325, *(verify)*), converted with 543.52 g/mol.
        - Release: T_m = 41.3 °C, ΔT = 0.5 °C, k_max = 0.046 1/s (60 % in 20 s, Mills & Needham
          2004); k_leak = ln 2 / 1 h (plasma half-life of ThermoDox about an hour, *(verify)*);
          interstitial breakdown 0.02 /h (as the tissue model's Doxil scenario, *(verify)*).
        """
        d_m = carrier_diameter_nm * units.NM
        wall = props.lognormal_pore_average(0.5 * d_m, 400.0 * units.NM, 0.5)
        d0 = props.stokes_einstein_diffusivity(d_m)
        p_carrier = 49.0 * float(wall.diffusive) * float(d0)
        d_carrier = float(d0 * props.matrix_diffusive_hindrance(d_m))
        d_free = 3.4e-10 * float(props.matrix_diffusive_hindrance(1.2 * units.NM))
        mw = units.DOXORUBICIN_MOLAR_MASS
        ng_per_1e5_cells = 1e-9 / mw / 1e5  # mol per cell
        return cls(
            capillary_radius_m=5e-6, krogh_radius_m=50e-6, length_m=0.5e-3,
            plasma_velocity_m_per_s=0.5e-3, filtration_m_per_s=0.0,
            carrier_permeability_m_per_s=p_carrier,
            carrier_reflection=float(wall.reflection),
            free_permeability_m_per_s=1e-6, free_reflection=0.0, unbound_fraction=0.25,
            interstitial_fraction=0.4, carrier_diffusivity_m2_per_s=d_carrier,
            free_diffusivity_m2_per_s=d_free, cell_density_per_m3=3e8 / units.ML,
            uptake_vmax_mol_per_cell_s=0.28 * ng_per_1e5_cells / units.MIN,
            uptake_ke_mol_per_m3=0.219 * units.UG_PER_ML_TO_MOL_PER_M3,
            uptake_ki_mol_per_cell=1.37 * ng_per_1e5_cells,
            breakdown_rate_per_s=0.02 / units.HOUR, degradation_rate_per_s=0.0,
            release_temperature_C=41.3, release_width_C=0.5,
            leak_rate_per_s=math.log(2.0) / units.HOUR, release_max_rate_per_s=0.046,
        )

    # ----------------------------------------------------------- derived numbers
    @property
    def flow_m3_per_s(self):
        """Plasma flow F = U π r_c² (m³/s)."""
        return self.plasma_velocity_m_per_s * math.pi * self.capillary_radius_m**2

    @property
    def wall_area_m2(self):
        """Wall area S = 2π r_c L (m²)."""
        return 2.0 * math.pi * self.capillary_radius_m * self.length_m

    def ps_over_f(self, species: str = "free"):
        """PS/F of a species (free: with f_u, i.e. f_u P S/F), dimensionless."""
        if species == "free":
            p = self.unbound_fraction * self.free_permeability_m_per_s
        elif species in ("carrier", "encapsulated"):
            p = self.carrier_permeability_m_per_s
        else:
            raise ValueError(f"species = {species!r}; allowed: 'free', 'carrier', 'encapsulated'")
        return p * self.wall_area_m2 / self.flow_m3_per_s


_register(CapillaryParameters)


@dataclasses.dataclass(frozen=True)
class HeatedSegment:
    """Heated stretch of the vessel: T = T_body + (T_heat − T_body)·σ((z − z0)/w)·σ((z1 − z)/w).

    start_m, end_m (z0, z1) and edge_width_m (w) are static (the grid puts faces on z0, z1);
    temperature_C is a float leaf."""

    start_m: float
    end_m: float
    temperature_C: float = 42.0
    edge_width_m: float = 5e-6


_register(HeatedSegment, meta=("start_m", "end_m", "edge_width_m"))


class CapillaryInlet(NamedTuple):
    """Systemic plasma concentrations entering at z = 0 (mol/m³): carriers (drug-equivalent),
    encapsulated drug, total free drug."""

    carrier: float = 0.0
    encapsulated: float = 0.0
    free: float = 0.0


def temperature_profile(z_m, params: CapillaryParameters, heated: HeatedSegment | None):
    """Prescribed temperature T(z) (°C) at positions ``z_m``."""
    z = jnp.asarray(z_m)
    t_body = params.body_temperature_C
    if heated is None:
        return t_body + 0.0 * z
    w = heated.edge_width_m
    window = jax.nn.sigmoid((z - heated.start_m) / w) * jax.nn.sigmoid((heated.end_m - z) / w)
    return t_body + (heated.temperature_C - t_body) * window


def release_profile(z_m, params: CapillaryParameters, heated: HeatedSegment | None):
    """k_rel(T(z)) (1/s)."""
    return props.release_rate(temperature_profile(z_m, params, heated),
                              params.release_temperature_C, params.release_width_C,
                              params.leak_rate_per_s, params.release_max_rate_per_s)


# ============================================================================ grid
def capillary_grid(params: CapillaryParameters, grid_shape=(16, 50),
                   heated: HeatedSegment | None = None, wall_refinement: float = 4.0) -> Grid:
    """Axisymmetric tissue grid r ∈ [r_c, R_k], z ∈ [0, L]: radial cells ``wall_refinement``
    times finer at the wall; z faces on the edges of a heated segment."""
    rc, rk, length = (float(params.capillary_radius_m), float(params.krogh_radius_m),
                      float(params.length_m))
    if not 0.0 < rc < rk:
        raise ValueError(f"capillary_radius_m = {rc:g}, krogh_radius_m = {rk:g}; allowed: "
                         "0 < r_c < R_k")
    if not length > 0.0:
        raise ValueError(f"length_m = {length:g}; allowed: > 0")
    n_r, n_z = (int(n) for n in grid_shape)
    r_faces = axis_faces(rk - rc, n_r, start_m=rc, refine_at_m=rc, refine_ratio=wall_refinement,
                         refine_width_m=0.25 * (rk - rc))
    interfaces = () if heated is None else (float(heated.start_m), float(heated.end_m))
    z_faces = axis_faces(length, n_z, interfaces_m=interfaces)
    return Grid("axisymmetric", (r_faces, z_faces))


# ============================================================================ model pieces
class _Geometry(NamedTuple):
    """Static geometry, numpy."""

    volume: np.ndarray  # (n_r, n_z) tissue cell volumes, m³
    wall_area: np.ndarray  # (n_z,) A_w = 2π r_c Δz, m²
    wall_per_tissue: np.ndarray  # (n_z,) A_w/V of the wall cells, 1/m
    wall_per_lumen: float  # A_w/(A_l Δz) = 2/r_c, 1/m
    lumen_volume: np.ndarray  # (n_z,) A_l Δz, m³
    wall_half_cell: float  # δ, centre of the first radial cell to the wall, m
    rc: float


def _geometry(g: Grid) -> _Geometry:
    rc = g.faces[0][0]
    dz = g.cell_widths(1)
    wall_area = g.face_area(0)[0]  # (n_z,) = 2π r_c Δz
    return _Geometry(g.volume, wall_area, wall_area / g.volume[0], 2.0 / rc,
                     math.pi * rc**2 * dz, float(g.face_distance(0)[0]), rc)


class WallCoefficients(NamedTuple):
    """Linear wall law per species (carrier, payload, free): Φ = inflow·c_lumen − backflow·c_P
    (mol/(m²·s)), c_P the first tissue cell's concentration; each entry has shape (3,)."""

    inflow: jax.Array  # m/s, multiplies the lumen concentration (f_u included for free drug)
    backflow: jax.Array  # m/s, multiplies the wall-cell concentration


def wall_coefficients(params: CapillaryParameters, wall_half_cell_m: float,
                      perfect_sink: bool = False) -> WallCoefficients:
    """Coefficients of the Kedem–Katchalsky/Patlak wall flux with the half-cell resistance.

    Φ(c_p, c_w) = J_v(1 − σ) c_p + P B(Pe)(c_p − c_w) is written a c_p − b c_w (a = J_v(1 − σ) + b,
    b = P B(Pe), both from ``properties.transvascular_flux``); eliminating the wall value c_w with
    the diffusive flux g (c_w − c_P), g = φ_e D/δ, gives Φ = g/(g + b)·(a c_p − b c_P).
    ``perfect_sink``: the tissue side of the wall is held at c_w = 0, Φ = a c_p (the drug that
    crosses still enters the tissue; the analytic single-pass limit)."""
    p = params
    phi_e = p.interstitial_fraction
    jv = p.filtration_m_per_s
    inflow, backflow = [], []
    for perm, sigma, diff, fu in (
            (p.carrier_permeability_m_per_s, p.carrier_reflection,
             p.carrier_diffusivity_m2_per_s, 1.0),
            (p.carrier_permeability_m_per_s, p.carrier_reflection,
             p.carrier_diffusivity_m2_per_s, 1.0),
            (p.free_permeability_m_per_s, p.free_reflection, p.free_diffusivity_m2_per_s,
             p.unbound_fraction)):
        a = props.transvascular_flux(jv, sigma, perm, 1.0, 0.0)  # coefficient of c_p
        b = props.transvascular_flux(jv, sigma, perm, 0.0, -1.0)  # of −c_w
        g = phi_e * diff / wall_half_cell_m
        total = g + b
        factor = jnp.where(total > 0, g / jnp.where(total > 0, total, 1.0), 0.0)
        if perfect_sink:
            factor, b = 1.0, 0.0 * b
        inflow.append(factor * a * fu)
        backflow.append(factor * b)
    return WallCoefficients(jnp.stack(inflow), jnp.stack(backflow))


def _tissue_kinetics(params: CapillaryParameters, k_rel_z):
    """Local tissue kinetics: ``rates(t, x)`` of (c, e, f, a) (4, n_r, n_z) and ``counters(x)``
    of (degraded, broken) per tissue volume, mol/(m³·s)."""
    p = params
    phi_e = p.interstitial_fraction
    phi_c = 1.0 - phi_e
    vmax = p.uptake_vmax_mol_per_cell_s * p.cell_density_per_m3 / phi_c  # per m³ of cells
    ki = p.uptake_ki_mol_per_cell * p.cell_density_per_m3 / phi_c
    k_rel = jnp.asarray(k_rel_z)[None, :]

    def rates(t, x):
        c, e, f, a = x
        up = props.cell_uptake_rate(f, a, vmax, p.uptake_ke_mol_per_m3, ki)
        release = (k_rel + p.breakdown_rate_per_s) * e
        return jnp.stack([-p.breakdown_rate_per_s * c + 0.0 * e,
                          -release,
                          release - (phi_c / phi_e) * up - p.degradation_rate_per_s * f,
                          up])

    def counters(x):
        c, _, f, _ = x
        return jnp.stack([p.degradation_rate_per_s * phi_e * f,
                          p.breakdown_rate_per_s * phi_e * c])

    return rates, counters


def _local_step(rates, counter_rates, t, y, counters, h, newton_iterations):
    """The tissue kinetics over h: ``solver.reaction_step`` (SDIRK2, Newton on the exact
    per-cell Jacobian) on the state (c, e, f, a) with the counters (degraded, broken)
    appended as counter species (advanced by the same stage formulas, outside Newton).  Mass is
    a linear invariant of the kinetics (the weighted rates sum to the counters' rates), so every
    Newton iteration keeps it: the ledger closes to round-off whatever the Newton residual of
    the nonlinear uptake."""
    n = y.shape[0]

    def with_counters(tt, x):
        return jnp.concatenate([rates(tt, x[:n]), counter_rates(x[:n])])

    out = solver.reaction_step(with_counters, t, jnp.concatenate([y, counters]), h,
                               newton_iterations, n_state=n)
    return out[:n], out[n:]


def _lumen_release(k_rel_z, lumen, h):
    """Exact solution of de_l/dt = −k_rel e_l, df_l/dt = +k_rel e_l over h (the carrier is
    unchanged: release empties it without removing it)."""
    e = lumen[1] * jnp.exp(-k_rel_z * h)
    return jnp.stack([lumen[0], e, lumen[2] + (lumen[1] - e)])


def _radial_sweep(coef_r: fv.AxisCoefficients, wall: WallCoefficients, geo: _Geometry, phi_e,
                  tissue, lumen, h):
    """Radial diffusion and wall exchange over h, implicitly together.

    For every z and species the line (lumen cell, tissue cells 0..n_r−1) is tridiagonal: the
    lumen row loses (A_w/(A_l Δz))·Φ, the first tissue row gains (A_w/(V φ_e))·Φ, with
    Φ = inflow·c_l − backflow·c_0 linear.  Solving exchange and radial diffusion in one implicit
    system keeps the thin wall cell coupled to the tissue behind it (splitting them lets that
    cell fill up during the exchange sub-step and under-predicts delivery by ~20 % at h = 0.2 s).
    Returns (tissue (3, n_r, n_z), lumen (3, n_z), crossed (3, n_z) mol through the wall: the
    flux at the stages integrated with the Butcher weights, exact for the discrete balance)."""
    s_l = geo.wall_per_lumen
    s_t = jnp.asarray(geo.wall_per_tissue)  # (n_z,)
    a_in = wall.inflow[:, None]  # (3, 1)
    b_back = wall.backflow[:, None]
    lower, diag, upper = coef_r.lower, coef_r.diag, coef_r.upper  # (3, n_z, n_r)
    lower = lower.at[..., 0].set(s_t * a_in / phi_e)
    diag = diag.at[..., 0].add(-s_t * b_back / phi_e)
    zero = jnp.zeros_like(lower[..., :1])
    lower = jnp.concatenate([zero, lower], axis=-1)
    diag = jnp.concatenate([jnp.broadcast_to((-s_l * a_in)[..., None], zero.shape), diag], axis=-1)
    upper = jnp.concatenate([jnp.broadcast_to((s_l * b_back)[..., None], zero.shape), upper],
                            axis=-1)
    y = jnp.concatenate([lumen[..., None], jnp.moveaxis(tissue, 1, -1)], axis=-1)
    y1, y2 = solver.line_stages(lower, diag, upper, jnp.zeros_like(y), y, h)

    def flux(v):
        return a_in * v[..., 0] - b_back * v[..., 1]

    crossed = h * jnp.asarray(geo.wall_area) * ((1.0 - solver.GAMMA) * flux(y1)
                                                + solver.GAMMA * flux(y2))
    return jnp.moveaxis(y2[..., 1:], -1, 1), y2[..., 0], crossed


def _lumen_convection(lumen_grid: Grid, velocity, c_in, c, h):
    """SDIRK2 step of upwind plug-flow convection of the lumen species (3, n_z) over h.

    Returns (c_new, inflow, outflow): the amounts per unit lumen cross-section (mol/m²) that
    entered at z = 0 and left at z = L during the step, integrated with the Butcher weights
    (1 − γ, γ) of the scheme, h U [(1 − γ) Y₁ + γ Y₂] at the last cell: exact for the scheme's
    discrete balance."""
    ns = c.shape[0]
    transport = fv.Transport(diffusivity=jnp.zeros((ns,) + lumen_grid.shape, c.dtype),
                             capacity=1.0, velocity=(velocity,),
                             boundaries=(([fv.Inflow(c_in[s]) for s in range(ns)], fv.Outflow()),))
    coef = fv.axis_coefficients(lumen_grid, transport, 0, ns, c.dtype)
    y1, y2 = solver.line_stages(coef.lower, coef.diag, coef.upper, coef.source, c, h)
    inflow = h * velocity * c_in
    outflow = h * velocity * ((1.0 - solver.GAMMA) * y1[:, -1] + solver.GAMMA * y2[:, -1])
    return y2, inflow, outflow


# ============================================================================ results
@dataclasses.dataclass(frozen=True)
class Ledger:
    """Amounts (mol) per saved time; the drug ledger counts payload + free + intracellular drug,
    the carrier ledger carrier particles (drug-equivalent).  ``*_error`` = (lumen + tissue +
    sinks + outflow − inflow − initial) / max(inflow, initial): relative round-off."""

    drug_lumen: jax.Array
    drug_interstitium: jax.Array
    drug_cells: jax.Array
    drug_degraded: jax.Array
    drug_inflow: jax.Array
    drug_outflow: jax.Array
    drug_crossed: jax.Array  # through the wall, lumen → tissue
    drug_error: jax.Array
    lumen_drug_error: jax.Array  # lumen alone: lumen + outflow + crossed − inflow − initial
    tissue_drug_error: jax.Array  # tissue alone: tissue + degraded − crossed − initial
    carrier_error: jax.Array


_register(Ledger)


@dataclasses.dataclass(frozen=True)
class CapillaryResult:
    """Saved output (SI).

    times_s (n_t,); tissue (n_t, 4, n_r, n_z): interstitial carrier, payload, free drug (per
    interstitial volume) and intracellular drug (per cell volume), mol/m³; lumen (n_t, 3, n_z):
    carrier, encapsulated, free drug per plasma volume, mol/m³; inflow, outflow (n_t, 3):
    cumulative amounts through z = 0 and z = L (mol); crossed (n_t, 3, n_z): cumulative amount
    through the wall per z cell (mol); degraded, broken (n_t,): degraded free drug and broken-down
    carriers (mol); temperature_C (n_z,); inlet (3,) or (n_t, 3); ledger.  ``grid`` (static) is
    the tissue grid."""

    times_s: jax.Array
    tissue: jax.Array
    lumen: jax.Array
    inflow: jax.Array
    outflow: jax.Array
    crossed: jax.Array
    degraded: jax.Array
    broken: jax.Array
    temperature_C: jax.Array
    inlet: jax.Array
    params: CapillaryParameters
    ledger: Ledger
    grid: Grid

    @property
    def r_m(self):
        """Radial cell centres (m)."""
        return self.grid.centers[0]

    @property
    def z_m(self):
        """Axial cell centres (m)."""
        return self.grid.centers[1]


_register(CapillaryResult, meta=("grid",))


# ============================================================================ simulation
def _ledger(params, geo, tissue0, lumen0, tissue, lumen, inflow, outflow, crossed, degraded,
            broken):
    """Ledger of saved states (leading time axis) against the initial state (tissue0, lumen0)."""
    phi_e = params.interstitial_fraction
    vol = jnp.asarray(geo.volume)
    lv = jnp.asarray(geo.lumen_volume)

    def inter_of(t):
        return jnp.sum(vol * phi_e * (t[..., _I_E, :, :] + t[..., _I_F, :, :]), axis=(-2, -1))

    def cells_of(t):
        return jnp.sum(vol * (1.0 - phi_e) * t[..., _I_A, :, :], axis=(-2, -1))

    def lum_of(x):
        return jnp.sum(lv * (x[..., 1, :] + x[..., 2, :]), axis=-1)

    inter, cells, lum = inter_of(tissue), cells_of(tissue), lum_of(lumen)
    lum0, tiss0 = lum_of(lumen0), inter_of(tissue0) + cells_of(tissue0)
    d_in, d_out = inflow[:, 1] + inflow[:, 2], outflow[:, 1] + outflow[:, 2]
    d_x = jnp.sum(crossed[:, 1] + crossed[:, 2], axis=-1)
    tiss = inter + cells
    scale = jnp.maximum(jnp.maximum(d_in, lum0 + tiss0), jnp.finfo(lum.dtype).tiny)
    err = (lum + tiss + degraded + d_out - d_in - lum0 - tiss0) / scale
    lumen_err = (lum + d_out + d_x - d_in - lum0) / scale
    tissue_err = (tiss + degraded - d_x - tiss0) / scale

    def carriers_of(x, t):
        return (jnp.sum(lv * x[..., 0, :], axis=-1)
                + jnp.sum(vol * phi_e * t[..., _I_C, :, :], axis=(-2, -1)))

    car0 = carriers_of(lumen0, tissue0)
    car_scale = jnp.maximum(jnp.maximum(inflow[:, 0], car0), jnp.finfo(lum.dtype).tiny)
    car_err = (carriers_of(lumen, tissue) + broken + outflow[:, 0] - inflow[:, 0] - car0) \
        / car_scale
    return Ledger(lum, inter, cells, degraded, d_in, d_out, d_x, err, lumen_err, tissue_err,
                  car_err)


def _run(params, inlet, heated, lumen0, tissue0, *, grid, save_times, max_dt, inlet_fn,
         newton_iterations, perfect_sink):
    dtype = lumen0.dtype
    geo = _geometry(grid)
    lumen_grid = Grid("slab", (grid.faces[1],))
    z = jnp.asarray(grid.centers[1], dtype)
    k_rel = release_profile(z, params, heated)
    rates, counter_rates = _tissue_kinetics(params, k_rel)
    phi_e = params.interstitial_fraction
    wall = wall_coefficients(params, geo.wall_half_cell, perfect_sink)
    diff = jnp.stack([phi_e * params.carrier_diffusivity_m2_per_s,
                      phi_e * params.carrier_diffusivity_m2_per_s,
                      phi_e * params.free_diffusivity_m2_per_s])[:, None, None] \
        * jnp.ones((3,) + grid.shape, dtype)
    # zero flux on every side of the tissue: the wall exchange enters in the radial sweep
    tissue_transport = fv.Transport(diffusivity=diff, capacity=phi_e + 0.0 * diff)
    coef_r = fv.axis_coefficients(grid, tissue_transport, 0, 3, dtype)  # (3, n_z, n_r)
    coef_z = fv.axis_coefficients(grid, tissue_transport, 1, 3, dtype)  # (3, n_r, n_z)
    area_l = math.pi * geo.rc**2
    vol = jnp.asarray(geo.volume, dtype)

    def inlet_at(t):
        if inlet_fn is None:
            return inlet
        return jnp.asarray(inlet_fn(t), dtype)

    def local(t, h, state):
        tissue, lumen, counters, crossed, io = state
        tissue, counters = _local_step(rates, counter_rates, t, tissue, counters, h,
                                       newton_iterations)
        return tissue, _lumen_release(k_rel, lumen, h), counters, crossed, io

    def radial(h, state):
        tissue, lumen, counters, crossed, io = state
        moved, lumen, dx = _radial_sweep(coef_r, wall, geo, phi_e, tissue[:3], lumen, h)
        return tissue.at[:3].set(moved), lumen, counters, crossed + dx, io

    def axial(t, h, state):
        tissue, lumen, counters, crossed, io = state
        _, moved = solver.line_stages(coef_z.lower, coef_z.diag, coef_z.upper, coef_z.source,
                                      tissue[:3], h)
        lumen, inflow, outflow = _lumen_convection(lumen_grid, params.plasma_velocity_m_per_s,
                                                   inlet_at(t + 0.5 * h), lumen, h)
        io = io + area_l * jnp.stack([inflow, outflow])
        return tissue.at[:3].set(moved), lumen, counters, crossed, io

    def step(t, h, state):
        # R(h/2) [r(h/2) z(h) r(h/2)] R(h/2); a two-pass loop compiles R once
        def half(s, i):
            s = local(t + 0.5 * h * i, 0.5 * h, s)
            s = jax.lax.cond(i == 0, lambda v: radial(0.5 * h, axial(t, h, radial(0.5 * h, v))),
                             lambda v: v, s)
            return s, None

        state, _ = jax.lax.scan(half, state, jnp.arange(2))
        return state

    def observe(state):
        tissue, lumen, counters, crossed, io = state
        return tissue, lumen, jnp.sum(vol * counters, axis=(-2, -1)), crossed, io

    state0 = (tissue0, lumen0, jnp.zeros((2,) + grid.shape, dtype),
              jnp.zeros((3, grid.shape[1]), dtype), jnp.zeros((2, 3), dtype))
    _, (tissue, lumen, totals, crossed, io) = solver.integrate(step, state0, save_times, max_dt,
                                                               observe=observe)
    inflow, outflow = io[:, 0], io[:, 1]
    degraded, broken = totals[:, 0], totals[:, 1]
    ledger = _ledger(params, geo, tissue0, lumen0, tissue, lumen, inflow, outflow, crossed,
                     degraded, broken)
    temps = temperature_profile(z, params, heated)
    return (jnp.asarray(save_times, dtype), tissue, lumen, inflow, outflow, crossed, degraded,
            broken, temps, ledger)


_run_jit = jax.jit(_run, static_argnames=("grid", "save_times", "max_dt", "inlet_fn",
                                          "newton_iterations", "perfect_sink"))


def simulate_capillary(params: CapillaryParameters, inlet, t_end_s: float, save_times=None,
                       grid_shape=(16, 50), heated_segment: HeatedSegment | None = None,
                       max_dt_s: float = 0.1, initial_lumen=None, wall_refinement: float = 4.0,
                       newton_iterations: int = 2, perfect_sink: bool = False
                       ) -> CapillaryResult:
    """Simulate the capillary and its Krogh tissue cylinder from t = 0 to ``t_end_s``.

    Args:
        params: ``CapillaryParameters`` (SI).
        inlet: systemic plasma concentrations at z = 0, mol/m³: a ``CapillaryInlet`` or any
            (carrier, encapsulated, free) triple (constant), or a JAX-traceable callable
            t_s → such a triple (use ``jnp`` functions; evaluated at the middle of each step;
            a new callable recompiles).
        t_end_s: end time (s).
        save_times: times (s) to save, increasing, ending at or before t_end_s (default 11
            equally spaced times from 0); t_end_s is appended if missing.
        grid_shape: (n_r, n_z) tissue cells; the lumen has n_z cells.
        heated_segment: ``HeatedSegment`` or None (body temperature everywhere).
        max_dt_s: largest time step (s).  Steady lumen profiles do not depend on it beyond the
            O(h²) splitting error (the transit time is ~1 s); uptake and filling of the tissue
            are resolved to ~1 % at 0.1 s.
        initial_lumen: (3,) or (3, n_z) initial lumen concentrations (default 0); the tissue
            starts empty.
        wall_refinement: radial cells at the wall are this much finer than at R_k.
        newton_iterations: per implicit stage of the local kinetics (nonlinear uptake).
        perfect_sink: hold the tissue side of the wall at zero concentration (no back-flux):
            the Renkin–Crone limit E = 1 − exp(−PS/F); what crosses still enters the tissue.
    Returns:
        ``CapillaryResult`` (fields over (time, r, z), lumen over (time, z), ledger).
    """
    if not t_end_s > 0:
        raise ValueError(f"t_end_s = {t_end_s!r}; allowed: > 0")
    times = (np.linspace(0.0, t_end_s, 11) if save_times is None
             else np.asarray(save_times, dtype=float))
    if times.size == 0 or times[-1] < t_end_s:
        times = np.append(times, t_end_s)
    if np.any(times > t_end_s * (1 + 1e-12)) or np.any(times < 0):
        raise ValueError(f"save_times must lie in [0, t_end_s = {t_end_s}] s")
    g = capillary_grid(params, grid_shape, heated_segment, wall_refinement)
    dtype = jnp.result_type(float)
    inlet_fn = inlet if callable(inlet) else None
    inlet_arr = jnp.zeros(3, dtype) if inlet_fn else jnp.asarray(tuple(inlet), dtype)
    if inlet_arr.shape != (3,):
        raise ValueError(f"inlet has shape {inlet_arr.shape}; allowed: (carrier, encapsulated, "
                         "free) in mol/m³, or a callable returning one")
    n_r, n_z = g.shape
    lumen0 = (jnp.zeros((3, n_z), dtype) if initial_lumen is None
              else jnp.broadcast_to(jnp.asarray(initial_lumen, dtype).reshape(3, -1), (3, n_z)))
    tissue0 = jnp.zeros((4, n_r, n_z), dtype)
    params = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), params)
    out = _run_jit(params, inlet_arr, heated_segment, lumen0, tissue0, grid=g,
                   save_times=tuple(float(t) for t in times), max_dt=float(max_dt_s),
                   inlet_fn=inlet_fn, newton_iterations=int(newton_iterations),
                   perfect_sink=bool(perfect_sink))
    t, tissue, lumen, inflow, outflow, crossed, degraded, broken, temps, ledger = out
    if inlet_fn is not None:
        inlet_arr = jnp.stack([jnp.asarray(inlet_fn(float(s)), dtype) for s in times])
    return CapillaryResult(t, tissue, lumen, inflow, outflow, crossed, degraded, broken, temps,
                           inlet_arr, params, ledger, g)


# ============================================================================ helpers
_LUMEN_INDEX = {"carrier": 0, "encapsulated": 1, "free": 2}


def extraction_fraction(result: CapillaryResult, species: str = "free", time_index: int = -1):
    """Single-pass extraction E = 1 − c_out/c_in of a lumen species at a saved time (at steady
    state: the steady single-pass extraction).  c_out is the last lumen cell (the upwind outflow
    value); c_in the inlet concentration.  Meant for an unheated vessel (with release, e and f
    also change by release)."""
    s = _LUMEN_INDEX[species]
    c_in = result.inlet[..., s] if result.inlet.ndim == 1 else result.inlet[time_index, s]
    return 1.0 - result.lumen[time_index, s, -1] / c_in


def analytic_extraction(params: CapillaryParameters, species: str = "free"):
    """Plug-flow single-pass extraction into a perfect sink: E = 1 − exp(−PS/F) (Renkin–Crone)."""
    return 1.0 - jnp.exp(-params.ps_over_f(species))


def delivered_drug(result: CapillaryResult, z_range_m: tuple[float, float] | None = None):
    """Drug in the tissue region (interstitial payload + free drug + intracellular), mol, per saved
    time; ``z_range_m`` = (z_a, z_b) restricts it to the cells whose centres lie in [z_a, z_b]."""
    g = result.grid
    phi_e = result.params.interstitial_fraction
    t = result.tissue
    per_volume = phi_e * (t[:, _I_E] + t[:, _I_F]) + (1.0 - phi_e) * t[:, _I_A]
    w = jnp.asarray(g.volume)
    if z_range_m is not None:
        z = g.centers[1]
        w = w * ((z >= z_range_m[0]) & (z <= z_range_m[1]))[None, :]
    return jnp.sum(w * per_volume, axis=(-2, -1))


def delivered_free_drug(result: CapillaryResult):
    """Interstitial free drug + intracellular drug in the tissue, mol, per saved time."""
    phi_e = result.params.interstitial_fraction
    t = result.tissue
    return jnp.sum(jnp.asarray(result.grid.volume)
                   * (phi_e * t[:, _I_F] + (1.0 - phi_e) * t[:, _I_A]), axis=(-2, -1))


def released_fraction_in_transit(result: CapillaryResult, time_index: int = -1):
    """1 − e_out/e_in: fraction of the encapsulated drug released (or extravasated, negligible for
    liposomes) during one transit of the lumen."""
    return extraction_fraction(result, "encapsulated", time_index)


# ============================================================================ tissue scale
def _with_zeros(cls, values: dict, zero):
    """Build a tissue-scale dataclass from the fields the unheated, untargeted kinetics read;
    every other field (targeting, heat) is set to zero.  A field named here that the class does
    not have raises TypeError (loud, if the tissue-scale model renames one)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**values, **{n: zero for n in names if n not in values})


class WellMixedResult(NamedTuple):
    """Tissue-scale (one well-mixed cell) prediction for the same Krogh cylinder."""

    times_s: jax.Array
    delivered_mol: jax.Array  # drug in interstitium + cells, mol
    delivered_free_mol: jax.Array  # interstitial free + intracellular, mol
    vessel: jax.Array  # (n_t, 3) vessel-phase (= outflow) concentrations, mol/m³
    state: jax.Array  # (n_t, n_species, 1) the tissue-scale local state
    names: tuple  # its species names (``transport.species_names``)


def _well_mixed_states(p, inlet, temp, *, geometry, times, max_dt):
    """Tissue-scale local states (n_t, n_species, 1) of the one-cell Krogh cylinder."""
    from . import transport as tr
    from .tissue import TissueMaps

    rc, rk, length = geometry
    dtype = inlet.dtype
    volume = math.pi * rk**2 * length
    phi_v = (rc / rk) ** 2
    s_v = 2.0 * math.pi * rc * length / volume
    one = jnp.ones((1,), dtype)
    zero = 0.0 * one
    maps = _with_zeros(TissueMaps, dict(
        phi_v=phi_v * one, phi_e=p.interstitial_fraction * (1.0 - phi_v) * one,
        phi_c=(1.0 - p.interstitial_fraction) * (1.0 - phi_v) * one, hydraulic_k=one,
        perfusion=p.plasma_velocity_m_per_s * math.pi * rc**2 / volume * one,
        ps_carrier=p.carrier_permeability_m_per_s * s_v * one,
        sigma_carrier=p.carrier_reflection * one, d_carrier=p.carrier_diffusivity_m2_per_s * one,
        rf_carrier=one, ps_free=p.free_permeability_m_per_s * s_v * one,
        sigma_free=p.free_reflection * one, d_free=p.free_diffusivity_m2_per_s * one,
        cell_density=p.cell_density_per_m3 * (1.0 - phi_v) * one, viable_tumor=one,
        unbound_fraction_interstitial=one), zero)  # the resolved model has no tissue binding
    per_cell_volume = p.cell_density_per_m3 / (1.0 - p.interstitial_fraction)
    kin = _with_zeros(tr.Kinetics, dict(
        maps=maps, filtration=p.filtration_m_per_s * s_v * one,
        release_temperature_C=p.release_temperature_C, release_width_c=p.release_width_C,
        leak_rate=p.leak_rate_per_s, max_release_rate=p.release_max_rate_per_s,
        breakdown_rate=p.breakdown_rate_per_s,
        degradation_rate=p.degradation_rate_per_s, unbound_fraction=p.unbound_fraction,
        uptake_vmax=p.uptake_vmax_mol_per_cell_s * per_cell_volume,
        uptake_ke=p.uptake_ke_mol_per_m3, uptake_ki=p.uptake_ki_mol_per_cell * per_cell_volume,
        perfusion_increase_per_C=zero, arterial_temperature_C=temp * one,
        nuclear_capacity=one), zero)  # no DNA binding (its rates are zero)
    names = tr.species_names(False, False)

    def rates(t, x):
        return tr.local_rates(kin, x, (inlet[0], inlet[1], inlet[2]), names,
                              body_temperature_c=temp)

    def step(t, h, x):
        return solver.reaction_step(rates, t, x, h)

    _, xs = solver.integrate(step, jnp.zeros((len(names), 1), dtype), np.asarray(times), max_dt)
    return xs


_well_mixed_jit = jax.jit(_well_mixed_states, static_argnames=("geometry", "times", "max_dt"))


def well_mixed_prediction(params: CapillaryParameters, inlet, save_times, max_dt_s: float = 0.1,
                          temperature_C: float | None = None) -> WellMixedResult:
    """Run the tissue-scale kinetics (``transport.local_rates``) on one cell that is the whole
    Krogh cylinder (V = π R_k² L): φ_v = (r_c/R_k)², w_b = F/V, P S_v = P·2π r_c L/V, J_v S_v,
    φ_e and φ_c scaled by 1 − φ_v, at a uniform temperature (default: body temperature), with a
    constant inlet (carrier, encapsulated, free) as the systemic plasma concentrations."""
    from . import transport as tr

    dtype = jnp.result_type(float)
    p = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), params)
    geometry = (float(params.capillary_radius_m), float(params.krogh_radius_m),
                float(params.length_m))
    rc, rk, length = geometry
    temp = p.body_temperature_C if temperature_C is None else jnp.asarray(temperature_C, dtype)
    times = tuple(float(t) for t in save_times)
    xs = _well_mixed_jit(p, jnp.asarray(tuple(inlet), dtype), temp, geometry=geometry,
                         times=times, max_dt=float(max_dt_s))
    names = tr.species_names(False, False)
    i = {n: k for k, n in enumerate(names)}
    volume = math.pi * rk**2 * length
    phi_v = (rc / rk) ** 2
    phi_e = p.interstitial_fraction * (1.0 - phi_v)
    phi_c = (1.0 - p.interstitial_fraction) * (1.0 - phi_v)
    delivered = volume * (phi_e * (xs[:, i["payload"]] + xs[:, i["free"]])
                          + phi_c * xs[:, i["intracellular"]])[:, 0]
    delivered_free = volume * (phi_e * xs[:, i["free"]] + phi_c * xs[:, i["intracellular"]])[:, 0]
    vessel = jnp.stack([xs[:, i["carrier_vessel"], 0], xs[:, i["payload_vessel"], 0],
                        xs[:, i["free_vessel"], 0]], axis=-1)
    return WellMixedResult(jnp.asarray(times, dtype), delivered, delivered_free, vessel, xs,
                           names)


# ============================================================================ outputs
def summary(result: CapillaryResult) -> dict:
    """Scalar metrics at the last saved time (plain floats, SI units in the names), for a
    ``summary.json``: extraction of each lumen species, released fraction in transit, drug in the
    tissue, amounts in/out, and the largest ledger errors."""
    led = result.ledger
    out = {
        "t_end_s": float(result.times_s[-1]),
        "ps_over_f_free": float(result.params.ps_over_f("free")),
        "ps_over_f_carrier": float(result.params.ps_over_f("carrier")),
        "released_fraction_in_transit": float(released_fraction_in_transit(result)),
        "delivered_drug_mol": float(delivered_drug(result)[-1]),
        "delivered_free_and_intracellular_mol": float(delivered_free_drug(result)[-1]),
        "drug_inflow_mol": float(led.drug_inflow[-1]),
        "drug_outflow_mol": float(led.drug_outflow[-1]),
        "drug_crossed_wall_mol": float(led.drug_crossed[-1]),
        "max_temperature_c": float(jnp.max(result.temperature_C)),
    }
    for name in ("carrier", "encapsulated", "free"):
        s = _LUMEN_INDEX[name]
        c_in = result.inlet[s] if result.inlet.ndim == 1 else result.inlet[-1, s]
        out[f"outflow_{name}_mol_per_m3"] = float(result.lumen[-1, s, -1])
        if float(c_in) > 0:
            out[f"extraction_{name}"] = float(extraction_fraction(result, name))
    for name in ("drug_error", "carrier_error", "lumen_drug_error", "tissue_drug_error"):
        out[f"ledger_{name}_max"] = float(jnp.max(jnp.abs(getattr(led, name))))
    return out


def to_dataset(result: CapillaryResult):
    """The result as an xarray Dataset: coordinates ``time`` (s), ``r`` and ``z`` (mm); tissue
    fields over (time, r, z), lumen profiles over (time, z), temperature over z, cumulative
    amounts over time; ``units``/``long_name`` attributes.  (Writing it is the caller's job.)"""
    import xarray as xr

    t = np.asarray(result.times_s)
    r_mm = np.asarray(result.r_m) / units.MM
    z_mm = np.asarray(result.z_m) / units.MM
    tissue_doc = {
        "carrier": ("carrier particles in the interstitium (drug-equivalent)",
                    "mol/m3 of interstitial fluid"),
        "payload": ("drug encapsulated in interstitial carriers", "mol/m3 of interstitial fluid"),
        "free": ("free drug in interstitial fluid", "mol/m3 of interstitial fluid"),
        "intracellular": ("drug inside cells", "mol/m3 of cells"),
    }
    data = {}
    for k, name in enumerate(TISSUE):
        doc, unit = tissue_doc[name]
        data[name] = (("time", "r", "z"), np.asarray(result.tissue[:, k]),
                      {"units": unit, "long_name": doc})
    for k, name in enumerate(LUMEN):
        data[f"lumen_{name}"] = (("time", "z"), np.asarray(result.lumen[:, k]),
                                 {"units": "mol/m3 of plasma",
                                  "long_name": f"{name} {'drug ' if k else ''}in the lumen"})
    data["temperature"] = (("z",), np.asarray(result.temperature_C),
                           {"units": "degC", "long_name": "prescribed temperature"})
    for name, arr, doc in (
            ("inflow", result.inflow, "cumulative amount entering at z = 0"),
            ("outflow", result.outflow, "cumulative amount leaving at z = L"),
            ("crossed", jnp.sum(result.crossed, axis=-1),
             "cumulative amount through the vessel wall")):
        for k, sp in enumerate(LUMEN):
            data[f"{name}_{sp}"] = (("time",), np.asarray(arr[:, k]),
                                    {"units": "mol", "long_name": f"{doc} ({sp})"})
    data["delivered_drug"] = (("time",), np.asarray(delivered_drug(result)),
                              {"units": "mol", "long_name": "drug in interstitium and cells"})
    data["ledger_drug_error"] = (("time",), np.asarray(result.ledger.drug_error),
                                 {"units": "1", "long_name": "relative drug ledger error"})
    coords = {"time": ("time", t, {"units": "s"}), "r": ("r", r_mm, {"units": "mm"}),
              "z": ("z", z_mm, {"units": "mm"})}
    params = {f.name: float(getattr(result.params, f.name))
              for f in dataclasses.fields(CapillaryParameters)}
    return xr.Dataset(data, coords=coords,
                      attrs={"model": "nanotransport.model.capillary (resolved Krogh cylinder)",
                             **{f"param_{k}": v for k, v in params.items()}})
