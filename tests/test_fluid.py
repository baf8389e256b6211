"""Interstitial pressure: tumor embedded in normal tissue with lymphatics (docs/model.md §4)."""
import numpy as np
import pytest

from nanotransport import grid as grids, units
from nanotransport.model.fluid import solve_pressure


def embedded_sphere_closed_form(r, R, Ro, Kt, Kn, at, an, pet, p_inf):
    """p(r) for K_t ∇²p = a_t (p − p_et) in r < R and K_n ∇²p = a_n (p − p_∞) in R < r < Ro,
    continuity of p and K ∂p/∂r at R, symmetry at 0, zero flux at Ro.
    Tumor: p = p_et + A sinh(α_t r)/r; normal: p = p_∞ + B e^{α_n (r−Ro)}/r + C e^{−α_n (r−R)}/r."""
    at_, an_ = np.sqrt(at / Kt), np.sqrt(an / Kn)
    sh = lambda x: np.sinh(at_ * x) / x  # noqa: E731
    dsh = lambda x: (at_ * x * np.cosh(at_ * x) - np.sinh(at_ * x)) / x**2  # noqa: E731
    eb = lambda x: np.exp(an_ * (x - Ro)) / x  # noqa: E731
    deb = lambda x: np.exp(an_ * (x - Ro)) * (an_ * x - 1) / x**2  # noqa: E731
    ec = lambda x: np.exp(-an_ * (x - R)) / x  # noqa: E731
    dec = lambda x: -np.exp(-an_ * (x - R)) * (an_ * x + 1) / x**2  # noqa: E731
    M = np.array([[sh(R), -eb(R), -ec(R)],
                  [Kt * dsh(R), -Kn * deb(R), -Kn * dec(R)],
                  [0.0, deb(Ro), dec(Ro)]])
    rhs = np.array([p_inf - pet, 0.0, 0.0])
    A, B, C = np.linalg.solve(M, rhs)
    return np.where(r < R, pet + A * sh(r), p_inf + B * eb(r) + C * ec(r))


@pytest.mark.parametrize("n", [400])
def test_tumor_in_normal_tissue_matches_closed_form(n):
    mmhg = units.MMHG_PA
    R, Ro = 5e-3, 8e-3
    # Baxter & Jain values (SI), normal lymphatics 1e-4 /(mmHg s)
    Kt, Kn = 4.13e-8 * 1e-4 / mmhg, 8.53e-9 * 1e-4 / mmhg
    lt, ln = 2.8e-7 * 1e-2 / mmhg * 2e4, 0.36e-7 * 1e-2 / mmhg * 7e3
    lymph = 1e-4 / mmhg
    pet = (15.6 - 0.82 * (20 - 15)) * mmhg
    pen = (15.6 - 0.91 * (20 - 10)) * mmhg
    g = grids.sphere(Ro, n, refine_at_m=R, refine_ratio=10.0, refine_width_m=1e-3,
                     interfaces_m=(R,))
    r = g.centers[0]
    tumor = r < R
    K = np.where(tumor, Kt, Kn)
    lp = np.where(tumor, lt, ln)
    pe = np.where(tumor, pet, pen)
    ly = np.where(tumor, 0.0, lymph)
    st = solve_pressure(g, K, lp, pe, ly)
    exact = embedded_sphere_closed_form(r, R, Ro, Kt, Kn, lt, ln + lymph, pet, ln * pen / (ln + lymph))
    err = np.max(np.abs(np.asarray(st.pressure) - exact)) / pet
    assert err < 2e-3, err  # second-order FV on the graded grid; measured ~3e-4
    assert float(st.relative_residual) < 1e-12
    # plateau at the effective pressure in the centre, steep fall at the rim
    assert abs(float(st.pressure[0]) / pet - 1) < 1e-3
    p = np.asarray(st.pressure) / pet
    r90 = r[np.argmax(p < 0.9)]
    r10 = r[np.argmax(p < 0.1)]
    assert (r10 - r90) < 1.1e-3  # IFP falls over ≲ 1 mm at the margin (Boucher et al. 1990)


def test_discrete_pressure_converges_second_order():
    mmhg = units.MMHG_PA
    R, Ro = 5e-3, 8e-3
    Kt, Kn = 4.13e-12 / mmhg, 8.53e-13 / mmhg
    lt, ln, lymph = 5.6e-5 / mmhg, 2.52e-6 / mmhg, 1e-4 / mmhg
    pet, pen = 11.5 * mmhg, 6.5 * mmhg
    errs = []
    for n in (100, 200, 400):
        # faces aligned with the margin so the interface sits on a face at every level
        g = grids.Grid("sphere", (tuple(np.concatenate([np.linspace(0, R, n + 1),
                                                        np.linspace(R, Ro, n + 1)[1:]])),))
        r = g.centers[0]
        tumor = r < R
        st = solve_pressure(g, np.where(tumor, Kt, Kn), np.where(tumor, lt, ln),
                            np.where(tumor, pet, pen), np.where(tumor, 0.0, lymph))
        exact = embedded_sphere_closed_form(r, R, Ro, Kt, Kn, lt, ln + lymph, pet,
                                            ln * pen / (ln + lymph))
        errs.append(np.max(np.abs(np.asarray(st.pressure) - exact)) / pet)
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(orders > 1.7), (errs, orders)
