"""Tidy study CSV (``studies.observations``): columns, units, every bad row with its line."""
import numpy as np
import pytest

from nanotransport.engine import units
from nanotransport.studies import observations as ob
from nanotransport.studies.calibrate import ObservationError

MW = units.DOXORUBICIN_MOLAR_MASS
GOOD = """# source: a made-up study for the tests
# dose 6 mg/kg
time_h,tissue,analyte,value,unit,sd,n,subject
1,plasma,drug,100,ug/mL,10,4,
24,tumor,drug,5,µg/g,1,4,
24,liver,carrier,2.5,%ID/g,0.5,,
4,plasma,free_drug,300,ng/mL,30,3,
48,tumor,drug,2,uM,0.2,,m1
"""


def test_parse_good_file_keeps_comments_and_rows():
    o = ob.parse(GOOD, "x.csv")
    assert len(o) == 5 and o.source.startswith("source: a made-up study")
    np.testing.assert_array_equal(o.line, [4, 5, 6, 7, 8])
    assert list(o.unit) == ["ug/mL", "ug/g", "%ID/g", "ng/mL", "uM"]
    assert list(o.tissue_index) == [0, 8, 1, 0, 8] and list(o.analyte_index) == [0, 0, 3, 1, 0]
    np.testing.assert_allclose(o.standard_error()[:2], [5.0, 0.5])  # sd/√n
    assert o.n[2] == 1 and o.subject[4] == "m1" and o.subject[0] == ""
    back = ob.parse(ob.to_csv(o))  # round trip
    np.testing.assert_array_equal(back.value, o.value)
    assert list(back.unit) == list(o.unit) and back.source == o.source


def test_unit_conversions_by_hand():
    dose = 1.5e-7  # mol
    o = ob.parse("time_h,tissue,analyte,value,unit\n" + "\n".join(
        f"1,plasma,drug,2,{u}" for u in ("%ID/g", "%ID/mL", "ug/g", "μg/mL", "ng/g", "ng/mL",
                                         "mg/L", "uM", "nM")))
    hand = [0.02 * dose / 1e-6, 0.02 * dose / 1e-6,  # 2 % of the dose in 1 g = 1e-6 m³
            2e-6 / MW / 1e-6, 2e-6 / MW / 1e-6,       # 2 µg in 1 mL → mol/m³
            2e-9 / MW / 1e-6, 2e-9 / MW / 1e-6,
            2e-3 / MW / 1e-3,                          # 2 mg in 1 L
            2e-6 * 1e3, 2e-9 * 1e3]                    # µmol/L → mol/m³
    np.testing.assert_allclose(o.to_mol_per_m3(dose), hand, rtol=1e-12)


def test_every_bad_row_reported_with_its_line():
    text = ("# comment\n"
            "time_h,tissue,analyte,value,unit,sd\n"
            "1,plasma,drug,1,ug/mL,\n"          # line 3: fine
            "2,lung,drug,1,ug/mL,\n"            # 4: unknown tissue
            "2,liver,metabolite,1,ug/mL,\n"     # 5: unknown analyte
            "2,liver,drug,1,mg/kg,\n"           # 6: unknown unit
            "2,liver,drug,-1,ug/g,\n"           # 7: negative value
            "2,liver,drug,nan,ug/g,\n"          # 8: NaN value
            "2,liver,drug,,ug/g,\n"             # 9: empty value
            "-1,liver,drug,1,ug/g,\n"           # 10: negative time
            "100,liver,drug,1,ug/g,\n"          # 11: after t_end (72 h)
            "2,liver,drug,1,ug/g,0\n"           # 12: sd = 0
            "2,liver,drug,1\n")                 # 13: too few values
    with pytest.raises(ObservationError) as e:
        ob.parse(text, "bad.csv", t_end_h=72.0)
    msg = str(e.value)
    for needle in ("line 4: tissue = 'lung'", "line 5: analyte = 'metabolite'",
                   "line 6: unit = 'mg/kg'", "line 7: value = '-1'", "line 8: value = 'nan'",
                   "line 9: value = ''", "line 10: time_h = '-1'",
                   "line 11: time_h = '100': allowed: times within the run",
                   "line 12: sd = '0'", "line 13: row ="):
        assert needle in msg, (needle, msg)
    assert "line 3" not in msg and "10 problem(s)" in msg


def test_unknown_and_missing_columns():
    with pytest.raises(ObservationError, match=r"line 2: column = 'dose'"):
        ob.parse("# c\ntime_h,tissue,analyte,value,unit,dose\n1,plasma,drug,1,ug/mL,3\n")
    with pytest.raises(ObservationError, match="column 'unit' is missing"):
        ob.parse("time_h,tissue,analyte,value\n1,plasma,drug,1\n")
    with pytest.raises(ObservationError, match="no data rows"):
        ob.parse("time_h,tissue,analyte,value,unit\n")


def test_contract_matches_the_organ_model():
    organs = pytest.importorskip("nanotransport.model.organs")
    assert tuple(organs.TISSUES) == ob.TISSUES and tuple(organs.ANALYTES) == ob.ANALYTES


def test_shipped_datasets_parse():
    """Every CSV in nanotransport/data/ reads without a bad row, with its source comments."""
    from pathlib import Path

    import nanotransport

    files = sorted((Path(nanotransport.__file__).parent / "data").glob("*.csv"))
    for f in files:
        o = ob.load(f, t_end_h=72.0)
        assert len(o) > 0 and "source" in o.source, f
