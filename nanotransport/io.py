"""Result files: ``results.nc`` (xarray/netCDF) and ``summary.json``; atomic writes.

Files people exchange are netCDF, JSON or TOML (never pickle): opening one runs no code.  Every
write goes to a temporary file in the target folder and is renamed over the target, so an
interrupted run never leaves a half-written file.
"""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import xarray as xr

from .model import imaging, organs, pk
from . import outdir
from .engine import export_cache, units
from .model.scenario import Scenario
from .model.simulate import Result
from .model.tissue import Layout
from .model.transport import carriers_per_tissue_volume, drug_per_tissue_volume, payload_locations

FIELD_DOCS = {
    "carrier": "carrier particles in the interstitium (drug-equivalent at loading)",
    "payload": "drug encapsulated in interstitial carriers",
    "free": "free drug in interstitial fluid",
    "carrier_vessel": "carrier particles in vessel plasma",
    "payload_vessel": "drug encapsulated in carriers in vessel plasma",
    "free_vessel": "free drug (bound + unbound) in vessel plasma",
    "intracellular": "exchangeable drug inside cells (cytoplasm, not DNA-bound)",
    "nuclear": "drug bound to nuclear DNA",
    "macrophage": "carriers phagocytosed by tissue macrophages (drug-equivalent), per tissue volume",
    "macrophage_payload": "drug in carriers phagocytosed by tissue macrophages, per tissue volume",
    "intracellular_auc": "time integral of intracellular drug (exchangeable + DNA-bound)",
    "nuclear_auc": "time integral of DNA-bound drug (the exposure of the kill model)",
    "released_macrophages": "payload freed by macrophages digesting carriers, per tissue volume",
    "label_residue": "imaging label left in cells by digested carriers (drug-equivalent)",
    "net_carrier": "carriers taken from the blood (inflow − outflow − lymph), per tissue volume",
    "net_payload": "encapsulated drug taken from the blood, per tissue volume",
    "net_free": "free drug taken from the blood, per tissue volume",
    "degraded": "free drug degraded in tissue, per tissue volume",
    "released_vessel": "payload released in vessel plasma, per tissue volume",
    "released_interstitium": "payload released in the interstitium, per tissue volume",
    "released_cells": "payload released inside cells from internalized carriers",
    "bound": "carriers bound to cell receptors (drug-equivalent), per tissue volume",
    "bound_payload": "drug in receptor-bound carriers, per tissue volume",
    "internalized": "internalized carriers (drug-equivalent), per tissue volume",
    "internalized_payload": "drug in internalized carriers, per tissue volume",
    "temperature": "tissue temperature",
    "cem43": "cumulative equivalent minutes at 43 °C (thermal dose)",
}
PHASE_UNITS = {
    "carrier": "mol/m3 of interstitial fluid", "payload": "mol/m3 of interstitial fluid",
    "free": "mol/m3 of interstitial fluid", "carrier_vessel": "mol/m3 of plasma",
    "payload_vessel": "mol/m3 of plasma", "free_vessel": "mol/m3 of plasma",
    "intracellular": "mol/m3 of cells", "intracellular_auc": "mol s/m3 of cells",
    "nuclear": "mol/m3 of cells", "nuclear_auc": "mol s/m3 of cells",
    "macrophage": "mol/m3 of tissue", "macrophage_payload": "mol/m3 of tissue",
    "released_macrophages": "mol/m3 of tissue", "label_residue": "mol/m3 of tissue",
    "net_carrier": "mol/m3 of tissue", "net_payload": "mol/m3 of tissue",
    "net_free": "mol/m3 of tissue", "degraded": "mol/m3 of tissue",
    "released_vessel": "mol/m3 of tissue", "released_interstitium": "mol/m3 of tissue",
    "released_cells": "mol/m3 of tissue", "bound": "mol/m3 of tissue",
    "bound_payload": "mol/m3 of tissue", "internalized": "mol/m3 of tissue",
    "internalized_payload": "mol/m3 of tissue", "temperature": "degC", "cem43": "min",
}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (``outdir.atomic_write_bytes``)."""
    outdir.atomic_write_bytes(path, data)


def write_json(path: Path, obj) -> None:
    """Strict JSON (NaN/inf → null with a warning naming the keys), written atomically."""
    outdir.write_json(path, obj)


def _model_arrays(result: Result) -> dict:
    """The arrays of ``to_xarray`` that the model's functions compute from a result: tissue
    drug and carriers, payload locations (per tissue volume), organ concentrations (organ
    model), the ideal and the simulated image (``imaging.setup`` of the result's scenario and
    layout) and its activity.  Compiled as one program (``_model_arrays_jit``): evaluated op by
    op they took ~1.5 s of a warm ``nanotransport run`` in small compilations."""
    maps, names, inp = result.inputs.kinetics.maps, result.species, result.inputs
    per_time = lambda fn: jax.vmap(lambda x: fn(maps, x, names))(result.fields)  # noqa: E731
    out = {"tissue_drug": per_time(drug_per_tissue_volume),
           "tissue_carriers": per_time(carriers_per_tissue_volume),
           **{"payload_" + k: v for k, v in per_time(payload_locations).items()}}
    if isinstance(inp.pk_payload, organs.OrganParameters):
        conc = organs.concentrations(inp.pk_payload, result.systemic, result.systemic_carrier)
        out.update({f"organ_{t}_{a}": c for (t, a), c in conc.items() if t != "plasma"})
    im = imaging.setup(result.scenario, result.layout)
    ideal = imaging.label_pct_id_per_g(result)
    image = imaging.image_pct_id_per_g(ideal, im)
    return {**out, "label_pct_id_per_g": ideal, "image_pct_id_per_g": image,
            "image_activity_kbq_per_ml": imaging.activity_kbq_per_ml(image, result.times_s, im)}


_model_arrays_jit = jax.jit(_model_arrays)


def model_arrays(result: Result) -> dict:
    """``_model_arrays`` as one compiled program (its traced program kept by ``export_cache``
    when that is on)."""
    return export_cache.call("io.model_arrays", _model_arrays_jit, (result,))


def to_xarray(result: Result, lay: Layout, scenario: Scenario) -> xr.Dataset:
    """The result as an xarray Dataset: fields over (time h, space mm), systemic series, fluid,
    tissue maps, and the resolved scenario (TOML) in the attributes."""
    g = lay.grid
    dims = g.axis_names  # ("r",) for the 1D sphere; ("x", "y"), ("r", "z"), ("x", "y", "z")
    coords = {"time": ("time", np.asarray(result.times_s) / units.HOUR, {"units": "h"})}
    for a, name in enumerate(dims):
        coords[name] = (name, g.centers[a] / units.MM, {"units": "mm"})
        coords[f"{name}_face"] = (f"{name}_face", np.asarray(g.faces[a]) / units.MM,
                                  {"units": "mm"})
    fields = np.asarray(result.fields)
    data = {}
    for i, name in enumerate(result.species):
        data[name] = (("time",) + dims, fields[:, i], {"units": PHASE_UNITS[name],
                                                       "long_name": FIELD_DOCS[name]})
    inp = result.inputs
    y = np.asarray(result.systemic)
    vp, v1 = float(inp.pk_payload.plasma_volume), float(inp.pk_payload.v1)
    mw = units.DOXORUBICIN_MOLAR_MASS
    data["plasma_encapsulated"] = ("time", y[:, pk.I_ENC_CENTRAL] / vp * mw,
                                   {"units": "ug/mL", "long_name": "encapsulated drug in plasma"})
    data["plasma_free"] = ("time", y[:, pk.I_FREE_CENTRAL] / v1 * mw,
                           {"units": "ug/mL", "long_name": "free drug in plasma (bound + unbound)"})
    data["plasma_carrier"] = ("time", np.asarray(result.systemic_carrier)[:, pk.I_ENC_CENTRAL]
                              / vp * mw, {"units": "ug/mL",
                                          "long_name": "carriers in plasma (drug-equivalent)"})
    for j, name in enumerate(inp.pk_payload.state_names):
        data[f"systemic_{name}"] = ("time", y[:, j], {"units": "mol",
                                                      "long_name": f"systemic state {name}"})
    derived = model_arrays(result)
    if isinstance(inp.pk_payload, organs.OrganParameters):
        for tissue in organs.ORGANS[:-1]:  # the order of ``organs.concentrations``
            for analyte in organs.ANALYTES:
                data[f"organ_{tissue}_{analyte}"] = (
                    "time", np.asarray(derived[f"organ_{tissue}_{analyte}"]) * mw,
                    {"units": "ug/g", "long_name": f"{analyte.replace('_', ' ')} in {tissue}"})
    fl = inp.fluid
    data["pressure"] = (dims, np.asarray(fl.pressure) / units.MMHG_PA,
                        {"units": "mmHg", "long_name": "interstitial fluid pressure"})
    for a, name in enumerate(dims):
        face_dims = dims[:a] + (f"{name}_face",) + dims[a + 1:]
        var = "velocity" if g.ndim == 1 else f"velocity_{name}"
        data[var] = (face_dims, np.asarray(fl.velocity[a]) / units.UM,
                     {"units": "um/s", "long_name": f"interstitial (Darcy) velocity along {name}"})
    data["filtration"] = (dims, np.asarray(fl.filtration),
                          {"units": "1/s", "long_name": "fluid filtration from vessels J_v"})
    data["region"] = (dims, np.where(lay.necrotic > 0, 2, np.where(lay.tumor > 0, 0, 1)),
                      {"long_name": "region", "flag_values": "0 tumor, 1 normal, 2 necrotic"})
    data["cell_volume"] = (dims, g.volume, {"units": "m3 (per m of depth in 2D Cartesian)",
                                            "long_name": "grid cell volume"})
    maps = inp.kinetics.maps
    data["tissue_drug"] = (("time",) + dims, np.asarray(derived["tissue_drug"]) * mw, {
        "units": "ug/g", "long_name": "all drug per tissue volume (every phase and pool)"})
    data["tissue_carriers"] = (("time",) + dims, np.asarray(derived["tissue_carriers"]) * mw, {
        "units": "ug/g", "long_name": "carrier particles per tissue volume, drug-equivalent "
                                      "(vessel, interstitium, receptor-bound, internalized, "
                                      "macrophages)"})
    tumor_w = g.volume * lay.tumor
    space = tuple(range(1, g.ndim + 1))
    for key in sorted(k.removeprefix("payload_") for k in derived if k.startswith("payload_")):
        per_volume = derived["payload_" + key]
        mean = np.sum(np.asarray(per_volume) * tumor_w, axis=space) / np.sum(tumor_w)
        data[f"tumor_payload_{key}"] = ("time", mean * mw, {
            "units": "ug/g", "long_name": f"tumor-mean drug in {key.replace('_', ' ')}"})
    for name, units_, doc in (("phi_v", "1", "vascular volume fraction"),
                              ("phi_e", "1", "interstitial volume fraction"),
                              ("phi_c", "1", "cellular volume fraction")):
        data[name] = (dims, np.asarray(getattr(maps, name)), {"units": units_, "long_name": doc})
    im = imaging.setup(scenario, lay)
    ideal, image = derived["label_pct_id_per_g"], derived["image_pct_id_per_g"]
    label = f"{im.label} label" if im.label != "none" else "non-decaying label"
    data["label_pct_id_per_g"] = (("time",) + dims, np.asarray(ideal), {
        "units": "%ID/g", "long_name": f"labelled carriers, all phases ({label}), "
                                       "decay-corrected, not blurred"})
    data["image_pct_id_per_g"] = (("time",) + dims, np.asarray(image), {
        "units": "%ID/g", "long_name": f"simulated image: labelled carriers ({label}) blurred "
                                       f"by a {im.fwhm_mm:g}-mm FWHM PSF, decay-corrected"})
    data["image_activity_kbq_per_ml"] = (("time",) + dims, np.asarray(
        derived["image_activity_kbq_per_ml"]), {
        "units": "kBq/mL", "long_name": f"simulated image as counted ({im.injected_activity_mbq:g}"
                                        f" MBq injected, {label}, decay not corrected)"})
    data["imaging_reference_roi"] = (dims, (im.reference_weights > 0).astype(np.int8), {
        "long_name": "imaging reference ROI (normal tissue at the outer edge of the grid)"})
    ds = xr.Dataset(
        data,
        coords=coords,
        attrs={"title": f"nanotransport result: {scenario.name}",
               "scenario_toml": scenario.to_toml(),
               "description": scenario.description,
               "conventions": "concentrations per volume of their own phase; SI unless units "
                              "say otherwise",
               "imaging_label": im.label, "imaging_psf_fwhm_mm": im.fwhm_mm,
               "imaging_injected_activity_mbq": im.injected_activity_mbq},
    )
    return ds


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Write a Dataset to netCDF atomically (temporary file in the same folder + rename; the
    temporary file is removed if the write fails)."""
    with outdir.atomic_path(path) as tmp:
        ds.to_netcdf(tmp)


def write_observations(obs, path) -> Path:
    """Write ``calibrate.Observations`` as CSV (atomic), in hours and the observed quantity's
    unit; ``calibrate.load_observations`` reads it back."""
    from .studies.calibrate import SD_SUFFIX

    rows = ["time_h," + obs.quantity + ("," + obs.quantity + SD_SUFFIX if obs.sd is not None
                                        else "")]
    for i in range(obs.times_h.size):
        row = f"{float(obs.times_h[i])!r},{float(obs.values[i])!r}"
        rows.append(row + (f",{float(obs.sd[i])!r}" if obs.sd is not None else ""))
    path = Path(path)
    atomic_write_bytes(path, ("\n".join(rows) + "\n").encode())
    return path
