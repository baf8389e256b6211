"""Forward-mode derivatives of network delivery with respect to vessel normalization
(``studies/network_design``) against central differences."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nanotransport.model.scenario import load
from nanotransport.studies import network_design


def test_normalization_jacobian_matches_central_differences():
    # a 0.6-mm synthetic network (680 segments), one 15-min step: haematocrit root, Starling
    # solve, lumen sweep and the implicit tissue step all differentiated
    sc = load("tumor-network", ["network.box_mm=[0.6,0.6,0.6]", "network.tumor_radius_mm=0.2",
                                "network.core_radius_mm=0.08", "numerics.t_end_h=0.25",
                                "numerics.max_dt_min=15"])
    prob = network_design.problem(sc)
    out = network_design.sensitivity(prob, (0.1, -0.2))
    f = jax.jit(lambda d: network_design.delivery(prob, d))
    h = 1e-4
    for i in range(2):
        e = np.zeros(2)
        e[i] = h
        fd = (np.asarray(f(jnp.asarray([0.1, -0.2]) + e))
              - np.asarray(f(jnp.asarray([0.1, -0.2]) - e))) / (2 * h)
        np.testing.assert_allclose(out["jacobian"][:, i], fd, rtol=1e-5)
    assert np.all(out["values"] > 0)
