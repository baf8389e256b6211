"""Why one perturbed mesentery does not converge: the branch of flow states ends at a fold.

Mesentery variant 847 of ``benchmarks/networks.py`` (every radius × e^(0.1 ξ), seed 0) is the
one of 1,000 that ``haemodynamics.solve`` reports as not converged, even after its
continuation in the phase-separation law's smoothing width (docs/networks.md).  This script
asks whether that is the solver or the model:

1. it follows the converged branch from width 2e-2 down in small steps, each solve starting
   from the previous haematocrit, and prints the smallest singular value σ_min of the
   residual's Jacobian ∂R/∂H, R = H − Φ(H) (dense, 1130 × 1130, by forward mode; the
   swept residual R̃'s Jacobian depends on how many sweeps ran) and the haematocrit of
   the segment where the residual ends up (``--segment``): σ_min → 0 where the branch stops
   is a fold (two roots meet and vanish), not a tolerance problem;
2. at width 1e-3 it minimizes ‖R(H)‖₂ by Levenberg–Marquardt with the dense Jacobian of the
   plain residual R = H − Φ(H), from the state ``solve`` stops at: a stagnating ‖R‖ with a
   singular Jacobian is a local minimum of the residual, not a root.

Slow (dense Jacobians through the host LU, one solve per column): ~10 min on 2 CPU cores.
Run: python benchmarks/network_fold.py [--variant 847] [--lm-iterations 40]
"""
from __future__ import annotations

import argparse
import dataclasses

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nanotransport.model import haemodynamics as hm  # noqa: E402
from nanotransport.model import network_files  # noqa: E402
from nanotransport.studies import verify_network as vn  # noqa: E402


def variant(index: int):
    """Mesentery variant ``index`` of benchmarks/networks.py (seed 0, 10 % spread)."""
    net = network_files.read_network(vn.mesentery_path())
    xi = np.random.default_rng(0).standard_normal((index + 1, net.n_segments))[index]
    return dataclasses.replace(net, segment_radius_m=net.segment_radius_m * np.exp(0.1 * xi))


def branch(topo, params, rheo, widths, segment):
    """Follow the converged states from the widest width; print width, residual, σ_min."""
    solve = jax.jit(lambda p, h: hm.solve_state(topo, p, rheo, h))
    jac = jax.jit(jax.jacfwd(lambda h, p: hm.residual(topo, p, rheo, h)))
    hd = hm.default_start(topo, params)
    print("| width | converged | max abs R | σ_min(∂R/∂H) | H of segment |")
    print("|---|---|---|---|---|")
    for w in widths:
        p = {**params, "separation_width": jnp.asarray(w)}
        st = solve(p, hd)
        s_min = np.linalg.svd(np.asarray(jac(st["hematocrit"], p)), compute_uv=False)[-1]
        print(f"| {w:.5f} | {bool(st['converged'])} | {float(st['residual']):.1e} | "
              f"{s_min:.2e} | {float(st['hematocrit'][segment]):.4f} |", flush=True)
        if not bool(st["converged"]):
            return
        hd = st["hematocrit"]


def levenberg_marquardt(residual, jacobian, h, iterations):
    """min ‖R(h)‖₂ by Levenberg–Marquardt (Marquardt's diagonal scaling); returns h, R, the
    Jacobian's smallest singular value at h.  Hand-written: SciPy's ``least_squares`` would
    call the 1130-column forward-mode Jacobian as often, and this one prints progress."""
    mu, r = 1e-3, np.asarray(residual(h))
    for k in range(iterations):
        jh = np.asarray(jacobian(h))
        a, g = jh.T @ jh, jh.T @ r
        while mu < 1e12:
            trial = h - np.linalg.solve(a + mu * np.diag(np.diag(a) + 1e-12), g)
            r_trial = np.asarray(residual(jnp.asarray(trial)))
            if r_trial @ r_trial < r @ r:
                h, r, mu = jnp.asarray(trial), r_trial, max(mu / 3, 1e-12)
                break
            mu *= 4
        if k % 10 == 0:
            print(f"  LM iteration {k}: max |R| = {np.abs(r).max():.3e}", flush=True)
    return h, r, np.linalg.svd(np.asarray(jacobian(h)), compute_uv=False)[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", type=int, default=847)
    ap.add_argument("--segment", type=int, default=324,
                    help="segment whose haematocrit is printed (where the residual sits)")
    ap.add_argument("--lm-iterations", type=int, default=40)
    args = ap.parse_args()
    net = variant(args.variant)
    topo, params = hm.Topology.of(net), hm.parameters(net)
    rheo = dataclasses.replace(vn.NETFLOW_RHEOLOGY, tolerance=1e-12)
    print(f"mesentery variant {args.variant}: {net.n_segments} segments")
    branch(topo, params, rheo, np.concatenate([np.geomspace(2e-2, 8.4e-3, 8)[:-1],
                                               np.linspace(8.4e-3, 7.0e-3, 15)]),
           args.segment)
    rheo = vn.NETFLOW_RHEOLOGY
    stalled = hm.solve(net, rheo, allow_unconverged=True)
    print(f"solve at width {rheo.separation_width:g}: max |R| = {stalled['residual']:.2e}, "
          f"continuation widths {[float(w) for w in stalled['continuation_widths']]}")
    residual = jax.jit(lambda h: hm.residual(topo, params, rheo, h))
    jacobian = jax.jit(jax.jacfwd(lambda h: hm.residual(topo, params, rheo, h)))
    h, r, s_min = levenberg_marquardt(residual, jacobian, jnp.asarray(stalled["hematocrit"]),
                                      args.lm_iterations)
    print(f"Levenberg–Marquardt from there, {args.lm_iterations} iterations: max |R| = "
          f"{np.abs(r).max():.2e}, σ_min(∂R/∂H) = {s_min:.1e}, H of segment {args.segment} = "
          f"{float(h[args.segment]):.4f}")


if __name__ == "__main__":
    main()
