"""The scenario schema: every field a scenario may set, with default, unit, range and source.

A scenario is a TOML file of sections.  This table is the single definition of its fields: the
loader validates against it, ``nanotransport show`` prints it, ``--set``, ``optimize --vary`` and
``scan --grid`` address its fields by dotted path (``formulation.diameter_nm``) or, where
unique, by bare name (``diameter_nm``).  Numeric fields are *parameters*: they become float
leaves of the scenario pytree, so they can be differentiated and batched.  Other fields
(strings, integers, booleans, lists) are *structure*: they fix shapes and switches and are
static under ``jit``.

Sources are cited per field; values marked *(verify)* are commonly cited figures that were not
confirmed from a primary source (docs/model.md) and are kept as documented defaults.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message lists every problem found.  (Defined here,
    in the JAX-free schema, so that modules of the edge that only report errors, such as
    ``outdir``, import without JAX; ``scenario.ScenarioError`` is the same class.)"""


#: default doxorubicin tissue:plasma partition coefficient of every organ (docs/organs.md)
_DOX_PARTITION = 28.2


@dataclasses.dataclass(frozen=True)
class Field:
    """One scenario field."""

    path: str  # dotted: section[.subsection].key
    default: Any
    unit: str
    doc: str
    lo: float | None = None  # allowed range for numbers (inclusive)
    hi: float | None = None
    choices: tuple | None = None  # allowed values for strings
    kind: str = "param"  # param (float leaf) | static_float | int | str | bool | list

    @property
    def key(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def section(self) -> str:
        return self.path.rsplit(".", 1)[0]

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "any text"
        if self.kind == "list":
            return f"a list of numbers in [{self.lo:g}, {self.hi:g}]"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'an integer' if self.kind == 'int' else 'a number'} in [{lo}, {hi}]"

    @property
    def is_param(self) -> bool:
        """Numeric, differentiable and batchable (a float leaf of the scenario pytree)."""
        return self.kind == "param"


def _tissue(region: str, **d) -> list[Field]:
    """Per-region tissue fields (tumor / normal)."""
    p = f"tissue.{region}."
    return [
        Field(p + "vascular_fraction", d["phi_v"], "1", "φ_v, plasma volume per tissue volume "
              "(tumor 0.05-0.1, Jain 1988 Cancer Res 48:2641; normal muscle ~0.02-0.05) (verify)",
              0.001, 0.5),
        Field(p + "interstitial_fraction", d["phi_e"], "1", "φ_e, interstitial volume per tissue "
              "volume (tumor 0.2-0.6, normal 0.1-0.2; Jain 1987 Cancer Metastasis Rev 6:559)",
              0.01, 0.9),
        Field(p + "vessel_surface_density_per_cm", d["s_v"], "1/cm", "S_v, vessel surface per "
              "tissue volume (Baxter & Jain 1989 Microvasc Res 37:77, Table 1: tumor 200, "
              "normal 70) (verify)", 0.0, 2000.0),
        Field(p + "pore_radius_nm", d["pore"], "nm", "median vessel-wall pore radius (tumor: "
              "cutoffs 200 nm-1.2 µm, Hobbs et al. 1998 PNAS 95:4607; normal continuous "
              "capillaries ~5 nm)", 0.5, 5000.0),
        Field(p + "pore_radius_log_sd", d["pore_sd"], "1", "standard deviation of ln(pore "
              "radius) of the log-normal pore population", 0.0, 2.0),
        Field(p + "large_pore_flow_fraction", d["f_large"], "1", "f, share of the reference "
              "filtration (L_p,ref) that passes the pore population above; the rest passes "
              "endothelial junctions (small pores, 5-nm radius, log-sd 0.2) that carriers of "
              "≥ 20 nm cannot cross. Tumor 0.1 = (σ_0,normal − σ_0,tumor)/σ_0,normal with "
              "Baxter & Jain's plasma-protein reflection coefficients 0.91 and 0.82: junctions "
              "that reflect proteins like normal vessels plus rare open gaps (σ ≈ 0) reproduce "
              "the tumor's 0.82; gaps are rare in tumor vessels (Sindhwani et al. 2020 Nat Mater "
              "19:566). Normal 1 (its pores are the junctions)", 0.0, 1.0),
        Field(p + "carrier_permeability_scale_per_m", d["perm_scale"], "1/m", "γ/L_wall, the "
              "diffusive pore area per wall thickness: P = (γ/L)·⟨H(λ)⟩·D_0.  49 /m reproduces "
              "the measured tumor permeabilities 3e-9 m/s (10 nm) and 2e-10 m/s (90 nm) "
              "(PMC7078505 Table 2) with 400-nm pores", 0.0, 1e6),
        Field(p + "vessel_hydraulic_conductivity_cm_per_mmhg_s", d["lp"], "cm/(mmHg·s)",
              "L_p of vessels with the region's default pores (tumor 400-nm median, log-sd "
              "0.5; normal 5 nm, 0.2) (Baxter & Jain 1989 Table 1: tumor 2.8e-7, normal "
              "0.36e-7) (verify); L_p = L_p,ref·[(1 − f) + f·⟨r²⟩/⟨r²⟩_ref]: the pores' share f "
              "scales with their ⟨r²⟩ (Poiseuille), so smaller pores lower L_p", 0.0, 1e-4),
        Field(p + "interstitial_hydraulic_conductivity_cm2_per_mmhg_s", d["k"], "cm²/(mmHg·s)",
              "K (Baxter & Jain 1989 Table 1: tumor 4.13e-8, normal 8.53e-9) (verify)",
              1e-14, 1e-4),
        Field(p + "vascular_pressure_mmhg", 15.6, "mmHg", "p_v, microvascular pressure "
              "(Baxter & Jain 1989)", 0.0, 100.0),
        Field(p + "plasma_oncotic_pressure_mmhg", 20.0, "mmHg", "π_v (Baxter & Jain 1989)",
              0.0, 60.0),
        Field(p + "interstitial_oncotic_pressure_mmhg", d["pi_i"], "mmHg", "π_i (Baxter & Jain "
              "1989: tumor 15, normal 10)", 0.0, 60.0),
        Field(p + "protein_reflection_coefficient", d["sigma0"], "1", "σ_0 to plasma proteins "
              "(Baxter & Jain 1989: tumor 0.82, normal 0.91)", 0.0, 1.0),
        Field(p + "lymphatic_filtration_per_mmhg_s", d["lymph"], "1/(mmHg·s)", "L_pL S_L, "
              "lymphatic filtration coefficient (tumor 0: no functional lymphatics; normal "
              "1e-4 keeps normal IFP ≈ 0, Baxter & Jain 1989) (verify)", 0.0, 1.0),
        Field(p + "perfusion_ml_per_ml_min", d["wb"], "mL/(mL·min)", "w_b, blood flow per "
              "tissue volume (human tumors 0.09-0.35 by Xe-133 clearance, mean 0.15-0.35 by "
              "type, Cancer Res 1979 39:2304; tumors 0.1-0.5, Vaupel et al. 1989 Cancer Res "
              "49:6449; resting muscle 0.03-0.05); plasma flow is (1 − haematocrit)·w_b and "
              "the Pennes sink w_b·ρ_b c_b", 0.0, 10.0),
        Field(p + "macrophage_uptake_per_h", d["mac"], "1/h", "k_M, phagocytosis of "
              "interstitial carriers by tissue macrophages for a 90-nm PEGylated carrier "
              "(scaled by the MPS size-and-surface law). Tumor-associated macrophages hold most "
              "untargeted nanoparticles in tumors (Miller et al. 2015 Nat Commun 6:8692). "
              "Tumor 0.075/h: calibrated so that HER2-targeted and untargeted liposomes reach the "
              "same total tumor uptake, as Kirpotin et al. 2006 (Cancer Res 66:6732) found; "
              "checked in `validate` against Harrington et al. 2001's human tumor uptake and "
              "Laginha et al. 2005's nuclear share. Normal tissue 0.02/h (verify)",
              0.0, 100.0),
        Field(p + "fibre_volume_fraction", d["fibre"], "1", "φ_f, collagen/GAG fibre volume "
              "fraction of the fibre-matrix (Ogston) hindrance; collagen-rich tumors 0.2 make "
              "diffusion of 100-nm carriers nearly vanish (Pluen et al. 2001 PNAS 98:4628)",
              0.0, 0.5),
        Field(p + "fibre_radius_nm", d["fibre_r"], "nm", "fibre radius of the Ogston "
              "hindrance", 0.5, 100.0),
        Field(p + "cell_density_per_ml", d["cells"], "cells/mL", "cells per mL of tissue "
              "(docs/model.md §7: 1e8-1e9)", 1e6, 1e10),
        Field(p + "receptors_per_cell", d["receptors"], "1/cell", "target receptors per cell "
              "(HER2 high expressers ~1e6, docs/model.md §7; normal tissue low) (verify)", 0.0, 1e8),
        Field(p + "density_kg_per_m3", d["rho"], "kg/m³", "tissue density (docs/model.md §8: tumor "
              "1056, muscle 1050)", 500.0, 2000.0),
        Field(p + "heat_capacity_j_per_kg_k", d["cp"], "J/(kg·K)", "specific heat (docs/model.md §8: "
              "tumor 3700, muscle 3639)", 1000.0, 6000.0),
        Field(p + "thermal_conductivity_w_per_m_k", d["k_th"], "W/(m·K)", "thermal conductivity "
              "(docs/model.md §8: tumor 0.57, muscle 0.56)", 0.05, 5.0),
    ]


FIELDS: list[Field] = [
    # ------------------------------------------------------------ formulation
    Field("formulation.name", "doxil", "", "label used in tables and plots", kind="str"),
    Field("formulation.carrier", "liposome", "", "carrier type: picks the sourced systemic "
          "parameter set (liposome: Doxil label fit; conjugate: PK1, Thomson et al. 1999; "
          "micelle: the liposome clearance laws with its own leakage); 'none' is free drug: "
          "encapsulated_fraction must be 0 (checked), so no carrier parameter acts (the "
          "carrier's systemic set is the liposome's, unused)",
          choices=("none", "liposome", "micelle", "conjugate"), kind="str"),
    Field("formulation.diameter_nm", 90.0, "nm", "hydrodynamic diameter of the carrier (Doxil "
          "~85-100 nm; Gabizon et al. 2003 Clin Pharmacokinet 42:419)", 1.0, 2000.0),
    Field("formulation.surface_factor", 1.0, "1", "MPS uptake relative to a PEG-coated "
          "(stealth) surface: 1 PEG, ~3 hydrophilic polymer (HPMA), 5-10 bare or cationic "
          "(modelling choice calibrated to label clearances)", 0.01, 100.0),
    Field("formulation.encapsulated_fraction", 1.0, "1", "fraction of the dose inside carriers "
          "at injection (0 for free drug)", 0.0, 1.0),
    Field("formulation.leak_rate_per_h", 0.002, "1/h", "k_leak, payload leakage at body "
          "temperature (Doxil 0.002/h keeps ≥ 90% of plasma drug encapsulated, label)",
          0.0, 100.0),
    Field("formulation.release_temperature_C", 45.0, "°C", "T_m, release (phase-transition) "
          "temperature of a thermosensitive carrier", 30.0, 60.0),
    Field("formulation.release_transition_width_C", 0.5, "°C", "ΔT of the release sigmoid "
          "(docs/model.md §6: 0.3-0.7)", 0.05, 5.0),
    Field("formulation.release_max_rate_per_s", 0.0, "1/s", "k_max, triggered release rate "
          "(ThermoDox 0.046/s: 60% in 20 s, Mills & Needham 2004; 0 for non-thermosensitive)",
          0.0, 10.0),
    Field("formulation.interstitial_breakdown_rate_per_h", 0.02, "1/h", "breakdown of carriers "
          "in the interstitium, releasing their payload (liposomes: days) (verify)", 0.0, 100.0),
    Field("formulation.drug_molecules_per_particle", 1.0e4, "1", "drug molecules carried by "
          "one particle (Doxil ~1e4 doxorubicin per liposome, Barenholz 2012 J Control Release "
          "160:117) (verify); converts carrier concentrations to particles for receptor binding",
          1.0, 1e8),
    Field("formulation.ligands_per_particle", 0.0, "1", "targeting ligands per particle "
          "(0: passive carrier; immunoliposomes carry ~10-100 antibody fragments, Park et al. "
          "2002 Clin Cancer Res 8:1172) (verify)", 0.0, 1e5),
    Field("formulation.binding_on_rate_per_m_per_s", 3e5, "1/(M·s)", "k_on of one ligand "
          "(docs/model.md §7: 1e5-1e6)", 0.0, 1e9),
    Field("formulation.dissociation_constant_nm", 1.0, "nM", "K_d of one ligand (docs/model.md "
          "§7: 0.1-5 nM); avidity of multivalent particles lowers it further", 1e-6, 1e6),
    Field("formulation.internalization_rate_per_h", 0.2, "1/h", "k_int of bound carriers "
          "(HER2: hours; transferrin receptor: minutes; docs/model.md §7)", 0.0, 1000.0),
    Field("formulation.intracellular_release_rate_per_h", 0.1, "1/h", "release of payload from "
          "internalized carriers inside cells (verify)", 0.0, 1000.0),
    Field("formulation.internalized_degradation_rate_per_h", 0.05, "1/h", "degradation of "
          "internalized carriers (their payload goes into the cell) (verify)", 0.0, 1000.0),
    Field("formulation.pinocytosis_rate_per_h", 0.0, "1/h", "k_p, fluid-phase endocytosis of "
          "interstitial carriers by cancer cells (polymer conjugates enter cells this way and "
          "release drug in lysosomes; 0 for liposomes, whose uptake by cancer cells needs "
          "ligands)", 0.0, 100.0),
    Field("formulation.macrophage_release_rate_per_h", 0.02, "1/h", "k_D, digestion of "
          "carriers phagocytosed by tissue macrophages, which frees their payload into the "
          "interstitium (PEG-liposomes are digested over days: macrophages act as a slow "
          "drug depot, Miller et al. 2015 Nat Commun 6:8692) (verify)", 0.0, 100.0),
    # ------------------------------------------------------------ drug
    Field("drug.name", "doxorubicin", "", "drug label", kind="str"),
    Field("drug.free_diffusivity_m2_per_s", 3.4e-10, "m²/s", "D of free doxorubicin in "
          "interstitial fluid before matrix hindrance (El-Kareh & Secomb 2000 Neoplasia 2:325)",
          1e-13, 1e-8),
    Field("drug.molecular_diameter_nm", 1.2, "nm", "hydrodynamic diameter of the free drug (for matrix "
          "hindrance)", 0.1, 10.0),
    Field("drug.vessel_permeability_um_per_s", 1.0, "µm/s", "P of free (unbound) doxorubicin "
          "across tumor vessels, mostly transcellular (docs/model.md §5: 1-3 µm/s) (verify)",
          0.0, 100.0),
    Field("drug.reflection_coefficient", 0.0, "1", "σ of the free drug at the vessel wall",
          0.0, 1.0),
    Field("drug.unbound_fraction_plasma", 0.25, "1", "unbound fraction in plasma: only unbound "
          "drug crosses membranes (75% protein binding, doxorubicin US label)", 0.0, 1.0),
    Field("drug.uptake_vmax_ng_per_1e5cells_min", 0.28, "ng/(1e5 cells·min)", "V_max of cell "
          "uptake (El-Kareh & Secomb 2000) (verify)", 0.0, 100.0),
    Field("drug.uptake_ke_ug_per_ml", 0.219, "µg/mL", "K_e (El-Kareh & Secomb 2000) (verify)",
          1e-6, 100.0),
    Field("drug.uptake_ki_ng_per_1e5cells", 1.37, "ng/1e5 cells", "K_i (El-Kareh & Secomb "
          "2000) (verify)", 1e-6, 1000.0),
    Field("drug.nuclear_binding_rate_per_h", 1.0, "1/h", "k_N, binding of intracellular "
          "doxorubicin to nuclear DNA at low occupancy (nuclear drug peaks ~4 h after free "
          "doxorubicin in mouse tumors, Laginha et al. 2005 Clin Cancer Res 11:6944 Table 1) "
          "(verify)", 0.0, 1000.0),
    Field("drug.nuclear_release_rate_per_h", 0.028, "1/h", "k_N,off, release of DNA-bound "
          "doxorubicin: ln 2/25 h, the apparent half-life of doxorubicin in mouse tumors after "
          "free drug (Laginha et al. 2005 Table 1), which the nuclear pool sets", 0.0, 1000.0),
    Field("drug.nuclear_capacity_ng_per_1e5cells", 190.0, "ng/1e5 cells", "N_max, DNA binding "
          "sites: 6.4e9 bp per diploid cell / 3.1 bp per bound doxorubicin (Barcelo et al. "
          "1988 Biochem Pharmacol 37:2133) = 2.1e9 sites, 1.9e-3 ng per cell", 1e-3, 1e9),
    Field("drug.kill_coefficient_per_ng_h_per_1e5cells", 0.0154, "1/(ng·h/1e5 cells)",
          "ω of SF = exp(−ω·∫n dt), n = DNA-bound (nuclear) drug (exposure form of El-Kareh & "
          "Secomb 2000, acting where doxorubicin acts). Calibrated here: with ω = 0.0154, free "
          "doxorubicin 60 mg/m² (72 h) leaves a tumor-mean SF ≈ 0.5 (tumor-mean DNA-bound "
          "AUC ≈ 45 ng·h/1e5 cells), inside the responsive range 0.05-0.9 of docs/model.md §7",
          0.0, 100.0),
    Field("drug.blood_to_plasma_ratio", 1.15, "1", "R_bp, blood:plasma concentration ratio: "
          "organ plasma flow = R_bp × blood flow (Mystridis et al. 2022 Pharmaceutics 14:541, "
          "from a rat measurement)", 0.1, 10.0),
    Field("drug.urinary_excretion_fraction", 0.11, "1", "share of free-drug clearance excreted "
          "in urine; the rest is hepatic (metabolism 49 %, bile 40 %; Mystridis et al. 2022 "
          "Table 5)", 0.0, 0.9),
    Field("drug.degradation_rate_per_h", 0.0, "1/h", "degradation of free drug in tissue",
          0.0, 100.0),
    # ------------------------------------------------------------ dose
    Field("dose.dose_mg_per_m2", 50.0, "mg/m²", "dose per body-surface area (human)",
          0.0, 1000.0),
    Field("dose.dose_mg_per_kg", 5.0, "mg/kg", "dose per body mass (mouse)", 0.0, 200.0),
    Field("dose.infusion_duration_min", 60.0, "min", "duration of the zero-order infusion "
          "(Doxil: 1 mg/min, about 60 min, label)", 0.01, 10080.0),
    # ------------------------------------------------------------ patient
    Field("patient.species", "human", "", "parameter set", choices=("human", "mouse"),
          kind="str"),
    Field("patient.body_surface_area_m2", 1.8, "m²", "body-surface area (human)", 0.2, 3.5),
    Field("patient.body_mass_kg", 0.025, "kg", "body mass (mouse)", 0.005, 200.0),
    Field("patient.haematocrit", 0.45, "1", "volume fraction of red cells in blood: plasma "
          "flow = (1 − Hct)·blood flow (adults 0.40-0.45; mouse ~0.45) (verify)", 0.0, 0.8),
    Field("patient.carrier_clearance_scale", 1.0, "1", "multiplies the species' reference "
          "carrier clearance: that of PEG-liposomal doxorubicin at the reference diameter 90 nm "
          "(human: 0.0321 L/h/m², fitted to the Doxil label; mouse: nanotransport.pk)",
          0.0, 1000.0),
    Field("patient.carrier_mps_share", 0.8, "1", "share of the reference carrier clearance "
          "that is MPS uptake (size- and surface-dependent); the rest is size-independent "
          "(modelling choice)", 0.0, 1.0),
    Field("patient.gfr_ml_per_min", 120.0, "mL/min", "glomerular filtration rate: the renal "
          "clearance of a freely filtered particle (adult 120 mL/min; mouse ~0.28 mL/min, "
          "Qi et al. 2004 Am J Physiol Renal 286:F590)", 0.0, 1000.0),
    Field("patient.renal_cutoff_nm", 5.5, "nm", "hydrodynamic diameter of the renal filtration "
          "cutoff (Choi et al. 2007 Nat Biotechnol 25:1165)", 1.0, 20.0),
    Field("patient.renal_cutoff_width_nm", 0.7, "nm", "width of the logistic renal switch",
          0.05, 5.0),
    Field("patient.mps_threshold_nm", 175.0, "nm", "d_M of the MPS size law "
          "CL_MPS ∝ 1 + (d/d_M)^n (docs/model.md §3: 150-200 nm)", 10.0, 2000.0),
    Field("patient.mps_exponent", 3.0, "1", "n of the MPS size law (docs/model.md §3: 2-4)",
          0.5, 8.0),
    Field("patient.systemic_model", "organs", "", "systemic model: 'organs' (whole-body organ "
          "model of carrier and drug: plasma, liver, spleen, kidney, heart, skin, bone marrow, "
          "muscle, rest; docs/organs.md) or 'compartments' (the compartmental plasma model, "
          "docs/model.md §3)", choices=("organs", "compartments"), kind="str"),
    # ------------------------------------------------------------ organs (systemic_model = organs)
    *[Field(f"organs.partition_{o}", _DOX_PARTITION, "1", f"K_{o}, doxorubicin {o}:plasma "
            "partition coefficient (total drug, linear binding); default: one value for every "
            "organ from the label's V_ss (docs/organs.md) (verify per organ; `nanotransport "
            "fit` estimates it from a biodistribution study)", 0.01, 10000.0)
      for o in ("liver", "spleen", "kidney", "heart", "skin", "marrow", "muscle", "rest")],
    Field("organs.mps_share_liver", 0.8, "1", "weight of the liver in the carriers' MPS uptake "
          "(the three weights are normalized) (verify)", 0.0, 1.0),
    Field("organs.mps_share_spleen", 0.15, "1", "weight of the spleen in the carriers' MPS "
          "uptake (verify)", 0.0, 1.0),
    Field("organs.mps_share_marrow", 0.05, "1", "weight of the bone marrow in the carriers' MPS "
          "uptake (verify)", 0.0, 1.0),
    Field("organs.residual_plasma_fraction", 0.0, "1", "plasma left in an organ homogenate per "
          "organ volume (0: perfused organs); enters organ readouts only", 0.0, 0.5),
    # ------------------------------------------------------------ tumor geometry
    Field("tumor.geometry", "sphere", "", "tissue geometry: 'sphere' (1D radial: a spherical "
          "tumor in a shell of normal tissue), 'cartesian2d', 'axisymmetric' (r, z) or "
          "'cartesian3d' (the tumor centred in a box of normal tissue)",
          choices=("sphere", "cartesian2d", "axisymmetric", "cartesian3d"), kind="str"),
    Field("tumor.radius_mm", 10.0, "mm", "tumor radius", 0.05, 100.0, kind="static_float"),
    Field("tumor.margin_mm", 5.0, "mm", "thickness of the normal-tissue shell around it",
          0.05, 100.0, kind="static_float"),
    Field("tumor.necrotic_radius_mm", 0.0, "mm", "radius of an avascular necrotic core (0: "
          "none)", 0.0, 100.0, kind="static_float"),
    *_tissue("tumor", phi_v=0.07, phi_e=0.4, s_v=200.0, pore=400.0, pore_sd=0.5, f_large=0.1,
             perm_scale=49.0, lp=2.8e-7, k=4.13e-8, pi_i=15.0, sigma0=0.82, lymph=0.0, wb=0.2,
             fibre=0.06, fibre_r=5.0, cells=3e8, receptors=1e5, rho=1056.0, cp=3700.0,
             k_th=0.57, mac=0.075),
    *_tissue("normal", phi_v=0.03, phi_e=0.2, s_v=70.0, pore=5.0, pore_sd=0.2, f_large=1.0,
             perm_scale=49.0, lp=0.36e-7, k=8.53e-9, pi_i=10.0, sigma0=0.91, lymph=1e-4,
             wb=0.05, fibre=0.08, fibre_r=4.0, cells=2e8, receptors=1e4, rho=1050.0,
             cp=3639.0, k_th=0.56, mac=0.02),
    # ------------------------------------------------------------ heating
    Field("heating.source", "none", "", "heat source: 'none', 'ultrasound' (Gaussian focus of "
          "fixed absorbed power), 'protocol' (target-region temperature prescribed: ramp to the "
          "target, hold, with integral action on the readout), 'controlled' (focus power set by "
          "the PI controller: MR-HIFU mild hyperthermia), 'regional' (uniform power density "
          "over the target region set by the PI controller: water bath, RF regional "
          "hyperthermia)",
          choices=("none", "ultrasound", "protocol", "controlled", "regional"), kind="str"),
    Field("heating.target_region", "probe", "", "region the set point is for: 'probe' (the "
          "probe point; region metrics over the tumor), 'tumor', 'tumor+margin' (the tumor and "
          "tissue within heating.target_margin_mm of it)",
          choices=("probe", "tumor", "tumor+margin"), kind="str"),
    Field("heating.target_margin_mm", 5.0, "mm", "width of the margin of a 'tumor+margin' "
          "target (modelling choice: a planning margin around the lesion)", 0.0, 100.0,
          kind="static_float"),
    Field("heating.control_readout", "probe", "", "what the controller holds at the set point: "
          "'probe' temperature, 't90' (temperature exceeded by 90 % of the target region's "
          "volume, ESHO) or 'mean' over the target region",
          choices=("probe", "t90", "mean"), kind="str"),
    Field("heating.control_integral_time_min", 3.0, "min", "integral time T_i of the PI "
          "controller (and of the protocol's integral action) (modelling choice: ~1-2 thermal "
          "time constants ρc/W of perfused tissue)", 0.05, 600.0),
    Field("heating.max_power_w", 100.0, "W", "largest absorbed power of the controlled and "
          "regional sources (clinical MR-HIFU mild hyperthermia runs at tens of acoustic W) "
          "(verify)", 0.001, 10000.0),
    Field("heating.cooldown_min", 0.0, "min", "cool-down after the plateau: the set point "
          "ramps back to the arterial temperature over this time (0: power off at the end)",
          0.0, 600.0),
    Field("heating.heating_start_min", 0.0, "min", "start of heating after the start of the "
          "infusion", 0.0, 10080.0),
    Field("heating.heating_duration_min", 30.0, "min", "heating duration (clinical "
          "hyperthermia 30-60 min, docs/model.md §8)", 0.0, 1440.0),
    Field("heating.target_temperature_C", 42.0, "°C", "target tumor temperature (protocol, "
          "controlled)", 37.0, 60.0),
    Field("heating.ramp_min", 5.0, "min", "time to ramp the set point from 37 °C to the target",
          0.01, 600.0),
    Field("heating.power_w", 5.0, "W", "absorbed power of the focus (ultrasound)", 0.0, 1000.0),
    Field("heating.focus_fwhm_mm", 15.0, "mm", "full width at half maximum of the Gaussian "
          "focus (steered foci cover a tumor)", 0.1, 200.0),
    Field("heating.focus_offset_mm", 0.0, "mm", "focus centre relative to the tumor centre "
          "along the first axis (2D/3D grids; radial grids centre it)", -200.0, 200.0),
    Field("heating.probe_offset_mm", 0.0, "mm", "probe position relative to the tumor centre "
          "along the first axis (controlled)", -200.0, 200.0, kind="static_float"),
    Field("heating.control_gain", 2.0, "1", "proportional gain K of the controller "
          "(dimensionless: watts per °C of error in units of the steady readout gain)",
          0.0, 100.0),
    Field("heating.protocol_relaxation_per_s", 0.05, "1/s", "how tightly the protocol holds "
          "the set point (relaxation rate of the prescribing source)", 1e-4, 10.0),
    Field("heating.perfusion_increase_per_C", 0.0, "1/°C", "fractional rise of perfusion per "
          "°C above 37 (tumor blood flow rises 1.5-2× at 41-42 °C, Song 1984 Cancer Res "
          "44:4721s) (verify)", 0.0, 5.0),
    Field("heating.arterial_temperature_C", 37.0, "°C", "arterial blood temperature T_a",
          30.0, 42.0),
    Field("tissue.maps_file", "", "", "optional netCDF file of per-cell maps on the grid: "
          "multipliers of tissue fields (e.g. vessel_surface_density_per_cm) and/or 'region' "
          "(0 tumor, 1 normal, 2 necrotic)", kind="str"),
    Field("tissue.network_file", "", "", "a discrete vessel network instead of the "
          "homogenized vessel density (docs/networks.md): a Secomb network.dat, VTK .vtp or "
          "HDF5 .h5 file, or 'synthetic' for the generated tumor network of the network.* "
          "fields; '' = none.  A scenario with a network runs the network model "
          "(nanotransport network)", kind="str"),
    # ------------------------------------------------------------ network (tissue.network_file)
    Field("network.box_mm", [1.0, 1.0, 1.0], "mm", "synthetic network: box (x, y, z); blood "
          "enters at x = 0 and leaves at x = max", 0.05, 20.0, kind="list"),
    Field("network.spacing_um", 80.0, "µm", "synthetic network: lattice pitch (illustrative; "
          "intercapillary distances 40-100 µm in normal tissue, larger in tumors)", 10.0, 1000.0,
          kind="static_float"),
    Field("network.connectivity", 0.8, "1", "synthetic network: probability a lattice edge "
          "survives the first draw", 0.05, 1.0, kind="static_float"),
    Field("network.capillary_diameter_um", 7.0, "µm", "synthetic network: median capillary "
          "diameter (5-10 µm, Pries & Secomb 2008 Handbook of Physiology)", 2.0, 100.0,
          kind="static_float"),
    Field("network.diameter_spread", 1.2, "1", "synthetic network: geometric standard "
          "deviation of the diameters (illustrative)", 1.0, 3.0, kind="static_float"),
    Field("network.tumor_radius_mm", 0.35, "mm", "synthetic network: radius of the tumor "
          "sphere at the box's centre (0: none)", 0.0, 10.0, kind="static_float"),
    Field("network.core_radius_mm", 0.15, "mm", "synthetic network: radius of the poorly "
          "perfused (necrotic) core", 0.0, 10.0, kind="static_float"),
    Field("network.tumor_dilation", 1.5, "1", "synthetic network: diameter factor of tumor "
          "vessels (illustrative)", 0.5, 5.0, kind="static_float"),
    Field("network.tumor_tortuosity", 0.25, "1", "synthetic network: random node "
          "displacement in the tumor, in lattice pitches", 0.0, 0.49, kind="static_float"),
    Field("network.core_loss", 0.7, "1", "synthetic network: probability a vessel of the "
          "necrotic core is lost", 0.0, 1.0, kind="static_float"),
    Field("network.inlet_fraction", 0.5, "1", "synthetic network: middle share of the y and z "
          "extents fed (inlets at x = 0) and drained (outlets at x = max)", 0.05, 1.0,
          kind="static_float"),
    Field("network.arterial_pressure_mmHg", 35.0, "mmHg", "synthetic network: inlet pressure "
          "(arteriolar end of a capillary bed)", 1.0, 150.0, kind="static_float"),
    Field("network.venous_pressure_mmHg", 12.0, "mmHg", "synthetic network: outlet pressure",
          0.0, 100.0, kind="static_float"),
    Field("network.feeding_diameter_um", 15.0, "µm", "synthetic network: diameter of inlet "
          "and outlet segments", 2.0, 200.0, kind="static_float"),
    Field("network.seed", 0, "", "synthetic network: random seed", 0, 2**31 - 1, kind="int"),
    Field("network.inflow_hematocrit", 0.45, "1", "discharge haematocrit entering at the "
          "synthetic network's inlets (a file gives its own)", 0.0, 0.9, kind="static_float"),
    Field("network.viscosity_law", "pries1994", "", "apparent blood viscosity in the vessels: "
          "Pries et al. 1994 in vivo law, its 2005 endothelial-surface-layer form, or plasma "
          "only", choices=("pries1994", "pries2005", "constant"), kind="str"),
    Field("network.phase_separation", True, "", "red-cell phase separation at diverging "
          "bifurcations (Pries & Secomb 2005); false: haematocrit mixes by flow", kind="bool"),
    Field("network.plasma_viscosity_mPa_s", 1.2, "mPa·s", "plasma viscosity (human 1.1-1.3)",
          0.5, 5.0, kind="static_float"),
    Field("network.grid_spacing_um", 50.0, "µm", "tissue grid cell size around the network",
          5.0, 2000.0, kind="static_float"),
    Field("network.box_margin_um", 0.0, "µm", "tissue beyond the network's bounding box on "
          "every side", 0.0, 10000.0, kind="static_float"),
    Field("network.file_length_unit_um", 1.0, "µm", "length unit of a .vtp network file (VTK "
          "carries none)", 1e-3, 1e6, kind="static_float"),
    # ------------------------------------------------------------ imaging
    Field("imaging.label", "In-111", "", "label on the carrier: a radionuclide (half-lives: "
          "In-111 2.80 d for SPECT, Cu-64 12.7 h and Zr-89 78.4 h for PET) or 'none' for a "
          "non-decaying MRI/optical label (docs/model.md §9)",
          choices=("In-111", "Cu-64", "Zr-89", "none"), kind="str"),
    Field("imaging.label_retained_fraction", 1.0, "1", "share of the label that stays in the "
          "cell when a carrier is digested in macrophages or cancer cells (residualizing "
          "labels: ¹¹¹In-DTPA, ⁸⁹Zr ≈ 1; the ¹¹¹In-liposomes of Harrington et al. 2001 Clin "
          "Cancer Res 7:243 carried ¹¹¹In-DTPA; 0: the label leaves with the digested carrier)",
          0.0, 1.0),
    Field("imaging.psf_fwhm_mm", 10.0, "mm", "full width at half maximum of the scanner's "
          "Gaussian point-spread function (docs/model.md §9: clinical PET 4-6, SPECT ~10, "
          "preclinical ~1; 0: no blurring)", 0.0, 100.0, kind="static_float"),
    Field("imaging.injected_activity_mbq", 185.0, "MBq", "injected activity of the label "
          "(clinical In-111 SPECT ~100-200 MBq; mice ~5-20 MBq) (verify)", 0.0, 1e5,
          kind="static_float"),
    # ------------------------------------------------------------ numerics
    Field("numerics.cells", 100, "", "number of cells along each axis (radial cells of the "
          "1D sphere)", 4, 100000, kind="int"),
    Field("numerics.margin_refinement", 3000.0, "1", "how much finer the radial grid (sphere) "
          "is at the tumor margin than far from it; cells grow geometrically (by <= 16 % per "
          "cell) away from the margin, resolving the IFP fall (~0.1 mm) and the carrier layer "
          "(~10 um) there (docs/model.md)", 1.0, 1e5, kind="static_float"),
    Field("numerics.t_end_h", 72.0, "h", "end time", 0.01, 2000.0, kind="static_float"),
    Field("numerics.max_dt_min", 10.0, "min", "largest time step", 0.001, 600.0, kind="static_float"),
    Field("numerics.heating_max_dt_min", 1.0, "min", "largest time step in the window of refined "
          "heating steps (numerics.heating_window_min)", 0.001, 60.0, kind="static_float"),
    Field("numerics.heating_window_min", [], "min", "[start, end] of the window of refined "
          "heating steps (empty: 5 min before the heating to 30 min after it, rounded out to "
          "30-min marks); scans over heating times set it to cover the scanned range",
          0.0, 1e6, kind="list"),
    Field("numerics.save_times_h", [], "h", "saved times (empty: a default set up to t_end)",
          0.0, 2000.0, kind="list"),
    Field("numerics.precision", "float64", "", "floating-point precision",
          choices=("float64", "float32"), kind="str"),
    Field("numerics.convection", "limited", "", "convection scheme of the interstitial "
          "transport: 'limited' (second-order van Leer MUSCL by deferred correction, positive; "
          "solver.transport_step) or 'upwind' (first order)",
          choices=("upwind", "limited"), kind="str"),
    # ------------------------------------------------------------ objective
    Field("objective.weight_cardiac_auc", 0.1, "1", "weight of the cardiac term: free-drug AUC "
          "in the heart (compartmental model: in plasma) relative to free doxorubicin at the "
          "same dose (docs/organs.md)", 0.0, 100.0),
    Field("objective.weight_cardiac_peak", 0.1, "1", "weight of the cardiac term: peak free-drug "
          "concentration in the heart (compartmental model: in plasma) relative to free "
          "doxorubicin at the same dose", 0.0, 100.0),
    Field("objective.weight_hand_foot", 0.1, "1", "weight of hand-foot syndrome: AUC of the "
          "payload carriers bring into the skin (compartmental model: encapsulated drug in "
          "plasma) relative to PEG-liposomal doxorubicin at the same dose", 0.0, 100.0),
    Field("objective.weight_marrow", 0.1, "1", "weight of bone-marrow toxicity: free-drug AUC "
          "in the marrow (compartmental model: in plasma) relative to free doxorubicin at the "
          "same dose", 0.0, 100.0),
    Field("objective.weight_thermal", 1.0, "1", "weight of thermal damage: normal-tissue CEM43 "
          "above the threshold, relative to the threshold", 0.0, 100.0),
    Field("objective.cem43_threshold_min", 40.0, "min", "normal-tissue thermal dose tolerated "
          "(muscle ~40-80 CEM43 min before damage; Yarmolenko et al. 2011 Int J Hyperthermia "
          "27:320) (verify)", 0.1, 10000.0),
    # ------------------------------------------------------------ outputs
    Field("outputs.figures", True, "", "write PNG figures", kind="bool"),
]
FIELDS_BY_PATH = {f.path: f for f in FIELDS}


def is_number_ok(field: Field, value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)
            and (field.lo is None or value >= field.lo)
            and (field.hi is None or value <= field.hi))
