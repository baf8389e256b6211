#!/usr/bin/env python
"""Engine benchmark DR3D: 3D diffusion-reaction in a 1 mm cube, nanotransport vs. other codes.

Problem (SI units)::

    dc/dt = D ∇²c − k c + s,   D = 1e-10 m²/s, k = 1e-4 1/s,
    s = 1e-3 mol/(m³·s) in the cells whose centre lies within 0.2 mm of the cube centre,
    zero-flux walls, c(0) = 0, t_end = 3600 s, N³ cells.
    --convection: + u = (1e-7, 0, 0) m/s, Inflow(c_in = 0) at x = 0, Outflow at x = 1 mm.

Implementations (each in its own subprocess, so peak RSS is per implementation):

* ``nanotransport-implicit``: ``solver.strang_step`` (SDIRK2 transport with direction
  splitting + SDIRK2 local reaction f(t, c) = −k c + s, ``newton_iterations=1`` which is exact
  for linear kinetics; on CPU the worker is pinned to one core, see ``pin_one_core``) under a jitted ``solver.integrate`` with one save at t_end; D and k are
  traced arguments, so a call with new values does not recompile (checked and reported).
* ``nanotransport-implicit (matched dt)``: the same scheme at the largest dt whose error is at
  or below the explicit error.  DERIVED row: wall = measured per-step time of the implicit row
  × steps (the work per step does not depend on dt); error = the exact per-mode prediction of
  the package's scheme (``predicted_error``), which is checked against the measured implicit
  row (agreement printed in its note).
* ``nanotransport-explicit``: ``solver.explicit_step`` at ``explicit_stable_dt`` (D, k traced).
  ``nanotransport-explicit-const`` is the same with D, k Python constants (XLA folds the
  coefficient arrays).
* ``jax-stencil``: hand-written 7-point explicit stencil in one ``lax.scan``, edge padding =
  zero-flux walls (+ first-order upwind in x for --convection): the floor for an explicit step.
* ``py-pde``: ``pde.PDE`` with the numba backend, ``EulerSolver`` at the same dt; the stepper is
  built once (numba compile = setup) and then timed.
* ``fipy``: backward Euler (TransientTerm == DiffusionTerm − ImplicitSourceTerm + source),
  ``LinearPCGSolver``, same dt as the implicit row.  Steps are capped for large N (FiPy takes
  seconds per step); the wall time is then extrapolated linearly and its error is the exact
  backward-Euler prediction (validated at the N where it runs in full).  Both are said in the
  row's note.

Error: relative L2 norm ‖c − c_ref‖/‖c_ref‖ at t_end, c_ref = the EXACT solution of the same
semi-discrete (same grid, same finite-volume operator) linear ODE, computed by
eigendecomposition of the three 1D axis operators (the 3D operator is their Kronecker sum) and
the matrix function (e^{At} − I) A⁻¹ s.  The error is therefore the time-integration (and
splitting) error alone; spatial discretisation error is the same for all codes that use the
standard 7-point / two-point-flux operator (py-pde's central d_dx under --convection is not).

--heterogeneous (issue #19 item 1): D drops 10× inside a 0.3-mm ball at the centre (faces take
the harmonic mean) and k = 1e-4 1/s × 10^(g − ½) follows a smooth Gaussian random field g ∈
[0, 1] (correlation ~0.1 mm, seed 0: a factor-10 "vessel-density" map), as in
``benchmarks/heterogeneous.py``.  No closed form exists, so the reference is the same
semi-discrete ODE integrated by ``implicit_step`` at dt = 20 s and 10 s (relative residual
1e-13) and Richardson-extrapolated, (4 c₁₀ − c₂₀)/3 (the pair's difference is printed: the
reference is good to well below it).  Rows: nanotransport explicit, nanotransport unsplit at
dt = 60 s and 180 s (multigrid-preconditioned CG), py-pde (``divergence(D * gradient(c))``:
a central-difference divergence of a central-difference gradient, zero flux on the walls: a
different spatial operator from the two-point flux, so its error includes that difference) and FiPy (backward Euler,
``DiffusionTerm(coeff=D.harmonicFaceValue)``: the same two-point-flux operator; capped and
extrapolated above N = 32, then no error is measured).

Usage::

    python benchmarks/engine.py                    # N = 32, 64 (CPU), table + ratios
    python benchmarks/engine.py --convection       # convection variant
    python benchmarks/engine.py --heterogeneous    # variable D and k (no --convection)
    python benchmarks/engine.py --quick            # N = 16, no FiPy (smoke run)
    python benchmarks/engine.py --json             # rows as a JSON list on stdout
    python benchmarks/engine.py --gpu              # JAX only, float32, N = 64, 128, 256
    python benchmarks/engine.py --check            # float64 correctness check, N = 16
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# ------------------------------------------------------------------ problem DR3D
L_M = 1e-3            # cube edge, m
D_M2S = 1e-10         # diffusivity, m²/s
K_1S = 1e-4           # first-order sink, 1/s
S_MOL = 1e-3          # source strength, mol/(m³·s)
R_SRC_M = 2e-4        # source sphere radius, m
T_END_S = 3600.0      # s
U_MS = 1e-7           # x velocity for --convection, m/s
NOMINAL_DT_S = 60.0   # the "large step" of the implicit rows
# candidate implicit steps: all divide 3600 s exactly
CANDIDATE_DTS = (3600, 1800, 1200, 900, 720, 600, 450, 400, 360, 300, 240, 180, 150, 120, 100, 90, 75, 60, 50, 45, 40, 36, 30, 25, 24, 20, 18,
                 15, 12, 10, 9, 8, 6, 5, 4, 3, 2.5, 2, 1.6, 1.5, 1.25, 1, 0.8, 0.75, 0.6, 0.5,
                 0.4, 0.3, 0.25, 0.2, 0.1)

# --heterogeneous
TUMOR_R_M = 3e-4      # radius of the low-diffusivity ball, m
D_JUMP = 10.0         # D outside / D inside the ball
CORR_M = 1e-4         # correlation length of the decay map, m
REFERENCE_DTS_S = (20.0, 10.0)  # Richardson pair of the heterogeneous reference, s
HETEROGENEOUS_DTS_S = (60.0, 180.0)  # the unsplit rows' steps, s

GAMMA = 1.0 - 1.0 / math.sqrt(2.0)   # solver.py's SDIRK2 (Alexander 1977)
W_SD = (1.0 - GAMMA) / GAMMA

LOG = sys.stdout

# solver.strang_step (SDIRK2 with the positivity fallback of reaction_step) at N = 64 deadlocks
# on this 2-core CPU with jaxlib 0.10.2: all threads end in futex wait and the run never
# finishes (reaction_step(positive=False) runs; XLA_FLAGS
# --xla_cpu_enable_concurrency_optimized_scheduler=false does not help).  Pinning the process to
# one core avoids it, so the implicit CPU worker is pinned (and says so in its note).  The
# in-process --gpu mode is not pinned: on a CPU backend keep its sizes below 64.
def pin_one_core() -> str | None:
    if os.environ.get("ENGINE_PIN_IMPLICIT", "1") == "0" or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})
        return f"pinned to 1 of {len(cpus)} cores (deadlock workaround)"
    return None


def log(*a):
    print(*a, file=LOG, flush=True)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def source_mask(n: int) -> np.ndarray:
    """1 in cells whose centre is within R_SRC of the cube centre, shape (n, n, n)."""
    x = (np.arange(n) + 0.5) * (L_M / n)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    c = 0.5 * L_M
    return (((X - c) ** 2 + (Y - c) ** 2 + (Z - c) ** 2) <= R_SRC_M**2).astype(np.float64)


def axis_matrix(n: int, u: float) -> np.ndarray:
    """The 1D finite-volume operator along one axis, built independently of the package:
    two-point diffusion D/dx², zero-flux walls, first-order upwind convection (u ≥ 0) with
    inflow c_in = 0 at the low side and outflow at the high side."""
    dx = L_M / n
    a = D_M2S / dx**2
    M = np.zeros((n, n))
    i = np.arange(n - 1)
    M[i, i + 1] += a
    M[i + 1, i] += a + u / dx
    M[i, i] -= a + u / dx
    M[i + 1, i + 1] -= a
    M[n - 1, n - 1] -= u / dx
    return M


_SPECTRAL: dict = {}


def spectral(n: int, convection: bool):
    """Eigen-decomposition of the three axis operators and the source in that basis."""
    key = (n, convection)
    if key not in _SPECTRAL:
        lams, Vs = [], []
        Vis = []
        for a in range(3):
            M = axis_matrix(n, U_MS if (convection and a == 0) else 0.0)
            if np.allclose(M, M.T, rtol=0, atol=1e-14 * np.abs(M).max()):
                lam, V = np.linalg.eigh(M)
                Vi = V.T
            else:  # upwind: real spectrum (similar to a symmetric tridiagonal)
                lam, V = np.linalg.eig(M)
                lam, V = lam.real, V.real
                Vi = np.linalg.inv(V)
            lams.append(lam)
            Vs.append(V)
            Vis.append(Vi)
        s_hat = np.einsum("ai,bj,ck,ijk->abc", *Vis, S_MOL * source_mask(n), optimize=True)
        lam3 = lams[0][:, None, None] + lams[1][None, :, None] + lams[2][None, None, :]
        _SPECTRAL[key] = (lams, Vs, s_hat, lam3)
    return _SPECTRAL[key]


def _to_cells(Vs, c_hat):
    return np.einsum("ia,jb,kc,abc->ijk", *Vs, c_hat, optimize=True)


def exact_reference(n: int, convection: bool) -> np.ndarray:
    """c(t_end) of dc/dt = (A − k) c + s, c(0) = 0, exactly: ((e^{λT} − 1)/λ) ŝ per mode."""
    lams, Vs, s_hat, lam3 = spectral(n, convection)
    lam = lam3 - K_1S
    return _to_cells(Vs, np.expm1(lam * T_END_S) / lam * s_hat)


def _affine_sdirk2(h, lam):
    """One SDIRK2 step of y' = λy + s written as y → ρ y + σ s (the algebra of
    solver.reaction_step / solver._axis_sweep):  Y₁ = (y + γh s)/(1 − γhλ),
    Y₂ = (y + W (Y₁ − y) + γh s)/(1 − γhλ).  For linear problems its stability function
    (1 + (1 − 2γ)z)/(1 − γz)² equals that of the TR-BDF2 the package used before."""
    d = 1.0 - GAMMA * h * lam
    rho = ((1.0 - W_SD) + W_SD / d) / d
    sig = (W_SD * GAMMA * h / d + GAMMA * h) / d
    return rho, sig


def _r_sdirk2(z):
    """Amplification factor of SDIRK2 for y' = λy, z = hλ."""
    return _affine_sdirk2(1.0, z)[0]


def predicted_error(n: int, convection: bool, scheme: str, h: float, steps: int) -> float:
    """Exact relative L2 error at t = steps·h of a linear one-step scheme, mode by mode.

    Every scheme here maps each eigenmode affinely, ĉ → A ĉ + B ŝ, because the three axis
    operators commute and the reaction is linear with a spatially uniform rate:
      'strang'      the package's strang_step: R(h/2) T(h) R(h/2), T = SDIRK2 sweeps
                    x(h/2) y(h/2) z(h) y(h/2) x(h/2), R = SDIRK2 of −k c + s (its
                    positivity fallback never triggers here: c ≥ 0, s ≥ 0)
      'explicit'    forward Euler on the full operator
      'backward'    backward Euler on the full operator (FiPy)
      'unsplit'     SDIRK2 on the full operator, source inside the solve (diagnostic)
    """
    lams, Vs, s_hat, lam3 = spectral(n, convection)
    lx, ly, lz = (l for l in lams)
    if scheme == "strang":
        tau = (_r_sdirk2(0.5 * h * lx)[:, None, None] ** 2
               * _r_sdirk2(0.5 * h * ly)[None, :, None] ** 2
               * _r_sdirk2(h * lz)[None, None, :])
        rho, sig = _affine_sdirk2(0.5 * h, -K_1S)
        A, B = rho**2 * tau, sig * (1.0 + rho * tau)
    elif scheme == "explicit":
        A, B = 1.0 + h * (lam3 - K_1S), h
    elif scheme == "backward":
        A = 1.0 / (1.0 - h * (lam3 - K_1S))
        B = h * A
    elif scheme == "unsplit":
        A, B = _affine_sdirk2(h, lam3 - K_1S)
    else:
        raise ValueError(scheme)
    c_hat = B * s_hat * (1.0 - A**steps) / (1.0 - A)
    ref = exact_reference(n, convection)
    return float(np.linalg.norm(_to_cells(Vs, c_hat) - ref) / np.linalg.norm(ref))


def rel_error(c: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(c, np.float64).reshape(ref.shape) - ref)
                 / np.linalg.norm(ref))


def stable_dt(n: int, convection: bool) -> float:
    """Gershgorin forward-Euler bound, as solver.explicit_stable_dt computes it."""
    worst = sum(float(np.max(-np.diag(axis_matrix(n, U_MS if (convection and a == 0) else 0.0))))
                for a in range(3))
    return 1.0 / worst


def near_sqrt_divisor(n: int) -> int:
    """Divisor of n closest to √n (macro-interval length for integrate, so h is exact)."""
    r = math.sqrt(n)
    divs = [d for d in range(1, int(r) + 2) if n % d == 0]
    divs += [n // d for d in divs]
    return min(divs, key=lambda d: abs(d - r))


def explicit_steps(n: int, convection: bool) -> int:
    """Number of explicit steps to t_end: at least T/dt_stable, rounded up to a multiple of a
    macro length near √steps so integrate takes equal steps h = T/steps ≤ dt_stable."""
    m = int(math.ceil(T_END_S / stable_dt(n, convection) - 1e-9))
    spm = max(1, int(round(math.sqrt(m))))
    return spm * int(math.ceil(m / spm))


# ------------------------------------------------------------------ workers (subprocesses)
def heterogeneous_fields(n: int, seed: int = 0):
    """(D, k) of shape (1, n, n, n) for --heterogeneous: D = 1e-10 m²/s with a factor-10 drop
    inside the central ball of radius TUMOR_R_M, and k = K_1S × 10^(g − ½), g ∈ [0, 1] a
    smooth Gaussian random field (correlation length CORR_M, seed ``seed``) scaled to [0, 1]."""
    x = (np.arange(n) + 0.5) * (L_M / n) - 0.5 * L_M
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    tumor = X**2 + Y**2 + Z**2 <= TUMOR_R_M**2
    d = np.where(tumor, D_M2S / D_JUMP, D_M2S)
    rng = np.random.default_rng(seed)
    kf = 2 * np.pi * np.fft.fftfreq(n, d=L_M / n)
    KX, KY, KZ = np.meshgrid(kf, kf, kf, indexing="ij")
    filt = np.exp(-0.5 * (KX**2 + KY**2 + KZ**2) * CORR_M**2)
    g = np.real(np.fft.ifftn(np.fft.fftn(rng.normal(size=(n, n, n))) * filt))
    g = (g - g.min()) / (g.max() - g.min())
    k = K_1S * 10.0 ** (g - 0.5)
    return d[None], k[None]


def _jax_setup(dtype_name: str):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp, (jnp.float64 if dtype_name == "float64" else jnp.float32)


def _nt_problem(n, convection, dtype):
    import jax.numpy as jnp
    from nanotransport import fv, grid

    g = grid.cartesian3d((L_M,) * 3, (n,) * 3)
    src = jnp.asarray(S_MOL * source_mask(n)[None], dtype)
    wall = (fv.Flux(), fv.Flux())
    xb = (fv.Inflow(0.0), fv.Outflow()) if convection else wall
    vel = (U_MS, None, None) if convection else None

    def transport(d):
        return fv.Transport(diffusivity=d, velocity=vel, boundaries=(xb, wall, wall))

    return g, src, transport


def _time_calls(fn, args, max_repeats=3, cheap_s=5.0):
    """Setup = trace + lower + compile, timed on its own (jit(...).lower(...).compile());
    then the first jitted call (compiles again into jit's cache, + run) and up to
    ``max_repeats`` timed repeats.  Returns (compile_s, first_call_s, [walls], out)."""
    t = time.perf_counter()
    fn.lower(*args).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out = fn(*args)
    out.block_until_ready()
    first = time.perf_counter() - t
    walls = []
    for r in range(max_repeats):
        t = time.perf_counter()
        out = fn(*args)
        out.block_until_ready()
        walls.append(time.perf_counter() - t)
        if walls[0] > cheap_s:
            break
    return compile_s, first, walls, out


def worker_nanotransport(cfg):
    pinned = pin_one_core() if cfg["impl"] == "nanotransport-implicit" else None
    jax, jnp, dtype = _jax_setup(cfg["dtype"])
    from nanotransport import solver

    n, conv, kind = cfg["N"], cfg["convection"], cfg["impl"]
    g, src, transport = _nt_problem(n, conv, dtype)
    dt, steps = cfg["dt"], cfg["steps"]
    t_run = dt * steps
    spm = near_sqrt_divisor(steps)
    const = kind == "nanotransport-explicit-const"

    def simulate(d, k, c0):
        if const:
            d, k = jnp.asarray(D_M2S, dtype), K_1S
        tr = transport(d)

        def f(t, c):
            return -k * c + src

        if kind == "nanotransport-implicit":
            step = solver.strang_step(g, tr, f, newton_iterations=cfg.get("newton", 1))
        elif kind == "nanotransport-unsplit":
            tr_s = dataclasses.replace(tr, source=src)

            def step(t, h, c):
                return solver.implicit_step(g, tr_s, c, h, decay=k)
        else:
            step = solver.explicit_step(g, tr, f)
        _, saved = solver.integrate(step, c0, [t_run], max_dt=dt, steps_per_macro=spm)
        return saved[0]

    run = jax.jit(simulate)
    if cfg.get("heterogeneous"):
        d0, k0 = (jnp.asarray(a, dtype) for a in heterogeneous_fields(n))
    else:
        d0, k0 = jnp.asarray(D_M2S, dtype), jnp.asarray(K_1S, dtype)
    c0 = jnp.zeros((1, n, n, n), dtype)
    comp, first, walls, out = _time_calls(run, (d0, k0, c0), cfg.get("repeats", 3))
    wall = float(np.median(walls))
    res = dict(dt_s=dt, steps=steps, setup_s=comp, first_call_s=first, wall_s=wall, walls=walls)
    notes = []
    if kind == "nanotransport-unsplit" and cfg.get("heterogeneous"):
        notes.append("solver.implicit_step: unsplit SDIRK2, CG + float32 multigrid V-cycle "
                     "(variable D, k) per stage (rel. tol 1e-10)")
    elif kind == "nanotransport-unsplit":
        notes.append("solver.implicit_step: unsplit SDIRK2, source and decay in the solve, "
                     + ("BiCGStab + fast diagonalization (exact: uniform D, k, u)" if conv else
                        "CG + fast diagonalization (exact: uniform D, k)")
                     + " per stage (rel. tol 1e-10)")
    if kind == "nanotransport-implicit":
        notes.append(f"SDIRK2 Strang, newton_iterations={cfg.get('newton', 1)}")
        if pinned:
            notes.append(pinned)
    if kind.startswith("nanotransport-explicit"):
        pkg_dt = solver.explicit_stable_dt(g, transport(d0), 1)
        notes.append(f"explicit_stable_dt={pkg_dt:.4g} s, h={dt:.4g} s")
        if const:
            notes.append("D,k Python constants (coefficients constant-folded)")
        else:
            notes.append("D,k traced")
    if cfg.get("recompile_check"):
        size = getattr(run, "_cache_size", lambda: -1)
        before = size()
        t = time.perf_counter()
        run(jnp.asarray(2.0 * D_M2S, dtype), jnp.asarray(3.0 * K_1S, dtype), c0).block_until_ready()
        t_new = time.perf_counter() - t
        after = size()
        res["new_params_call_s"] = t_new
        res["jit_cache_size"] = [before, after]
        notes.append(f"new D,k call {t_new:.2f} s, jit cache {before}->{after}"
                     + (" (no recompile)" if before == after else " (RECOMPILED)"))
    res["note"] = "; ".join(notes)
    return res, np.asarray(out[0], np.float64)


def worker_reference(cfg):
    """The --heterogeneous reference: ``implicit_step`` at REFERENCE_DTS_S (relative residual
    1e-13), Richardson-extrapolated for SDIRK2's second order: (4 c_fine − c_coarse)/3."""
    jax, jnp, dtype = _jax_setup("float64")
    from nanotransport import solver

    n = cfg["N"]
    g, src, transport = _nt_problem(n, False, dtype)
    d, k = (jnp.asarray(a, dtype) for a in heterogeneous_fields(n))
    tr = dataclasses.replace(transport(d), source=src)

    def simulate(dt):
        steps = int(round(T_END_S / dt))

        def step(t, h, c):
            return solver.implicit_step(g, tr, c, h, decay=k, tol=1e-13)

        c0 = jnp.zeros((1, n, n, n), dtype)
        return solver.integrate(step, c0, [T_END_S], max_dt=dt,
                                steps_per_macro=near_sqrt_divisor(steps))[1][0][0]

    t = time.perf_counter()
    coarse, fine = (np.asarray(jax.jit(lambda: simulate(dt))(), np.float64)
                    for dt in REFERENCE_DTS_S)
    ref = (4.0 * fine - coarse) / 3.0
    gap = float(np.linalg.norm(fine - coarse) / np.linalg.norm(ref))
    return dict(dt_s=REFERENCE_DTS_S[1], steps=int(round(T_END_S / REFERENCE_DTS_S[1])),
                setup_s=0.0, wall_s=time.perf_counter() - t, richardson_gap=gap,
                note=f"dt {REFERENCE_DTS_S[0]:g}/{REFERENCE_DTS_S[1]:g} s differ by {gap:.2e}; "
                     "Richardson-extrapolated"), ref


def worker_stencil(cfg):
    jax, jnp, dtype = _jax_setup(cfg["dtype"])
    res, out = _stencil_run(jax, jnp, dtype, cfg["N"], cfg["convection"], cfg["steps"],
                            cfg["dt"], cfg.get("repeats", 3))
    return res, np.asarray(out[0], np.float64)


def make_stencil(jnp, dtype, n, convection):
    """One explicit step c + h (D∇²c − k c + s [− u ∂c/∂x upwind]); D, k traced."""
    dx = L_M / n
    src = jnp.asarray(S_MOL * source_mask(n)[None], dtype)
    pad = ((0, 0), (1, 1), (1, 1), (1, 1))

    def step(c, d, k, h):
        p = jnp.pad(c, pad, mode="edge")  # ghost = cell value: zero diffusive flux
        lap = (p[:, 2:, 1:-1, 1:-1] + p[:, :-2, 1:-1, 1:-1] + p[:, 1:-1, 2:, 1:-1]
               + p[:, 1:-1, :-2, 1:-1] + p[:, 1:-1, 1:-1, 2:] + p[:, 1:-1, 1:-1, :-2] - 6.0 * c)
        rate = (d / dx**2) * lap - k * c + src
        if convection:  # upwind, inflow c_in = 0 at x = 0, outflow at x = L
            up = jnp.pad(c, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]
            rate = rate - (U_MS / dx) * (c - up)
        return c + h * rate

    return step


def _stencil_run(jax, jnp, dtype, n, convection, steps, dt, repeats):
    step = make_stencil(jnp, dtype, n, convection)

    def simulate(d, k, c0):
        h = jnp.asarray(dt, dtype)
        c, _ = jax.lax.scan(lambda c, _: (step(c, d, k, h), None), c0, None, length=steps)
        return c

    run = jax.jit(simulate)
    args = (jnp.asarray(D_M2S, dtype), jnp.asarray(K_1S, dtype), jnp.zeros((1, n, n, n), dtype))
    comp, first, walls, out = _time_calls(run, args, repeats)
    wall = float(np.median(walls))
    return dict(dt_s=dt, steps=steps, setup_s=comp, first_call_s=first, wall_s=wall, walls=walls,
                note="7-point stencil, edge padding, one lax.scan, D,k traced"), out


def worker_pypde(cfg):
    import warnings

    warnings.filterwarnings("ignore")
    try:
        import pde
    except Exception as e:  # noqa: BLE001
        return dict(skipped=f"py-pde not importable: {e!r}"), None
    n, conv, dt = cfg["N"], cfg["convection"], cfg["dt"]
    t0 = time.perf_counter()
    grid = pde.CartesianGrid([[0.0, L_M]] * 3, [n] * 3)
    s = pde.ScalarField(grid, S_MOL * source_mask(n))
    expr = "D*laplace(c) - k*c + s" + (" - u*d_dx(c)" if conv else "")
    consts = {"D": D_M2S, "k": K_1S, "s": s}
    bc_ops = None
    if cfg.get("heterogeneous"):
        d, k = heterogeneous_fields(n)
        expr = "divergence(D * gradient(c)) - k*c + s"
        consts.update(D=pde.ScalarField(grid, d[0]), k=pde.ScalarField(grid, k[0]))
        # the flux D ∇c is zero on the walls (by default its ghost cells copy the interior:
        # 46 % of the mass was lost at N = 16)
        bc_ops = {"c:divergence": {"value": 0.0}}
    if conv:  # conservative central advection: c = c_in = 0 behind the inflow face
        consts["u"] = U_MS
        bc_ops = {"c:d_dx": {"x-": {"value": 0.0}, "x+": {"derivative": 0.0},
                             "y": {"derivative": 0.0}, "z": {"derivative": 0.0}}}
    eq = pde.PDE({"c": expr}, consts=consts, bc={"derivative": 0}, bc_ops=bc_ops)
    state = pde.ScalarField(grid, 0.0)
    solver = pde.EulerSolver(eq, backend="numba", adaptive=False)
    stepper = solver.make_stepper(state, dt=dt)   # numba compilation happens here
    stepper(state, 0.0, dt)                       # first step (any lazy compilation)
    setup = time.perf_counter() - t0
    walls = []
    for r in range(cfg.get("repeats", 3)):
        state.data[:] = 0.0
        solver.info["steps"] = 0
        t = time.perf_counter()
        t_final = stepper(state, 0.0, T_END_S)
        walls.append(time.perf_counter() - t)
        if walls[0] > 5.0:
            break
    done = int(solver.info["steps"])
    note = f"numba backend, EulerSolver, fixed dt; t_final={t_final:.6g} s"
    note += f"; pde {pde.__version__}"
    if cfg.get("heterogeneous"):
        note += ("; divergence(D * gradient(c)): central differences, not the two-point-flux "
                 "operator (its error includes that spatial difference)")
    if conv:
        note += ("; advection = central d_dx with c=0 ghost at inflow, zero gradient at "
                 "outflow (2nd-order central, not the first-order upwind FV operator: its "
                 "error includes that spatial difference)")
    return dict(dt_s=dt, steps=done, setup_s=setup, wall_s=float(np.median(walls)),
                walls=walls, note=note), np.asarray(state.data, np.float64)


def worker_fipy(cfg):
    try:
        import fipy as fp
    except Exception as e:  # noqa: BLE001
        return dict(skipped=f"fipy not importable: {e!r}"), None
    n, conv, dt, steps = cfg["N"], cfg["convection"], cfg["dt"], cfg["steps"]
    cap = cfg.get("max_steps") or steps
    t0 = time.perf_counter()
    dx = L_M / n
    mesh = fp.Grid3D(dx=dx, dy=dx, dz=dx, nx=n, ny=n, nz=n)
    xc, yc, zc = mesh.cellCenters.value
    h = 0.5 * L_M
    mask = (((xc - h) ** 2 + (yc - h) ** 2 + (zc - h) ** 2) <= R_SRC_M**2).astype(float)
    c = fp.CellVariable(mesh=mesh, value=0.0)
    src = fp.CellVariable(mesh=mesh, value=S_MOL * mask)
    if cfg.get("heterogeneous"):
        d, k = (fp.CellVariable(mesh=mesh, value=a[0].ravel(order="F"))
                for a in heterogeneous_fields(n))  # FiPy numbers cells x fastest
        rhs = fp.DiffusionTerm(coeff=d.harmonicFaceValue) - fp.ImplicitSourceTerm(coeff=k) + src
    else:
        rhs = fp.DiffusionTerm(coeff=D_M2S) - fp.ImplicitSourceTerm(coeff=K_1S) + src
    if conv:
        # FiPy's exterior faces carry no convective flux by default (= inflow of c_in = 0);
        # the outflow at x = L is the usual implicit source u·n on the right faces.
        zero = np.zeros(mesh.numberOfFaces)
        ext = np.asarray(mesh.exteriorFaces.value, bool)
        right = np.asarray(mesh.facesRight.value, bool)
        vel = fp.FaceVariable(mesh=mesh, rank=1,
                              value=np.vstack([np.where(ext, 0.0, U_MS), zero, zero]))
        out = fp.FaceVariable(mesh=mesh, rank=1,
                              value=np.vstack([np.where(right, U_MS, 0.0), zero, zero]))
        eq = (fp.TransientTerm() + fp.UpwindConvectionTerm(coeff=vel)
              + fp.ImplicitSourceTerm(coeff=out.divergence) == rhs)
    else:
        eq = fp.TransientTerm() == rhs
    # symmetric: (P)CG; with convection GMRES (scipy BiCGSTAB breaks down here and returns a
    # wrong field with only a warning)
    lin = fp.LinearPCGSolver(tolerance=1e-10, iterations=2000) if not conv else \
        fp.LinearGMRESSolver(tolerance=1e-10, iterations=2000)
    build = time.perf_counter() - t0
    ts = []
    run_steps = min(steps, cap)
    for i in range(run_steps):
        t = time.perf_counter()
        eq.solve(var=c, dt=dt, solver=lin)
        ts.append(time.perf_counter() - t)
    typical = float(np.median(ts[1:])) if len(ts) > 1 else ts[0]
    extra_first = max(0.0, ts[0] - typical)
    setup = build + extra_first
    solver_name = type(lin).__name__
    note = f"backward Euler, {solver_name} tol 1e-10; fipy {fp.__version__}"
    if run_steps < steps:
        wall = typical * steps
        note += (f"; CAPPED: ran {run_steps} of {steps} steps, wall EXTRAPOLATED linearly "
                 f"({typical:.2f} s/step); error "
                 + ("NOT MEASURED" if cfg.get("heterogeneous") else
                    "PREDICTED (exact backward-Euler model)"))
        field = None
    else:
        wall = float(sum(ts)) - extra_first
        field = np.asarray(c.value, np.float64).reshape((n, n, n), order="F")
    return dict(dt_s=dt, steps=steps, steps_run=run_steps, setup_s=setup, wall_s=wall,
                per_step_s=typical, note=note, capped=run_steps < steps), field


WORKERS = {
    "nanotransport-implicit": worker_nanotransport,
    "nanotransport-unsplit": worker_nanotransport,
    "nanotransport-explicit": worker_nanotransport,
    "nanotransport-explicit-const": worker_nanotransport,
    "nanotransport-reference": worker_reference,
    "jax-stencil": worker_stencil,
    "py-pde": worker_pypde,
    "fipy": worker_fipy,
}


def worker_main(cfg_json: str) -> None:
    base = maxrss_mb()
    load = os.getloadavg()[0]
    cfg = json.loads(cfg_json)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    res, field = WORKERS[cfg["impl"]](cfg)
    res["peak_mb"] = maxrss_mb()
    res["base_mb"] = base
    res["load1_at_start"] = load
    ru = resource.getrusage(resource.RUSAGE_SELF)
    res["cpu_s"] = ru.ru_utime + ru.ru_stime
    if os.environ.get("XLA_FLAGS"):
        res["xla_flags"] = os.environ["XLA_FLAGS"]
    if field is not None:
        np.save(cfg["out"], field)
        res["field"] = cfg["out"]
    print("RESULT " + json.dumps(res), flush=True)


def run_worker(cfg: dict, timeout: float = 1800) -> dict:
    """Run one implementation in a fresh Python process; returns its result dict."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cfg)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(skipped=f"timed out after {timeout:.0f} s")
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[len("RESULT "):])
            res["process_s"] = time.perf_counter() - t
            return res
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    return dict(skipped=f"worker failed (rc={p.returncode}): " + " | ".join(tail))


# ------------------------------------------------------------------ CPU benchmark driver
def choose_matched_dt(n, convection, target_err, scheme="strang"):
    """Largest candidate dt whose predicted error of ``scheme`` is ≤ target."""
    for dt in CANDIDATE_DTS:
        steps = int(round(T_END_S / dt))
        e = predicted_error(n, convection, scheme, dt, steps)
        if e <= target_err:
            return float(dt), steps, e
    dt = CANDIDATE_DTS[-1]
    steps = int(round(T_END_S / dt))
    return float(dt), steps, predicted_error(n, convection, scheme, dt, steps)


def _fipy_matched(n, convection, target_err):
    """(dt, steps, error) of backward Euler (FiPy's scheme) at the explicit reference's
    accuracy: the largest dt on a fine ladder of divisors of 3600 s whose predicted error is
    ≤ target (first order: about dt · target / error(dt))."""
    ladder = sorted({3600.0 / m for m in range(60, 72001, 60)}, reverse=True)
    for dt in ladder:
        steps = int(round(T_END_S / dt))
        e = predicted_error(n, convection, "backward", dt, steps)
        if e <= target_err:
            return dt, steps, e
    dt = ladder[-1]
    steps = int(round(T_END_S / dt))
    return dt, steps, predicted_error(n, convection, "backward", dt, steps)


def make_row(impl, res, n, variant, ref, dtype="float64", predicted=None) -> dict:
    """A table row from a worker's result: the error measured against ``ref`` when the worker
    saved its field, else ``predicted(dt, steps)`` when given; totals and rates."""
    row = dict(implementation=impl, N=n, variant=variant, dtype=dtype)
    row.update(res)
    if "skipped" in res:
        row.update(error=None, wall_s=None, setup_s=None, peak_mb=None,
                   note="SKIPPED: " + res["skipped"])
    else:
        if res.get("field"):
            row["error"] = rel_error(np.load(res["field"]), ref)
            row["error_kind"] = "measured"
            os.remove(res.pop("field"))
        elif predicted is not None:
            row["error"] = predicted(res["dt_s"], res["steps"])
            row["error_kind"] = "predicted"
        row["total_s"] = row["setup_s"] + row["wall_s"]
        row["per_step_s"] = row["wall_s"] / row["steps"]
        row["cell_updates_per_s"] = n**3 * row["steps"] / row["wall_s"]
    row.pop("walls", None)
    return row


def run_cpu(args) -> list[dict]:
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="dr3d_"))
    variant = "convection" if args.convection else "diffusion"
    impls = set(args.only) if args.only else None

    def want(name):
        return impls is None or name in impls

    for n in args.sizes:
        t_n = time.perf_counter()
        ref = exact_reference(n, args.convection)
        n_ex = explicit_steps(n, args.convection)
        h_ex = T_END_S / n_ex
        log(f"\n=== DR3D {variant}, N={n}: explicit h={h_ex:.4g} s x {n_ex} steps; "
            f"reference = exact solution of the same semi-discrete ODE (same grid)")

        def add(impl, res, dtype="float64", scheme=None):
            predicted = None if scheme is None else (
                lambda dt, steps: predicted_error(n, args.convection, scheme, dt, steps))
            row = make_row(impl, res, n, variant, ref, dtype, predicted)
            rows.append(row)
            log(fmt_row(row))
            return row

        def cfg(impl, dt, steps, dtype="float64", **kw):
            c = dict(impl=impl, N=n, convection=args.convection, dtype=dtype, dt=dt,
                     steps=steps, out=str(tmp / f"{impl}_{n}_{dtype}.npy"))
            c.update(kw)
            return c

        ex_err = None
        dtypes = ["float64"] + (["float32"] if args.float32 else [])
        for dtype in dtypes:
            if want("nanotransport-explicit"):
                r = add("nanotransport-explicit",
                        run_worker(cfg("nanotransport-explicit", h_ex, n_ex, dtype)), dtype)
                if dtype == "float64" and r.get("error") is not None:
                    ex_err = r["error"]
            if want("jax-stencil"):
                add("jax-stencil", run_worker(cfg("jax-stencil", h_ex, n_ex, dtype)), dtype)
        if want("nanotransport-explicit-const") and n == max(args.sizes):
            add("nanotransport-explicit-const",
                run_worker(cfg("nanotransport-explicit-const", h_ex, n_ex)))
        if ex_err is None:
            ex_err = predicted_error(n, args.convection, "explicit", h_ex, n_ex)

        nom_steps = int(round(T_END_S / NOMINAL_DT_S))
        imp = None
        for dtype in dtypes:
            if want("nanotransport-implicit"):
                r = add("nanotransport-implicit",
                        run_worker(cfg("nanotransport-implicit", NOMINAL_DT_S, nom_steps, dtype,
                                       recompile_check=(dtype == "float64"))),
                        dtype, scheme="strang")
                if dtype == "float64" and r.get("wall_s"):
                    imp = r
                    pred = predicted_error(n, args.convection, "strang", NOMINAL_DT_S, nom_steps)
                    r["predicted_error"] = pred
                    r["note"] += f"; model-predicted error {pred:.6g} (measured {r['error']:.6g})"
        # accuracy-matched implicit step (derived from the measured per-step cost)
        dt_m, steps_m, err_m = choose_matched_dt(n, args.convection, ex_err)
        log(f"  implicit dt matching the explicit error {ex_err:.3g}: dt={dt_m:g} s "
            f"({steps_m} steps, predicted error {err_m:.3g})")
        if imp is not None:
            row = dict(implementation="nanotransport-implicit (matched dt)", N=n,
                       variant=variant, dtype="float64", dt_s=dt_m, steps=steps_m,
                       setup_s=imp["setup_s"], wall_s=imp["per_step_s"] * steps_m,
                       error=err_m, error_kind="predicted", peak_mb=imp["peak_mb"],
                       note=("DERIVED: largest dt with predicted error <= explicit error; "
                             "wall = measured per-step time x steps; error predicted by the "
                             "exact model of strang_step (validated on the dt=60 s row)"))
            row["total_s"] = row["setup_s"] + row["wall_s"]
            row["per_step_s"] = imp["per_step_s"]
            row["cell_updates_per_s"] = n**3 * steps_m / row["wall_s"]
            rows.append(row)
            log(fmt_row(row))

        if want("nanotransport-unsplit"):
            dt_u, steps_u, err_u = choose_matched_dt(n, args.convection, ex_err, "unsplit")
            log(f"  unsplit dt matching the explicit error {ex_err:.3g}: dt={dt_u:g} s "
                f"({steps_u} steps, predicted error {err_u:.3g})")
            r = add("nanotransport-unsplit",
                    run_worker(cfg("nanotransport-unsplit", dt_u, steps_u, "float64",
                                   recompile_check=True)))
            if r.get("error") is not None:
                r["note"] += f"; model-predicted error {err_u:.6g}"

        if want("py-pde") and not args.no_pypde:
            add("py-pde", run_worker(cfg("py-pde", h_ex, n_ex)), scheme="explicit")
        if want("fipy") and not args.no_fipy:
            cap = args.fipy_max_steps if args.fipy_max_steps else (None if n <= 32 else 8)
            r = add("fipy", run_worker(cfg("fipy", NOMINAL_DT_S, nom_steps, max_steps=cap)),
                    scheme="backward")
            if r.get("error_kind") == "measured":
                pred = predicted_error(n, args.convection, "backward", NOMINAL_DT_S, nom_steps)
                r["note"] += f"; model-predicted error {pred:.6g}"
        log(f"  (N={n} done in {time.perf_counter() - t_n:.0f} s; unsplit SDIRK2 on the same "
            f"operator would give error "
            f"{predicted_error(n, args.convection, 'unsplit', NOMINAL_DT_S, nom_steps):.3g} at "
            f"dt={NOMINAL_DT_S:g} s, model)")
    return rows


def run_heterogeneous(args) -> list[dict]:
    """--heterogeneous rows (module docstring): every error measured against the
    Richardson-extrapolated reference of the same semi-discrete ODE."""
    rows: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="dr3d_het_"))
    for n in args.sizes:
        t_n = time.perf_counter()
        n_ex = explicit_steps(n, False)
        h_ex = T_END_S / n_ex

        def cfg(impl, dt, steps, **kw):
            c = dict(impl=impl, N=n, convection=False, dtype="float64", dt=dt, steps=steps,
                     heterogeneous=True, out=str(tmp / f"{impl}_{n}_{dt:g}.npy"))
            c.update(kw)
            return c

        ref_res = run_worker(cfg("nanotransport-reference", REFERENCE_DTS_S[1], 0))
        if "skipped" in ref_res:
            raise SystemExit(f"heterogeneous reference failed: {ref_res['skipped']}")
        ref = np.load(ref_res.pop("field"))
        log(f"\n=== DR3D heterogeneous, N={n}: explicit h={h_ex:.4g} s x {n_ex} steps; "
            f"reference: {ref_res['note']} ({ref_res['wall_s']:.0f} s)")

        def add(impl, res):
            row = make_row(impl, res, n, "heterogeneous", ref)
            rows.append(row)
            log(fmt_row(row))
            return row

        if not args.no_explicit:
            add("nanotransport-explicit", run_worker(cfg("nanotransport-explicit", h_ex, n_ex)))
        for dt in HETEROGENEOUS_DTS_S:
            add(f"nanotransport-unsplit dt={dt:g}",
                run_worker(cfg("nanotransport-unsplit", dt, int(round(T_END_S / dt)))))
        if not args.no_pypde:
            add("py-pde", run_worker(cfg("py-pde", h_ex, n_ex)))
        if not args.no_fipy:
            cap = args.fipy_max_steps if args.fipy_max_steps else (None if n <= 32 else 8)
            add("fipy", run_worker(cfg("fipy", NOMINAL_DT_S, int(round(T_END_S / NOMINAL_DT_S)),
                                       max_steps=cap)))
        log(f"  (N={n} done in {time.perf_counter() - t_n:.0f} s)")
    return rows


def heterogeneous_ratios(rows: list[dict], n: int) -> list[dict]:
    """py-pde's, FiPy's and the explicit row's totals over the unsplit rows' at N = n, with
    both errors: for scale (the issue's goal for this case is against the uniform DR3D,
    ``benchmarks/heterogeneous.py``)."""
    by = {r["implementation"]: r for r in rows if r["N"] == n and r.get("wall_s")}
    out = []
    for other in ("py-pde", "fipy", "nanotransport-explicit"):
        o = by.get(other)
        for dt in HETEROGENEOUS_DTS_S:
            u = by.get(f"nanotransport-unsplit dt={dt:g}")
            if o is None or u is None:
                continue
            e_o = "not measured" if o.get("error") is None else f"{o['error']:.2g}"
            out.append(dict(ratio=f"{other} total / unsplit dt={dt:g} s total (errors {e_o} vs "
                                  f"{u['error']:.2g})", value=o["total_s"] / u["total_s"]))
    return out


def ratios(rows: list[dict], n: int = 64) -> list[dict]:
    """The goal ratios at N = n (total = setup + wall)."""
    def get(impl, dtype="float64"):
        for r in rows:
            if r["implementation"] == impl and r["N"] == n and r.get("dtype") == dtype \
                    and r.get("wall_s"):
                return r
        return None

    out = []
    pp, fi = get("py-pde"), get("fipy")
    imp, mat, ex = get("nanotransport-implicit"), get("nanotransport-implicit (matched dt)"), \
        get("nanotransport-explicit")
    exc, st = get("nanotransport-explicit-const"), get("jax-stencil")

    def add(name, num, den, goal, ok):
        if num is None or den is None:
            return
        v = num / den
        out.append(dict(ratio=name, value=v, goal=goal, met=bool(ok(v))))

    tot = lambda r: r["total_s"] if r else None  # noqa: E731
    for label, r in (("implicit dt=60 s", imp), ("implicit matched dt", mat),
                     ("explicit", ex)):
        if pp and r:
            add(f"py-pde total / nanotransport {label} total (errors {pp['error']:.2g} vs "
                f"{r['error']:.2g})", tot(pp), tot(r), ">= 10", lambda v: v >= 10)
    if fi and imp:
        add(f"FiPy total / nanotransport implicit total, same dt=60 s (errors "
            f"{fi['error']:.2g} vs {imp['error']:.2g})", tot(fi), tot(imp), ">= 100",
            lambda v: v >= 100)
        # equal accuracy: nanotransport at the largest dt whose error <= FiPy's error
        variant = fi["variant"] == "convection"
        dt_e, steps_e, err_e = choose_matched_dt(n, variant, fi["error"])
        t_e = imp["setup_s"] + imp["per_step_s"] * steps_e
        add(f"FiPy total (dt=60 s) / nanotransport implicit total at equal accuracy "
            f"(dt={dt_e:g} s, error {err_e:.2g}; derived)", tot(fi), t_e, ">= 100",
            lambda v: v >= 100)
    un = get("nanotransport-unsplit")
    if un and pp:
        add(f"py-pde total / nanotransport unsplit total (errors {pp['error']:.2g} vs "
            f"{un['error']:.2g}: equal or smaller)", tot(pp), tot(un), ">= 10",
            lambda v: v >= 10)
    if un and fi:
        variant = fi["variant"] == "convection"
        ex_err = ex["error"] if ex else un["error"]
        dt_f, steps_f, err_f = _fipy_matched(n, variant, ex_err)
        t_f = fi["setup_s"] + fi["per_step_s"] * steps_f
        add(f"FiPy total at the explicit reference's accuracy (backward Euler dt={dt_f:g} s, "
            f"{steps_f} steps, error {err_f:.2g}; derived from its per-step time) / "
            f"nanotransport unsplit total (error {un['error']:.2g})", t_f, tot(un), ">= 100",
            lambda v: v >= 100)
        add(f"FiPy total at dt=60 s (error {fi['error']:.2g}, {fi['error'] / un['error']:.0f}× "
            f"the unsplit error) / "
            f"nanotransport unsplit total (error {un['error']:.2g})", tot(fi), tot(un),
            "(for scale)", lambda v: True)
    if ex and st:
        add("nanotransport explicit step / jax-stencil step (D,k traced)",
            ex["per_step_s"], st["per_step_s"], "<= 1.5", lambda v: v <= 1.5)
    if exc and st:
        add("nanotransport explicit step (D,k constants) / jax-stencil step",
            exc["per_step_s"], st["per_step_s"], "<= 1.5", lambda v: v <= 1.5)
    return out


# ------------------------------------------------------------------ formatting
COLS = ("implementation", "N", "dtype", "dt_s", "steps", "setup_s", "wall_s",
        "cell_updates_per_s", "error", "peak_mb", "note")


def _f(v, col):
    if v is None:
        return "-"
    if col in ("implementation", "note", "dtype"):
        return str(v)
    if col in ("N", "steps"):
        return str(int(v))
    if col == "error":
        return f"{v:.3g}"
    if col == "cell_updates_per_s":
        return f"{v:.3g}"
    if col == "peak_mb":
        return f"{v:.0f}"
    if col == "dt_s":
        return f"{v:.4g}"
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"


def fmt_row(r):
    e = r.get("error_kind")
    err = _f(r.get("error"), "error") + ("*" if e == "predicted" else "")
    return (f"  {r['implementation']:<38s} N={r['N']:<4d} {r.get('dtype', ''):<8s} "
            f"dt={_f(r.get('dt_s'), 'dt_s'):>8s} steps={_f(r.get('steps'), 'steps'):>6s} "
            f"setup={_f(r.get('setup_s'), 'setup_s'):>6s}s wall={_f(r.get('wall_s'), 'wall_s'):>7s}s "
            f"cups={_f(r.get('cell_updates_per_s'), 'cell_updates_per_s'):>8s} err={err:>9s} "
            f"peak={_f(r.get('peak_mb'), 'peak_mb'):>5s}MB | {r.get('note', '')}")


def markdown_table(rows):
    head = "| " + " | ".join(COLS) + " |\n|" + "---|" * len(COLS) + "\n"
    lines = []
    for r in rows:
        cells = []
        for c in COLS:
            v = _f(r.get(c), c)
            if c == "error" and r.get("error_kind") == "predicted":
                v += "*"
            cells.append(v.replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines)


# ------------------------------------------------------------------ GPU (or any device) mode
def copy_bandwidth(jax, jnp, gib=1.0):
    n = int(gib * 2**30 // 4)
    x = jnp.ones((n,), jnp.float32)
    f = jax.jit(lambda x: x + 1.0)
    f(x).block_until_ready()
    ts = []
    for _ in range(10):
        t = time.perf_counter()
        f(x).block_until_ready()
        ts.append(time.perf_counter() - t)
    t = float(np.median(ts))
    return 2.0 * n * 4 / t, t


def run_device(args) -> list[dict]:
    """JAX implementations in float32 on the default device: per-step time, effective
    bandwidth against the measured copy bandwidth, and a float32 correctness check against the
    exact float64 reference at the smallest N."""
    jax, jnp, _ = _jax_setup("float32")
    from nanotransport import solver

    dtype = jnp.float32
    dev = jax.devices()[0]
    log(f"device: {dev.platform} {getattr(dev, 'device_kind', '')}; jax {jax.__version__}")
    bw, t_copy = copy_bandwidth(jax, jnp, args.copy_gib)
    log(f"copy bandwidth (jit x+1 on {args.copy_gib:g} GiB float32, bytes = 2 x size): "
        f"{bw / 1e9:.0f} GB/s ({t_copy * 1e3:.2f} ms)")
    rows = []
    conv = args.convection
    for n in args.sizes:
        g, src, transport = _nt_problem(n, conv, dtype)
        stencil = make_stencil(jnp, dtype, n, conv)
        cells = n**3

        def nt_loop(kind):
            def loop(d, k, c0, h, steps):
                tr = transport(d)

                def f(t, c):
                    return -k * c + src

                step = (solver.strang_step(g, tr, f, newton_iterations=1)
                        if kind == "implicit" else solver.explicit_step(g, tr, f))
                return jax.lax.fori_loop(0, steps, lambda i, c: step(0.0, h, c), c0)
            return loop

        def st_loop(d, k, c0, h, steps):
            return jax.lax.fori_loop(0, steps, lambda i, c: stencil(c, d, k, h), c0)

        # bytes per step (float32): explicit = read c + write c + read s;
        # implicit = 5 sweeps x (M c: r+w, 2 tridiagonal solves: r+w each) + 2 reaction
        # half-steps (read c, read s, write c): 5*6 + 2*3 = 36 field passes (lower bound;
        # coefficient arrays, transposes and temporaries not counted).
        impls = [("jax-stencil", st_loop, 3, None),
                 ("nanotransport-explicit", nt_loop("explicit"), 3, None),
                 ("nanotransport-implicit", nt_loop("implicit"), 36, NOMINAL_DT_S)]
        h_ex = T_END_S / explicit_steps(n, conv)
        for name, loop, passes, dt in impls:
            h = dt if dt else h_ex
            fn = jax.jit(loop)
            a = (jnp.asarray(D_M2S, dtype), jnp.asarray(K_1S, dtype),
                 jnp.zeros((1, n, n, n), dtype), jnp.asarray(h, dtype))
            try:
                t = time.perf_counter()
                fn(*a, 2).block_until_ready()
                first = time.perf_counter() - t
                t = time.perf_counter()
                fn(*a, 2).block_until_ready()
                two = time.perf_counter() - t
                t = time.perf_counter()
                fn(*a, 10).block_until_ready()
                probe = (time.perf_counter() - t) / 10
                steps = int(min(max(args.device_seconds / max(probe, 1e-7), 10), 20000))
                ts = []
                for _ in range(3):
                    t = time.perf_counter()
                    fn(*a, steps).block_until_ready()
                    ts.append(time.perf_counter() - t)
                per = float(np.median(ts)) / steps
            except Exception as e:  # noqa: BLE001
                rows.append(dict(implementation=name, N=n, dtype="float32",
                                 note=f"FAILED: {type(e).__name__}: {str(e)[:200]}"))
                log(f"  {name} N={n}: FAILED {e!r}"[:300])
                continue
            nbytes = passes * cells * 4
            row = dict(implementation=name, N=n, dtype="float32", dt_s=h, steps=steps,
                       setup_s=first - two, per_step_s=per, wall_s=per * steps,
                       cell_updates_per_s=cells / per, bytes_per_step=nbytes,
                       eff_bandwidth_GBs=nbytes / per / 1e9, copy_bandwidth_GBs=bw / 1e9,
                       bandwidth_fraction=nbytes / per / bw, device=str(dev),
                       note=f"{passes} x N^3 x 4 B per step; timed {steps} steps x3 (median)")
            rows.append(row)
            log(f"  {name:<24s} N={n:<4d} setup={row['setup_s']:.2f}s "
                f"step={per * 1e3:.4g} ms  cups={cells / per:.3g}/s  "
                f"eff.bw={nbytes / per / 1e9:.0f} GB/s = {100 * nbytes / per / bw:.0f}% of copy")
    # correctness on the device in float32 against the exact float64 reference
    n = min(args.sizes)
    ref = exact_reference(n, conv)
    g, src, transport = _nt_problem(n, conv, dtype)
    stencil = make_stencil(jnp, dtype, n, conv)
    n_ex = explicit_steps(n, conv)
    h_ex = T_END_S / n_ex
    nom = int(round(T_END_S / NOMINAL_DT_S))
    checks = []
    for name, steps, h, scheme in (("jax-stencil", n_ex, h_ex, "explicit"),
                                   ("nanotransport-explicit", n_ex, h_ex, "explicit"),
                                   ("nanotransport-implicit", nom, NOMINAL_DT_S, "strang")):
        def sim(d, k, c0, name=name, steps=steps, h=h):
            if name == "jax-stencil":
                hh = jnp.asarray(h, dtype)
                return jax.lax.scan(lambda c, _: (stencil(c, d, k, hh), None), c0, None,
                                    length=steps)[0]
            tr = transport(d)
            f = lambda t, c: -k * c + src  # noqa: E731
            step = (solver.strang_step(g, tr, f, newton_iterations=1)
                    if name == "nanotransport-implicit" else solver.explicit_step(g, tr, f))
            return solver.integrate(step, c0, [T_END_S], max_dt=h,
                                    steps_per_macro=near_sqrt_divisor(steps))[1][0]
        out = jax.jit(sim)(jnp.asarray(D_M2S, dtype), jnp.asarray(K_1S, dtype),
                           jnp.zeros((1, n, n, n), dtype))
        err = rel_error(np.asarray(out[0], np.float64), ref)
        exp = predicted_error(n, conv, scheme, h, steps)
        ok = abs(err - exp) <= args.check_tol_f32 + 0.01 * exp
        checks.append(dict(implementation=name, N=n, dtype="float32", error=err,
                           expected_error=exp, ok=ok))
        log(f"  check float32 {name:<24s} N={n}: error {err:.4g}, float64 model "
            f"{exp:.4g} -> {'PASS' if ok else 'FAIL'}")
    rows.append(dict(implementation="correctness-check", checks=checks,
                     ok=all(c["ok"] for c in checks), copy_bandwidth_GBs=bw / 1e9))
    return rows


def run_check(args) -> bool:
    """Float64 check: each JAX implementation's error equals the exact prediction of its
    scheme (to 1e-6 relative), on N = 16 (runs in-process, any device)."""
    jax, jnp, dtype = _jax_setup("float64")
    ok_all = True
    for conv in (False, True):
        n = 16
        ref = exact_reference(n, conv)
        for impl, scheme in (("nanotransport-explicit", "explicit"), ("jax-stencil", "explicit"),
                             ("nanotransport-implicit", "strang")):
            if scheme == "explicit":
                steps = explicit_steps(n, conv)
                dt = T_END_S / steps
            else:
                dt, steps = NOMINAL_DT_S, int(round(T_END_S / NOMINAL_DT_S))
            cfg = dict(impl=impl, N=n, convection=conv, dtype="float64", dt=dt, steps=steps,
                       repeats=1)
            res, field = WORKERS[impl](cfg)
            err = rel_error(field, ref)
            exp = predicted_error(n, conv, scheme, dt, steps)
            ok = abs(err - exp) <= 1e-6 * exp + 1e-12
            ok_all &= ok
            log(f"  check float64 {'convection' if conv else 'diffusion':<10s} {impl:<24s} "
                f"N={n}: error {err:.10g}, exact model {exp:.10g} -> {'PASS' if ok else 'FAIL'}")
    return ok_all


# ------------------------------------------------------------------ main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--convection", action="store_true")
    p.add_argument("--heterogeneous", action="store_true",
                   help="variable D (10x jump) and k (10x-range map); error against a "
                        "Richardson-extrapolated implicit reference")
    p.add_argument("--no-explicit", action="store_true",
                   help="--heterogeneous: leave out the nanotransport explicit row")
    p.add_argument("--quick", action="store_true", help="N=16, no FiPy")
    p.add_argument("--json", action="store_true", help="print rows as a JSON list on stdout")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table")
    p.add_argument("--out", type=str, default=None, help="write rows + ratios as JSON here")
    p.add_argument("--gpu", action="store_true",
                   help="JAX only, float32, N=64,128,256, bandwidth vs copy bandwidth")
    p.add_argument("--check", action="store_true", help="float64 correctness check, N=16")
    p.add_argument("--float32", action="store_true", help="add float32 rows (CPU mode)")
    p.add_argument("--no-fipy", action="store_true")
    p.add_argument("--no-pypde", action="store_true")
    p.add_argument("--only", nargs="+", default=None, help="implementations to run")
    p.add_argument("--fipy-max-steps", type=int, default=None,
                   help="cap FiPy steps (default: full run for N<=32, 8 steps above)")
    p.add_argument("--copy-gib", type=float, default=1.0)
    p.add_argument("--device-seconds", type=float, default=0.3,
                   help="--gpu: target seconds per timed loop")
    p.add_argument("--check-tol-f32", type=float, default=2e-4,
                   help="--gpu: allowed |error - float64 model| of the float32 runs")
    p.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        worker_main(args.worker)
        return 0
    global LOG
    if args.json:
        LOG = sys.stderr
    if args.check:
        ok = run_check(args)
        log("correctness check: " + ("PASS" if ok else "FAIL"))
        return 0 if ok else 1
    if args.gpu:
        args.sizes = args.sizes or [64, 128, 256]
        rows = run_device(args)
        if args.json:
            print(json.dumps(rows, indent=1, default=str))
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=1, default=str))
        return 0 if rows[-1].get("ok") else 1
    if args.quick:
        args.sizes = args.sizes or [16]
        args.no_fipy = True
    args.sizes = args.sizes or [32, 64]
    t0 = time.perf_counter()
    log(f"load average at start: {os.getloadavg()} on {os.cpu_count()} CPUs")
    if args.heterogeneous:
        if args.convection:
            p.error("--heterogeneous runs without --convection")
        rows = run_heterogeneous(args)
        n = 64 if 64 in args.sizes else max(args.sizes)
        log("\nDR3D heterogeneous — table (errors against the Richardson reference):")
        for r in rows:
            log(fmt_row(r))
        log(f"\nratios at N={n} (total = setup + wall):")
        for q in heterogeneous_ratios(rows, n):
            log(f"  {q['ratio']}: {q['value']:.3g}")
        log(f"\nbenchmark wall time {time.perf_counter() - t0:.0f} s")
        if args.markdown:
            log("\n" + markdown_table(rows))
        if args.out:
            Path(args.out).write_text(json.dumps(dict(rows=rows), indent=1, default=str))
        if args.json:
            print(json.dumps(rows, indent=1, default=str))
        return 0
    rows = run_cpu(args)
    rat = ratios(rows, 64 if 64 in args.sizes else max(args.sizes))
    log(f"\nDR3D {'convection' if args.convection else 'diffusion'} — table "
        f"(error* = predicted by the exact scheme model, not measured):")
    for r in rows:
        log(fmt_row(r))
    log(f"\nratios at N={64 if 64 in args.sizes else max(args.sizes)} "
        f"(total = setup + wall):")
    for q in rat:
        log(f"  {q['ratio']}: {q['value']:.3g} (goal {q['goal']}: "
            f"{'MET' if q['met'] else 'NOT met'})")
    log(f"\nbenchmark wall time {time.perf_counter() - t0:.0f} s; load average at end: "
        f"{os.getloadavg()}")
    if args.markdown:
        log("\n" + markdown_table(rows))
    payload = dict(rows=rows, ratios=rat)
    if args.out:
        Path(args.out).write_text(json.dumps(payload, indent=1, default=str))
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
