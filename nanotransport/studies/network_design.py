"""Design by gradient on a vessel network: how delivery into the tumor responds to vessel
normalization and to the formulation (docs/networks.md, "Design by gradient").

Normalization (Jain 2005 Science 307:58) shrinks dilated tumor vessels and tightens their
walls.  Two design variables act on the *tumor segments* (those with a piece inside the tumor
sphere) of a network scenario:

    r → r e^(s_d)                      (diameter; flow, haematocrit, wall area all follow)
    P_carrier, P_free, L_p → × e^(s_p)  (the walls' pores: solute and water permeability together)

and any numeric scenario fields can be added (``problem(scenario, varied=...)``, user units,
e.g. ``diameter_nm``, ``release_temperature_C``): the carrier's size sets its wall
permeability, reflection, interstitial diffusion and hindered convection (the continuum
model's laws, ``network_run.region_values``) and its plasma clearance (``pk``); the release
temperature sets the release k_rel(T) in the heated vessels and tissue and the leak in plasma;
the heating's target temperature, power and schedule (``network_run.SCHEDULE_FIELDS``) set the
tissue temperature T_a + a(t) θ through its amplitude.
The outputs (``OUTPUTS``) are the tumor's mean carrier (encapsulated drug) and free drug in its
interstitium and the drug in its cells (exchangeable and DNA-bound, ``network_run.cell_uptake``,
and for targeted carriers the payload of internalized ones, ``network_run.receptor_binding``)
at ``numerics.t_end_h``, µg/mL of tumor tissue, with everything between them recomputed:
haematocrit and flow (``haemodynamics.solve_state``), the two-way Starling solve (interstitial
pressure, leak, Darcy flow), the plasma input and the delivery (``network_delivery.run``, with
release at k_rel(T)).  The temperature's shape θ is that of the scenario as given (the focus,
target region and thermal properties of tissue and blood are not followed).  Derivatives are
forward mode (``jax.jacfwd``: a few variables), checked against central differences
(``tests/test_network_design.py``); ``segment_sensitivity`` gives every segment's own radius and
wall derivatives by one reverse-mode pass (many variables).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import grid as grids
from ..engine import units
from ..model import haemodynamics as hm
from ..model import network_delivery as nd
from ..model import segment_cells
from ..model.scenario import Scenario, ScenarioError, resolve_name
from ..model.vessel_network import VesselNetwork
from . import network_run as nr

DESIGN = ("log_diameter_scale", "log_permeability_scale")
#: what ``delivery`` returns, in order (µg/mL of tumor tissue at the end)
OUTPUTS = ("carrier", "free drug", "drug in cells")
#: field groups that set the problem's structure or the temperature's shape, computed once (not
#: varied; but the heating's schedule, target temperature and power, ``nr.SCHEDULE_FIELDS``)
FIXED_GROUPS = ("network.", "numerics.", "heating.")


@dataclasses.dataclass(frozen=True)
class Problem:
    """The static part of a network scenario's delivery (geometry, tissue values, inputs)."""

    scenario: Scenario
    net: VesselNetwork
    topo: hm.Topology
    params: dict
    rheology: hm.Rheology
    grid: grids.Grid
    pieces: segment_cells.Pieces
    in_tumor: np.ndarray  # (cells,) bool
    piece_tumor: np.ndarray  # (pieces,) bool
    tumor_segment: np.ndarray  # (segments,) bool
    layout: object  # nr.continuum_layout of the scenario (region_values' structure)
    varied: tuple  # scenario fields after the two normalization variables
    heating: nr.HeatingShape  # θ of the heating; its schedule and amplitude follow the design
    plasma_times_s: np.ndarray
    t_end_s: float
    dt_s: float


def problem(scenario: Scenario, varied=()) -> Problem:
    """The ``Problem`` of a network scenario (``network_run``'s steps, without solving);
    ``varied``: scenario fields (names or dotted paths) that follow the two normalization
    variables in the design vector."""
    varied = tuple(resolve_name(name) for name in varied)
    for path in varied:
        if (path.startswith(FIXED_GROUPS) and path not in nr.SCHEDULE_FIELDS) \
                or path not in scenario.params:
            raise ScenarioError(f"network design: {path!r} cannot be varied; allowed: numeric "
                                f"fields outside {', '.join(g + '*' for g in FIXED_GROUPS)}, "
                                f"and {', '.join(nr.SCHEDULE_FIELDS)}")
    net = nr.network_of(scenario)
    grid = nr.tissue_grid(net, scenario)
    pieces = segment_cells.intersect(net, grid)
    in_tumor = nr.tumor_cells(grid, scenario)
    piece_tumor = in_tumor[pieces.cell]
    tumor_segment = np.zeros(net.n_segments, bool)
    tumor_segment[np.asarray(pieces.segment)[piece_tumor]] = True
    lay = nr.continuum_layout(scenario)
    tv = nr.region_values(scenario, "tumor", lay)
    nv = nr.region_values(scenario, "normal", lay)
    t_end = nr.t_end_s(scenario)
    n_steps, dt = nr.time_steps(scenario)
    times = np.linspace(0.0, t_end, 4 * n_steps + 1)
    return Problem(scenario, net, hm.Topology.of(net), hm.parameters(net),
                   nr.rheology_of(scenario), grid, pieces, in_tumor, piece_tumor, tumor_segment,
                   lay, varied, nr.heating_shape(scenario, grid, in_tumor, tv, nv), times,
                   t_end, dt)


def delivery(prob: Problem, design, segment_log_scales=None,
             gradients: str = "forward") -> jax.Array:
    """(carrier, free drug) in the tumor's interstitium and the drug in its cells at the end
    (``OUTPUTS``), µg/mL of tumor tissue, for ``design`` = (s_d, s_p, *values of
    ``prob.varied``) (module docstring); (0, 0, the scenario's values) is the scenario as it is.

    ``segment_log_scales``: (2, n_segments) or None: every segment's own log scales of its
    radius (r → r e^(z₀ᵢ)) and of its wall permeabilities (P, L_p → × e^(z₁ᵢ), on all its
    pieces), on top of the design's; zeros leave the design's problem unchanged.
    ``gradients``: how the haematocrit root is differentiated (``haemodynamics.solve_state``):
    "forward" for ``jax.jacfwd``/``jvp``, "reverse" for ``jax.grad``/``vjp``."""
    s_d, s_p = design[0], design[1]
    scenario = prob.scenario.replace(**dict(zip(prob.varied, design[2:])))
    tv = nr.region_values(scenario, "tumor", prob.layout)
    nv = nr.region_values(scenario, "normal", prob.layout)
    log_radius = jnp.where(prob.tumor_segment, s_d, 0.0)
    log_wall = jnp.where(prob.piece_tumor, s_p, 0.0)
    if segment_log_scales is not None:
        log_radius = log_radius + segment_log_scales[0]
        log_wall = log_wall + segment_log_scales[1][prob.pieces.segment]
    radius = prob.params["radius_m"] * jnp.exp(log_radius)
    params = {**prob.params, "radius_m": radius}
    state = hm.solve_state(prob.topo, params, prob.rheology, gradients=gradients)
    wall = jnp.exp(log_wall)
    walls = nr.wall_exchange(tv, nv, prob.in_tumor, prob.piece_tumor, wall)
    fluid = nr.coupled_fluid(prob.net, params, prob.rheology, state["hematocrit"], prob.grid,
                             prob.pieces, walls.starling)
    solutes = nr.delivery_solutes(scenario, tv)
    asm = nd.assemble(prob.net, prob.grid, state, solutes, pieces=prob.pieces, fluid=fluid,
                      tissue_hydraulic_conductivity=tv["K"],
                      outer_pressure_Pa=nr.SURROUNDING_PRESSURE_PA,
                      piece_permeability=walls.permeability, piece_reflection=walls.reflection,
                      radius_m=radius)
    release = nr.tissue_release(scenario, nr.heated_temperature(scenario, prob.heating))
    n_steps = int(round(prob.t_end_s / prob.dt_s))
    plasma_at = nr.plasma_interpolant(prob.plasma_times_s,
                                      nr.plasma_series(scenario, prob.plasma_times_s))
    uptake = nr.cell_uptake(scenario, tv, nv, prob.in_tumor, prob.grid)
    binding = nr.receptor_binding(scenario, tv, nv, prob.in_tumor, prob.grid)
    out = nd.run(asm, plasma_at, prob.t_end_s, prob.dt_s, save_every=n_steps, release=release,
                 cells=uptake,
                 macrophages=nr.macrophages(scenario, tv, nv, prob.in_tumor, prob.grid),
                 binding=binding)
    phi = jnp.asarray([s.volume_fraction for s in solutes])
    in_cells = jnp.sum(out["cells"][-1, :2], axis=0) * uptake.volume_fraction
    if binding is not None:  # and the payload of internalized carriers
        in_cells = in_cells + out["binding"][-1, 3]
    per_tissue = jnp.concatenate([  # per tissue volume
        out["tissue"][-1].reshape(2, -1) * phi[:, None], in_cells.reshape(1, -1)])
    volume = jnp.asarray(prob.grid.volume).ravel() * prob.in_tumor
    return per_tissue @ volume / jnp.sum(volume) * units.DOXORUBICIN_MOLAR_MASS


def start(prob: Problem) -> np.ndarray:
    """The design vector of the scenario as it is: (0, 0, the varied fields' values)."""
    return np.asarray([0.0, 0.0] + [float(prob.scenario[p]) for p in prob.varied])


def sensitivity(prob: Problem, design=None) -> dict:
    """Values and forward-mode Jacobian of ``delivery`` at ``design`` (default ``start``):
    ``values`` (3,), ``jacobian`` (3 ``OUTPUTS`` × the design variables: per unit of log scale
    for the two normalization variables, per user unit for the varied fields)."""
    def both(d):
        y = delivery(prob, d)
        return y, y

    design = start(prob) if design is None else design
    jac, values = jax.jit(jax.jacfwd(both, has_aux=True))(jnp.asarray(design, dtype=float))
    return {"values": np.asarray(values), "jacobian": np.asarray(jac)}


def segment_sensitivity(prob: Problem, output: str = "carrier", design=None) -> dict:
    """Per-segment derivatives of one of ``OUTPUTS`` at ``design`` (default ``start``), by one
    reverse-mode pass (``jax.value_and_grad``; the haematocrit root by its adjoint,
    ``haemodynamics.solve_state(gradients="reverse")``): ``value`` (µg/mL of tumor),
    ``radius`` = ∂value/∂ln rᵢ and ``wall`` = ∂value/∂ln Pᵢ (each segment's wall
    permeabilities to carrier, free drug and water together), both (n_segments,), µg/mL per
    unit of log scale.  Which vessels to dilate, constrict, tighten or open, one segment at a
    time, for the cost of about one forward run plus its adjoint instead of 2 × n_segments
    runs.  The radius derivatives of the tumor segments sum to ``sensitivity``'s s_d column."""
    if output not in OUTPUTS:
        raise ValueError(f"output {output!r}; allowed: {', '.join(map(repr, OUTPUTS))}")
    k = OUTPUTS.index(output)
    design = jnp.asarray(start(prob) if design is None else design, dtype=float)

    def value(z):
        return delivery(prob, design, z, gradients="reverse")[k]

    zero = jnp.zeros((2, prob.net.n_segments), design.dtype)
    v, grad = jax.jit(jax.value_and_grad(value))(zero)
    grad = np.asarray(grad)
    return {"value": float(v), "radius": grad[0], "wall": grad[1]}
