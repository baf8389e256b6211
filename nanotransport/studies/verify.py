"""Verification against closed-form solutions (docs/model.md §4, §5, §8, §11): ``nanotransport verify``.

Every case solves one problem with a closed form on a sequence of grids (each refinement halves
the spacing, and for transient cases the time step with it) and reports

* ``error``: the relative error on the finest grid (the norm is stated in each description),
* ``order``: the observed order of convergence from the last two grids,
  log(e_coarse / e_fine) / log(h_coarse / h_fine) (``None`` where there is no refinement),
* ``expected_order`` (what the scheme claims there) and ``tolerance`` (on ``error``),
* ``passed``: error ≤ tolerance, order ≥ expected_order − 0.3 (when one is claimed) and every
  extra check in ``checks`` (e.g. that the closed form reproduces docs/model.md's reference values).

The numerics under test are the engine's: ``linalg.solve_steady`` (steady problems),
``solver.strang_step`` (SDIRK2 reactions and SDIRK2 implicit transport, with upwind or — by
deferred correction — van Leer limited convection), ``solver.explicit_step``
(forward Euler with upwind or van Leer limited convection) and ``solver.integrate``.

Orders, stated honestly: cell-centred diffusion with harmonic face means is second order in
space (max norm) on uniform grids; SDIRK2 is second order in time; first-order upwind
convection limits every convection-dominated case to first order in space; the van Leer
limited scheme advanced with forward Euler is first order in time, so it shows second order only
where the diffusive stability limit forces dt ∝ h² (the Pe = 100 row uses that regime); the
limited scheme in the implicit transport (deferred correction, IMEX SDIRK2) is second order in
space and time (``gaussian_limited_implicit``, Courant 1).

All cases need float64 (``jax.config.update('jax_enable_x64', True)`` before calling
``run_cases``); this module never switches it on itself.  Run time: well under a minute on a
two-core CPU.
"""
from __future__ import annotations

import functools
import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import interpolate, linalg as sla, special

from ..engine import fv, grid as grids, linalg, solver
from ..engine.units import MMHG_PA
from . import verify_network
from .verify_rows import check as _check, observed_order as _observed_order, row as _row


# ------------------------------------------------------------------ helpers
def _require_x64() -> None:
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "nanotransport.verify needs float64: call jax.config.update('jax_enable_x64', True) "
            "before run_cases() (the CLI does this for you)")


def _center_value(c):
    """Value at r = 0 of an even profile from the two innermost cell averages at r = h/2 and
    3h/2 (uniform grid): c(r) = c₀ + a r² ⇒ c₀ = (9 c₁ − c₂)/8."""
    return (9.0 * c[0] - c[1]) / 8.0


@functools.partial(jax.jit, static_argnums=0)
def _steady_jit(g, transport, source, reaction_rate):
    return linalg.solve_steady(g, transport, source, reaction_rate)


def _steady_1d(g, diffusivity, boundaries, source, reaction_rate):
    """solve_steady under one jit per grid (op-by-op dispatch would compile every small kernel
    for every new grid size)."""
    tr = fv.Transport(diffusivity=jnp.asarray(diffusivity, jnp.float64), boundaries=boundaries)
    sol, res = _steady_jit(g, tr, jnp.asarray(source, jnp.float64),
                           jnp.asarray(reaction_rate, jnp.float64))
    return np.asarray(sol), float(res)


def _integrate(step, c0, save_times, dt, observe=None):
    """solver.integrate under jit with exactly uniform steps of ``dt`` (steps_per_macro = 1:
    every interval between saved times is a multiple of dt in these cases), so that halving dt
    halves every step of a convergence study."""
    fn = jax.jit(lambda c: solver.integrate(step, c, save_times, dt, observe=observe,
                                            steps_per_macro=1))
    return fn(c0)


# ------------------------------------------------------------------ Baxter & Jain (docs/model.md §4)
# Tumor values of docs/model.md §4 (SI); the radius is chosen so that α = R √(L_p S_v / K) = 10.
_K = 3.10e-14  # m²/(Pa·s)
_LPSV = 2.10e-11 * 2.0e4  # L_p S_v, 1/(Pa·s)
_PE = 11.5 * MMHG_PA  # p_e, Pa
_ALPHA = 10.0
_BJ_REF = ((0.25, 0.997803), (0.5, 0.986525), (0.9, 0.591245))  # (r/R, p/p_e), α = 10
_BJ_SIZES = (40, 80, 160)


def _baxter_jain(geometry: str):
    _require_x64()
    R = _ALPHA / math.sqrt(_LPSV / _K)
    if geometry == "sphere":
        exact = lambda s: 1.0 - np.sinh(_ALPHA * s) / (s * np.sinh(_ALPHA))  # noqa: E731
        make = grids.sphere
        u_exact = _K * _PE * (_ALPHA / math.tanh(_ALPHA) - 1.0) / R
    elif geometry == "slab":
        exact = lambda s: 1.0 - np.cosh(_ALPHA * s) / np.cosh(_ALPHA)  # noqa: E731
        make = grids.slab
        u_exact = _K * _PE * _ALPHA * math.tanh(_ALPHA) / R
    else:
        exact = lambda s: 1.0 - special.i0(_ALPHA * s) / special.i0(_ALPHA)  # noqa: E731
        make = grids.cylinder
        u_exact = _K * _PE * _ALPHA * special.i1(_ALPHA) / special.i0(_ALPHA) / R
    errors, spacings, u_errors, residuals = [], [], [], []
    for n in _BJ_SIZES:
        g = make(R, n)
        bcs = ((fv.Flux(), fv.Value(0.0)),)
        p, res = _steady_1d(g, _K, bcs, _LPSV * _PE, _LPSV / 1.0)
        s = g.centers[0] / R
        errors.append(np.max(np.abs(p / _PE - exact(s))))
        # outward Darcy velocity at r = R from the discrete boundary flux of the Value
        # condition: u = K (p_N − 0)/δ, δ the centre-to-face distance of the last cell
        delta = g.face_distance(0)[-1]
        u_num = _K * p[-1] / delta
        u_errors.append(abs(u_num - u_exact) / abs(u_exact))
        spacings.append(R / n)
        residuals.append(res)
    checks = [_check("surface velocity, relative error (finest grid)", u_errors[-1], 1e-3),
              _check("steady solve relative residual", max(residuals), 1e-10)]
    if len(u_errors) > 1:
        uo = _observed_order(u_errors, spacings)
        checks.append({"name": "surface velocity observed order", "value": uo,
                       "tolerance": 1.7, "passed": bool(uo is not None and uo >= 1.7)})
    if geometry == "sphere":
        ref_err = max(abs(exact(s) - v) for s, v in _BJ_REF)
        checks.append(_check("closed form vs docs/model.md p/p_e at r/R = 0.25, 0.5, 0.9 (abs)",
                             ref_err, 1e-6))
        spline = interpolate.CubicSpline(s, p / _PE)
        num_err = max(abs(float(spline(si)) - v) for si, v in _BJ_REF)
        checks.append(_check("finest numerical p/p_e (cubic interpolation) vs docs/model.md values "
                             "(abs)", num_err, 2e-4))
        # α = 3: p(0)/p_e = 1 − α/sinh α = 0.700535 (docs/model.md), numerically on the finest grid
        g = make(R, _BJ_SIZES[-1])
        lpsv3 = _K * (3.0 / R) ** 2
        p3, _ = _steady_1d(g, _K, ((fv.Flux(), fv.Value(0.0)),), lpsv3 * _PE, lpsv3)
        checks.append(_check("α = 3: closed-form p(0)/p_e vs docs/model.md 0.700535 (abs)",
                             abs(1.0 - 3.0 / math.sinh(3.0) - 0.700535), 1e-6))
        checks.append(_check("α = 3: numerical p(0)/p_e (centre extrapolation) vs 0.700535 "
                             "(abs)", abs(_center_value(p3) / _PE - 0.700535), 2e-5))
        # docs/model.md: tumor values, R = 1 cm → α = 36.8 and u(R) ≈ 0.17 µm/s
        a1 = 1e-2 * math.sqrt(_LPSV / _K)
        u1 = _K * _PE * (a1 / math.tanh(a1) - 1.0) / 1e-2
        checks.append(_check("R = 1 cm: |α − 36.8|", abs(a1 - 36.8), 0.05))
        checks.append(_check("R = 1 cm: |u(R) − 0.17 µm/s| (µm/s)", abs(u1 * 1e6 - 0.17),
                             0.005))
        formula = "1 − sinh(α r/R)/((r/R) sinh α); u(R) = K p_e (α coth α − 1)/R"
    elif geometry == "slab":
        formula = "1 − cosh(α x/L)/cosh α (symmetry at x = 0); u(L) = K p_e α tanh α / L"
    else:
        formula = "1 − I0(α r/R)/I0(α); u(R) = K p_e α I1(α)/(I0(α) R)"
    return _row(
        f"baxter_jain_{geometry}",
        f"Baxter-Jain IFP, {geometry}, α = 10, tumor K and L_p S_v of docs/model.md §4, p = 0 at "
        f"the surface: steady −K∇²p + L_pS_v p = L_pS_v p_e vs p/p_e = {formula}. error = "
        "max-norm of p/p_e − exact at cell centres (relative to p_e); the surface Darcy "
        "velocity from the discrete boundary flux is checked separately.",
        f"n={_BJ_SIZES[-1]}", errors, spacings, 2.0, 1e-3, checks)


def baxter_jain_sphere():
    """Isolated uniformly perfused tumor sphere (docs/model.md §4): −K∇²p + L_pS_v p = L_pS_v p_e,
    p'(0) = 0, p(R) = 0, α = R√(L_pS_v/K) = 10.

    p/p_e = 1 − sinh(α r/R)/((r/R) sinh α); 0.997803, 0.986525, 0.591245 at r/R = 0.25, 0.5,
    0.9; surface velocity u(R) = K p_e (α coth α − 1)/R, here from the discrete boundary flux
    K p_N/δ of the last cell.  Expected: second order (max norm) for p and for u(R)."""
    return _baxter_jain("sphere")


def baxter_jain_slab():
    """Baxter-Jain in a slab of half-thickness L, symmetry at x = 0, p(L) = 0:
    p/p_e = 1 − cosh(α x/L)/cosh α, u(L) = K p_e α tanh(α)/L.  Expected order 2."""
    return _baxter_jain("slab")


def baxter_jain_cylinder():
    """Baxter-Jain in an infinite cylinder, p(R) = 0: p/p_e = 1 − I0(α r/R)/I0(α),
    u(R) = K p_e α I1(α)/(I0(α) R).  Expected order 2."""
    return _baxter_jain("cylinder")


# ------------------------------------------------------------------ Thiele (docs/model.md §11)
_THIELE_REF = ((0.5, 0.95952), (1.0, 0.85092), (2.0, 0.55144), (5.0, 0.06738))
_THIELE_SIZES = (40, 80, 160)


def thiele_sphere():
    """Steady diffusion with first-order uptake in a sphere at fixed surface concentration:
    D∇²C = kC, C(R) = C_s, φ = R√(k/D):

        C/C_s = (R/r) sinh(φ r/R)/sinh φ,   C(0)/C_s = φ/sinh φ
              = 0.95952, 0.85092, 0.55144, 0.06738 for φ = 0.5, 1, 2, 5.

    error = max over φ of max(‖C − C_exact‖∞ / C_s at cell centres, |C₀ − C(0)|/C_s) with C₀
    extrapolated from the two centre cells, (9c₁ − c₂)/8.  Expected order 2."""
    _require_x64()
    R, D, Cs = 100e-6, 1e-10, 2.0  # m, m²/s, mol/m³
    errors, spacings = [], []
    ref_err, centre_ref_err = 0.0, 0.0
    for n in _THIELE_SIZES:
        g = grids.sphere(R, n)
        s = g.centers[0] / R
        worst = 0.0
        for phi, ref in _THIELE_REF:
            k = phi**2 * D / R**2
            c, _ = _steady_1d(g, D, ((fv.Flux(), fv.Value(Cs)),), 0.0, k)
            exact = np.sinh(phi * s) / (s * np.sinh(phi))
            c0 = _center_value(c) / Cs
            worst = max(worst, np.max(np.abs(c / Cs - exact)), abs(c0 - phi / math.sinh(phi)))
            if n == _THIELE_SIZES[-1]:
                ref_err = max(ref_err, abs(phi / math.sinh(phi) - ref))
                centre_ref_err = max(centre_ref_err, abs(c0 - ref))
        errors.append(worst)
        spacings.append(R / n)
    checks = [_check("closed form C(0)/C_s vs docs/model.md values (abs)", ref_err, 5e-6),
              _check("finest numerical C(0)/C_s vs docs/model.md values (abs)", centre_ref_err, 1e-4)]
    return _row("thiele_sphere",
                "Sphere with first-order uptake, φ = 0.5, 1, 2, 5: C/C_s = (R/r) sinh(φr/R)/"
                "sinh φ. error = max over φ of the max-norm error at cell centres and of the "
                "extrapolated centre value, both relative to C_s.",
                f"n={_THIELE_SIZES[-1]}", errors, spacings, 2.0, 2e-4, checks)


# ------------------------------------------------------------------ Crank sphere (docs/model.md §11)
_CRANK_REF = ((0.01, 0.30851), (0.05, 0.60694), (0.1, 0.77048), (0.2, 0.91550))
_CRANK_SIZES = (20, 40, 80)


def crank_uptake(tau, terms: int = 2000):
    """M_t/M_∞ = 1 − (6/π²) Σ_{n≥1} n⁻² exp(−n²π²τ) (Crank, Mathematics of Diffusion §6.3)."""
    n = np.arange(1, terms + 1)
    return 1.0 - 6.0 / np.pi**2 * np.sum(np.exp(-np.outer(np.atleast_1d(tau), n**2) * np.pi**2)
                                          / n**2, axis=1)


def crank_sphere():
    """Transient uptake by a sphere at fixed surface concentration (Crank §6.3): c(r, 0) = 0,
    c(R, t) = 1, τ = Dt/R²:

        M_t/M_∞ = 1 − (6/π²) Σ n⁻² exp(−n²π²τ) = 0.30851, 0.60694, 0.77048, 0.91550
        at τ = 0.01, 0.05, 0.1, 0.2.

    Space-time study: h and Δt halved together (n = 20, 40, 80 cells, Δτ = 0.05/n, so
    D Δt/h² = 0.05 n = 1, 2, 4 grows beyond the explicit limit); SDIRK2
    transport (strang_step without reactions).  error = max over the four times of
    |M_t/M_∞ − exact| (M from Grid.integrate).  Expected order 2."""
    _require_x64()
    R, D = 100e-6, 1e-10
    t_scale = R**2 / D  # s
    taus = np.array([t for t, _ in _CRANK_REF])
    exact = crank_uptake(taus)
    errors, spacings = [], []
    v_total = 4.0 / 3.0 * math.pi * R**3
    for n in _CRANK_SIZES:
        g = grids.sphere(R, n)
        tr = fv.Transport(diffusivity=jnp.asarray(D), boundaries=((fv.Flux(), fv.Value(1.0)),))
        step = solver.strang_step(g, tr, None)
        dtau = 0.05 / n  # Δτ ∝ h: 0.0025, 0.00125, 0.000625
        c0 = jnp.zeros((1, n))
        _, saved = _integrate(step, c0, taus * t_scale, dtau * t_scale,
                              observe=lambda c, g=g: g.integrate(c)[0] / v_total)
        errors.append(np.max(np.abs(np.asarray(saved) - exact)))
        spacings.append(R / n)
    ref_err = float(np.max(np.abs(exact - np.array([v for _, v in _CRANK_REF]))))
    checks = [_check("closed form vs docs/model.md M_t/M_∞ (abs)", ref_err, 5e-6)]
    return _row("crank_sphere",
                "Transient uptake by a sphere at c(R) = 1 (Crank §6.3), M_t/M_∞ at τ = 0.01, "
                "0.05, 0.1, 0.2; h and Δt refined together (Δτ = 0.05/n), SDIRK2 transport. "
                "error = max over the four times of |M_t/M_∞ − exact|.",
                f"n={_CRANK_SIZES[-1]}", errors, spacings, 2.0, 5e-4, checks)


# ------------------------------------------------------------------ Ogata-Banks (docs/model.md §11)
def ogata_banks(x, t, u, D):
    """C/C₀ = ½[erfc((x − ut)/(2√(Dt))) + exp(ux/D) erfc((x + ut)/(2√(Dt)))], the product
    evaluated as exp(ux/D − z²) erfcx(z) with z = (x + ut)/(2√(Dt)) ≥ 0 (no overflow)."""
    x = np.asarray(x, dtype=float)
    s = 2.0 * math.sqrt(D * t)
    z = (x + u * t) / s
    return 0.5 * (special.erfc((x - u * t) / s) + np.exp(u * x / D - z**2) * special.erfcx(z))


_OB_PECLET = (0.2, 1.0, 10.0, 100.0)


@functools.lru_cache(maxsize=None)
def _ogata_banks_errors(n, scheme, pecles=_OB_PECLET):
    """Max-norm errors on [0, L] for each Péclet number, on a grid with n cells over L = 1.

    The Péclet numbers are independent species of one run (D per species, same u = 1): one
    compiled time loop instead of one per Péclet number.  The domain is extended beyond L by
    8√(D_max t) so that the far Outflow boundary does not see the front."""
    L, u = 1.0, 1.0
    D = np.array([u * L / pe for pe in pecles])
    t_end = 0.5 * L / u
    h = L / n
    n_dom = n + int(math.ceil(8.0 * math.sqrt(D.max() * t_end) / h))
    g = grids.slab(n_dom * h, n_dom)
    tr = fv.Transport(diffusivity=jnp.asarray(D)[:, None], velocity=(jnp.asarray(u),),
                      boundaries=((fv.Value(1.0), fv.Outflow()),))
    ns = len(pecles)
    if scheme == "implicit":
        step = solver.strang_step(g, tr, None)
        dt = h / u  # Courant 1: the SDIRK2 time error O(h²) is far below the upwind O(h)
    else:
        step = solver.explicit_step(g, tr, scheme="limited")
        dt = 0.9 * min(0.5 * h / u, solver.explicit_stable_dt(g, tr, ns))
    c, _ = _integrate(step, jnp.zeros((ns, n_dom)), [t_end], dt)
    x = g.centers[0][:n]
    return tuple(float(np.max(np.abs(np.asarray(c[s, :n]) - ogata_banks(x, t_end, u, D[s]))))
                 for s in range(ns))


_OB_SIZES = (100, 200, 400)
_OB_TOL = {0.2: 1e-4, 1.0: 5e-4, 10.0: 5e-3, 100.0: 3e-2}


def _ogata_banks_case(pe, scheme="implicit"):
    _require_x64()
    sizes = _OB_SIZES
    pecles = _OB_PECLET if scheme == "implicit" else (pe,)
    errors = [_ogata_banks_errors(n, scheme, pecles)[pecles.index(pe)] for n in sizes]
    spacings = [1.0 / n for n in sizes]
    name = f"ogata_banks_pe{pe:g}" + ("_limited" if scheme == "limited" else "")
    if scheme == "implicit":
        how = ("implicit SDIRK2 transport with first-order upwind convection, Courant 1; "
               "expected order 1 (upwind)")
        expected, tol = 1.0, _OB_TOL[pe]
    else:
        how = ("explicit forward Euler with the van Leer limited scheme, Δt at 0.9 × the "
               "diffusive/Courant-½ limit (Δt ∝ h² here, so the first-order time error is "
               "O(h²)); expected order 2")
        expected, tol = 2.0, 5e-3
    return _row(name,
                f"Ogata-Banks step, Pe = uL/D = {pe:g} over L = 1 (u = 1), c(0, t) = 1 "
                "(Value), Outflow at the end of a domain extended by 8√(Dt); t = 0.5 L/u; "
                f"{how}. error = max-norm of C/C₀ − exact on [0, L] (C₀ = 1).",
                f"n={sizes[-1]}", errors, spacings, expected, tol)


def ogata_banks_pe0_2():
    """Ogata-Banks at Pe = 0.2 (diffusion dominated), implicit upwind: expected order 1."""
    return _ogata_banks_case(0.2)


def ogata_banks_pe1():
    """Ogata-Banks at Pe = 1, implicit upwind: expected order 1."""
    return _ogata_banks_case(1.0)


def ogata_banks_pe10():
    """Ogata-Banks at Pe = 10, implicit upwind: expected order 1."""
    return _ogata_banks_case(10.0)


def ogata_banks_pe100():
    """Ogata-Banks at Pe = 100, implicit upwind: expected order 1 (numerical diffusion uh/2)."""
    return _ogata_banks_case(100.0)


def ogata_banks_pe100_limited():
    """Ogata-Banks at Pe = 100 with the explicit van Leer limited scheme: expected order 2
    (monotone front, so the limiter stays second order; Δt ∝ h² from the diffusive limit)."""
    return _ogata_banks_case(100.0, scheme="limited")


# ------------------------------------------------------------------ implicit limited convection
def translating_gaussian(x, t, u, D, x0, sigma0):
    """Free-space solution of ∂c/∂t + u ∂c/∂x = D ∂²c/∂x² from a Gaussian of width σ₀ at x₀:
    c = (σ₀/σ) exp(−(x − x₀ − ut)²/(2σ²)),  σ² = σ₀² + 2Dt."""
    s2 = sigma0**2 + 2.0 * D * t
    return math.sqrt(sigma0**2 / s2) * np.exp(-(np.asarray(x) - x0 - u * t) ** 2 / (2.0 * s2))


_GAUSS = dict(u=0.8, D=1e-3, x0=0.3, sigma0=0.04, t_end=0.5, courant=1.0)
_GAUSS_SIZES = (100, 200, 400)


def _gaussian_errors(n):
    """(max-norm error, most negative value, relative mass change) of the implicit limited
    scheme on [0, 1] with n cells, Courant number ``_GAUSS['courant']``."""
    p = _GAUSS
    g = grids.slab(1.0, n)
    x = np.asarray(g.centers[0])
    tr = fv.Transport(diffusivity=jnp.asarray(p["D"]), velocity=(jnp.asarray(p["u"]),),
                      boundaries=((fv.Outflow(), fv.Outflow()),))
    step = solver.strang_step(g, tr, None, convection="limited")
    dt = p["courant"] / n / p["u"]
    c0 = translating_gaussian(x, 0.0, p["u"], p["D"], p["x0"], p["sigma0"])
    c, _ = _integrate(step, jnp.asarray(c0)[None], [p["t_end"]], dt)
    c = np.asarray(c[0])
    exact = translating_gaussian(x, p["t_end"], p["u"], p["D"], p["x0"], p["sigma0"])
    return (float(np.max(np.abs(c - exact))), float(min(0.0, c.min())),
            float(abs(c.sum() - c0.sum()) / c0.sum()))


def gaussian_limited_implicit():
    """Translating, spreading Gaussian with the implicit (SDIRK2 sweep) van Leer limited
    convection by deferred correction, grid and step refined together at Courant 1: expected
    order 2 in space and time."""
    _require_x64()
    p = _GAUSS
    runs = [_gaussian_errors(n) for n in _GAUSS_SIZES]
    errors = [r[0] for r in runs]
    checks = [_check("most negative value (finest grid)", -runs[-1][1], 0.0),
              _check("relative mass change (finest grid; the Gaussian stays 1e-7 from the "
                     "Outflow boundary)", runs[-1][2], 1e-6)]
    return _row("gaussian_limited_implicit",
                f"c = (σ₀/σ) exp(−(x − x₀ − ut)²/(2σ²)), σ² = σ₀² + 2Dt, u = {p['u']:g}, "
                f"D = {p['D']:g} (Pe = uσ₀/D = {p['u'] * p['sigma0'] / p['D']:g}), "
                f"x₀ = {p['x0']:g}, σ₀ = {p['sigma0']:g} on [0, 1] (Outflow both ends), "
                f"t = {p['t_end']:g}; implicit SDIRK2 transport with the van Leer limited "
                "convection by deferred correction (solver.transport_step convection="
                f"'limited'), Courant {p['courant']:g}; expected order 2. error = max-norm "
                "of c − exact (peak 1 at t = 0).",
                f"n={_GAUSS_SIZES[-1]}", errors, [1.0 / n for n in _GAUSS_SIZES], 2.0, 5e-3,
                checks)


# ------------------------------------------------------------------ Krogh cylinder (docs/model.md §11)
_KROGH_SIZES = (40, 80, 160)


def krogh_cylinder():
    """Krogh tissue cylinder: zero-order consumption M in r_c < r < R, c(r_c) = c₀, c'(R) = 0.
    From (D/r)(r c')' = M:  r c' = (M/2D)(r² − R²), so

        c(r) = c₀ + (M/(4D)) [(r² − r_c²) − 2R² ln(r/r_c)]

    (the bracket is negative for r > r_c: c falls away from the capillary).  Consumption is the
    source −M of solve_steady.  error = ‖c − exact‖∞/c₀ at cell centres.  Expected order 2."""
    _require_x64()
    rc, R, D, c0 = 5e-6, 50e-6, 2e-9, 1.0  # m, m, m²/s, mol/m³
    bracket_R = (R**2 - rc**2) - 2.0 * R**2 * math.log(R / rc)
    M = 0.8 * c0 * 4.0 * D / (-bracket_R)  # c(R) = 0.2 c₀
    exact = lambda r: c0 + M / (4.0 * D) * ((r**2 - rc**2) - 2.0 * R**2 * np.log(r / rc))  # noqa
    errors, spacings = [], []
    for n in _KROGH_SIZES:
        g = grids.cylinder(R, n, inner_radius_m=rc)
        c, _ = _steady_1d(g, D, ((fv.Value(c0), fv.Flux()),), -M, 0.0)
        errors.append(np.max(np.abs(c - exact(g.centers[0]))) / c0)
        spacings.append((R - rc) / n)
    return _row("krogh_cylinder",
                "Krogh cylinder, r_c = 5 µm, R = 50 µm, zero-order consumption M (c(R) = 0.2 c₀):"
                " c = c₀ + (M/4D)[(r² − r_c²) − 2R² ln(r/r_c)]. error = max-norm / c₀.",
                f"n={_KROGH_SIZES[-1]}", errors, spacings, 2.0, 5e-4)


# ------------------------------------------------------------------ Pennes sphere (docs/model.md §8)
_PENNES_SIZES = (30, 60, 120)


def pennes_exact(r, Q0, W, k, a):
    """Steady k∇²θ − Wθ + Q₀·1[r < a] = 0 in infinite tissue, θ → 0 far away (m = √(W/k)):
    inside θ = (Q₀/W)[1 − (1 + ma) e^(−ma) sinh(mr)/(mr)], outside
    θ = (Q₀/W)[ma cosh(ma) − sinh(ma)] e^(−mr)/(mr)."""
    r = np.asarray(r, dtype=float)
    m = math.sqrt(W / k)
    ma = m * a
    inside = Q0 / W * (1.0 - (1.0 + ma) * math.exp(-ma) * np.sinh(m * r) / (m * r))
    outside = Q0 / W * (ma * math.cosh(ma) - math.sinh(ma)) * np.exp(-m * r) / (m * r)
    return np.where(r < a, inside, outside)


def pennes_sphere():
    """Pennes bioheat, steady: −k∇²θ + Wθ = Q₀ for r < a, in infinite perfused tissue,
    W = ω_bρ_bc_b, m = √(W/k):  θ(0) = (Q₀/W)[1 − (1 + ma) e^(−ma)];
    Q₀ = 1e5 W/m³, W = 1800 W/(m³K), k = 0.5 W/(mK), a = 1 cm ⇒ θ(0) = 6.772 K (docs/model.md §8).

    Domain r < 3a; the far field uses the exact radiation condition of the decaying outer
    solution e^(−mr)/r, a Robin condition with h = k(m + 1/R), so the truncated problem has
    the infinite-medium solution.  The source is the exact cell average of Q₀·1[r < a] (a is
    a face).  error = max(|θ₀ − θ(0)|, ‖θ − exact‖∞)/θ(0), θ₀ extrapolated from the centre
    cells.  Expected order 2."""
    _require_x64()
    Q0, W, k, a = 1e5, 1800.0, 0.5, 1e-2
    m = math.sqrt(W / k)
    R = 3.0 * a
    theta0 = Q0 / W * (1.0 - (1.0 + m * a) * math.exp(-m * a))
    errors, spacings = [], []
    for n in _PENNES_SIZES:
        g = grids.sphere(R, n)
        f = np.asarray(g.faces[0])
        inside = np.clip(np.minimum(f[1:], a) ** 3 - f[:-1] ** 3, 0.0, None) / (f[1:] ** 3
                                                                               - f[:-1] ** 3)
        bcs = ((fv.Flux(), fv.Robin(h=k * (m + 1.0 / R), c_ext=0.0)),)
        th, _ = _steady_1d(g, k, bcs, Q0 * inside, W)
        exact = pennes_exact(g.centers[0], Q0, W, k, a)
        errors.append(max(abs(_center_value(th) - theta0),
                          float(np.max(np.abs(th - exact)))) / theta0)
        spacings.append(R / n)
    checks = [_check("closed-form θ(0) vs docs/model.md 6.772 K (abs, K)", abs(theta0 - 6.772),
                     5e-4)]
    return _row("pennes_sphere",
                "Pennes sphere, Q₀ = 1e5 W/m³ in r < a = 1 cm, W = 1800, k = 0.5, θ(0) = 6.772 K;"
                " domain 3a with the exact radiation (Robin) condition. error = max(|θ₀ − θ(0)|,"
                " max-norm profile error)/θ(0).",
                f"n={_PENNES_SIZES[-1]}", errors, spacings, 2.0, 5e-4, checks)


_FAR_FIELD_RADII = (1.25, 2.0, 4.0)  # truncation radius / a
_FAR_FIELD_SPACINGS = (1e-3, 5e-4, 2.5e-4)  # uniform radial spacing, m


def pennes_far_field():
    """The simulator's far-field temperature boundary (``heat.far_field_boundaries``: Robin
    with h = k(m + 1/R) from the boundary cells' k and W) on spheres truncated at R = 1.25a,
    2a and 4a: steady −k∇²θ + Wθ = Q₀ 1[r < a] must give the infinite-domain θ(r) of MODEL §8
    whatever R is (Q₀ = 1e5 W/m³, W = 1800 W/(m³K), k = 0.5 W/(mK), a = 1 cm: θ(0) = 6.772 K).
    A held boundary θ(R) = 0 at R = 1.25a is off by about θ(a) instead (shown in the checks).
    error = max over R of max(|θ₀ − θ(0)|, ‖θ − exact‖∞)/θ(0) at each spacing; order 2."""
    _require_x64()
    from ..model import heat

    Q0, W, k, a = 1e5, 1800.0, 0.5, 1e-2
    m = math.sqrt(W / k)
    theta0 = Q0 / W * (1.0 - (1.0 + m * a) * math.exp(-m * a))
    errors = []
    for dr in _FAR_FIELD_SPACINGS:
        worst = 0.0
        for ratio in _FAR_FIELD_RADII:
            R = ratio * a
            n = int(round(R / dr))
            g = grids.sphere(R, n)
            f = np.asarray(g.faces[0])
            inside = np.clip(np.minimum(f[1:], a) ** 3 - f[:-1] ** 3, 0.0, None) / (
                f[1:] ** 3 - f[:-1] ** 3)
            bcs = heat.far_field_boundaries(g, jnp.full(g.shape, k), jnp.full(g.shape, W), 0.0)
            th, _ = _steady_1d(g, k, bcs, Q0 * inside, W)
            exact = pennes_exact(g.centers[0], Q0, W, k, a)
            worst = max(worst, abs(_center_value(th) - theta0) / theta0,
                        float(np.max(np.abs(th - exact))) / theta0)
        errors.append(worst)
    g = grids.sphere(1.25 * a, int(round(1.25 * a / _FAR_FIELD_SPACINGS[-1])))
    f = np.asarray(g.faces[0])
    inside = np.clip(np.minimum(f[1:], a) ** 3 - f[:-1] ** 3, 0.0, None) / (f[1:] ** 3
                                                                           - f[:-1] ** 3)
    held, _ = _steady_1d(g, k, ((fv.Flux(), fv.Value(0.0)),), Q0 * inside, W)
    checks = [_check("held θ(1.25a) = 0 instead: centre error (rel), must exceed 5 %",
                     -abs(_center_value(held) - theta0) / theta0, -0.05)]
    return _row("pennes_far_field",
                "Pennes sphere with the model's far-field Robin boundary, domain truncated at "
                "R = 1.25a, 2a, 4a: the infinite-domain θ(r) (θ(0) = 6.772 K) at every R. error = "
                "max over R of max(|θ₀ − θ(0)|, max-norm profile error)/θ(0).",
                f"dr={_FAR_FIELD_SPACINGS[-1] * 1e3:g} mm", errors, list(_FAR_FIELD_SPACINGS),
                2.0, 5e-4, checks)


# ------------------------------------------------------------------ capillary extraction
_CAP_SIZES = (100, 200, 400)


def capillary_extraction():
    """Plug flow along a capillary of length L with first-order wall loss: u c' = −k c with
    k = PS/V (1/s), so c_out/c_in = exp(−kL/u) = exp(−PS/F) and E = 1 − exp(−PS/F).

    Solved as a transient to steady state (4 transit times) with strang_step: SDIRK2 wall loss
    as a local reaction, implicit upwind convection without diffusion, Inflow(1) at z = 0,
    Outflow at z = L, Courant 1.  PS/F = 1 (E = 0.632).  error = |c_out − exp(−PS/F)|/
    exp(−PS/F) with c_out the last cell (the upwind outflow value).  Expected order 1 (upwind)."""
    _require_x64()
    L, u = 1e-3, 1e-3  # m, m/s
    ps_over_f = 1.0
    k = ps_over_f * u / L
    exact = math.exp(-ps_over_f)
    errors, spacings = [], []
    for n in _CAP_SIZES:
        g = grids.slab(L, n)
        tr = fv.Transport(diffusivity=jnp.asarray(0.0), velocity=(jnp.asarray(u),),
                          boundaries=((fv.Inflow(1.0), fv.Outflow()),))
        step = solver.strang_step(g, tr, lambda t, c: -k * c)
        c, _ = _integrate(step, jnp.zeros((1, n)), [4.0 * L / u], (L / n) / u)
        errors.append(abs(float(c[0, -1]) - exact) / exact)
        spacings.append(L / n)
    return _row("capillary_extraction",
                "Capillary extraction, plug flow with wall loss PS/F = 1: c_out/c_in = "
                "exp(−PS/F), E = 1 − exp(−PS/F); transient to steady state with implicit "
                "upwind convection and SDIRK2 loss. error = |c_out − exact|/exact.",
                f"n={_CAP_SIZES[-1]}", errors, spacings, 1.0, 3e-3)


# ------------------------------------------------------------------ two compartments
def _two_compartment_run(k12, k21, k10, times, dt):
    """Two species in one cell: dc₁/dt = −(k12 + k10)c₁ + k21 c₂, dc₂/dt = k12 c₁ − k21 c₂."""
    g = grids.slab(1.0, 1)
    tr = fv.Transport(diffusivity=jnp.zeros((2, 1)))

    def f(t, c):
        return jnp.stack([-(k12 + k10) * c[0] + k21 * c[1], k12 * c[0] - k21 * c[1]])

    step = solver.strang_step(g, tr, f)
    c0 = jnp.array([[1.0], [0.0]])
    _, saved = _integrate(step, c0, times, dt)
    A = np.array([[-(k12 + k10), k21], [k12, -k21]])
    exact = np.stack([sla.expm(A * t) @ np.array([1.0, 0.0]) for t in times])
    return np.asarray(saved)[..., 0], exact


def two_compartments():
    """Two well-mixed compartments with exchange k12, k21 and elimination k10 from 1, c(0) =
    (1, 0): c(t) = expm(A t) c(0) with A = [[−(k12 + k10), k21], [k12, −k21]], i.e. the
    bi-exponential c₁ = a e^(−λ₁t) + b e^(−λ₂t) with λ₁,₂ the roots of
    λ² − (k12 + k21 + k10)λ + k21 k10 = 0.  A local-reaction-only system (two species in one
    cell) advanced by strang_step (SDIRK2).  k12 = 0.3, k21 = 0.1, k10 = 0.05 1/s, saved
    at t = 2, 5, 10, 20 s; Δt = 0.5, 0.25, 0.125 s.  error = max over times and species of
    |c − exact| / c₁(0).  Expected order 2."""
    _require_x64()
    times = [2.0, 5.0, 10.0, 20.0]
    errors, spacings = [], []
    for dt in (0.5, 0.25, 0.125):
        num, exact = _two_compartment_run(0.3, 0.1, 0.05, times, dt)
        errors.append(np.max(np.abs(num - exact)))
        spacings.append(dt)
    return _row("two_compartments",
                "Two compartments (k12 = 0.3, k21 = 0.1, k10 = 0.05 1/s) vs the analytic "
                "bi-exponential, SDIRK2 local step, Δt halved twice. error = max |c − exact| "
                "over species and t = 2, 5, 10, 20 s (c₁(0) = 1).",
                "dt=0.125 s", errors, spacings, 2.0, 3e-5)


def two_compartments_stiff():
    """Stiff exchange: k12 = k21 = 1e2 1/s, k10 = 1e-3 1/s, Δt = 60 s (kΔt = 6000) over 2 h.
    The fast mode (λ ≈ −200 1/s) must be damped (L-stability) and the slow mode
    (λ ≈ −5e-4 1/s) followed accurately.  error = max over t ≥ 10 min of
    |c − exact| / (c₁ + c₂)_exact (relative, both species).  Not a convergence study."""
    _require_x64()
    times = [600.0 * i for i in range(1, 13)]
    num, exact = _two_compartment_run(1e2, 1e2, 1e-3, times, 60.0)
    rel = np.max(np.abs(num - exact) / np.sum(exact, axis=1, keepdims=True))
    finite = bool(np.all(np.isfinite(num)))
    checks = [{"name": "all values finite", "value": float(finite), "tolerance": 1.0,
               "passed": finite},
              _check("−min value (> 0: undershoot of the fast mode)", -float(num.min()), 1e-12)]
    return _row("two_compartments_stiff",
                "Stiff two compartments, k12 = k21 = 1e2 1/s, k10 = 1e-3 1/s, Δt = 60 s over 2 h:"
                " stability and slow-mode accuracy. error = max over t = 10 min … 2 h of "
                "|c − exact|/(c₁ + c₂).",
                "dt=60 s", [rel], [60.0], None, 1e-4, checks, order=False)


# ------------------------------------------------------------------ registry and report
CASES: dict[str, Callable[[], dict]] = {
    "baxter_jain_sphere": baxter_jain_sphere,
    "baxter_jain_slab": baxter_jain_slab,
    "baxter_jain_cylinder": baxter_jain_cylinder,
    "thiele_sphere": thiele_sphere,
    "crank_sphere": crank_sphere,
    "ogata_banks_pe0.2": ogata_banks_pe0_2,
    "ogata_banks_pe1": ogata_banks_pe1,
    "ogata_banks_pe10": ogata_banks_pe10,
    "ogata_banks_pe100": ogata_banks_pe100,
    "ogata_banks_pe100_limited": ogata_banks_pe100_limited,
    "gaussian_limited_implicit": gaussian_limited_implicit,
    "krogh_cylinder": krogh_cylinder,
    "pennes_sphere": pennes_sphere,
    "pennes_far_field": pennes_far_field,
    "capillary_extraction": capillary_extraction,
    "two_compartments": two_compartments,
    "two_compartments_stiff": two_compartments_stiff,
    **verify_network.CASES,
}


def run_cases(names=None) -> list[dict]:
    """Run the named cases (all by default) and return one JSON-serialisable row per case."""
    _require_x64()
    names = list(CASES) if names is None else list(names)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown verification case(s) {unknown}; allowed: {list(CASES)}")
    rows = []
    for name in names:
        t0 = time.perf_counter()
        row = CASES[name]()
        row["seconds"] = float(time.perf_counter() - t0)
        rows.append(row)
    return rows


def format_table(rows) -> str:
    """Plain-text table: case, finest grid, error, observed order, tolerance, pass."""
    header = ("case", "finest grid", "error", "order (exp.)", "tolerance", "pass")
    lines = []
    for r in rows:
        order = "—" if r["order"] is None else f"{r['order']:.2f}"
        if r.get("expected_order") is not None:
            order += f" ({r['expected_order']:g})"
        failed = [c["name"] for c in r.get("checks", []) if not c["passed"]]
        ok = "PASS" if r["passed"] else "FAIL" + (f" [{'; '.join(failed)}]" if failed else "")
        lines.append((r["case"], r["finest_grid"], f"{r['error']:.3e}", order,
                      f"{r['tolerance']:.1e}", ok))
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h)
              for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*l) for l in lines]
    return "\n".join(out)
