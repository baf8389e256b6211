"""Delivery from a vessel network into the tissue over time: lumen, wall, interstitium.

Each time step (docs/networks.md):

1. the lumen is solved quasi-steadily on the directed flow graph (``network_transport``) with
   the plasma concentrations of the systemic model at the inlets and the current tissue
   values along each segment (γ-weighted over the cells it crosses);
2. each (segment, cell) piece passes γ (c̄ − c_cell) by diffusion through the wall (Patlak;
   γ with Peaceman's near field) and J_v (1 − σ) c̄ by solvent drag where fluid leaves the
   vessel (J_v from the Starling solve, ``network_exchange``);
3. the interstitium advances by ``engine.solver.implicit_step`` (SDIRK2, second order):
   φ ∂c/∂t = ∇·(φ D ∇c) − ∇·(u c) − φ k c + s, with s the pieces' inflow per cell volume,
   the wall's back-diffusion γ c_cell taken implicitly in k, and u the interstitial Darcy
   velocity of the same Starling solve.

Release (``Release`` or ``HeatedRelease``, optional): carriers (species 0) release their
payload into free drug (species 1) at k_rel(T) (1/s, ``properties.release_rate``), in the lumen
of every segment at its temperature (the conversion matrix of ``network_transport``, taken at
each stage's time) and in the interstitium of every cell at its temperature, by Strang splitting
R(h/2) T(h) R(h/2) with the exact exponential R: c₀ ← c₀ e^(−∫k dt),
c₁ ← c₁ + (φ₀/φ₁) c₀ (1 − e^(−∫k dt)) (drug conserved to round-off, positive, second order;
∫k dt by the midpoint rule over each half step).

Macrophages (``Macrophages``, optional; with release): tissue macrophages phagocytose
carriers at k_M (1/s, per cell) and free their payload by digestion at k_D, the continuum
model's pathway (docs/model.md): with M the payload inside macrophages per tissue volume,
dc₀/dt = −(k_rel + k_M) c₀, dM/dt = k_M φ₀ c₀ − k_D M, and φ₁ c₁ gains k_rel φ₀ c₀ + k_D M.
Linear per cell, so R is again its exact exponential: c₀ ← c₀ e^(−Kτ) (K = k_rel + k_M),
M ← M e^(−k_D τ) + k_M φ₀ c₀ τ e^(−Kτ) ψ((k_D − K)τ), ψ(x) = (1 − e^(−x))/x, and c₁ takes what
the two others lost (φ₀ c₀ + M + φ₁ c₁ conserved to round-off).

Receptor binding (``ReceptorBinding``, optional; with cells): targeted carriers bind the
receptors of the cells, are internalized and release their payload inside the cells, and
cells take up carriers by fluid-phase endocytosis, the continuum model's law
(``cells.binding_rates``, docs/model.md §7), per tissue volume, drug-equivalent:

    R_free = R_T − (b + q)/N,      J = k_on c₀ R_free,
    φ₀ dc₀/dt = −(J − k_off e_b) − k_p φ₀ c₀,
    db/dt = J − (k_off + k_int) b,          de_b/dt = J − (k_off + k_int + k_rel) e_b,
    dq/dt = k_int b + k_p φ₀ c₀ − k_deg q,  de_q/dt = k_int e_b + k_p φ₀ c₀ − (k_c + k_deg) e_q,

b, q the bound and internalized carriers and e_b, e_q their payload; the bound carriers' leak
k_rel e_b joins the free drug (φ₁ c₁) and the internalized payload's release and digestion
(k_c + k_deg) e_q the cells' exchangeable drug (φ_c a).  The network's carrier species is the
encapsulated drug, so c₀ stands for the carriers as well as their payload (the continuum model
tracks both; they differ by the payload already leaked, 1 − e^(−k_rel t): 13 % for a carrier
72 h after the dose at Doxil's 0.002/h).  Nonlinear (receptors saturate), so solved per cell
by SDIRK2 (``solver.reaction_step``) in its own split step R_bind(h/2), the leak and release
as counters.

Cells (``CellUptake``, optional): the cells of every tissue cell take up free drug (species 1)
and bind it in the nucleus, the continuum model's law (El-Kareh & Secomb 2000), solved per cell
by SDIRK2 (``solver.reaction_step``) in the same symmetric splitting:
R_rel(h/2) R_bind(h/2) R_cells(h/2) T(h) R_cells(h/2) R_bind(h/2) R_rel(h/2), second order,
φ_e f + φ_c (a + n) (+ e_b + e_q) conserved to round-off; the nuclear exposure ∫ n dt of the
kill model is integrated alongside.

A solute's ``lumen_unbound_fraction`` f_u: the lumen carries the total (bound + unbound)
concentration and only f_u of it crosses the wall (free drug on plasma proteins); the lumen
then loses f_u·PS·c̄ and the tissue gains the same.

The lumen depends on the tissue along it (back-diffusion); each step is repeated
``coupling_iterations`` times with the lumen driven by the midpoint tissue (c + c_new)/2, a
fixed-point iteration toward the trapezoidal coupling (0 iterations: lagged by one step).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import fv, solver
from ..engine.grid import Grid
from . import cells as cell_kinetics
from . import network_transport, properties, segment_cells
from .vessel_network import VesselNetwork


@dataclasses.dataclass(frozen=True)
class Solute:
    """One species carried by blood and delivered into the tissue (SI): wall permeability P,
    interstitial diffusivity D, available volume fraction φ, reflection σ at the wall (solvent
    drag carries (1 − σ) J_v c̄), first-order loss in the tissue, and the convective
    retardation R_F (the interstitial flow carries R_F u c), and the fraction f_u of the lumen
    concentration that crosses the wall (``lumen_unbound_fraction``: 1 for carriers, the
    plasma unbound fraction for free drug, whose lumen value is then bound + unbound)."""

    name: str
    permeability_m_per_s: float
    diffusivity_m2_per_s: float
    volume_fraction: float = 0.3
    reflection: float = 1.0
    decay_per_s: float = 0.0
    retardation: float = 1.0
    lumen_unbound_fraction: float = 1.0

    def __post_init__(self):
        if any(isinstance(getattr(self, f.name), jax.core.Tracer)
               for f in dataclasses.fields(self)):
            return  # traced (under jit or a derivative): checked where the values are concrete
        checks = {"permeability_m_per_s": self.permeability_m_per_s >= 0,
                  "diffusivity_m2_per_s": self.diffusivity_m2_per_s > 0,
                  "volume_fraction": 0 < self.volume_fraction <= 1,
                  "reflection": 0 <= self.reflection <= 1,
                  "decay_per_s": self.decay_per_s >= 0,
                  "retardation": 0 <= self.retardation <= 1,
                  "lumen_unbound_fraction": 0 < self.lumen_unbound_fraction <= 1}
        allowed = {"permeability_m_per_s": ">= 0", "diffusivity_m2_per_s": "> 0",
                   "volume_fraction": "(0, 1]", "reflection": "[0, 1]", "decay_per_s": ">= 0",
                   "retardation": "[0, 1]", "lumen_unbound_fraction": "(0, 1]"}
        for name, ok in checks.items():
            value = getattr(self, name)
            if not (ok and np.isfinite(value)):
                raise ValueError(f"Solute {self.name!r}: {name} = {value!r}; allowed "
                                 f"{allowed[name]}")


@dataclasses.dataclass(frozen=True)
class Assembly:
    """Everything a delivery run needs of the network and its tissue, as arrays: the directed
    graph (segment end nodes), the (segment, cell) pieces, per-piece γ per solute, segment
    volumes and flows, the Starling piece leak and the interstitial velocity.  The grid, the
    solutes and the node count are its structure; the rest may be padded (``pad``) so that
    networks of different sizes share one compiled run (``run_batch``)."""

    grid: Grid
    solutes: tuple
    n_nodes: int
    edges: jax.Array  # (E, 2) node indices of each segment (flow > 0 from the first)
    piece_segment: jax.Array  # (P,) the segment of each piece
    piece_cell: jax.Array  # (P,) the flat tissue cell of each piece
    gamma: jax.Array  # (P, ns) m³/s
    flow: jax.Array  # (E,) m³/s
    volume: jax.Array  # (E,) m³
    piece_leak: jax.Array  # (P,) m³/s out of the vessel
    reflection: jax.Array  # (P, ns) σ per piece
    velocity: tuple | None  # per axis face velocities, m/s
    inflow_node: jax.Array  # (N,) m³/s of blood entering from outside
    piece_length_m: jax.Array  # (P,) m: the length of each piece (a segment's share of a cell)


def assemble(net: VesselNetwork, grid: Grid, state: dict, solutes, *, pieces=None,
             fluid: dict | None = None, tissue_hydraulic_conductivity=None,
             outer_pressure_Pa=None, piece_permeability=None,
             piece_reflection=None, radius_m=None) -> Assembly:
    """An ``Assembly`` from a network, its haemodynamic ``state`` (``haemodynamics.solve``),
    the solutes and, optionally, the Starling solution ``fluid`` (``network_exchange.solve``
    for pressure) with the tissue's K (m²/(Pa·s)) for the interstitial velocity and the
    pressure beyond the box ``outer_pressure_Pa`` (None: a closed box); solutes leave the box
    with the fluid that leaves it (``fv.Outflow`` faces), and do not diffuse out.
    ``piece_permeability`` (pieces, solutes), m/s, and ``piece_reflection`` (pieces,
    solutes): wall properties per piece (vessels of different regions) in place of each
    Solute's own.  ``radius_m`` (segments,): radii in place of the network's (e.g. traced, for
    derivatives with respect to them)."""
    pieces = segment_cells.intersect(net, grid) if pieces is None else pieces
    segment_radius = jnp.asarray(net.segment_radius_m if radius_m is None else radius_m)
    radius = segment_radius[pieces.segment]
    perm = (jnp.asarray([s.permeability_m_per_s for s in solutes])[None]
            if piece_permeability is None else jnp.asarray(piece_permeability))
    gamma = jnp.stack([segment_cells.exchange_conductance(
        perm[:, i], s.diffusivity_m2_per_s * s.volume_fraction, radius,
        pieces.length_m, pieces.equivalent_radius_m) for i, s in enumerate(solutes)], axis=1)
    volume = jnp.pi * segment_radius**2 * jnp.asarray(net.segment_length_m)
    leak = jnp.zeros(len(pieces.segment))
    velocity = None
    if fluid is not None:
        leak = jnp.maximum(fluid["piece_flux"], 0.0)
        velocity = darcy_velocity(grid, jnp.asarray(fluid["cell"]),
                                  tissue_hydraulic_conductivity, outer_pressure_Pa)
    inflow = jnp.maximum(jnp.asarray(state["external_inflow_m3_per_s"]), 0.0)
    sigma = (jnp.broadcast_to(jnp.asarray([s.reflection for s in solutes]), gamma.shape)
             if piece_reflection is None else jnp.asarray(piece_reflection))
    return Assembly(grid, tuple(solutes), int(net.n_nodes), jnp.asarray(net.segment_nodes),
                    jnp.asarray(pieces.segment), jnp.asarray(pieces.cell), gamma,
                    jnp.asarray(state["flow_m3_per_s"]), volume, leak, sigma, velocity, inflow,
                    jnp.asarray(pieces.length_m))


def pad(asm: Assembly, n_segments: int, n_nodes: int, n_pieces: int) -> Assembly:
    """``asm`` padded to ``n_segments``, ``n_nodes`` and ``n_pieces`` without changing its
    result: the extra pieces have γ = 0, no leak and no length (they add exactly zero to every
    sum), the extra segments carry no flow, join one extra node to itself and have no pieces
    (their lumen stays empty), the extra nodes receive no blood.  Needs one extra node where segments
    are added."""
    n_seg, n_piece = asm.edges.shape[0], asm.gamma.shape[0]
    more_segments = n_segments - n_seg
    if (more_segments < 0 or n_pieces < n_piece or n_nodes < asm.n_nodes
            or (more_segments > 0 and n_nodes == asm.n_nodes)):
        raise ValueError(f"pad to {n_segments} segments, {n_nodes} nodes and {n_pieces} pieces: "
                         f"the assembly has {n_seg}, {asm.n_nodes} and {n_piece} (allowed: at "
                         "least as many, and one more node where segments are added)")

    def grow(a, n, value):
        extra = jnp.full((n - a.shape[0],) + a.shape[1:], value, a.dtype)
        return jnp.concatenate([a, extra])

    spare = n_nodes - 1  # the extra segments' node
    return dataclasses.replace(
        asm, n_nodes=int(n_nodes), edges=grow(asm.edges, n_segments, spare),
        piece_segment=grow(asm.piece_segment, n_pieces, 0),
        piece_cell=grow(asm.piece_cell, n_pieces, 0), gamma=grow(asm.gamma, n_pieces, 0.0),
        flow=grow(asm.flow, n_segments, 0.0), volume=grow(asm.volume, n_segments, 1.0),
        piece_leak=grow(asm.piece_leak, n_pieces, 0.0),
        reflection=grow(asm.reflection, n_pieces, 1.0),
        inflow_node=grow(asm.inflow_node, n_nodes, 0.0),
        piece_length_m=grow(asm.piece_length_m, n_pieces, 0.0))


def darcy_velocity(grid: Grid, pressure, conductivity, outer_value=None):
    """Superficial face velocities u = −K ∂p/∂x per axis, m/s.  Interior faces from the cell
    pressures; outer faces toward the outer pressure ``outer_value`` (Pa) over half a cell,
    as in the Starling solve (``network_exchange``), or zero (None: a closed box)."""
    out = []
    for ax in range(3):
        shape = [-1 if a == ax else 1 for a in range(3)]
        centers = grid.centers[ax]
        dx = jnp.asarray(np.diff(centers)).reshape(shape)
        u = -conductivity * jnp.diff(pressure, axis=ax) / dx
        width = np.diff(np.asarray(grid.faces[ax]))
        lo = jnp.take(pressure, jnp.array([0]), axis=ax)
        hi = jnp.take(pressure, jnp.array([pressure.shape[ax] - 1]), axis=ax)
        if outer_value is None:
            u_lo, u_hi = jnp.zeros_like(lo), jnp.zeros_like(hi)
        else:
            u_lo = -conductivity * (lo - outer_value) / (0.5 * width[0])
            u_hi = -conductivity * (outer_value - hi) / (0.5 * width[-1])
        out.append(jnp.concatenate([u_lo, u, u_hi], axis=ax))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Release:
    """Release of the carriers' payload (species 0) into free drug (species 1), 1/s:
    ``segment_rate(t) -> (E,)`` in the lumen of each segment, ``cell_rate(t) -> grid.shape``
    in the interstitium of each cell (k_rel(T) of the tissue temperature: ``network_heating``),
    and ``breakdown_rate`` k_b, the breakdown of free carriers in the interstitium, which frees
    their payload as well (receptor-bound carriers leak at k_rel alone, ``ReceptorBinding``).
    """

    segment_rate: Callable
    cell_rate: Callable
    breakdown_rate: object = 0.0

    def lumen_rate(self, t, asm: Assembly):
        """k_rel of every segment's lumen at ``t``, (E,) 1/s."""
        return jnp.broadcast_to(self.segment_rate(t), (asm.edges.shape[0],))


@dataclasses.dataclass(frozen=True)
class HeatedRelease:
    """Release at the tissue temperature T(x, t), 1/s: ``rate_per_s(T)`` (T in °C, e.g.
    ``properties.release_rate``) in the interstitium of every cell at its temperature
    ``temperature_C(t) -> grid.shape``, and in the lumen of every segment at the length-weighted
    mean temperature of the cells it crosses, T̄_e = Σ_p L_p T(x_p) / Σ_p L_p over its pieces
    (blood takes the temperature of the tissue around it); a segment crossing no cell (outside
    the box, or padding) is at ``blood_temperature_C``.  The segments' means are taken from the
    network being run (its ``Assembly``), so one ``HeatedRelease`` serves every network of a
    batch (``run_batch``).  ``breakdown_rate`` as ``Release``'s."""

    temperature_C: Callable
    rate_per_s: Callable
    blood_temperature_C: float = 37.0
    breakdown_rate: object = 0.0

    def cell_rate(self, t):
        """k_rel(T) of every tissue cell at ``t``, grid shape, 1/s."""
        return self.rate_per_s(self.temperature_C(t))

    def lumen_rate(self, t, asm: Assembly):
        """k_rel(T̄_e) of every segment's lumen at ``t``, (E,) 1/s (class docstring)."""
        n_segments = asm.edges.shape[0]
        temp = jnp.ravel(self.temperature_C(t))[asm.piece_cell]
        length = jax.ops.segment_sum(asm.piece_length_m, asm.piece_segment, n_segments)
        weighted = jax.ops.segment_sum(asm.piece_length_m * temp, asm.piece_segment, n_segments)
        mean = jnp.where(length > 0, weighted / jnp.maximum(length, 1e-300),
                         self.blood_temperature_C)
        return self.rate_per_s(mean)


@dataclasses.dataclass(frozen=True)
class Macrophages:
    """Phagocytosis of carriers (species 0) by tissue macrophages and digestion of their
    payload into free drug (species 1) (module docstring), 1/s: ``uptake_rate`` k_M (a scalar
    or a field of the grid's shape: per region) and ``digestion_rate`` k_D."""

    uptake_rate: object
    digestion_rate: object

    def __post_init__(self):
        for name in ("uptake_rate", "digestion_rate"):
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                continue  # traced: checked where it is concrete
            v = np.asarray(value, float)
            bad = ~(np.isfinite(v) & (v >= 0))
            if np.any(bad):
                raise ValueError(f"Macrophages: {name} = {float(v[bad].ravel()[0])!r} 1/s; allowed "
                                 ">= 0")


def interstitial_exchange(c0, m, f, rate, uptake, digestion, phi0, phi1, tau):
    """The exact solution over ``tau`` (s) of release and phagocytosis in every cell (module
    docstring): (carrier c₀, macrophage payload M, free drug f) from (c0, m, f) with the release
    rate ``rate`` held over the interval (k_rel, 1/s), ``uptake`` k_M and ``digestion`` k_D.
    With k_M = 0 and M = 0 it is the release alone."""
    total = rate + uptake
    # each part in its accurate form: e^(−Kτ) when little is left, expm1 when little is lost
    c_new = c0 * jnp.exp(-total * tau)
    c_lost = -c0 * jnp.expm1(-total * tau)
    x = (digestion - total) * tau
    small = jnp.abs(x) < 1e-6
    x_safe = jnp.where(small, 1.0, x)
    psi = jnp.where(small, 1.0 - 0.5 * x, -jnp.expm1(-x_safe) / x_safe)  # (1 − e^(−x))/x
    m_new = m * jnp.exp(-digestion * tau) + uptake * phi0 * c0 * tau * jnp.exp(-total * tau) * psi
    # what the carrier and the macrophages lost, as free drug (conserved to round-off)
    lost = phi0 * c_lost + (m - m_new)
    return c_new, m_new, f + lost / phi1


@dataclasses.dataclass(frozen=True)
class CellUptake:
    """Uptake of free drug (species 1) by the cells of every tissue cell and its binding in
    the nucleus, the continuum model's law (``transport.local_rates``; El-Kareh & Secomb 2000,
    Neoplasia 2:325):

        φ_e df/dt = −φ_c U,      da/dt = U − J_N,      dn/dt = J_N,
        U = V_max [f_u f/(f_u f + K_e) − a/(a + K_i)],
        J_N = k_N a (1 − n/N_max) − k_N,off n,

    f the free drug per interstitial volume, a the exchangeable and n the DNA-bound drug per
    cell volume (mol/m³); φ_e f + φ_c (a + n) is conserved.  Fields (SI, names as in
    ``transport.Kinetics``; ``cells.uptake_constants`` converts the scenario's) are scalars or
    arrays of the grid's shape (regions with different cells)."""

    volume_fraction: object  # φ_c, m³ of cells per m³ of tissue
    unbound_fraction: object  # f_u of interstitial free drug
    uptake_vmax: object  # V_max, mol/(m³ of cells · s)
    uptake_ke: object  # K_e, mol/m³ of fluid
    uptake_ki: object  # K_i, mol/m³ of cells
    nuclear_binding_rate: object  # k_N, 1/s
    nuclear_release_rate: object  # k_N,off, 1/s
    nuclear_capacity: object  # N_max, mol/m³ of cells

    def __post_init__(self):
        positive, non_negative = (lambda v: v > 0, "> 0"), (lambda v: v >= 0, ">= 0")
        checks = {"volume_fraction": (lambda v: (v >= 0) & (v < 1), "[0, 1)"),
                  "unbound_fraction": (lambda v: (v > 0) & (v <= 1), "(0, 1]"),
                  "uptake_vmax": non_negative, "uptake_ke": positive, "uptake_ki": positive,
                  "nuclear_binding_rate": non_negative, "nuclear_release_rate": non_negative,
                  "nuclear_capacity": positive}
        for name, (ok, allowed) in checks.items():
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                continue  # traced (under jit or a derivative): checked where it is concrete
            v = np.asarray(value, float)
            bad = ~(np.isfinite(v) & ok(v))
            if np.any(bad):
                raise ValueError(f"CellUptake: {name} = {float(v[bad].ravel()[0])!r}; allowed "
                                 f"{allowed}")

    def rates(self, phi_e, x):
        """d(f, a, n, ∫n dt)/dt of ``x`` = (f, a, n, ∫n dt), each of the grid's shape
        (mol/(m³·s); the last, the nuclear exposure of the kill model, a counter)."""
        f, a, n = x[0], x[1], x[2]
        u = properties.cell_uptake_rate(self.unbound_fraction * f, a, self.uptake_vmax,
                                        self.uptake_ke, self.uptake_ki)
        j = self.nuclear_binding_rate * a * (1.0 - n / self.nuclear_capacity) \
            - self.nuclear_release_rate * n
        return jnp.stack([-self.volume_fraction / phi_e * u, u - j, j, n])


@dataclasses.dataclass(frozen=True)
class ReceptorBinding:
    """Receptor binding, internalization and fluid-phase endocytosis of carriers (species 0)
    by the cells of every tissue cell (module docstring; ``cells.binding_rates``).  Fields
    (SI; ``network_run.receptor_binding`` converts the scenario's) are scalars or arrays of the
    grid's shape (regions with different cells)."""

    receptors: object  # R_T, mol of receptors per m³ of tissue
    payload_per_particle: object  # N, drug molecules per carrier particle
    on_rate: object  # k_on, m³/(mol·s) (effective, with avidity: cells.effective_binding_rates)
    off_rate: object  # k_off, 1/s
    internalization_rate: object  # k_int, 1/s
    intracellular_release_rate: object  # k_c, 1/s: payload of internalized carriers → cells
    degradation_rate: object  # k_deg, 1/s: internalized carriers digested, payload → cells
    pinocytosis_rate: object = 0.0  # k_p, 1/s: fluid-phase endocytosis of carriers

    def __post_init__(self):
        for name in ("receptors", "payload_per_particle", "on_rate", "off_rate",
                     "internalization_rate", "intracellular_release_rate", "degradation_rate",
                     "pinocytosis_rate"):
            value = getattr(self, name)
            if isinstance(value, jax.core.Tracer):
                continue  # traced (under jit or a derivative): checked where it is concrete
            v = np.asarray(value, float)
            ok = v > 0 if name == "payload_per_particle" else v >= 0
            bad = ~(np.isfinite(v) & ok)
            if np.any(bad):
                allowed = "> 0" if name == "payload_per_particle" else ">= 0"
                raise ValueError(f"ReceptorBinding: {name} = {float(v[bad].ravel()[0])!r}; "
                                 f"allowed {allowed}")

    def rates(self, phi0, leak_rate, x):
        """d/dt of ``x`` = (c₀, b, e_b, q, e_q, to free drug, to cells) in every cell (module
        docstring): c₀ per available volume φ₀, the rest per tissue volume (mol/m³); the last
        two are counters, the payload freed into the interstitium (the bound carriers' leak at
        ``leak_rate`` k_rel, 1/s) and into the cells."""
        c, b, eb, q, eq = x[0], x[1], x[2], x[3], x[4]
        bind = cell_kinetics.binding_rates(c, c, b, eb, q, eq, self.receptors,
                                   self.payload_per_particle, self.on_rate, self.off_rate,
                                   self.internalization_rate, leak_rate,
                                   self.intracellular_release_rate, self.degradation_rate)
        endocytosed = self.pinocytosis_rate * phi0 * c
        return jnp.stack([(bind["payload"] - endocytosed) / phi0, bind["bound"],
                          bind["bound_payload"], bind["internalized"] + endocytosed,
                          bind["internalized_payload"] + endocytosed, bind["to_free"],
                          bind["to_cells"]])


def run(asm: Assembly, plasma, t_end_s: float, dt_s: float, save_every: int = 1,
        conversion_per_s=None, c0=None, coupling_iterations: int = 2,
        release: Release | HeatedRelease | None = None, cells: CellUptake | None = None,
        macrophages: Macrophages | None = None, binding: ReceptorBinding | None = None
        ) -> dict:
    """Advance the tissue from ``c0`` (zeros) to ``t_end_s`` in steps of ``dt_s``.

    ``plasma(t) -> (ns,)``: the inlet concentrations, mol/m³ (e.g. from ``pk``).
    ``conversion_per_s`` (ns, ns): first-order conversion in the lumen (``network_transport``).
    ``coupling_iterations``: corrections of each step with the lumen driven by the midpoint
    tissue (c + c_new)/2 instead of the step's start (0: lagged, first order in time).
    ``release``: payload release in the lumen and the tissue (module docstring).
    ``cells``: uptake of free drug (species 1) by the tissue's cells (``CellUptake``).
    ``macrophages``: phagocytosis of carriers and digestion (``Macrophages``; needs
    ``release``, whose split step it joins).
    ``binding``: receptor binding, internalization and fluid-phase endocytosis of carriers
    (``ReceptorBinding``; needs ``cells``, which receive the internalized payload).
    Returns ``times_s`` (saved), ``tissue`` (saved, (ns, *grid.shape) each, per interstitial
    volume), ``tissue_mean`` (per step: volume-averaged per tissue volume, (steps, ns)),
    ``tissue_amount_mol`` (per step, Σ φ c V, (steps, ns)), ``step_times_s``; with ``cells``
    also ``cells`` (saved, (3, *grid.shape): a, n per cell volume (mol/m³) and the nuclear
    exposure ∫ n dt (mol·s/m³) of every cell), ``cells_mean`` and ``cells_amount_mol`` (per
    step, (steps, 2): a, n per tissue volume and Σ φ_c a V, Σ φ_c n V); with ``macrophages``
    also ``macrophages`` (saved, grid.shape: payload in macrophages per tissue volume, mol/m³),
    ``macrophages_mean`` and ``macrophages_amount_mol`` (per step: its volume average and
    Σ M V); with ``binding`` also ``binding`` (saved, (4, *grid.shape): b, e_b, q, e_q per
    tissue volume, mol/m³), ``binding_mean`` and ``binding_amount_mol`` (per step, (steps, 2):
    the payload of bound and of internalized carriers, volume average and Σ V)."""
    grid = asm.grid
    ns = len(asm.solutes)
    n_steps = int(round(t_end_s / dt_s))
    if n_steps < 1 or not np.isclose(n_steps * dt_s, t_end_s, rtol=1e-9):
        raise ValueError(f"t_end_s = {t_end_s} is not a positive multiple of dt_s = {dt_s}")
    for what, given in (("release", release), ("cells", cells), ("macrophages", macrophages),
                        ("binding", binding)):
        if given is not None and ns < 2:
            raise ValueError(f"{what} needs a carrier and a free species; got {ns} solute(s)")
    if macrophages is not None and release is None:
        raise ValueError("macrophages need release (their split step is the release's); give "
                         "a Release, with zero rates if the carrier releases nothing")
    if binding is not None and cells is None:
        raise ValueError("binding needs cells (the internalized carriers' payload enters "
                         "them); give a CellUptake")
    if isinstance(release, HeatedRelease):
        shape = jax.eval_shape(release.temperature_C, 0.0).shape
        if shape not in ((), grid.shape):
            raise ValueError(f"HeatedRelease.temperature_C(t) has shape {shape}; allowed: the "
                             f"tissue grid's shape {grid.shape} (one temperature per cell) or "
                             "a scalar")
    edges, n_nodes, n_segments = asm.edges, asm.n_nodes, asm.edges.shape[0]
    piece_segment, piece_cell = asm.piece_segment, asm.piece_cell
    conversion = jnp.zeros((ns, ns)) if conversion_per_s is None else jnp.asarray(
        conversion_per_s)
    unbound = jnp.asarray([s.lumen_unbound_fraction for s in asm.solutes])
    ps = jax.ops.segment_sum(asm.gamma, piece_segment, n_segments)  # (E, ns)
    drag = asm.piece_leak[:, None] * (1 - asm.reflection)  # (P, ns) m³/s
    # solvent drag leaves the lumen too: an extra loss in the lumen, not driven by c_t
    lumen_loss = unbound * (ps + jax.ops.segment_sum(drag, piece_segment, n_segments))
    tau = jnp.minimum(asm.volume / jnp.maximum(jnp.abs(asm.flow), 1e-300),
                      network_transport.TRANSIT_CAP_S)
    loss_matrix = conversion[None] + jax.vmap(jnp.diag)(lumen_loss / asm.volume[:, None])
    transfer = jnp.zeros((ns, ns)).at[0, 0].set(1.0).at[1, 0].set(-1.0)

    def exponentials(time):
        """The lumen's (e^Z, φ₁, φ₂) per segment, with the release rates at ``time``."""
        if release is None:
            return network_transport._exponentials(loss_matrix, tau)
        k = release.lumen_rate(time, asm)
        return network_transport._exponentials(loss_matrix + k[:, None, None] * transfer, tau)

    fixed = None if release is not None else exponentials(0.0)
    cell_volume = jnp.asarray(grid.volume).ravel()
    phi = jnp.asarray([s.volume_fraction for s in asm.solutes])
    diffusivity = jnp.asarray([s.diffusivity_m2_per_s for s in asm.solutes])
    decay_tissue = jnp.asarray([s.decay_per_s for s in asm.solutes])
    back = jax.ops.segment_sum(asm.gamma, piece_cell, grid.size) / cell_volume[:, None]
    decay = (back / phi + decay_tissue).T.reshape((ns,) + grid.shape)
    shape = (ns,) + grid.shape
    retard = jnp.asarray([s.retardation for s in asm.solutes])
    velocity = None if asm.velocity is None else tuple(
        retard.reshape((ns, 1, 1, 1)) * v[None] for v in asm.velocity)
    # closed faces, or faces the interstitial fluid leaves by (no diffusion out)
    boundaries = None if asm.velocity is None else tuple(
        (fv.Outflow(), fv.Outflow()) for _ in range(3))

    def advance(c, c_lumen_side, t):
        """One tissue step from ``c`` with the lumen driven by the tissue ``c_lumen_side``
        and by the plasma at each SDIRK2 stage's own time (the stiff wall exchange makes the
        tissue follow the plasma closely: a source frozen over the step would be first
        order)."""
        cells = c_lumen_side.reshape(ns, -1).T[piece_cell]  # (P, ns)
        # the back-flux per lumen volume, (PS/V) c_t = Σ γ c_cell / V (no division by PS: a
        # segment without pieces has PS = 0, and 0/PS would poison the derivatives with NaN)
        s = jax.ops.segment_sum(asm.gamma * cells, piece_segment, n_segments) / \
            asm.volume[:, None]

        def transport_at(time):
            expo, phi1, phi2 = fixed if fixed is not None else exponentials(time)
            maps = (expo, tau[:, None] * jnp.einsum("eij,ej->ei", phi1, s), phi1,
                    tau[:, None] * jnp.einsum("eij,ej->ei", phi2, s))
            c_in = jnp.broadcast_to(plasma(time), (n_nodes, ns))
            _, _, mean = network_transport.lumen(edges, n_nodes, asm.flow, asm.inflow_node,
                                                 c_in, maps)
            per_piece = (asm.gamma + drag) * unbound * mean[piece_segment]
            source = jax.ops.segment_sum(per_piece, piece_cell, grid.size) / \
                cell_volume[:, None]
            return fv.Transport(
                diffusivity=(diffusivity * phi)[:, None, None, None] * jnp.ones(shape),
                capacity=phi[:, None, None, None] * jnp.ones(shape), velocity=velocity,
                source=source.T.reshape(shape), boundaries=boundaries)

        return solver.implicit_step(grid, transport_at, c, dt_s, decay=decay, t=t)

    def cell_release_rate(t):
        """k_rel(T) of every cell at the midpoint of the half step [t, t + h/2] (0 without
        release); the release and the bound carriers' leak share it."""
        return 0.0 if release is None else release.cell_rate(t + 0.25 * dt_s)

    def release_half_step(c, m, k_rel):
        """The exact release (and phagocytosis) over a half step in every cell, at the release
        rate ``k_rel`` of its midpoint plus the breakdown (module docstring)."""
        rate = k_rel + release.breakdown_rate
        if macrophages is None:  # release alone: no macrophage payload carried
            c0, _, f = interstitial_exchange(c[0], 0.0, c[1], rate, 0.0, 0.0, phi[0], phi[1],
                                             0.5 * dt_s)
            return c.at[0].set(c0).at[1].set(f), m
        c0, m0, f = interstitial_exchange(c[0], m[0], c[1], rate, macrophages.uptake_rate,
                                          macrophages.digestion_rate, phi[0], phi[1],
                                          0.5 * dt_s)
        return c.at[0].set(c0).at[1].set(f), m0[None]

    phi_cells = None if cells is None else jnp.broadcast_to(
        jnp.asarray(cells.volume_fraction), grid.shape)

    def binding_half_step(c, q, r, leak):
        """Receptor binding, internalization and endocytosis over a half step in every cell
        (``ReceptorBinding``; SDIRK2 on (c₀, b, e_b, q, e_q), the bound carriers' leak at the
        release rate ``leak`` of the half step's midpoint; what they free goes to the free
        drug and to the cells' exchangeable drug)."""
        x = jnp.concatenate([c[:1], r, jnp.zeros((2,) + grid.shape, c.dtype)])
        x = solver.reaction_step(
            lambda _, x, d: dataclasses.replace(binding, **d[0]).rates(d[1], d[2], x), 0.0, x,
            0.5 * dt_s, n_state=5, cell_data=(vars(binding), phi[0], leak))
        c = c.at[0].set(x[0]).at[1].add(x[5] / phi[1])
        return c, q.at[0].add(x[6] / phi_cells), x[1:5]

    def cells_half_step(c, q):
        """The cells' uptake and binding over h/2 in every cell (``CellUptake``; SDIRK2,
        the nuclear exposure ∫ n dt as a counter outside the Newton system)."""
        x = solver.reaction_step(
            lambda _, x, d: dataclasses.replace(cells, **d[0]).rates(d[1], x), 0.0,
            jnp.concatenate([c[1:2], q]), 0.5 * dt_s, n_state=3,
            cell_data=(vars(cells), phi[1]))
        return c.at[1].set(x[0]), x[1:]

    def step(carry, i):
        c, q, m, r = carry
        t = i * dt_s
        k_first, k_second = cell_release_rate(t), cell_release_rate(t + 0.5 * dt_s)
        if release is not None:
            c, m = release_half_step(c, m, k_first)
        if binding is not None:
            c, q, r = binding_half_step(c, q, r, k_first)
        if cells is not None:
            c, q = cells_half_step(c, q)
        # the lumen at the step's midpoint tissue (c + new)/2, from new = c: the first pass is
        # the lagged step (exactly: (c + c)/2 = c in floating point); one loop, so the step
        # is traced and compiled once, not 1 + coupling_iterations times
        new = jax.lax.fori_loop(0, 1 + coupling_iterations,
                                lambda _, new: advance(c, 0.5 * (c + new), t), c)
        if cells is not None:
            new, q = cells_half_step(new, q)
        if binding is not None:
            new, q, r = binding_half_step(new, q, r, k_second)
        if release is not None:
            new, m = release_half_step(new, m, k_second)
        amount = jnp.sum(new.reshape(ns, -1) * cell_volume, axis=1) * phi
        out = (amount / jnp.sum(cell_volume), amount)
        if cells is not None:
            in_cells = jnp.sum(q[:2].reshape(2, -1) * (cell_volume * phi_cells.ravel()), axis=1)
            out += (in_cells / jnp.sum(cell_volume), in_cells)
        if macrophages is not None:
            in_macrophages = jnp.sum(m.reshape(-1) * cell_volume)
            out += (in_macrophages / jnp.sum(cell_volume), in_macrophages)
        if binding is not None:
            on_cells = jnp.sum(r[jnp.array([1, 3])].reshape(2, -1) * cell_volume, axis=1)
            out += (on_cells / jnp.sum(cell_volume), on_cells)
        return (new, q, m, r), out

    if n_steps % save_every:
        raise ValueError(f"save_every = {save_every} does not divide the {n_steps} steps")

    # rematerialized in reverse mode: the backward pass keeps each step's tissue and cells and
    # recomputes the step's internals, instead of storing them for every step (the default
    # 24-h network's reverse pass peaked at 5.2 GB without it); no effect on forward mode
    remat_step = jax.checkpoint(step, prevent_cse=False)

    def block(carry, j):
        carry, per_step = jax.lax.scan(remat_step, carry,
                                       j * save_every + jnp.arange(save_every))
        return carry, (carry, per_step)

    c_start = jnp.zeros(shape) if c0 is None else jnp.asarray(c0)
    # the cells' a, n and ∫ n dt (none without cells: nothing carried or saved)
    q_start = jnp.zeros((0 if cells is None else 3,) + grid.shape, c_start.dtype)
    # the macrophages' payload (none without them)
    m_start = jnp.zeros((0 if macrophages is None else 1,) + grid.shape, c_start.dtype)
    # bound and internalized carriers and their payload (none without binding)
    r_start = jnp.zeros((0 if binding is None else 4,) + grid.shape, c_start.dtype)
    _, ((fields, q_saved, m_saved, r_saved), per_step) = jax.lax.scan(
        block, (c_start, q_start, m_start, r_start), jnp.arange(n_steps // save_every))
    times_s, step_times_s = _times(t_end_s, dt_s, save_every)
    out = {"times_s": times_s, "tissue": fields, "tissue_mean": per_step[0].reshape(n_steps, ns),
           "tissue_amount_mol": per_step[1].reshape(n_steps, ns), "step_times_s": step_times_s}
    k = 2
    if cells is not None:
        out.update({"cells": q_saved, "cells_mean": per_step[k].reshape(n_steps, 2),
                    "cells_amount_mol": per_step[k + 1].reshape(n_steps, 2)})
        k += 2
    if macrophages is not None:
        out.update({"macrophages": m_saved[:, 0],
                    "macrophages_mean": per_step[k].reshape(n_steps),
                    "macrophages_amount_mol": per_step[k + 1].reshape(n_steps)})
        k += 2
    if binding is not None:
        out.update({"binding": r_saved, "binding_mean": per_step[k].reshape(n_steps, 2),
                    "binding_amount_mol": per_step[k + 1].reshape(n_steps, 2)})
    return out


#: the array fields of an ``Assembly`` that ``run_batch`` stacks (the rest is its structure)
_BATCHED = ("edges", "piece_segment", "piece_cell", "gamma", "flow", "volume", "piece_leak",
            "reflection", "velocity", "inflow_node", "piece_length_m")


def run_batch(assemblies, plasma, t_end_s: float, dt_s: float, *, vectorize: bool = False,
              **options) -> dict:
    """``run`` for several networks in one compiled program: each ``Assembly`` is padded
    (``pad``) to the largest segment, node and piece counts and the runs are mapped over the
    stack (``jax.lax.map``, or ``jax.vmap`` with ``vectorize``: one batched program, for
    accelerators), so networks of different sizes compile once, not once each.

    The networks must share the tissue grid and the solutes, and all have an interstitial
    flow or none.  ``options`` are ``run``'s (``save_every``, ``conversion_per_s``, ``c0``,
    ``coupling_iterations``, ``release``, ``cells``, ``macrophages``, ``binding``) and the
    same for every network: a ``Release``'s lumen rate must not depend on the network (a
    scalar, e.g. the leak at body temperature); heated release is a ``HeatedRelease``, whose
    segments' temperatures each network's own pieces give.
    Returns ``run``'s dictionary with a leading network axis on every array but
    ``times_s`` and ``step_times_s``."""
    assemblies = list(assemblies)
    if not assemblies:
        raise ValueError("run_batch needs at least one Assembly")
    first = assemblies[0]
    for i, a in enumerate(assemblies[1:], 1):
        same_grid = a.grid.shape == first.grid.shape and all(
            np.array_equal(np.asarray(f), np.asarray(g))
            for f, g in zip(a.grid.faces, first.grid.faces))
        if not same_grid:
            raise ValueError(f"assembly {i}: tissue grid {a.grid.shape} differs from assembly "
                             f"0's {first.grid.shape}; run_batch needs one grid")
        if a.solutes != first.solutes:
            raise ValueError(f"assembly {i}: its solutes differ from assembly 0's")
        if (a.velocity is None) != (first.velocity is None):
            raise ValueError(f"assembly {i}: interstitial flow "
                             f"{'absent' if a.velocity is None else 'present'}, unlike assembly "
                             "0; run_batch needs it in all or none")
    release = options.get("release")
    if isinstance(release, Release) and np.ndim(release.segment_rate(0.0)) != 0:
        raise ValueError("run_batch: release.segment_rate gives one rate per segment of one "
                         "network; in a batch it must be a scalar (the same for every "
                         "segment), e.g. the leak at body temperature, or the release a "
                         "HeatedRelease (rates of each network's own tissue temperature)")
    n_segments = max(a.edges.shape[0] for a in assemblies)
    n_nodes = max(a.n_nodes + (a.edges.shape[0] < n_segments) for a in assemblies)
    n_pieces = max(a.gamma.shape[0] for a in assemblies)
    padded = [pad(a, n_segments, n_nodes, n_pieces) for a in assemblies]
    stacked = {name: jax.tree.map(lambda *xs: jnp.stack(xs),
                                  *[getattr(a, name) for a in padded])
               for name in _BATCHED}
    template = padded[0]

    def one(arrays):
        out = run(dataclasses.replace(template, **arrays), plasma, t_end_s, dt_s, **options)
        return {k: v for k, v in out.items() if k not in ("times_s", "step_times_s")}

    mapped = jax.vmap(one) if vectorize else (lambda xs: jax.lax.map(one, xs))
    out = jax.jit(mapped)(stacked)
    out["times_s"], out["step_times_s"] = _times(t_end_s, dt_s, options.get("save_every", 1))
    return out


def _times(t_end_s: float, dt_s: float, save_every: int):
    """(saved times, step end times) of a run, s."""
    n_steps = int(round(t_end_s / dt_s))
    return ((np.arange(n_steps // save_every) + 1) * save_every * dt_s,
            (np.arange(n_steps) + 1) * dt_s)
