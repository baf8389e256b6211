"""Tissue: the grid and the per-cell parameter maps (SI) of a scenario (docs/model.md §1, §4, §5).

The default geometry is a spherical tumor of radius R (optionally with an avascular necrotic
core) inside a shell of normal tissue, on a 1D spherical grid that is finer at the margin.
Every cell holds three phases with volume fractions φ_v (plasma in vessels), φ_e (interstitium)
and φ_c = 1 − φ_v − φ_e (cells).  Region parameters are blended into maps with the static
region masks, so every map is a smooth (linear) function of the scenario's numbers.

Vessel wall: two paths in parallel (docs/model.md §5).  One log-normal pore population per
tissue (median r_pore, log-sd s; ``properties.lognormal_pore_average``: in tumors the rare open
gaps) and the endothelial junctions (``JUNCTION_PORES``, 5 nm), which take the share 1 − f of the
reference filtration (``large_pore_flow_fraction`` f).  For a carrier of diameter d,
    P = (γ/L)·⟨H(λ)⟩·D_0(d),   λ = d/(2 r_pore)
    L_p = L_p,ref · [(1 − f) + f ρ],   ρ = ⟨r²⟩/⟨r²⟩_ref = (r_pore/r_ref)² exp(2 s² − 2 s_ref²)
    σ = q (1 − ⟨r² W⟩/⟨r²⟩)_pores + (1 − q)(1 − ⟨r² W⟩/⟨r²⟩)_junctions,   q = f ρ/[(1 − f) + f ρ]
with γ/L the diffusive pore area per wall thickness (``carrier_permeability_scale_per_m``) and
L_p,ref the hydraulic conductivity of the region's reference pores (``REFERENCE_PORES``: the
defaults, so default pressures are those of Baxter & Jain 1989).  The tumor's f = 0.1 follows
from Baxter & Jain's protein reflection coefficients (normal-like junctions, σ_0 0.91, plus open
gaps give the tumor's 0.82), so most filtered fluid cannot carry a 90-nm carrier (σ ≈ 0.9).
Shrinking the pores (vessel normalization) lowers the gaps' L_p and the carriers' convection.
The hydraulic and diffusive pore areas are calibrated separately, each from its own data
(documented in docs/model.md §5).
Blood flow: ``perfusion_ml_per_ml_min`` is *blood* flow w_b; the vessel phase exchanges with
*plasma* flow (1 − Hct)·w_b, and the Pennes sink is w_b ρ_b c_b from the same map.
Interstitial fluid carries plasma proteins at the ratio of the oncotic pressures π_i/π_v
(van 't Hoff: oncotic pressure ∝ protein concentration; tumor interstitial fluid is close to
plasma, Stohrer et al. 2000 Cancer Res 60:4251), so the unbound fraction of interstitial drug is
f_u,i = 1/(1 + (1/f_u,p − 1)·π_i/π_v).
Macrophages: phagocytosis of interstitial carriers k_M = k_M,ref · g(d, surface)/g(90 nm, PEG)
with g the MPS size-and-surface law of the systemic clearance (``properties.mps_uptake_factor``).
Interstitium: D_eff = D_0(d)·h_matrix(d) (Ogston fibre matrix), retardation R_F ≤ 1.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import grid as grids
from . import properties as props
from ..engine import units
from .scenario import MapsFile, Scenario, ScenarioError

AVOGADRO = 6.02214076e23  # 1/mol
#: (median radius nm, log-sd) of the pores whose hydraulic conductivity the scenario's L_p is:
#: the schema defaults of each region (Baxter & Jain's L_p belongs to these vessels).
REFERENCE_PORES = {"tumor": (400.0, 0.5), "normal": (5.0, 0.2)}
#: (median radius nm, log-sd) of endothelial junctions, the small-pore path of every vessel wall
#: (continuous capillaries' small pores, ~4-5 nm: Rippe & Haraldsson 1994 Physiol Rev 74:163).
JUNCTION_PORES = (5.0, 0.2)
#: ρ_b c_b of blood, J/(m³·K): 1050 kg/m³ × 3617 J/(kg·K) (IT'IS tissue database, blood).
BLOOD_HEAT_CAPACITY_J_PER_M3_K = 1050.0 * 3617.0
REFERENCE_DIAMETER_NM = 90.0  # carrier size at which the macrophage uptake rates are given


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """Static structure of a scenario's tissue: grid, region masks and map multipliers (numpy).

    ``multipliers`` maps a tissue field name (e.g. ``vessel_surface_density_per_cm``) to a
    per-cell factor read from ``tissue.maps_file``; the field's region value is multiplied by it.
    """

    grid: grids.Grid
    tumor: np.ndarray  # 1.0 in tumor cells (necrotic included)
    necrotic: np.ndarray  # 1.0 in the necrotic core
    normal: np.ndarray  # 1.0 in normal tissue
    multipliers: tuple = ()  # ((field, array), ...)
    source: str = ""  # maps file, part of the identity

    def __hash__(self):
        return hash((self.grid, self.source))

    def __eq__(self, other):
        return (isinstance(other, Layout) and self.grid == other.grid
                and self.source == other.source and np.array_equal(self.tumor, other.tumor)
                and np.array_equal(self.necrotic, other.necrotic))


MAP_FIELDS = ("vascular_fraction", "interstitial_fraction", "vessel_surface_density_per_cm",
              "pore_radius_nm", "vessel_hydraulic_conductivity_cm_per_mmhg_s",
              "interstitial_hydraulic_conductivity_cm2_per_mmhg_s", "perfusion_ml_per_ml_min",
              "fibre_volume_fraction", "cell_density_per_ml")


def layout(scenario: Scenario) -> Layout:
    """Grid, region masks and map multipliers; static (uses the concrete geometry fields).

    Geometries: ``sphere`` (1D radial, finer at the margin, faces on the margin and necrotic
    radius), ``cartesian2d`` (square of side 2(R + margin) around a disk-shaped tumor, per metre
    of depth), ``axisymmetric`` (r ∈ [0, R + margin], z ∈ [−(R + margin), R + margin], a
    spherical tumor at the origin), ``cartesian3d`` (cube around a spherical tumor).
    ``numerics.cells`` is the number of cells along each axis (z has twice as many in the
    axisymmetric grid).
    """
    radius = float(scenario["tumor.radius_mm"]) * units.MM
    margin = float(scenario["tumor.margin_mm"]) * units.MM
    necrotic_r = float(scenario["tumor.necrotic_radius_mm"]) * units.MM
    n = int(scenario["numerics.cells"])
    geometry = scenario["tumor.geometry"]
    extent = radius + margin
    if geometry == "sphere":
        ratio = float(scenario["numerics.margin_refinement"])
        g = grids.sphere(extent, n, refine_at_m=radius, refine_ratio=ratio, grading="geometric",
                         interfaces_m=(radius,) + ((necrotic_r,) if necrotic_r > 0 else ()))
    elif geometry == "axisymmetric":
        g = grids.Grid("axisymmetric", (grids.axis_faces(extent, n),
                                        grids.axis_faces(2 * extent, 2 * n, start_m=-extent)))
    else:
        ndim = 2 if geometry == "cartesian2d" else 3
        g = grids.Grid(geometry, tuple(grids.axis_faces(2 * extent, n, start_m=-extent)
                                       for _ in range(ndim)))
    dist = np.sqrt(sum(x**2 for x in g.mesh()))
    tumor = (dist < radius).astype(float)
    necrotic = (dist < necrotic_r).astype(float)
    multipliers = ()
    source = scenario["tissue.maps_file"]
    if source:
        if scenario.maps is None or scenario.maps.source != source:
            raise _maps_error(source, "was not read: load the scenario with scenario.load "
                                      "(which reads it: scenario.read_tissue_maps)")
        multipliers, tumor, necrotic = _apply_maps(scenario.maps, g, tumor, necrotic, scenario)
    return Layout(g, tumor, necrotic, 1.0 - tumor, multipliers, source)


_NECROTIC_SET = ("vascular_fraction", "vessel_surface_density_per_cm", "perfusion_ml_per_ml_min")


def _maps_error(path: str, msg: str) -> ScenarioError:
    return ScenarioError(f"tissue.maps_file {path!r}: {msg}")


def _apply_maps(maps: MapsFile, g: grids.Grid, tumor, necrotic,
                scenario: Scenario | None = None):
    """Per-cell multipliers (and optionally a ``region`` label: 0 tumor, 1 normal, 2 necrotic)
    from the arrays of a maps file, which must have the grid's shape.

    Checked (ScenarioError naming the map, the cell index, the value and what is allowed):
    each variable's shape, coordinates named like the grid's axes equal to its cell centres
    (mm), finite values, multipliers >= 0, and, for concrete scenario values, every resulting
    field inside its schema range (``tissue.<region>.<field>`` lo/hi) and a cell fraction
    1 − φ_v − φ_e above 0.01 (``check_map_values``).  The file itself (a local path, readable
    netCDF, numeric variables) is checked where it is read, ``scenario.read_tissue_maps``."""
    path = maps.source
    _check_map_coords(path, dict(maps.coords), g)
    multipliers = []
    for name, arr in maps.variables:
        if arr.shape != g.shape:
            raise _maps_error(path, f"map {name!r} has shape {arr.shape}; the grid "
                                    f"({g.geometry}, numerics.cells) needs {g.shape}")
        bad = ~np.isfinite(arr)
        if bad.any():
            raise _maps_error(path, f"map {name!r} is {arr[bad][0]} at cell {_cell(bad)}; "
                                    "allowed: finite numbers")
        if name == "region":
            bad = ~np.isin(arr, (0, 1, 2))
            if bad.any():
                raise _maps_error(path, f"map 'region' is {arr[bad][0]:g} at cell {_cell(bad)}; "
                                        "allowed: 0 (tumor), 1 (normal) or 2 (necrotic)")
            tumor = (arr != 1).astype(float)
            necrotic = (arr == 2).astype(float)
        elif name in MAP_FIELDS:
            bad = arr < 0
            if bad.any():
                raise _maps_error(path, f"multiplier map {name!r} is {arr[bad][0]:g} at cell "
                                        f"{_cell(bad)}; allowed: >= 0")
            multipliers.append((name, arr))
        else:
            raise _maps_error(path, f"unknown map {name!r}; allowed: 'region' or multipliers of "
                                    f"{', '.join(MAP_FIELDS)}")
    if scenario is not None:
        check_map_values(path, tuple(multipliers), tumor, necrotic, scenario.params)
    return tuple(multipliers), tumor, necrotic


def _cell(mask: np.ndarray) -> tuple:
    """Index of the first True cell (a tuple, one entry per grid axis)."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _check_map_coords(path: str, coords: dict, g: grids.Grid) -> None:
    """Coordinates named like the grid's axes must be its cell centres (mm, as results.nc)."""
    for a, name in enumerate(g.axis_names):
        if name not in coords:
            continue
        got = np.asarray(coords[name], dtype=float).reshape(-1)
        want = np.asarray(g.centers[a]) / units.MM
        if got.shape != want.shape:
            raise _maps_error(path, f"coordinate {name!r} has {got.size} values; the grid has "
                                    f"{want.size} cells along {name}")
        off = ~np.isclose(got, want, rtol=1e-6, atol=1e-9)
        if off.any():
            i = int(np.argmax(off))
            raise _maps_error(path, f"coordinate {name!r} is {got[i]:.6g} mm at index {i}; the "
                                    f"grid's cell centre there is {want[i]:.6g} mm (maps must be "
                                    "made on this scenario's grid)")


def _concrete(value):
    """``value`` as a float array, or None for a traced value (inside jit/vmap/grad)."""
    try:
        return np.asarray(value, dtype=float)
    except Exception:  # noqa: BLE001 - jax tracers refuse conversion in several ways
        return None


def check_map_values(path: str, multipliers: tuple, tumor, necrotic, params) -> None:
    """Every map-multiplied field inside its schema range and φ_v + φ_e < 0.99 in every cell.

    ``params`` maps dotted paths to numbers or arrays of values (a scan's points: the extremes
    are checked; multipliers are >= 0, so value × multiplier is monotone).  Traced values are
    skipped (checked where the values are concrete: the command line, ``scan.check_points``)."""
    from .schema import FIELDS_BY_PATH

    maps = dict(multipliers)
    if not maps:
        return
    tumor_cells = np.asarray(tumor) > 0
    regions = (("tumor", tumor_cells), ("normal", ~tumor_cells))
    live = np.asarray(necrotic) <= 0
    phi_hi = np.zeros(np.shape(tumor))
    for key in ("vascular_fraction", "interstitial_fraction"):  # the largest φ_v + φ_e
        for region, cells in regions:
            v = _concrete(params.get(f"tissue.{region}.{key}"))
            if v is None:
                return
            phi_hi = np.where(cells, phi_hi + v.max() * maps.get(key, 1.0), phi_hi)
    for key, factor in maps.items():
        for region, cells in regions:
            field = FIELDS_BY_PATH[f"tissue.{region}.{key}"]
            v = _concrete(params.get(field.path))
            if v is None:
                return
            where = cells & (live if key in _NECROTIC_SET else True)
            lo_val, hi_val = v.min() * factor, v.max() * factor
            bad = where & (((field.lo is not None) & (lo_val < (field.lo or 0.0)))
                           | ((field.hi is not None) & (hi_val > (field.hi or 0.0))))
            if bad.any():
                i = _cell(bad)
                eff = hi_val[i] if field.hi is not None and hi_val[i] > field.hi else lo_val[i]
                raise _maps_error(path, f"map {key!r} = {factor[i]:g} at cell {i} ({region}) "
                                        f"makes {field.path} = {eff:g}; allowed: "
                                        f"{field.allowed()}" + (f" {field.unit}" if field.unit != "1" else ""))
    phi_hi = np.where(live, phi_hi, 0.0)
    bad = phi_hi >= 0.99
    if bad.any():
        i = _cell(bad)
        raise _maps_error(path, f"maps 'vascular_fraction'/'interstitial_fraction' give "
                                f"φ_v + φ_e = {phi_hi[i]:g} at cell {i}, so the cell fraction "
                                f"1 − φ_v − φ_e = {1 - phi_hi[i]:g}; allowed: φ_v + φ_e < 0.99 "
                                "(cells take the rest)")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TissueMaps:
    """Per-cell parameters, SI, each of shape grid.shape (a pytree)."""

    phi_v: jax.Array  # plasma volume fraction
    phi_e: jax.Array  # interstitial volume fraction
    phi_c: jax.Array  # cell volume fraction
    lp_sv: jax.Array  # L_p S_v, 1/(Pa·s)
    p_eff: jax.Array  # p_v − σ_0 (π_v − π_i), Pa
    hydraulic_k: jax.Array  # K, m²/(Pa·s)
    lymph: jax.Array  # L_pL S_L, 1/(Pa·s)
    perfusion: jax.Array  # (1 − Hct) w_b, 1/s (plasma flow per tissue volume)
    ps_carrier: jax.Array  # P S_v of the carrier, 1/s
    sigma_carrier: jax.Array  # reflection coefficient of the carrier
    d_carrier: jax.Array  # interstitial diffusivity of the carrier, m²/s
    rf_carrier: jax.Array  # convective retardation of the carrier
    ps_free: jax.Array  # P S_v of the free drug, 1/s
    sigma_free: jax.Array
    d_free: jax.Array  # interstitial diffusivity of the free drug, m²/s
    cell_density: jax.Array  # cells per m³ of tissue
    viable_tumor: jax.Array  # 1 in viable tumor cells (weights of the efficacy mean)
    receptors: jax.Array  # R_T, mol/m³ of tissue
    heat_capacity: jax.Array  # ρc, J/(m³·K)
    thermal_conductivity: jax.Array  # k, W/(m·K)
    blood_heat_sink: jax.Array  # ω_b ρ_b c_b, W/(m³·K)
    unbound_fraction_interstitial: jax.Array  # f_u,i of interstitial drug
    phagocytosis: jax.Array  # k_M of the carrier by tissue macrophages, 1/s


def _blend(lay: Layout, scenario: Scenario, key: str, necrotic_value=None):
    """Map of a per-region field: tumor value in tumor cells, normal value elsewhere."""
    t = scenario.params[f"tissue.tumor.{key}"]
    n = scenario.params[f"tissue.normal.{key}"]
    out = t * lay.tumor + n * lay.normal
    for name, factor in lay.multipliers:
        if name == key:
            out = out * factor
    if necrotic_value is not None:
        out = jnp.where(lay.necrotic > 0, necrotic_value, out)
    return out


def tissue_maps(lay: Layout, scenario: Scenario) -> TissueMaps:
    """Per-cell SI parameters of the tissue for the scenario's carrier and drug."""
    s = scenario.params
    b = lambda key, nec=None: _blend(lay, scenario, key, nec)  # noqa: E731
    mmhg = units.MMHG_PA
    phi_v = b("vascular_fraction", 1e-3)  # necrotic core: (almost) no plasma, no exchange
    phi_e = b("interstitial_fraction")
    s_v = b("vessel_surface_density_per_cm", 0.0) / units.CM
    pore_r, pore_s = b("pore_radius_nm"), b("pore_radius_log_sd")
    ref_r = sum(REFERENCE_PORES[k][0] * m for k, m in (("tumor", lay.tumor), ("normal", lay.normal)))
    ref_s = sum(REFERENCE_PORES[k][1] * m for k, m in (("tumor", lay.tumor), ("normal", lay.normal)))
    pore_flow = (pore_r / ref_r) ** 2 * jnp.exp(2.0 * (pore_s**2 - ref_s**2))  # ⟨r²⟩/⟨r²⟩_ref
    f_large = b("large_pore_flow_fraction")
    path_flow = (1.0 - f_large) + f_large * pore_flow  # L_p / L_p,ref
    lp = b("vessel_hydraulic_conductivity_cm_per_mmhg_s") * path_flow * units.CM / mmhg
    large_share = f_large * pore_flow / path_flow  # share of the filtration through the pores
    p_eff = (b("vascular_pressure_mmhg") - b("protein_reflection_coefficient")
             * (b("plasma_oncotic_pressure_mmhg") - b("interstitial_oncotic_pressure_mmhg"))
             ) * mmhg
    k_hyd = b("interstitial_hydraulic_conductivity_cm2_per_mmhg_s") * units.CM**2 / mmhg
    lymph = b("lymphatic_filtration_per_mmhg_s") / mmhg
    blood_flow = b("perfusion_ml_per_ml_min", 0.0) / units.MIN
    perfusion = (1.0 - s["patient.haematocrit"]) * blood_flow
    fu_p = s["drug.unbound_fraction_plasma"]
    protein_ratio = b("interstitial_oncotic_pressure_mmhg") / b("plasma_oncotic_pressure_mmhg")
    fu_i = 1.0 / (1.0 + (1.0 / fu_p - 1.0) * protein_ratio)

    d_carrier_m = s["formulation.diameter_nm"] * units.NM
    wall = props.lognormal_pore_average(0.5 * d_carrier_m, pore_r * units.NM, pore_s)
    junction = props.lognormal_pore_average(0.5 * d_carrier_m, JUNCTION_PORES[0] * units.NM,
                                            JUNCTION_PORES[1])
    sigma_carrier = (large_share * wall.reflection
                     + (1.0 - large_share) * junction.reflection)  # flow-weighted, both paths
    d0 = props.stokes_einstein_diffusivity(d_carrier_m)
    ps_carrier = b("carrier_permeability_scale_per_m") * wall.diffusive * d0 * s_v
    fibre, fibre_r = b("fibre_volume_fraction"), b("fibre_radius_nm") * units.NM
    d_carrier = d0 * props.matrix_diffusive_hindrance(d_carrier_m, fibre, fibre_r)
    rf = props.retardation_factor(d_carrier_m, fibre, fibre_r)

    d_drug_m = s["drug.molecular_diameter_nm"] * units.NM
    d_free = s["drug.free_diffusivity_m2_per_s"] * props.matrix_diffusive_hindrance(
        d_drug_m, fibre, fibre_r)
    ps_free = s["drug.vessel_permeability_um_per_s"] * units.UM * s_v
    sigma_free = s["drug.reflection_coefficient"] + 0.0 * s_v
    cells = b("cell_density_per_ml") / units.ML
    viable = lay.tumor * (1.0 - lay.necrotic)
    law = lambda d, g: props.mps_uptake_factor(d, s["patient.mps_threshold_nm"],  # noqa: E731
                                               s["patient.mps_exponent"], g)
    size_surface = (law(s["formulation.diameter_nm"], s["formulation.surface_factor"])
                    / law(REFERENCE_DIAMETER_NM, 1.0))
    phagocytosis = b("macrophage_uptake_per_h", 0.0) / units.HOUR * size_surface
    return TissueMaps(phi_v=phi_v, phi_e=phi_e, phi_c=1.0 - phi_v - phi_e, lp_sv=lp * s_v,
                      p_eff=p_eff, hydraulic_k=k_hyd, lymph=lymph, perfusion=perfusion,
                      ps_carrier=ps_carrier, sigma_carrier=sigma_carrier, d_carrier=d_carrier,
                      rf_carrier=rf, ps_free=ps_free, sigma_free=sigma_free, d_free=d_free,
                      cell_density=cells, viable_tumor=jnp.asarray(viable),
                      receptors=b("receptors_per_cell") * cells / AVOGADRO,
                      heat_capacity=b("density_kg_per_m3") * b("heat_capacity_j_per_kg_k"),
                      thermal_conductivity=b("thermal_conductivity_w_per_m_k"),
                      blood_heat_sink=blood_flow * BLOOD_HEAT_CAPACITY_J_PER_M3_K,
                      unbound_fraction_interstitial=fu_i, phagocytosis=phagocytosis)
