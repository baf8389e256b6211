"""Forward-mode derivatives of network delivery (``studies/network_design``) against central
differences: vessel normalization and the formulation's size and release temperature."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nanotransport.model.scenario import ScenarioError, load
from nanotransport.studies import network_design

# a small synthetic network: derivatives must match differences on any network, and a smaller
# one runs each evaluation ~4× faster (the compiles, most of these tests' time, stay)
SMALL_NETWORK = ["network.box_mm=[0.4,0.4,0.4]", "network.tumor_radius_mm=0.13",
                 "network.core_radius_mm=0.05"]


def test_design_jacobian_matches_central_differences():
    # ThermoDox on a 0.4-mm synthetic network (278 segments), heated from the start, one
    # 15-min step: haematocrit root, Starling solve, plasma PK, the heating's amplitude (its
    # T90 readout), release at k_rel(T), lumen sweep, the implicit tissue step and the cells'
    # uptake all differentiated
    sc = load("thermodox-network", [
        *SMALL_NETWORK, "numerics.t_end_h=0.25", "numerics.max_dt_min=15",
        "heating.heating_start_min=0", "heating.ramp_min=1"])
    prob = network_design.problem(sc, ["diameter_nm", "release_temperature_C",
                                       "target_temperature_C"])
    x0 = network_design.start(prob) + np.array([0.1, -0.2, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(x0[2:], [100.0, 41.3, 42.0])
    out = network_design.sensitivity(prob, x0)
    # delivery is only piecewise smooth in s_d (docs/networks.md): its differences need a
    # small step (at 1e-3 the difference is 40 % off); the others are smooth at these steps
    steps = np.diag([1e-6, 1e-4, 1e-2, 1e-4, 1e-4])
    # the 10 displaced designs and x0 itself in one batch (vmap over the design)
    batch = np.asarray(jax.jit(jax.vmap(lambda d: network_design.delivery(prob, d)))(
        jnp.asarray(np.concatenate([x0 + steps, x0 - steps, x0[None]]))))
    np.testing.assert_allclose(batch[-1], out["values"], rtol=1e-12)  # = the unbatched run
    fd = (batch[:5] - batch[5:10]).T / np.diag(steps) / 2
    np.testing.assert_allclose(out["jacobian"], fd, rtol=1e-5)
    assert np.all(out["values"] > 0)
    # a hotter transition releases less at 42 °C: less free drug, less in cells, more carrier
    assert out["jacobian"][1, 3] < 0 < out["jacobian"][0, 3]
    assert out["jacobian"][2, 3] < 0
    # heating hotter (the set point, 42 °C, just above T_m) releases more
    assert out["jacobian"][0, 4] < 0 < out["jacobian"][1, 4]


def test_segment_sensitivity_by_reverse_mode():
    # Doxil on a 0.4-mm synthetic network (278 segments), one 15-min step: every segment's
    # radius and wall derivatives from one reverse pass, against central differences
    sc = load("tumor-network", [
        *SMALL_NETWORK, "numerics.t_end_h=0.25", "numerics.max_dt_min=15"])
    prob = network_design.problem(sc)
    out = network_design.segment_sensitivity(prob, "carrier")
    n = prob.net.n_segments
    assert out["radius"].shape == out["wall"].shape == (n,)
    f = jax.jit(lambda d, z: network_design.delivery(prob, d, z)[0])
    zero_d, zero_z = jnp.zeros(2), np.zeros((2, n))
    assert out["value"] == pytest.approx(float(f(zero_d, zero_z)), rel=1e-12)

    def central(d, z, h):
        return (float(f(zero_d + d, jnp.asarray(zero_z + z)))
                - float(f(zero_d - d, jnp.asarray(zero_z - z)))) / (2 * h)

    # the largest radius and wall derivatives, one segment each
    for row, name in enumerate(("radius", "wall")):
        i = int(np.argmax(np.abs(out[name])))
        z = zero_z.copy()
        z[row, i] = 1e-5
        assert out[name][i] == pytest.approx(central(zero_d, z, 1e-5), rel=1e-6)
    # s_d scales every tumor segment's radius: its derivative is their sum (a 1e-6 step:
    # delivery is only piecewise smooth in s_d, see the test above)
    s_d = central(jnp.asarray([1e-6, 0.0]), zero_z, 1e-6)
    assert np.sum(out["radius"][prob.tumor_segment]) == pytest.approx(s_d, rel=1e-5)
    with pytest.raises(ValueError, match="output 'plasma'.*'carrier'"):
        network_design.segment_sensitivity(prob, "plasma")


def test_structure_fields_cannot_be_varied():
    sc = load("thermodox-network")
    with pytest.raises(ScenarioError, match="heating.focus_fwhm_mm.*cannot be varied"):
        network_design.problem(sc, ["focus_fwhm_mm"])
