"""Test configuration: verification runs in float64 (docs/model.md §11).

x64 is switched on here, for the test process only; the package itself never changes it.
Tests that check float32 pass explicit float32 arrays.
"""
import jax

jax.config.update("jax_enable_x64", True)
