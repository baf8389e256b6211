"""Simulated imaging (``nanotransport.imaging``, docs/model.md §9): the PSF conserves activity,
keeps a uniform field uniform and has the stated width on every geometry; decay follows the
half-lives; the ideal-scanner image reproduces the carrier ledger; bad input is refused."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from nanotransport import grid as grids, imaging, scenario as sc, simulate, summary, tissue
from nanotransport.model.scenario import ScenarioError

FWHM = 0.004  # m
SIGMA = FWHM / imaging.FWHM_PER_SIGMA
LINE = tuple(np.linspace(-0.03, 0.03, 61))
GRIDS = {
    "sphere": grids.sphere(0.04, 80, refine_at_m=0.01, refine_ratio=4.0, refine_width_m=0.002),
    "cartesian2d": grids.Grid("cartesian2d", (LINE, tuple(np.linspace(-0.03, 0.03, 41)))),
    "axisymmetric": grids.Grid("axisymmetric", (tuple(np.linspace(0, 0.03, 41)), LINE)),
    "cartesian3d": grids.Grid("cartesian3d", (LINE[::2], LINE[::2], LINE[::3])),
}


def _blur(g, c, fwhm=FWHM):
    return np.asarray(imaging.blur(jnp.asarray(c), imaging.psf_matrices(g, fwhm), g.ndim))


@pytest.mark.parametrize("geometry", list(GRIDS))
def test_psf_conserves_activity_and_keeps_uniform_fields(geometry):
    """Σ V c is unchanged (activity more than 6σ inside the edge), to 1e-9 relative; a uniform
    field stays uniform to 1e-12 (the edge extension)."""
    g = GRIDS[geometry]
    rng = np.random.default_rng(3)
    dist = np.sqrt(sum(x**2 for x in g.mesh()))
    c = rng.random(g.shape) * (dist < 0.03 - 6 * SIGMA)
    before, after = (np.sum(x * g.volume) for x in (c, _blur(g, c)))
    assert abs(after / before - 1.0) < 1e-9
    np.testing.assert_allclose(_blur(g, np.ones(g.shape)), 1.0, rtol=0, atol=1e-12)


def test_psf_width_is_the_stated_fwhm():
    """A source in one cell spreads with variance σ² + Δ²/12 (source cell) + Δ²/12 (binning)
    per Cartesian axis, σ = FWHM/(2√(2 ln 2)); in the sphere ⟨r²⟩ = 3σ² + ⟨r'²⟩ of the source
    cell.  Tolerances: 1e-9 (Cartesian, exact), 2e-3 (sphere, binning of r²)."""
    g = GRIDS["cartesian2d"]
    c = np.zeros(g.shape)
    c[30, 20] = 1.0
    w = _blur(g, c) * g.volume
    w /= w.sum()
    x, y = g.mesh()
    for coord, d in ((x, 0.001), (y, 0.0015)):
        mean = np.sum(w * coord)
        var = np.sum(w * coord**2) - mean**2
        assert abs(var / (SIGMA**2 + d**2 / 6) - 1.0) < 1e-9
    s = grids.sphere(0.05, 500)
    c = np.zeros(s.shape)
    c[0] = 1.0
    w = _blur(s, c) * s.volume
    r = s.centers[0]
    source = 0.6 * (0.05 / 500) ** 2  # ⟨r'²⟩ of a uniform ball of radius Δ
    assert abs(np.sum(w * r**2) / np.sum(w) / (3 * SIGMA**2 + source) - 1.0) < 2e-3


def test_ideal_scanner_is_the_identity():
    g = GRIDS["sphere"]
    assert imaging.psf_matrices(g, 0.0) is None
    tiny = imaging.psf_matrices(g, 1e-9)[0]
    np.testing.assert_allclose(tiny, np.eye(g.shape[0]), atol=1e-12)


@pytest.mark.parametrize("label", ["In-111", "Cu-64", "Zr-89", "none"])
def test_decay_follows_the_half_life(label):
    t_half = imaging.LABEL_HALF_LIFE_H[label]
    times = np.array([0.0, 1.0, 2.0]) * (t_half if math.isfinite(t_half) else 10.0) * 3600.0
    expected = [1.0, 0.5, 0.25] if math.isfinite(t_half) else [1.0, 1.0, 1.0]
    np.testing.assert_allclose(np.asarray(imaging.decay_factor(times, label)), expected,
                               rtol=1e-14)


def test_half_lives_are_the_nuclear_data():
    """¹¹¹In 2.8047 d, ⁶⁴Cu 12.701 h, ⁸⁹Zr 78.41 h (NNDC)."""
    assert imaging.half_life_h("In-111") == pytest.approx(67.31, rel=1e-4)
    assert imaging.half_life_h("Cu-64") == pytest.approx(12.701, rel=1e-4)
    assert imaging.half_life_h("Zr-89") == pytest.approx(78.41, rel=1e-4)


@pytest.fixture(scope="module")
def run():
    s = sc.load("doxil", ["numerics.cells=20", "numerics.t_end_h=24", "numerics.max_dt_min=30",
                          "numerics.save_times_h=[0, 4, 24]", "imaging.label=Cu-64"])
    r = simulate.simulate(s)
    lay = tissue.layout(s)
    return s, r, lay


def test_ideal_image_matches_the_carrier_ledger(run):
    """With FWHM 0 the tumor ROI holds exactly the label of the tumor (%ID), to 1e-12: the
    carriers in every phase plus the residue digested carriers left (a residualizing label)."""
    s, r, lay = run
    im = imaging.setup(s.replace(**{"imaging.psf_fwhm_mm": 0.0}), lay)
    m = {**summary.metrics(r), **imaging.metrics(r, im)}
    residue = r.field("label_residue")
    tumor_w = lay.grid.volume * lay.tumor
    residue_pct = 100.0 * np.sum(np.asarray(residue) * tumor_w, axis=-1) / float(r.inputs.dose_mol)
    assert residue_pct[-1] > 0  # carriers were digested: the label ledger is not the carriers'
    np.testing.assert_allclose(np.asarray(m["imaging_tumor_pct_id"]),
                               np.asarray(m["tumor_carrier_pct_id"]) + residue_pct, rtol=1e-12,
                               atol=1e-30)


def test_blurred_image_readouts(run):
    """The 10-mm PSF lowers the tumor ROI of a 10-mm tumor (partial volume) and conserves the
    grid's activity up to the edge extension; kBq/mL = A₀ · %ID/g/100 · 2^(−t/T½)."""
    s, r, lay = run
    im = imaging.setup(s, lay)
    ideal = imaging.label_pct_id_per_g(r)
    image = imaging.image_pct_id_per_g(ideal, im)
    m = imaging.metrics(r, im)
    tumor_ideal = np.sum(np.asarray(ideal[-1]) * im.tumor_weights) / im.tumor_weights.sum()
    assert 0.3 * tumor_ideal < float(m["imaging_tumor_pct_id_per_g"][-1]) < tumor_ideal
    expected = (185e3 * np.asarray(m["imaging_tumor_pct_id_per_g"]) / 100.0
                * 0.5 ** (np.array([0.0, 4.0, 24.0]) / 12.701))
    np.testing.assert_allclose(np.asarray(m["imaging_tumor_kbq_per_ml"]), expected, rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(image)))


@pytest.mark.parametrize("override, field", [
    ("imaging.label=Tc-99m", "imaging.label"),
    ("imaging.psf_fwhm_mm=-1", "imaging.psf_fwhm_mm"),
])
def test_bad_imaging_input_is_refused(override, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        sc.load("doxil", [override])
