"""Scenario loading, validation and overrides: errors name the field, value and allowed range."""
import math

import pytest

from nanotransport import scenario as sc
from nanotransport.model.scenario import ScenarioError


def write(tmp_path, text):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return str(p)


def test_builtins_load_and_cite_sources():
    names = sc.builtin_names()
    for required in ("doxil", "free-dox", "micelle", "conjugate", "doxil-mouse"):
        assert required in names
    for name in names:
        s = sc.load(name)
        assert s.description
    # every numeric value in a built-in file carries a source comment or is a plain switch
    from importlib import resources
    for p in (resources.files("nanotransport") / "scenarios").iterdir():
        for line in p.read_text().splitlines():
            if "=" in line and not line.startswith(("[", "description", "tumor_preset", "name",
                                                     "carrier", "species")):
                value = line.split("=", 1)[1].split("#")[0].strip()
                try:
                    float(value)
                except ValueError:
                    continue
                assert "#" in line or value in ("0.0", "1.0"), f"{p.name}: {line!r} cites no source"


def test_unknown_key_suggests_closest(tmp_path):
    with pytest.raises(ScenarioError, match=r"unknown key 'formulation.diamter_nm'.*did you mean "
                                            r"'formulation.diameter_nm'"):
        sc.load(write(tmp_path, "[formulation]\ndiamter_nm = 50\n"))


def test_wrong_unit_suffix_is_named(tmp_path):
    with pytest.raises(ScenarioError, match=r"diameter_um.*did you mean .*diameter_nm"):
        sc.load(write(tmp_path, "[formulation]\ndiameter_um = 0.1\n"))


def test_negative_diameter(tmp_path):
    with pytest.raises(ScenarioError, match=r"formulation.diameter_nm = -5.0 is out of range; "
                                            r"allowed: a number in \[1, 2000\] nm"):
        sc.load(write(tmp_path, "[formulation]\ndiameter_nm = -5.0\n"))


def test_nan_value(tmp_path):
    with pytest.raises(ScenarioError, match=r"tissue.tumor.pore_radius_nm = nan is NaN"):
        sc.load(write(tmp_path, "[tissue.tumor]\npore_radius_nm = nan\n"))


def test_empty_file(tmp_path):
    with pytest.raises(ScenarioError, match="is empty"):
        sc.load(write(tmp_path, "   \n"))


def test_wrong_type_and_choice(tmp_path):
    with pytest.raises(ScenarioError) as e:
        sc.load(write(tmp_path, '[patient]\nspecies = "rat"\n[numerics]\ncells = 10.5\n'))
    msg = str(e.value)
    assert "patient.species = 'rat' is not allowed; allowed: one of 'human', 'mouse'" in msg
    assert "numerics.cells = 10.5 must be an integer" in msg  # every problem in one message


def test_dose_unit_must_match_species(tmp_path):
    with pytest.raises(ScenarioError, match=r"dose.dose_mg_per_kg is not used for "
                                            r"patient.species = 'human'"):
        sc.load(write(tmp_path, "[dose]\ndose_mg_per_kg = 5\n"))


def test_set_overrides_by_path_and_bare_name():
    s = sc.load("doxil", ["formulation.diameter_nm=50", "leak_rate_per_h=0.01",
                          "patient.species=mouse", "dose_mg_per_kg=3"])
    assert s["formulation.diameter_nm"] == 50.0
    assert s["formulation.leak_rate_per_h"] == 0.01
    assert s["patient.species"] == "mouse"
    with pytest.raises(ScenarioError, match="ambiguous"):
        sc.load("doxil", ["vascular_fraction=0.1"])
    with pytest.raises(ScenarioError, match="unknown field 'diameter'.*did you mean"):
        sc.load("doxil", ["diameter=50"])
    with pytest.raises(ScenarioError, match="must look like key=value"):
        sc.load("doxil", ["diameter_nm"])


def test_unknown_builtin_and_missing_file():
    with pytest.raises(ScenarioError, match="no built-in scenario 'doxill'.*did you mean 'doxil'"):
        sc.load("doxill")
    with pytest.raises(ScenarioError, match="does not exist"):
        sc.load("nowhere.toml")


def test_tumor_preset_applies_beneath_file_values():
    s = sc.load("doxil", ["tumor_preset=low-epr"])
    assert s["tissue.tumor.pore_radius_nm"] == 60.0
    s = sc.load("doxil", ["tumor_preset=collagen-rich", "tissue.tumor.pore_radius_nm=300"])
    assert s["tissue.tumor.pore_radius_nm"] == 300.0
    assert s["tissue.tumor.fibre_volume_fraction"] == 0.2
    with pytest.raises(ScenarioError, match="tumor_preset = 'huge' is not allowed"):
        sc.load("doxil", ["tumor_preset=huge"])


def test_resolved_toml_round_trips(tmp_path):
    s = sc.load("micelle", ["diameter_nm=42"])
    again = sc.load(write(tmp_path, sc.annotated_toml(s)))
    assert again.params == s.params and again.static == s.static
    plain = sc.load(write(tmp_path, s.to_toml()))
    assert all(math.isclose(plain.params[k], v) for k, v in s.params.items())


def test_cross_field_checks():
    with pytest.raises(ScenarioError, match="must be smaller than tumor.radius_mm"):
        sc.load("doxil", ["necrotic_radius_mm=20"])
    with pytest.raises(ScenarioError, match="vascular_fraction \\+ interstitial_fraction"):
        sc.load("doxil", ["tissue.tumor.vascular_fraction=0.5",
                          "tissue.tumor.interstitial_fraction=0.6"])


def test_carrier_none_is_free_drug():
    """carrier = 'none' means the whole dose is free drug: an encapsulated share is refused."""
    assert sc.load("free-dox")["formulation.encapsulated_fraction"] == 0.0
    with pytest.raises(ScenarioError, match="encapsulated_fraction = 0.5 with formulation.carrier"):
        sc.load("free-dox", ["encapsulated_fraction=0.5"])
    sc.load("doxil", ["encapsulated_fraction=0.5"])  # a carrier may hold part of the dose
