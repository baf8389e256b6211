"""Unit conversions used at the edges of the package.

Everything inside the solver is SI: metres, seconds, pascals, kelvin (or °C for temperature
fields, stated where used), amounts in mol, concentrations in mol/m³.  User-facing names carry
their unit (``diameter_nm``, ``t_end_h``) and are converted once, with the constants below.
"""

MMHG_PA = 133.322  # 1 mmHg in Pa
NM = 1e-9  # m
UM = 1e-6  # m
MM = 1e-3  # m
CM = 1e-2  # m
MIN = 60.0  # s
HOUR = 3600.0  # s
LITRE = 1e-3  # m³
ML = 1e-6  # m³
KELVIN_OFFSET = 273.15  # K at 0 °C
BOLTZMANN = 1.380649e-23  # J/K
DOXORUBICIN_MOLAR_MASS = 543.52  # g/mol, free base
# 1 µg/mL = 1 g/m³; divided by the molar mass (g/mol) it is mol/m³.
UG_PER_ML_TO_MOL_PER_M3 = 1.0 / DOXORUBICIN_MOLAR_MASS


def celsius_to_kelvin(t_c):
    """°C → K."""
    return t_c + KELVIN_OFFSET


def mg_to_mol(mass_mg, molar_mass_g_per_mol=DOXORUBICIN_MOLAR_MASS):
    """Mass in mg → amount in mol."""
    return mass_mg * 1e-3 / molar_mass_g_per_mol


def mol_per_m3_to_ug_per_ml(c, molar_mass_g_per_mol=DOXORUBICIN_MOLAR_MASS):
    """Concentration mol/m³ → µg/mL (= g/m³)."""
    return c * molar_mass_g_per_mol
