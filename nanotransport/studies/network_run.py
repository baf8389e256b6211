"""The network model of a scenario: from ``tissue.network_file`` to delivered carrier and drug.

A scenario whose ``tissue.network_file`` is set runs this pipeline (``nanotransport network``,
or ``nanotransport run`` on such a scenario; docs/networks.md):

1. the network: read from the file (``network_files.read_network``) or generated
   (``network_generator``, the ``network.*`` fields);
2. blood flow and haematocrit (``haemodynamics``: the ``network.*`` rheology, the species'
   red-cell volume);
3. the tissue: a Cartesian grid over the network's bounding box (``network.grid_spacing_um``,
   ``network.box_margin_um``); vessel walls and lymphatics of the tumor (``tissue.tumor.*``)
   in the tumor sphere and of normal tissue (``tissue.normal.*``) outside it, the tumor's
   interstitium throughout (one hydraulic conductivity and diffusivity per solute: a
   simplification); the Starling exchange of fluid between every vessel piece and its cell,
   and the interstitial pressure and Darcy flow, in one solve (``network_exchange``), the
   box's faces at the surrounding tissue's pressure;
4. the plasma concentrations of encapsulated and free drug from the systemic model
   (``pk``, the scenario's formulation, dose and patient) drive the network's inlets;
5. the tissue temperature of the scenario's ``heating.*`` (``network_heating``: one steady
   Pennes shape following the heating schedule) and the carriers' release rate k_rel(T) in
   every segment's lumen and every tissue cell (leakage at 37 °C, triggered release where
   heated);
6. delivery of carrier (encapsulated drug) and free drug into the interstitium over
   ``numerics.t_end_h`` (``network_delivery``), in steps of ``numerics.max_dt_min``, and the
   uptake of free drug by the cells of every tissue cell and its binding in their nuclei (the
   continuum model's law and the drug's ``drug.uptake_*``, ``drug.nuclear_*`` constants, with
   the tumor's cells in the tumor sphere and normal tissue's outside: ``cell_uptake``), and
   their survival by the continuum model's kill model (``surviving_fraction``); the carriers'
   breakdown in the interstitium (``formulation.interstitial_breakdown_rate_per_h``, freeing
   their payload) and their phagocytosis by tissue macrophages (the continuum model's k_M of
   each region, scaled by the carrier's size and surface) with digestion of the payload into
   free drug (``formulation.macrophage_release_rate_per_h``): ``macrophages``; for targeted
   carriers (``formulation.ligands_per_particle`` > 0) or carriers taken up by fluid-phase
   endocytosis (``formulation.pinocytosis_rate_per_h`` > 0), their binding to the receptors
   of each region's cells (``tissue.*.receptors_per_cell``), internalization and release
   inside the cells, the continuum model's law: ``receptor_binding``.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import grid as grids
from ..engine import units
from ..model import haemodynamics as hm
from ..model import network_delivery as nd
from ..model import heat, network_exchange, network_files, network_generator, network_heating
from ..model import cells, pk, segment_cells
from ..model import properties as props
from ..model import simulate, tissue
from ..model.scenario import Scenario, ScenarioError
from ..model.vessel_network import VesselNetwork

#: mean red-cell volume by species, fL (human: Pries et al. 1994; mouse: ~45-55 fL in
#: laboratory strains, e.g. Everds 2007 in The Mouse in Biomedical Research (verify))
MEAN_CELL_VOLUME_FL = {"human": 92.0, "mouse": 49.0}
SOLUTES = ("carrier", "free")
#: interstitial pressure of the tissue around the network's box, Pa: normal subcutis and
#: muscle hold about −1 to 0 mmHg (Boucher & Jain 1990 Cancer Res 50:4478 (verify)); fluid
#: that leaks from the vessels leaves the box there
SURROUNDING_PRESSURE_PA = 0.0


@dataclasses.dataclass(frozen=True)
class NetworkRun:
    """Everything a network run computed (SI arrays)."""

    scenario: Scenario
    net: VesselNetwork
    state: dict  # haemodynamics.solve
    grid: grids.Grid
    pieces: segment_cells.Pieces
    fluid: dict  # network_exchange.solve for pressure
    delivery: dict  # network_delivery.run
    plasma_times_s: np.ndarray
    plasma: np.ndarray  # (times, 2): encapsulated, free total (bound + unbound), mol/m³
    solutes: tuple
    temperature: network_heating.TissueTemperature
    seconds: dict
    cell_fraction: np.ndarray  # φ_c per tissue cell (grid shape)
    cell_density: np.ndarray  # cells per m³ of tissue, per tissue cell (grid shape)


def network_of(scenario: Scenario) -> VesselNetwork:
    """The scenario's network: its file, or the synthetic one of the ``network.*`` fields."""
    source = scenario["tissue.network_file"]
    if not source:
        raise ScenarioError("tissue.network_file is empty: this scenario has no network")
    if source == "synthetic":
        g = lambda key: scenario[f"network.{key}"]  # noqa: E731
        spec = network_generator.TumorNetworkSpec(
            box_mm=tuple(float(x) for x in g("box_mm")), spacing_um=float(g("spacing_um")),
            connectivity=float(g("connectivity")),
            capillary_diameter_um=float(g("capillary_diameter_um")),
            diameter_spread=float(g("diameter_spread")),
            tumor_radius_mm=float(g("tumor_radius_mm")),
            tumor_dilation=float(g("tumor_dilation")),
            tumor_tortuosity=float(g("tumor_tortuosity")),
            necrotic_radius_mm=float(g("core_radius_mm")), core_loss=float(g("core_loss")),
            inlet_fraction=float(g("inlet_fraction")),
            arterial_pressure_mmHg=float(g("arterial_pressure_mmHg")),
            venous_pressure_mmHg=float(g("venous_pressure_mmHg")),
            inflow_hematocrit=float(g("inflow_hematocrit")),
            feeding_diameter_um=float(g("feeding_diameter_um")), seed=int(g("seed")))
        try:
            return network_generator.generate(spec)
        except ValueError as err:
            raise ScenarioError(f"network.*: {err}") from None
    return network_files.read_network(
        source, vtp_length_unit_m=float(scenario["network.file_length_unit_um"]) * units.UM)


def rheology_of(scenario: Scenario) -> hm.Rheology:
    """The haemodynamic settings of the ``network.*`` fields and the patient's species."""
    return hm.Rheology(viscosity_law=scenario["network.viscosity_law"],
                       phase_separation=bool(scenario["network.phase_separation"]),
                       plasma_viscosity_Pa_s=float(scenario["network.plasma_viscosity_mPa_s"])
                       * 1e-3,
                       mean_cell_volume_fL=MEAN_CELL_VOLUME_FL[scenario["patient.species"]])


def tissue_grid(net: VesselNetwork, scenario: Scenario) -> grids.Grid:
    """A Cartesian grid over the network's bounding box plus ``network.box_margin_um``,
    cells of about ``network.grid_spacing_um`` (at least one per axis)."""
    h = float(scenario["network.grid_spacing_um"]) * units.UM
    margin = float(scenario["network.box_margin_um"]) * units.UM
    lo = net.node_position_m.min(axis=0) - margin
    hi = net.node_position_m.max(axis=0) + margin
    extent = np.maximum(hi - lo, h)
    shape = tuple(int(max(1, round(e / h))) for e in extent)
    cells = int(np.prod(shape))
    if cells > 4_000_000:
        raise ScenarioError(f"network.grid_spacing_um = {h / units.UM:g} gives {shape} = "
                            f"{cells} cells over the network's box; allowed up to 4e6 (coarsen "
                            "the grid)")
    return grids.cartesian3d(tuple(extent), shape, origin_m=tuple(lo))


def continuum_layout(scenario: Scenario) -> tissue.Layout:
    """The continuum model's layout of the scenario, without its maps file (the network
    tissue reads one cell per region from it, ``region_values``)."""
    return tissue.layout(scenario.replace(**{"tissue.maps_file": ""}))


def region_values(scenario: Scenario, region: str, lay=None) -> dict:
    """The interstitial and wall properties of ``region`` ("tumor" or "normal") from the
    continuum model's maps (one cell of that region in the scenario's own layout: the same
    laws and fields, docs/model.md).  Traceable in the scenario's numbers (``lay``, the
    layout of the scenario as given, then keeps the structure concrete)."""
    if lay is None:
        lay = continuum_layout(scenario)
    maps = tissue.tissue_maps(lay, scenario)
    inside = np.asarray(lay.tumor if region == "tumor" else lay.normal) > 0
    index = int(np.argmax(inside & (np.asarray(lay.necrotic) == 0)))
    pick = lambda a: jnp.ravel(jnp.asarray(a))[index]  # noqa: E731
    key = f"tissue.{region}."
    s_v = scenario[key + "vessel_surface_density_per_cm"] / units.CM
    return {"phi_e": pick(maps.phi_e), "K": pick(maps.hydraulic_k),
            "lp": pick(maps.lp_sv) / s_v,
            "p_carrier": pick(maps.ps_carrier) / s_v, "sigma_carrier": pick(maps.sigma_carrier),
            "d_carrier": pick(maps.d_carrier), "rf_carrier": pick(maps.rf_carrier),
            "p_free": pick(maps.ps_free) / s_v,
            "sigma_free": pick(maps.sigma_free), "d_free": pick(maps.d_free),
            "oncotic_offset": scenario[key + "protein_reflection_coefficient"]
            * (scenario[key + "plasma_oncotic_pressure_mmhg"]
               - scenario[key + "interstitial_oncotic_pressure_mmhg"]) * units.MMHG_PA,
            "lymph": pick(maps.lymph), "k_th": pick(maps.thermal_conductivity),
            "w_b": pick(maps.blood_heat_sink), "rho_c": pick(maps.heat_capacity),
            "phi_c": pick(maps.phi_c), "cell_density": pick(maps.cell_density),
            "fu_i": pick(maps.unbound_fraction_interstitial),
            "k_M": pick(maps.phagocytosis), "R_T": pick(maps.receptors)}


def tumor_cells(grid: grids.Grid, scenario: Scenario) -> np.ndarray:
    """Flat mask of the tissue cells in the tumor: for the synthetic network its tumor sphere
    (``network.tumor_radius_mm`` at the box's centre); for a network file, every cell (the
    file's tissue is taken as tumor)."""
    if scenario["tissue.network_file"] != "synthetic":
        return np.ones(grid.size, bool)
    centre = 0.5 * np.asarray([float(b) for b in scenario["network.box_mm"]]) * units.MM
    x, y, z = np.meshgrid(*grid.centers, indexing="ij")
    r = np.sqrt((x - centre[0])**2 + (y - centre[1])**2 + (z - centre[2])**2)
    return (r < float(scenario["network.tumor_radius_mm"]) * units.MM).ravel()


def plasma_series(scenario: Scenario, times_s: np.ndarray) -> jax.Array:
    """(times, 2): plasma encapsulated and free (bound + unbound) drug, mol/m³, at
    ``times_s`` (traceable in the scenario's numbers)."""
    params, dose = simulate.systemic_parameters(scenario)
    enc = scenario["formulation.encapsulated_fraction"]
    y = pk.simulate(params, jnp.asarray(times_s), dose,
                    scenario["dose.infusion_duration_min"] * units.MIN, enc)
    c = pk.plasma_concentrations(params, y)
    return jnp.stack([c.encapsulated, c.free_total], axis=1)


def plasma_interpolant(times_s, plasma):
    """t ↦ the two plasma concentrations (``plasma_series``) interpolated linearly at t."""
    times, table = jnp.asarray(times_s), jnp.asarray(plasma)

    def plasma_at(t):
        return jnp.stack([jnp.interp(t, times, table[:, i]) for i in range(2)])

    return plasma_at


def run(scenario: Scenario, log=lambda msg: None) -> NetworkRun:
    """The network model of ``scenario`` (module docstring); ``log`` gets progress lines."""
    jax.config.update("jax_enable_x64", True)
    seconds = {}
    t0 = time.perf_counter()
    net = network_of(scenario)
    log(f"network: {net.describe()}")
    seconds["network"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    state = hm.solve(net, rheology_of(scenario))
    seconds["haemodynamics"] = time.perf_counter() - t0
    log(f"haemodynamics: {int(state['picard_iterations'])} Picard + "
        f"{int(state['newton_iterations'])} Newton iterations, residual "
        f"{float(state['residual']):.1e} ({seconds['haemodynamics']:.1f} s)"
        + (f"; converged by continuation in the separation width through "
           f"{', '.join(f'{w:g}' for w in state['continuation_widths'])}"
           if len(state["continuation_widths"]) else ""))
    t0 = time.perf_counter()
    grid = tissue_grid(net, scenario)
    pieces = segment_cells.intersect(net, grid)
    lay = continuum_layout(scenario)
    tv, nv = region_values(scenario, "tumor", lay), region_values(scenario, "normal", lay)
    in_tumor = tumor_cells(grid, scenario)
    piece_tumor = in_tumor[pieces.cell]
    walls = wall_exchange(tv, nv, in_tumor, piece_tumor)
    fluid = coupled_fluid(net, hm.parameters(net), rheology_of(scenario), state["hematocrit"],
                          grid, pieces, walls.starling)
    fluid = {k: np.asarray(v) for k, v in fluid.items()}
    seconds["fluid"] = time.perf_counter() - t0
    log(f"tissue: grid {grid.shape} of {float(scenario['network.grid_spacing_um']):g} µm, "
        f"{len(pieces.cell)} vessel pieces ({int(piece_tumor.sum())} in the tumor); "
        f"interstitial pressure {float(np.mean(fluid['cell'])) / units.MMHG_PA:.1f} mmHg "
        "(mean)")
    solutes = delivery_solutes(scenario, tv)
    temperature = tissue_temperature(scenario, grid, in_tumor, tv, nv)
    release = tissue_release(scenario, temperature)
    uptake = cell_uptake(scenario, tv, nv, in_tumor, grid)
    phagocytes = macrophages(scenario, tv, nv, in_tumor, grid)
    binding = receptor_binding(scenario, tv, nv, in_tumor, grid)
    if temperature.source != "none":
        log(f"heating: {temperature.source}, peak tissue temperature "
            f"{peak_temperature(temperature, t_end_s(scenario)).max():.1f} °C")
    t_end = t_end_s(scenario)
    n_steps, dt = time_steps(scenario)
    save_every = _save_every(n_steps, dt)
    times = np.linspace(0.0, t_end, 4 * n_steps + 1)
    plasma = np.asarray(plasma_series(scenario, times))
    plasma_at = plasma_interpolant(times, plasma)
    t0 = time.perf_counter()
    asm = nd.assemble(net, grid, state, solutes, pieces=pieces, fluid=fluid,
                      tissue_hydraulic_conductivity=tv["K"],
                      outer_pressure_Pa=SURROUNDING_PRESSURE_PA,
                      piece_permeability=walls.permeability, piece_reflection=walls.reflection)
    delivery = nd.run(asm, plasma_at, t_end, dt, save_every=save_every, release=release,
                      cells=uptake, macrophages=phagocytes, binding=binding)
    jax.block_until_ready(delivery["tissue"])
    seconds["delivery"] = time.perf_counter() - t0
    log(f"delivery: {n_steps} steps of {dt / units.MIN:.3g} min ({seconds['delivery']:.1f} s)")
    delivery = {k: np.asarray(v) for k, v in delivery.items()}
    return NetworkRun(scenario, net, state, grid, pieces, fluid, delivery, times, plasma,
                      solutes, temperature, seconds, np.asarray(uptake.volume_fraction),
                      np.asarray(cell_density(tv, nv, in_tumor, grid)))


def delivery_solutes(scenario: Scenario, tumor_values: dict) -> tuple:
    """Carrier (encapsulated drug) and free drug with the tumor's interstitial values (their
    wall values are set per piece), free drug bound + unbound in the lumen and degraded in the
    tissue at ``drug.degradation_rate_per_h``."""
    tv = tumor_values
    return (nd.Solute("carrier", tv["p_carrier"], tv["d_carrier"], tv["phi_e"],
                      tv["sigma_carrier"], retardation=tv["rf_carrier"]),
            nd.Solute("free", tv["p_free"], tv["d_free"], tv["phi_e"], tv["sigma_free"],
                      decay_per_s=scenario["drug.degradation_rate_per_h"] / units.HOUR,
                      lumen_unbound_fraction=scenario["drug.unbound_fraction_plasma"]))


def cell_uptake(scenario: Scenario, tumor_values: dict, normal_values: dict,
                in_tumor: np.ndarray, grid: grids.Grid) -> nd.CellUptake:
    """The drug's uptake and nuclear binding (``cells.uptake_constants``) in every tissue cell:
    the tumor's cells (volume fraction, density, interstitial unbound fraction of
    ``region_values``) in the tumor, normal tissue's outside (traceable in the scenario's
    numbers)."""
    def field(key):
        return _by_region(tumor_values[key], normal_values[key], in_tumor, grid)

    return nd.CellUptake(volume_fraction=field("phi_c"), unbound_fraction=field("fu_i"),
                         **cells.uptake_constants(scenario.params, field("phi_c"),
                                                  field("cell_density")))


def macrophages(scenario: Scenario, tumor_values: dict, normal_values: dict,
                in_tumor: np.ndarray, grid: grids.Grid) -> nd.Macrophages:
    """Phagocytosis of carriers by the tissue macrophages of every tissue cell (the continuum
    model's k_M of its region, ``region_values``) and digestion of their payload at
    ``formulation.macrophage_release_rate_per_h`` (traceable in the scenario's numbers)."""
    return nd.Macrophages(
        uptake_rate=_by_region(tumor_values["k_M"], normal_values["k_M"], in_tumor, grid),
        digestion_rate=scenario["formulation.macrophage_release_rate_per_h"] / units.HOUR)


def receptor_binding(scenario: Scenario, tumor_values: dict, normal_values: dict,
                     in_tumor: np.ndarray, grid: grids.Grid) -> nd.ReceptorBinding | None:
    """Receptor binding, internalization and fluid-phase endocytosis of the carriers by the
    cells of every tissue cell (the receptors of each region's cells, ``region_values``; the
    formulation's ligands with the continuum model's avidity law,
    ``cells.effective_binding_rates``), or None for carriers that do neither (no ligands, no
    endocytosis: the same switch as the continuum model's, ``simulate.flags``).  Traceable in
    the scenario's numbers."""
    if not simulate.flags(scenario)[1]:
        return None
    s = scenario.params
    k_on, k_off = cells.effective_binding_rates(s["formulation.binding_on_rate_per_m_per_s"],
                                                s["formulation.dissociation_constant_nm"],
                                                s["formulation.ligands_per_particle"])
    per_h = 1.0 / units.HOUR
    return nd.ReceptorBinding(
        receptors=_by_region(tumor_values["R_T"], normal_values["R_T"], in_tumor, grid),
        payload_per_particle=s["formulation.drug_molecules_per_particle"],
        on_rate=k_on, off_rate=k_off,
        internalization_rate=s["formulation.internalization_rate_per_h"] * per_h,
        intracellular_release_rate=s["formulation.intracellular_release_rate_per_h"] * per_h,
        degradation_rate=s["formulation.internalized_degradation_rate_per_h"] * per_h,
        pinocytosis_rate=s["formulation.pinocytosis_rate_per_h"] * per_h)


def tissue_release(scenario: Scenario,
                   temperature: network_heating.TissueTemperature) -> nd.HeatedRelease:
    """Release k_rel(T) (``release_law``) in every tissue cell at its temperature and in every
    segment's lumen at the mean temperature of the tissue it crosses (``nd.HeatedRelease``),
    and in the interstitium also the carriers' breakdown, which frees their payload
    (``formulation.interstitial_breakdown_rate_per_h``, the continuum model's k_b)."""
    breakdown = scenario["formulation.interstitial_breakdown_rate_per_h"] / units.HOUR
    return nd.HeatedRelease(temperature.cells, release_law(scenario),
                            temperature.schedule.arterial_c, breakdown)


def _by_region(tumor_value, normal_value, in_tumor: np.ndarray, grid: grids.Grid):
    """A field of the grid's shape: the tumor's value in the tumor's cells, normal tissue's
    elsewhere."""
    return jnp.where(jnp.asarray(in_tumor).reshape(grid.shape), tumor_value, normal_value)


def cell_density(tumor_values: dict, normal_values: dict, in_tumor: np.ndarray,
                 grid: grids.Grid):
    """Cells per m³ of tissue in every tissue cell (``region_values``)."""
    return _by_region(tumor_values["cell_density"], normal_values["cell_density"], in_tumor,
                      grid)


def surviving_fraction(r: "NetworkRun") -> np.ndarray:
    """Surviving fraction of the cells of every tissue cell at the end, the continuum model's
    kill model (``cells.kill_exponent``): SF = exp(−ω ∫ n dt), n the DNA-bound drug in ng per
    10⁵ cells, ω = ``drug.kill_coefficient_per_ng_h_per_1e5cells``."""
    return np.exp(-cells.kill_exponent(
        np.asarray(r.delivery["cells"][-1, 2]), r.cell_fraction, r.cell_density,
        float(r.scenario["drug.kill_coefficient_per_ng_h_per_1e5cells"])))


def tumor_efficacy(r: "NetworkRun") -> float:
    """1 − the mean surviving fraction of the tumor's cells (weighted by cell number), as the
    continuum model's ``summary.efficacy`` (its necrotic core excluded there; here the
    network's tumor sphere holds cells throughout)."""
    survival = surviving_fraction(r)
    tumor = tumor_cells(r.grid, r.scenario).reshape(r.grid.shape)
    w = np.asarray(r.grid.volume) * r.cell_density * tumor
    return float(np.sum(w * (1.0 - survival)) / np.sum(w))


def release_law(scenario: Scenario):
    """The formulation's release law, T (°C) -> k_rel(T) (1/s) (``properties.release_rate``;
    traceable in the scenario's numbers)."""
    t_m = scenario["formulation.release_temperature_C"]
    width = scenario["formulation.release_transition_width_C"]
    leak = scenario["formulation.leak_rate_per_h"] / units.HOUR
    k_max = scenario["formulation.release_max_rate_per_s"]
    return lambda temp: props.release_rate(temp, t_m, width, leak, k_max)


def t_end_s(scenario: Scenario) -> float:
    """The run's end time, s."""
    return float(scenario["numerics.t_end_h"]) * units.HOUR


def time_steps(scenario: Scenario) -> tuple[int, float]:
    """(number of steps, step in s): equal steps of at most ``numerics.max_dt_min`` to
    ``numerics.t_end_h``."""
    t_end = t_end_s(scenario)
    n_steps = max(1, int(np.ceil(t_end / (float(scenario["numerics.max_dt_min"]) * units.MIN))))
    return n_steps, t_end / n_steps


#: heating fields that set only the schedule and amplitude of the temperature, not its shape θ:
#: traceable (``heated_temperature``), so a network design may vary them
SCHEDULE_FIELDS = ("heating.target_temperature_C", "heating.power_w",
                   "heating.heating_start_min", "heating.heating_duration_min",
                   "heating.ramp_min", "heating.cooldown_min")


@dataclasses.dataclass(frozen=True)
class HeatingShape:
    """The spatial part of a network run's tissue temperature (``network_heating``): θ per
    cell normalized to a peak of 1, its peak per unit of source (K per W for ``ultrasound``),
    and what the controller reads of it (the target region's mask, the cell volumes, the
    readout mode and the probe cell)."""

    source: str
    theta: jnp.ndarray  # grid shape, max 1 (zeros without heating)
    peak: float
    region: np.ndarray
    volume: np.ndarray
    readout: str
    probe: tuple


def heating_shape(scenario: Scenario, grid: grids.Grid, in_tumor: np.ndarray,
                  tumor_values: dict, normal_values: dict) -> HeatingShape:
    """θ of ``heating.*`` on the network's grid (``network_heating.steady_shape``): the tumor's
    k, W and ρc in its sphere, normal tissue's outside, the target region and the focus
    placed relative to the tumor centre (the box centre for the synthetic network and for a
    network file)."""
    g = lambda key: scenario[f"heating.{key}"]  # noqa: E731
    source = g("source")
    if source == "none":
        return HeatingShape(source, jnp.zeros(grid.shape), 0.0, np.zeros(grid.shape, bool),
                            np.asarray(grid.volume), "mean", (0, 0, 0))
    lo = np.asarray([f[0] for f in grid.faces])
    hi = np.asarray([f[-1] for f in grid.faces])
    centre = 0.5 * (lo + hi)
    centred = grids.cartesian3d(tuple(hi - lo), grid.shape, origin_m=tuple(lo - centre))
    tumor = in_tumor.reshape(grid.shape)
    by_cell = lambda key: np.where(tumor, tumor_values[key], normal_values[key])  # noqa: E731
    thermal = network_heating.Thermal(by_cell("k_th"), by_cell("w_b"), by_cell("rho_c"))
    region = heat.target_mask(centred, tumor, g("target_region"),
                              float(scenario["network.tumor_radius_mm"]) * units.MM,
                              float(g("target_margin_mm")) * units.MM)
    shape = network_heating.steady_shape(
        centred, thermal, source, region=region,
        focus_offset_m=float(g("focus_offset_mm")) * units.MM,
        focus_fwhm_m=float(g("focus_fwhm_mm")) * units.MM,
        relaxation_per_s=float(g("protocol_relaxation_per_s")))
    peak = float(jnp.max(shape))
    return HeatingShape(source, shape / peak, peak, region, np.asarray(centred.volume),
                        g("control_readout"),
                        heat.probe_index(centred, float(g("probe_offset_mm")) * units.MM))


def heated_temperature(scenario: Scenario, shape: HeatingShape
                       ) -> network_heating.TissueTemperature:
    """The tissue temperature T_a + a(t) θ of ``heating.*`` with the shape ``shape``: the
    schedule and the amplitude's scale from the scenario's numbers (``SCHEDULE_FIELDS``,
    traceable): P · peak for ``ultrasound``, else (T_set − T_a)/y with y the readout of
    (T_set − T_a) θ (read in °C at the plateau's rise: the soft T90's smoothing is in °C)."""
    g = lambda key: scenario[f"heating.{key}"]  # noqa: E731
    minute = units.MIN
    schedule = network_heating.Schedule(
        start_s=g("heating_start_min") * minute, duration_s=g("heating_duration_min") * minute,
        ramp_s=g("ramp_min") * minute, cooldown_s=g("cooldown_min") * minute,
        target_c=g("target_temperature_C"), arterial_c=float(g("arterial_temperature_C")))
    if shape.source == "none":
        return network_heating.TissueTemperature(shape.theta, "none", schedule, 0.0)
    if shape.source == "ultrasound":
        return network_heating.TissueTemperature(shape.theta, shape.source, schedule,
                                                 g("power_w") * shape.peak)
    rise = schedule.target_c - schedule.arterial_c
    y = network_heating.readout(rise * shape.theta, shape.region, shape.volume, shape.readout,
                                shape.probe)
    return network_heating.TissueTemperature(shape.theta, shape.source, schedule, rise / y)


def tissue_temperature(scenario: Scenario, grid: grids.Grid, in_tumor: np.ndarray,
                       tumor_values: dict, normal_values: dict
                       ) -> network_heating.TissueTemperature:
    """The tissue temperature of ``heating.*`` on the network's grid (``heating_shape``,
    ``heated_temperature``)."""
    return heated_temperature(scenario, heating_shape(scenario, grid, in_tumor, tumor_values,
                                                      normal_values))


def peak_temperature(temperature: network_heating.TissueTemperature, t_end: float):
    """Per cell the highest temperature over [0, t_end] (°C), from the amplitude on a
    10-s grid of times."""
    times = jnp.linspace(0.0, t_end, max(2, int(t_end / 10.0) + 1))
    return np.asarray(temperature.schedule.arterial_c + jnp.max(
        temperature.amplitude(times)) * temperature.shape)


def _save_every(n_steps: int, dt: float) -> int:
    """Steps between saved fields: hourly where the steps divide an hour, else every step
    divisor closest to it."""
    per_hour = max(1, int(round(units.HOUR / dt)))
    return max(d for d in range(1, per_hour + 1) if n_steps % d == 0)


@dataclasses.dataclass(frozen=True)
class Walls:
    """Per vessel piece: the Starling exchange, and the solutes' (carrier, free drug) wall
    permeability and reflection, (pieces, 2)."""

    starling: network_exchange.TissueExchange
    permeability: jax.Array
    reflection: jax.Array


def wall_exchange(tumor_values: dict, normal_values: dict, in_tumor, piece_tumor,
                  wall_scale=1.0) -> Walls:
    """The vessel walls of the tumor's pieces and of normal tissue's (``region_values``),
    the tumor's interstitial conductivity throughout, lymphatics by cell; ``wall_scale`` (a
    number or one per piece) multiplies L_p and both permeabilities (``network_design``)."""
    tv, nv = tumor_values, normal_values

    def by_piece(key):
        return jnp.where(piece_tumor, tv[key], nv[key])

    starling = network_exchange.TissueExchange(
        conductivity=tv["K"], wall_per_area=by_piece("lp") * wall_scale,
        sink_rate=jnp.where(in_tumor, tv["lymph"], nv["lymph"]),
        offset=by_piece("oncotic_offset"), outer="value", outer_value=SURROUNDING_PRESSURE_PA)
    permeability = jnp.stack([by_piece("p_carrier"), by_piece("p_free")], axis=1)
    reflection = jnp.stack([by_piece("sigma_carrier"), by_piece("sigma_free")], axis=1)
    return Walls(starling, permeability * jnp.reshape(wall_scale, (-1, 1)), reflection)


def coupled_fluid(net: VesselNetwork, params: dict, rheology: hm.Rheology, hematocrit, grid,
                  pieces, starling: network_exchange.TissueExchange) -> dict:
    """The Starling solve with the network's own flow conductances at ``hematocrit``: blood
    pressure in the vessels and interstitial pressure in the tissue together (two-way;
    traceable in ``params``, ``hematocrit`` and ``starling``)."""
    topo = hm.Topology.of(net)
    g, _ = hm.conductance(params, rheology, jnp.asarray(hematocrit))
    fixed, pressure, injection = hm.node_conditions(topo, params)
    return network_exchange.solve(grid, pieces, net.segment_nodes, net.n_nodes,
                                  params["radius_m"], starling, segment_conductance=g,
                                  node_fixed=fixed, node_value=pressure,
                                  node_injection=injection)


def summary(r: NetworkRun) -> dict:
    """JSON-ready numbers of a run (units in the names)."""
    q = np.abs(r.state["flow_m3_per_s"])
    inflow = float(np.sum(np.maximum(r.state["external_inflow_m3_per_s"], 0.0)))
    leak = float(np.sum(r.fluid["piece_flux"]))
    tumor_mean = r.delivery["tissue_mean"]
    bound, internalized = carriers_on_cells(r)["mean"].T
    # exchangeable + DNA-bound + payload of internalized carriers (the continuum model's
    # intracellular drug, ``transport.intracellular_per_tissue_volume``)
    in_cells = r.delivery["cells_mean"].sum(axis=1) + internalized
    step_h = r.delivery["step_times_s"] / units.HOUR
    dt_h = np.diff(np.concatenate([[0.0], step_h]))
    mw = units.DOXORUBICIN_MOLAR_MASS
    return {
        "segments": int(r.net.n_segments), "nodes": int(r.net.n_nodes),
        "tissue_grid": list(r.grid.shape),
        "blood_inflow_nl_per_min": inflow / network_files.NL_PER_MIN,
        "median_segment_flow_nl_per_min": float(np.median(q)) / network_files.NL_PER_MIN,
        "segments_below_1pct_median_flow": int(np.sum(q < 0.01 * np.median(q))),
        "mean_discharge_hematocrit": float(np.average(r.state["hematocrit"], weights=q)),
        "haemodynamics_iterations": [int(r.state["picard_iterations"]),
                                     int(r.state["newton_iterations"])],
        "haemodynamics_residual": float(r.state["residual"]),
        "haemodynamics_continuation_widths": [float(w) for w in
                                              r.state["continuation_widths"]],
        "fluid_leak_fraction_of_inflow": leak / inflow,
        "mean_interstitial_pressure_mmHg": float(np.mean(r.fluid["cell"])) / units.MMHG_PA,
        "max_interstitial_pressure_mmHg": float(np.max(r.fluid["cell"])) / units.MMHG_PA,
        "tissue_auc_carrier_ug_h_per_ml": float(np.sum(tumor_mean[:, 0] * dt_h)) * mw,
        "tissue_auc_free_ug_h_per_ml": float(np.sum(tumor_mean[:, 1] * dt_h)) * mw,
        "tissue_final_carrier_ug_per_ml": float(tumor_mean[-1, 0]) * mw,
        "tissue_final_free_ug_per_ml": float(tumor_mean[-1, 1]) * mw,
        "tissue_auc_intracellular_ug_h_per_ml": float(np.sum(in_cells * dt_h)) * mw,
        "tissue_final_intracellular_ug_per_ml": float(in_cells[-1]) * mw,
        "tissue_final_nuclear_ug_per_ml": float(r.delivery["cells_mean"][-1, 1]) * mw,
        "tissue_final_macrophage_ug_per_ml": float(r.delivery["macrophages_mean"][-1]) * mw,
        "tissue_final_bound_ug_per_ml": float(bound[-1]) * mw,
        "tissue_final_internalized_ug_per_ml": float(internalized[-1]) * mw,
        "tumor_efficacy": tumor_efficacy(r),
        "heating_source": r.temperature.source,
        "peak_tissue_temperature_C": float(np.max(peak_temperature(
            r.temperature, float(r.delivery["step_times_s"][-1])))),
        "peak_tumor_mean_temperature_C": float(np.max(tumor_mean_temperature(r))),
        "seconds": {k: round(v, 2) for k, v in r.seconds.items()},
    }


def carriers_on_cells(r: NetworkRun) -> dict:
    """The payload of receptor-bound and of internalized carriers (``receptor_binding``), per
    tissue volume, mol/m³: ``fields`` (saved times, 2, *grid.shape) and ``mean`` (steps, 2);
    zeros for carriers that neither bind nor are endocytosed."""
    d = r.delivery
    if "binding" in d:
        return {"fields": d["binding"][:, [1, 3]], "mean": d["binding_mean"]}
    saves = d["tissue"].shape[0]
    return {"fields": np.zeros((saves, 2) + tuple(r.grid.shape)),
            "mean": np.zeros((len(d["step_times_s"]), 2))}


def tumor_mean_temperature(r: NetworkRun) -> np.ndarray:
    """Volume-weighted mean temperature of the tumor's cells at each step's end, °C."""
    tumor = tumor_cells(r.grid, r.scenario).reshape(r.grid.shape)
    weights = np.asarray(r.grid.volume) * tumor
    shape_mean = float(np.sum(weights * np.asarray(r.temperature.shape)) / np.sum(weights))
    amplitude = np.asarray(r.temperature.amplitude(jnp.asarray(r.delivery["step_times_s"])))
    return r.temperature.schedule.arterial_c + amplitude * shape_mean


def to_dataset(r: NetworkRun):
    """An xarray Dataset of the run: segments, nodes, the tissue fields at the saved times,
    the tissue means per step and the plasma inputs (units in attributes)."""
    import xarray as xr

    x, y, z = r.grid.centers
    mw = units.DOXORUBICIN_MOLAR_MASS
    seg, node = ("segment",), ("node",)
    tissue_fields = r.delivery["tissue"] * mw  # (saves, ns, nx, ny, nz) µg/mL
    on_cells = carriers_on_cells(r)
    bound, internalized = on_cells["fields"][:, 0] * mw, on_cells["fields"][:, 1] * mw
    data = {
        "segment_nodes": (("segment", "end"), r.net.segment_nodes),
        "radius_um": (seg, r.net.segment_radius_m / units.UM),
        "length_um": (seg, r.net.segment_length_m / units.UM),
        "flow_nl_per_min": (seg, r.state["flow_m3_per_s"] / network_files.NL_PER_MIN),
        "hematocrit": (seg, r.state["hematocrit"]),
        "viscosity_mPa_s": (seg, r.state["viscosity_Pa_s"] * 1e3),
        "wall_leak_nl_per_min": (seg, np.bincount(
            r.pieces.segment, r.fluid["piece_flux"], r.net.n_segments)
            / network_files.NL_PER_MIN),
        "position_um": (("node", "xyz"), r.net.node_position_m / units.UM),
        "blood_pressure_mmHg": (node, r.state["pressure_Pa"] / units.MMHG_PA),
        "interstitial_pressure_mmHg": (("x", "y", "z"), r.fluid["cell"] / units.MMHG_PA),
        "carrier_ug_per_ml": (("time", "x", "y", "z"), tissue_fields[:, 0]),
        "free_drug_ug_per_ml": (("time", "x", "y", "z"), tissue_fields[:, 1]),
        "tissue_mean_carrier_ug_per_ml": (("step",), r.delivery["tissue_mean"][:, 0] * mw),
        "tissue_mean_free_ug_per_ml": (("step",), r.delivery["tissue_mean"][:, 1] * mw),
        "intracellular_ug_per_ml": (("time", "x", "y", "z"),
                                    r.delivery["cells"][:, :2].sum(axis=1) * r.cell_fraction
                                    * mw + internalized),
        "nuclear_ug_per_ml": (("time", "x", "y", "z"),
                              r.delivery["cells"][:, 1] * r.cell_fraction * mw),
        "tissue_mean_intracellular_ug_per_ml": (("step",), (
            r.delivery["cells_mean"].sum(axis=1) + on_cells["mean"][:, 1]) * mw),
        "tissue_mean_nuclear_ug_per_ml": (("step",), r.delivery["cells_mean"][:, 1] * mw),
        "macrophage_ug_per_ml": (("time", "x", "y", "z"), r.delivery["macrophages"] * mw),
        "tissue_mean_macrophage_ug_per_ml": (("step",), r.delivery["macrophages_mean"] * mw),
        "bound_payload_ug_per_ml": (("time", "x", "y", "z"), bound),
        "internalized_payload_ug_per_ml": (("time", "x", "y", "z"), internalized),
        "tissue_mean_bound_payload_ug_per_ml": (("step",), on_cells["mean"][:, 0] * mw),
        "tissue_mean_internalized_payload_ug_per_ml": (("step",), on_cells["mean"][:, 1] * mw),
        "plasma_encapsulated_ug_per_ml": (("plasma_time",), r.plasma[:, 0] * mw),
        "plasma_free_total_ug_per_ml": (("plasma_time",), r.plasma[:, 1] * mw),
        "plasma_free_unbound_ug_per_ml": (("plasma_time",), r.plasma[:, 1] * mw
                                          * float(r.solutes[1].lumen_unbound_fraction)),
        "surviving_fraction": (("x", "y", "z"), surviving_fraction(r)),
        "peak_temperature_C": (("x", "y", "z"), peak_temperature(
            r.temperature, float(r.delivery["step_times_s"][-1]))),
        "tumor_mean_temperature_C": (("step",), tumor_mean_temperature(r)),
    }
    coords = {"x": x / units.UM, "y": y / units.UM, "z": z / units.UM,
              "time": r.delivery["times_s"] / units.HOUR,
              "step": r.delivery["step_times_s"] / units.HOUR,
              "plasma_time": r.plasma_times_s / units.HOUR}
    ds = xr.Dataset(data, coords=coords)
    for name in ("x", "y", "z"):
        ds[name].attrs["units"] = "µm"
    for name in ("time", "step", "plasma_time"):
        ds[name].attrs["units"] = "h"
    ds.attrs.update({"scenario": r.scenario.name, "network": r.net.source,
                     "model": "nanotransport network model (docs/networks.md)",
                     "tissue_fields": "carrier and free drug per interstitial volume (µg/mL of "
                                      "interstitial fluid); intracellular (exchangeable + "
                                      "DNA-bound + payload of internalized carriers) and "
                                      "nuclear (DNA-bound) per tissue volume; macrophage "
                                      "(payload of phagocytosed carriers), bound payload "
                                      "(receptor-bound carriers') and internalized payload "
                                      "per tissue volume",
                     "tissue_means": "per tissue volume"})
    return ds
