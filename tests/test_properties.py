"""Tests for nanotransport.properties (docs/model.md §3, §5, §6, §7). Tolerances are stated per test."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nanotransport import properties as p
from nanotransport.engine.units import NM


# The solver calls these laws under jit, and so do the heavier tests: one compilation per shape
# is much faster than op-by-op dispatch.
H = jax.jit(p.pore_diffusive_hindrance)
W = jax.jit(p.pore_convective_hindrance)
SIGMA_OF = jax.jit(p.reflection_coefficient)
pore_average = jax.jit(p.lognormal_pore_average)
wall_coefficients = jax.jit(p.vessel_wall_coefficients)
patlak = jax.jit(p.patlak_weight)
flux = jax.jit(p.transvascular_flux)


def _all_finite(tree):
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


# ------------------------------------------------------------------ Stokes–Einstein


def test_stokes_einstein_model_values():
    # docs/model.md §5, water at 37 °C: 6.57e-11 and 6.57e-12 m²/s; rel 1e-3 (3 digits given)
    d0 = p.stokes_einstein_diffusivity(jnp.array([10.0, 100.0]) * NM)
    np.testing.assert_allclose(d0, [6.57e-11, 6.57e-12], rtol=1e-3)


# ------------------------------------------------------------------ Dechadilok & Deen

DD_TABLE = np.array([  # λ, H, W, σ (docs/model.md §5)
    (0.05, 0.7550, 0.9827, 0.0173),
    (0.1, 0.5918, 0.9388, 0.0612),
    (0.2, 0.3579, 0.8051, 0.1949),
    (0.5, 0.0474, 0.3364, 0.6636),
    (0.9, 3.3e-5, 0.0112, 0.9888),
])


def test_dechadilok_deen_table():
    # abs 1e-4 (the table has 4 decimals); the tiny H(0.9) = 3.3e-5 also to rel 10 %
    lam, h, w, sigma = DD_TABLE.T
    np.testing.assert_allclose(H(lam), h, atol=1e-4, rtol=0)
    np.testing.assert_allclose(W(lam), w, atol=1e-4, rtol=0)
    np.testing.assert_allclose(SIGMA_OF(lam), sigma, atol=1e-4, rtol=0)
    assert float(H(0.9)) == pytest.approx(3.3e-5, rel=0.1)


def test_pore_hindrance_closed_pore_and_free_limits():
    lam = jnp.array([1.0, 1.2, 3.0, 10.0])  # 3.0 is beyond the K_c denominator root (≈2.97)
    assert np.all(np.asarray(H(lam)) == 0.0)  # exact
    assert np.all(np.asarray(W(lam)) == 0.0)
    assert np.all(np.asarray(SIGMA_OF(lam)) == 1.0)
    assert float(H(0.0)) == 1.0 and float(W(0.0)) == 1.0  # exact


@pytest.mark.parametrize("fn", [p.pore_diffusive_hindrance, p.pore_convective_hindrance,
                                p.reflection_coefficient])
def test_pore_hindrance_gradients_finite(fn):
    lam = jnp.array([0.0, 1e-300, 1e-12, 0.5, 0.95, 0.97, 1.0, 1.2, 3.0])
    assert _all_finite(jax.jit(jax.vmap(jax.grad(fn)))(lam))


def test_h_continuation_matches_value_and_slope_at_095():
    # one-sided values and slopes just inside each branch agree: rel 1e-6
    eps = 1e-9
    lam = jnp.array([0.95 - eps, 0.95, 0.95 + eps])
    value = np.asarray(H(lam))
    slope = np.asarray(jax.jit(jax.vmap(jax.grad(p.pore_diffusive_hindrance)))(lam))
    np.testing.assert_allclose(value, value[0], rtol=1e-6)
    np.testing.assert_allclose(slope, slope[0], rtol=1e-6)
    tail = np.asarray(H(jnp.linspace(0.95, 1.0, 51)))
    assert np.all(tail[:-1] > 0.0) and np.all(np.diff(tail) < 0.0) and tail[-1] == 0.0


def test_pore_hindrance_float32_and_broadcasting():
    lam = jnp.array([[0.1], [0.5]], dtype=jnp.float32) * jnp.ones(3, dtype=jnp.float32)
    out = p.pore_diffusive_hindrance(lam)  # eager call
    assert out.shape == (2, 3) and out.dtype == jnp.float32
    assert float(out[0, 0]) == pytest.approx(0.5918, abs=1e-4)  # abs 1e-4 in float32


# ------------------------------------------------------------------ log-normal pores


def test_lognormal_average_reduces_to_single_pore():
    # log_sd = 1e-9: rel 1e-6 against the single-pore laws (exact zeros for λ ≥ 1)
    lam = jnp.array([0.02, 0.3, 0.9, 0.97, 1.2])
    r_pore = 200 * NM
    avg = pore_average(lam * r_pore, r_pore, 1e-9)
    np.testing.assert_allclose(avg.diffusive, H(lam), rtol=1e-6, atol=0)
    np.testing.assert_allclose(avg.reflection, SIGMA_OF(lam), rtol=1e-6, atol=0)
    np.testing.assert_allclose(avg.hydraulic, 1.0, rtol=1e-6, atol=0)


def test_lognormal_hydraulic_factor_closed_form():
    # area-weighted ⟨r²⟩/r_med² = exp(2 s²) for ln r ~ N(ln r_med, s²); rel 1e-10
    log_sd = jnp.array([0.3, 0.8])
    avg = pore_average(10 * NM, 200 * NM, log_sd)
    np.testing.assert_allclose(avg.hydraulic, np.exp(2 * np.asarray(log_sd) ** 2), rtol=1e-10)


def test_lognormal_average_smooth_across_median_pore_cutoff():
    # finite gradients for λ_median in [0.8, 1.2]; at λ_median = 1 autodiff agrees with a central
    # difference (rel 1e-5), i.e. no kink there; heterogeneity lets particles larger than the
    # median pore through (H > 0 at λ_median = 1.2)
    r_pore, log_sd = 100 * NM, 0.4

    def fields(r_s):
        return jnp.stack(p.lognormal_pore_average(r_s, r_pore, log_sd))

    jac = jax.jit(jax.vmap(jax.jacfwd(fields)))
    radii = jnp.array([0.8, 0.9, 0.99, 1.0, 1.01, 1.1, 1.2]) * r_pore
    assert _all_finite(jac(radii))
    h = 1e-4 * r_pore
    values = jax.jit(jax.vmap(fields))(jnp.array([r_pore - h, r_pore + h, 1.2 * r_pore]))
    fd = (values[1] - values[0]) / (2 * h)
    np.testing.assert_allclose(jac(radii)[3], fd, rtol=1e-5)
    diffusive, _, reflection = values[2]
    assert float(diffusive) > 1e-4 and float(reflection) < 1.0


def test_lognormal_average_broadcasts():
    avg = pore_average(jnp.array([1.0, 10.0, 50.0]) * NM, jnp.array([[100.0], [300.0]]) * NM, 0.5)
    assert avg.diffusive.shape == avg.hydraulic.shape == avg.reflection.shape == (2, 3)


def test_vessel_wall_coefficients():
    # narrow distribution: P = γ H D_0 / L and L_p = γ r²/(8 μ L) (Poiseuille), rel 1e-6;
    # with log_sd = 0.4, P falls and σ rises with particle size (1, 10, 100 nm)
    d, r_pore, gamma, length, mu = 20 * NM, 100 * NM, 1e-3, 5e-6, 6.92e-4
    wall = wall_coefficients(d, r_pore, 1e-9, gamma, length, mu)
    lam = 0.5 * d / r_pore
    d0 = p.stokes_einstein_diffusivity(d, viscosity_Pa_s=mu)
    assert float(wall.permeability) == pytest.approx(float(gamma * H(lam) * d0 / length),
                                                     rel=1e-6)
    assert float(wall.hydraulic_conductivity) == pytest.approx(
        gamma * r_pore**2 / (8 * mu * length), rel=1e-6)
    assert float(wall.reflection) == pytest.approx(float(SIGMA_OF(lam)), rel=1e-6)
    wall = wall_coefficients(jnp.array([1.0, 10.0, 100.0]) * NM, 200 * NM, 0.4, 1e-4, 5e-6)
    assert np.all(np.diff(np.asarray(wall.permeability)) < 0.0)
    assert np.all(np.diff(np.asarray(wall.reflection)) > 0.0)


# ------------------------------------------------------------------ transvascular flux

C_P, C_I, SIGMA, PS = 2.0, 0.5, 0.2, 1e-3


def _jv_for(pe):
    return np.asarray(pe) * PS / (1.0 - SIGMA)


def test_transvascular_flux_matches_formula():
    # rel 1e-12 against the closed form evaluated in NumPy, Pe = ±50 and moderate values
    pe = np.array([50.0, -50.0, 2.0, -0.5])
    jv = _jv_for(pe)
    a = jv * (1.0 - SIGMA)
    pe_exact = a / PS
    reference = a * C_P + PS * (C_P - C_I) * pe_exact / np.expm1(pe_exact)
    np.testing.assert_allclose(flux(jv, SIGMA, PS, C_P, C_I), reference, rtol=1e-12)
    np.testing.assert_allclose(patlak(pe), pe / np.expm1(pe), rtol=1e-12)


def test_transvascular_flux_small_peclet_limit():
    # Pe = 1e-9: Φ = PS(c_p − c_i) + Jv(1 − σ)(c_p + c_i)/2; rel 1e-10
    jv = _jv_for(1e-9)
    limit = PS * (C_P - C_I) + jv * (1.0 - SIGMA) * (C_P + C_I) / 2.0
    assert float(flux(jv, SIGMA, PS, C_P, C_I)) == pytest.approx(limit, rel=1e-10)


def test_patlak_weight_continuous_across_series_threshold():
    # value and derivative just inside / outside |Pe| = 1e-2 agree to rel 1e-8, both signs;
    # likewise dΦ/dJv of the flux
    x = jnp.array([1e-2 * (1 - 1e-9), 1e-2 * (1 + 1e-9)])
    for sign in (1.0, -1.0):
        pe = sign * x
        value = np.asarray(patlak(pe))
        slope = np.asarray(jax.jit(jax.vmap(jax.grad(p.patlak_weight)))(pe))
        dflux = np.asarray(jax.jit(jax.vmap(jax.grad(p.transvascular_flux),
                                            in_axes=(0, None, None, None, None)))(
            _jv_for(pe), SIGMA, PS, C_P, C_I))
        for pair in (value, slope, dflux):
            assert pair[0] == pytest.approx(pair[1], rel=1e-8)


def test_patlak_weight_extremes_finite():
    pe = jnp.array([-1e300, -1e5, -800.0, 0.0, 800.0, 1e5, 1e300])
    value = patlak(pe)
    assert _all_finite(value)
    assert _all_finite(jax.jit(jax.vmap(jax.grad(p.patlak_weight)))(pe))
    assert float(value[1]) == pytest.approx(1e5, rel=1e-12)  # B ≈ −Pe


def test_transvascular_flux_degenerate_cases():
    # values to rel 1e-12 (abs 1e-30 for 0), gradients in all five arguments finite:
    # PS = 0 with filtration (upwind from plasma), PS = 0 with reabsorption (upwind from the
    # interstitium), Jv = 0 (pure diffusion), and nothing crossing
    jv = jnp.array([1e-4, -1e-4, 0.0, 0.0])
    ps = jnp.array([0.0, 0.0, PS, 0.0])
    expected = np.array([1e-4 * (1 - SIGMA) * C_P, -1e-4 * (1 - SIGMA) * C_I, PS * (C_P - C_I),
                         0.0])
    np.testing.assert_allclose(flux(jv, SIGMA, ps, C_P, C_I), expected, rtol=1e-12, atol=1e-30)
    grads = jax.jit(jax.vmap(jax.grad(p.transvascular_flux, argnums=(0, 1, 2, 3, 4)),
                             in_axes=(0, None, 0, None, None)))(jv, SIGMA, ps, C_P, C_I)
    assert _all_finite(grads)
    # the PS → 0 limit is continuous: PS = 1e-30 agrees (rel 1e-12; abs 1e-28 where Φ = PS Δc)
    np.testing.assert_allclose(flux(jv, SIGMA, jnp.where(ps > 0, ps, 1e-30), C_P, C_I), expected,
                               rtol=1e-12, atol=1e-28)


# ------------------------------------------------------------------ interstitial matrix


def test_matrix_hindrance_defaults():
    # 100-nm carriers nearly immobile in dense stroma (< 0.02, spec h ≲ 0.01), doxorubicin (1 nm)
    # mildly hindered in every default (> 0.3)
    dense = p.COLLAGEN_RICH_MATRIX
    assert float(p.matrix_diffusive_hindrance(100 * NM, *dense)) < 0.02
    for matrix in (p.NORMAL_MATRIX, p.TUMOR_MATRIX, p.COLLAGEN_RICH_MATRIX):
        assert float(p.matrix_diffusive_hindrance(1 * NM, *matrix)) > 0.3


def test_matrix_hindrance_collagen_rich_5_to_10x_slower():
    # calibration (Pluen et al. 2001): 25–30-nm solutes 5–10× slower in collagen-rich stroma
    d = jnp.array([25.0, 30.0]) * NM
    ratio = (p.matrix_diffusive_hindrance(d, *p.TUMOR_MATRIX)
             / p.matrix_diffusive_hindrance(d, *p.COLLAGEN_RICH_MATRIX))
    assert 5.0 < float(ratio[0]) < float(ratio[1]) < 10.0


def test_retardation_factor_bounds_and_gradient():
    d = jnp.array([1.0, 10.0, 100.0]) * NM
    r_f = p.retardation_factor(d, *p.COLLAGEN_RICH_MATRIX)
    h = p.matrix_diffusive_hindrance(d, *p.COLLAGEN_RICH_MATRIX)
    assert np.all((np.asarray(r_f) > 0.0) & (np.asarray(r_f) <= 1.0))
    assert np.all(np.asarray(r_f) >= np.asarray(h))  # convective hindrance milder
    assert float(p.retardation_factor(100 * NM, 0.0, 5 * NM)) == 1.0  # no fibres
    grads = jax.jit(jax.grad(p.retardation_factor, argnums=(0, 1, 2)))(100 * NM, 0.0, 5 * NM)
    assert _all_finite(grads)  # √φ_f at φ_f = 0


# ------------------------------------------------------------------ systemic clearance


def test_renal_switch():
    assert float(p.renal_filtration_fraction(3.0)) > 0.99
    assert float(p.renal_filtration_fraction(10.0)) < 0.01
    assert float(p.renal_filtration_fraction(5.5)) == pytest.approx(0.5, rel=1e-12)
    # width = 10–90 % transition width (rel 1e-12)
    assert float(p.renal_filtration_fraction(5.5 - 0.35)) == pytest.approx(0.9, rel=1e-12)
    assert float(p.renal_filtration_fraction(5.5 + 0.35)) == pytest.approx(0.1, rel=1e-12)


def test_mps_factor_grows_with_size_and_scales_with_surface():
    d = jnp.array([20.0, 100.0, 175.0, 300.0])
    factor = np.asarray(p.mps_uptake_factor(d))
    assert np.all(np.diff(factor) > 0.0)
    assert factor[2] == pytest.approx(2.0, rel=1e-12)  # d = d_M
    np.testing.assert_allclose(p.mps_uptake_factor(d, surface_factor=0.2), 0.2 * factor,
                               rtol=1e-12)


# ------------------------------------------------------------------ release


def test_release_rate_rises_at_body_temperature_as_tm_is_lowered():
    t_m = jnp.linspace(43.0, 38.0, 11)
    k = np.asarray(p.release_rate(37.0, t_m, 0.5, 1e-6, 0.046))
    assert np.all(np.diff(k) > 0.0)
    assert float(p.release_rate(41.5, 41.5, 0.5, 1e-6, 0.046)) == pytest.approx(
        1e-6 + 0.023, rel=1e-12)


# ------------------------------------------------------------------ cells


def test_uptake_fixed_point_and_el_kareh_value():
    k_e, k_i, v_max = (p.UPTAKE_K_E_UG_PER_ML, p.UPTAKE_K_I_NG_PER_1E5_CELLS,
                       p.UPTAKE_V_MAX_NG_PER_1E5_CELLS_PER_MIN)
    f = jnp.array([0.01, 0.3, 1.0, 20.0])
    a_eq = p.equilibrium_intracellular(f, k_e, k_i)
    np.testing.assert_allclose(p.cell_uptake_rate(f, a_eq, v_max, k_e, k_i), 0.0, atol=1e-14)
    assert float(p.equilibrium_intracellular(1.0, k_e, k_i)) == pytest.approx(6.26, rel=1e-2)
    assert float(p.cell_uptake_rate(1.0, 0.0, v_max, k_e, k_i)) > 0.0  # empty cells take up drug


def test_surviving_fraction_and_smooth_max():
    assert float(p.surviving_fraction(0.0, 0.66)) == 1.0
    assert float(p.surviving_fraction(2.0, 0.66)) == pytest.approx(math.exp(-1.32), rel=1e-12)
    x = jnp.array([[0.0, 1.0, 3.0, 2.9], [5.0, -1.0, 0.0, 0.0]])
    tau = 0.05
    sm = np.asarray(jax.jit(p.smooth_max, static_argnames="axis")(x, axis=1, temperature=tau))
    hard = np.max(np.asarray(x), axis=1)
    assert np.all(sm >= hard) and np.all(sm <= hard + tau * math.log(4))  # log-sum-exp bounds
    g = jax.jit(jax.grad(lambda v: p.smooth_max(v, axis=0, temperature=tau)))(x[0])
    assert _all_finite(g) and float(jnp.sum(g)) == pytest.approx(1.0, rel=1e-12)
    assert float(g[2]) > float(g[3]) > 0.0  # weight shared by near-maximal entries
