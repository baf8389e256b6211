"""Figures (matplotlib, PNG) from result Datasets; no physics here."""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from . import outdir
from .engine import units  # noqa: E402

MW = units.DOXORUBICIN_MOLAR_MASS


def _save(fig, path: Path) -> Path:
    """Write a figure atomically (``outdir.atomic_path``: a temporary PNG in the same folder,
    renamed over ``path``; an interrupted write leaves the old file or none, never a partial
    one, and a symbolic link at ``path`` is replaced, not written through)."""
    path = Path(path)
    try:
        fig.tight_layout()
        with outdir.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def tissue_drug(ds: xr.Dataset) -> xr.DataArray:
    """All drug per tissue volume, µg/mL (= µg/g), as the model computed it (``io``)."""
    return ds.tissue_drug.transpose("time", ...)


def tissue_carriers(ds: xr.Dataset) -> xr.DataArray:
    """Carriers per tissue volume in every phase (drug-equivalent µg/g), as the model computed
    them (``transport.carriers_per_tissue_volume`` via ``io``)."""
    return ds.tissue_carriers.transpose("time", ...)


PAYLOAD_PLACES = ("vessel", "interstitium", "carriers_on_cells", "macrophages", "cancer_cells",
                  "nucleus")


def payload_locations(ds: xr.Dataset, path: Path) -> Path:
    """Where the tumor's drug is over time (stacked, µg/g): vessel plasma, interstitium,
    receptor-bound carriers, macrophages, cancer-cell cytoplasm (and internalized carriers),
    nucleus (DNA-bound)."""
    t = ds.time.values
    layers = [ds[f"tumor_payload_{k}"].values for k in PAYLOAD_PLACES]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax.stackplot(t, layers, labels=[k.replace("_", " ") for k in PAYLOAD_PLACES])
    ax.set_xlabel("time (h)")
    ax.set_ylabel("tumor-mean drug (µg/g)")
    ax.legend(loc="upper left", fontsize=8)
    total = np.sum(layers, axis=0)
    shares = np.divide(layers, total, out=np.zeros_like(np.asarray(layers)), where=total > 0)
    ax2.stackplot(t, shares)
    ax2.set_xlabel("time (h)")
    ax2.set_ylabel("share of tumor drug")
    ax2.set_ylim(0, 1)
    fig.suptitle("where the drug is in the tumor")
    return _save(fig, path)


def plasma_pk(datasets: dict[str, xr.Dataset], path: Path) -> Path:
    """Plasma concentration-time curves (encapsulated and free), log scale."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, ds) in enumerate(datasets.items()):
        color = f"C{i}"
        total = ds.plasma_encapsulated + ds.plasma_free
        ax.plot(ds.time, total, color=color, label=f"{name}: total")
        ax.plot(ds.time, ds.plasma_free, color=color, ls="--", label=f"{name}: free")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-4)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("plasma doxorubicin (µg/mL)")
    ax.legend(fontsize=7)
    ax.set_title("Plasma pharmacokinetics")
    return _save(fig, path)


def tumor_maps(ds: xr.Dataset, path: Path) -> Path:
    """2D/3D grids: maps (mid-plane for 3D) of tissue drug and carriers at the last time."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    space = [d for d in ds.region.dims]
    drug = tissue_drug(ds).isel(time=-1)
    carriers = tissue_carriers(ds).isel(time=-1)
    drug, carriers = drug.transpose(*space), carriers.transpose(*space)
    if len(space) == 3:
        mid = {space[2]: ds.sizes[space[2]] // 2}
        drug, carriers, pressure = drug.isel(mid), carriers.isel(mid), ds.pressure.isel(mid)
    else:
        pressure = ds.pressure
    t = float(ds.time[-1])
    for ax, field, title in ((axes[0], drug, f"all drug (µg/g) at {t:g} h"),
                             (axes[1], carriers, f"carriers (µg-eq/g) at {t:g} h"),
                             (axes[2], pressure, "interstitial fluid pressure (mmHg)")):
        field.transpose(space[1], space[0]).plot(ax=ax, cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
    return _save(fig, path)


def tumor_profiles(ds: xr.Dataset, path: Path) -> Path:
    """Radial profiles of total tissue drug and tissue carriers at the saved times
    (maps on 2D/3D grids)."""
    if "r" not in ds.dims or len(ds.region.dims) != 1:
        return tumor_maps(ds, path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    drug = tissue_drug(ds)
    carriers = tissue_carriers(ds)
    cmap = plt.get_cmap("viridis")
    n = ds.sizes["time"]
    for k in range(n):
        c = cmap(k / max(n - 1, 1))
        label = f"{float(ds.time[k]):g} h"
        axes[0].plot(ds.r, drug[k], color=c, label=label)
        axes[1].plot(ds.r, carriers[k], color=c)
    r_tumor = float(ds.r.where(ds.region != 1).max()) if (ds.region != 1).any() else None
    for ax, title in zip(axes, ("all drug in tissue (µg/g)", "carriers in tissue (µg-eq/g)")):
        if r_tumor is not None:
            ax.axvline(r_tumor, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("radius (mm)")
        ax.set_title(title)
    axes[0].legend(fontsize=6, ncol=2)
    return _save(fig, path)


def pressure_velocity(ds: xr.Dataset, path: Path) -> Path:
    """Interstitial fluid pressure and Darcy velocity (1D; the pressure map on 2D/3D grids is
    part of the tumor maps)."""
    if "velocity" not in ds:
        fig, ax = plt.subplots(figsize=(5, 4))
        p = ds.pressure
        if p.ndim == 3:
            p = p.isel({p.dims[2]: p.sizes[p.dims[2]] // 2})
        p.transpose(p.dims[1], p.dims[0]).plot(ax=ax, cmap="magma")
        ax.set_aspect("equal")
        ax.set_title("interstitial fluid pressure (mmHg)")
        return _save(fig, path)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ds.r, ds.pressure, color="C0")
    ax.set_xlabel("radius (mm)")
    ax.set_ylabel("interstitial fluid pressure (mmHg)", color="C0")
    ax2 = ax.twinx()
    ax2.plot(ds.r_face, ds.velocity, color="C3")
    ax2.set_ylabel("fluid velocity (µm/s)", color="C3")
    ax.set_title("Interstitial fluid pressure and flow")
    return _save(fig, path)


def compare_bars(rows: list[dict], metrics: list[str], path: Path) -> Path:
    """Side-by-side bars of summary metrics for several scenarios."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    names = [r["scenario"] for r in rows]
    for ax, m in zip(axes, metrics):
        ax.bar(range(len(rows)), [r[m] for r in rows], color=[f"C{i}" for i in range(len(rows))])
        ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(m, fontsize=8)
    return _save(fig, path)


def convergence(history: list[dict], path: Path) -> Path:
    """Objective against iteration for every start of an optimization."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in sorted({h["start"] for h in history}):
        rows = [h for h in history if h["start"] == k]
        ax.plot([h["iteration"] for h in rows], [h["objective"] for h in rows], "o-", ms=3,
                label=f"start {k}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective J")
    ax.legend(fontsize=7)
    ax.set_title("Optimization convergence")
    return _save(fig, path)


def optimization_path(a, b, grid, names, history, best, path: Path) -> Path:
    """Optimization paths over a contour of J in the first two design variables."""
    fig, ax = plt.subplots(figsize=(6, 5))
    cs = ax.contourf(a, b, grid.T, levels=20, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="objective J")
    for k in sorted({h["start"] for h in history}):
        rows = [h for h in history if h["start"] == k]
        ax.plot([h["x"][names[0]] for h in rows], [h["x"][names[1]] for h in rows], "w.-",
                lw=1, ms=4)
    ax.plot(best[names[0]], best[names[1]], "r*", ms=14, label="best")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend()
    return _save(fig, path)


def sensitivity_bars(rows: list[dict], metric: str, path: Path) -> Path:
    """Horizontal bars of the elasticities (p/m)·dm/dp."""
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.5))
    names = [r["parameter"] for r in rows][::-1]
    values = [r["elasticity"] for r in rows][::-1]
    ax.barh(names, values, color=["C3" if v < 0 else "C0" for v in values])
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel(f"elasticity of {metric}")
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def capillary_profiles(ds: xr.Dataset, path: Path) -> Path:
    """Lumen concentrations along the vessel and the tissue drug map at the last time."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    last = ds.isel(time=-1)
    for name in [v for v in ds.data_vars if v.startswith("lumen_")]:
        axes[0].plot(ds.z, last[name], label=name.replace("lumen_", ""))
    axes[0].set_xlabel("z (mm)")
    axes[0].set_ylabel("lumen concentration (mol/m³)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    tissue = [v for v in ds.data_vars if v.startswith("tissue_free") or v == "free"]
    if tissue:
        last[tissue[0]].transpose("r", "z").plot(ax=axes[1], cmap="viridis")
        axes[1].set_title(f"{tissue[0]} at {float(ds.time[-1]):g} s", fontsize=9)
    return _save(fig, path)


def _space_sum(da: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    """Σ over the grid of a per-tissue-volume field times the cell volumes (amount)."""
    return (da * ds.cell_volume).sum(dim=list(ds.cell_volume.dims))


def _tumor_mean(da: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    w = ds.cell_volume.where(ds.region != 1, 0.0)
    return (da * w).sum(dim=list(w.dims)) / w.sum()


def release_and_cells(ds: xr.Dataset, path: Path) -> Path:
    """Where and when the payload is released (tissue vessels, interstitium, cells), the
    intracellular drug in the tumor over time, and — with heating — the temperature history and
    profiles and the thermal dose."""
    heated = "temperature" in ds
    fig, axes = plt.subplots(1, 4 if heated else 2, figsize=(16 if heated else 9, 3.8))
    ax = axes[0]
    for name, label in (("released_vessel", "in tissue vessels"),
                        ("released_interstitium", "in the interstitium"),
                        ("released_cells", "inside cells"),
                        ("released_macrophages", "by macrophages")):
        ax.plot(ds.time, MW * 1e3 * _space_sum(ds[name], ds), label=label)  # mol → mg
    ax.set_xlabel("time (h)")
    ax.set_ylabel("payload released in the tissue (mg)")
    ax.legend(fontsize=7)
    ax.set_title("Release by location", fontsize=9)
    axes[1].plot(ds.time, ds.tumor_payload_cancer_cells + ds.tumor_payload_nucleus, color="C2",
                 label="all")
    axes[1].plot(ds.time, ds.tumor_payload_nucleus, color="C2", ls="--", label="DNA-bound")
    axes[1].legend(fontsize=7)
    axes[1].set_xlabel("time (h)")
    axes[1].set_ylabel("intracellular drug, tumor mean (µg/g)")
    axes[1].set_title("Drug inside tumor cells", fontsize=9)
    if heated:
        temp = ds.temperature
        centre = temp.isel({d: 0 for d in temp.dims if d != "time"})
        axes[2].plot(ds.time, centre, label="tumor centre")
        axes[2].plot(ds.time, _tumor_mean(temp, ds), label="tumor mean")
        axes[2].set_xlabel("time (h)")
        axes[2].set_ylabel("temperature (°C)")
        axes[2].legend(fontsize=7)
        axes[2].set_title("Temperature history", fontsize=9)
        last = ds.cem43.isel(time=-1)
        if last.ndim == 1:
            hottest = int(centre.argmax())
            axes[3].plot(ds[last.dims[0]], temp.isel(time=hottest), label=(
                f"T at {float(ds.time[hottest]):g} h (°C)"))
            ax3 = axes[3].twinx()
            ax3.semilogy(ds[last.dims[0]], last.clip(min=1e-6), color="C3")
            ax3.set_ylabel("CEM43 (min)", color="C3")
            axes[3].set_xlabel(f"{last.dims[0]} (mm)")
            axes[3].legend(fontsize=7)
        else:
            if last.ndim == 3:
                last = last.isel({last.dims[2]: last.sizes[last.dims[2]] // 2})
            last.transpose(last.dims[1], last.dims[0]).plot(ax=axes[3], cmap="inferno")
            axes[3].set_aspect("equal")
        axes[3].set_title("Temperature profile and thermal dose", fontsize=9)
    return _save(fig, path)


def imaging(ds: xr.Dataset, path: Path) -> Path:
    """Simulated imaging: the image (profiles through the centre at a few times for radial
    grids, a map at the last time otherwise; ideal label concentration dashed), the
    time-activity curves of the tumor and reference ROIs, and the tumor-to-reference ratio."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    image, ideal = ds.image_pct_id_per_g, ds.label_pct_id_per_g
    space = list(ds.region.dims)
    fwhm = ds.attrs.get("imaging_psf_fwhm_mm", float("nan"))
    label = ds.attrs.get("imaging_label", "")
    ax = axes[0]
    if len(space) == 1:
        times = ds.time.values
        picks = [t for t in (1.0, 24.0, 72.0) if t <= times[-1]] or [times[-1]]
        for i, t in enumerate(picks):
            k = int(np.argmin(np.abs(times - t)))
            ax.plot(ds[space[0]], image.isel(time=k), color=f"C{i}", label=f"{times[k]:g} h")
            ax.plot(ds[space[0]], ideal.isel(time=k), color=f"C{i}", ls="--", lw=0.8)
        edge = float(ds[space[0]].where(ds.region != 1).max())
        ax.axvline(edge, color="grey", lw=0.6)
        ax.set_xlabel(f"{space[0]} (mm)")
        ax.set_ylabel("%ID/g")
        ax.legend(fontsize=7, title="image (solid), ideal (dashed)", title_fontsize=7)
    else:
        last = image.isel(time=-1).transpose(*space)
        if len(space) == 3:
            last = last.isel({space[2]: ds.sizes[space[2]] // 2})
        mesh = ax.pcolormesh(ds[space[0]], ds[space[1]], last.values.T, shading="auto")
        fig.colorbar(mesh, ax=ax, label="%ID/g")
        ax.set_aspect("equal")
        ax.set_xlabel(f"{space[0]} (mm)")
        ax.set_ylabel(f"{space[1]} (mm)")
    ax.set_title(f"Simulated image ({label}, PSF {fwhm:g} mm FWHM)", fontsize=9)
    tumor = _tumor_mean(image, ds)
    w = ds.cell_volume.where(ds.imaging_reference_roi > 0, 0.0)
    ref = (ideal * w).sum(dim=list(w.dims)) / w.sum()
    axes[1].plot(ds.time, tumor, label="tumor ROI")
    axes[1].plot(ds.time, ref, label="reference ROI (distant normal tissue)")
    axes[1].plot(ds.time, _tumor_mean(ideal, ds), ls="--", color="C0", lw=0.8,
                 label="tumor, ideal scanner")
    axes[1].set_xlabel("time (h)")
    axes[1].set_ylabel("%ID/g (decay-corrected)")
    axes[1].legend(fontsize=7)
    axes[1].set_title("Time-activity curves", fontsize=9)
    axes[2].plot(ds.time, tumor / ref.where(ref > 0))
    axes[2].set_xlabel("time (h)")
    axes[2].set_ylabel("tumor-to-reference ratio")
    axes[2].set_title("Contrast", fontsize=9)
    return _save(fig, path)


def cohort(ds: xr.Dataset, report: dict, path: Path) -> Path:
    """Virtual cohort: imaging readout vs efficacy (selected patients marked, thresholds), the
    ROC curve of responder classification, and efficacy of selected vs other patients."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    x, y = ds.readout.values, ds.efficacy.values
    sel = ds.selected.values > 0
    s = report["selection"]
    ax = axes[0]
    ax.scatter(x[~sel], y[~sel], s=10, color="grey", label="not selected")
    ax.scatter(x[sel], y[sel], s=10, color="C0", label="selected")
    ax.axvline(s["readout_threshold"], color="C0", lw=0.8, ls="--")
    ax.axhline(report["responder_efficacy_threshold"], color="C3", lw=0.8, ls=":",
               label="responder threshold")
    if np.all(x > 0):
        ax.set_xscale("log")
    ax.set_xlabel(f"{report['readout']} ({report['readout_units']}) at "
                  f"{report['imaging']['time_h']:g} h")
    ax.set_ylabel("efficacy of the therapeutic dose")
    ax.legend(fontsize=7)
    ax.set_title(f"Spearman ρ = {report['spearman_rho']:.2f}", fontsize=9)
    roc = report["roc_curve"]
    axes[1].plot(roc["false_positive_rate"], roc["true_positive_rate"], color="C0")
    axes[1].plot([0, 1], [0, 1], color="grey", lw=0.6, ls="--")
    axes[1].set_xlabel("false-positive rate")
    axes[1].set_ylabel("true-positive rate")
    axes[1].set_aspect("equal")
    axes[1].set_title(f"Responders by imaging: ROC AUC = {report['roc_auc']:.2f}", fontsize=9)
    bins = np.linspace(min(y.min(), 0.0), max(y.max(), 1e-9), 25)
    axes[2].hist(y[~sel], bins=bins, alpha=0.6, color="grey", label="not selected")
    axes[2].hist(y[sel], bins=bins, alpha=0.6, color="C0", label="selected")
    axes[2].axvline(s["mean_efficacy_all"], color="k", lw=0.8, label="mean, all")
    axes[2].axvline(s["mean_efficacy_selected"], color="C0", lw=0.8, label="mean, selected")
    axes[2].set_xlabel("efficacy")
    axes[2].set_ylabel("patients")
    axes[2].legend(fontsize=7)
    axes[2].set_title(f"Treat the top {100 * s['select_fraction']:g}%: gain "
                      f"{s['efficacy_gain']:+.3f}", fontsize=9)
    return _save(fig, path)


def calibration(rep: dict, path: Path) -> Path:
    """Observed time-activity curve (± sd) with the model before and after the fit, and the
    fitted parameters relative to the scenario with 95 % intervals (identifiable ones solid)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    t = np.asarray(rep["times_h"])
    ax = axes[0]
    sd = rep["observed_sd"]
    ax.errorbar(t, rep["observed"], yerr=sd, fmt="o", color="k", ms=4, label="observed")
    ax.plot(t, rep["initial_model"], "--", color="grey", label="scenario (before fit)")
    ax.plot(t, rep["fitted"], "-", color="C0", label="fitted")
    ax.set_xlabel("time after injection (h)")
    ax.set_ylabel(rep["quantity"])
    ax.legend(fontsize=7)
    ax.set_title("Tumor time-activity curve", fontsize=9)
    ax = axes[1]
    names = list(rep["parameters"])
    for i, name in enumerate(names):
        p = rep["parameters"][name]
        ratio = p["value"] / p["initial"]
        color = "C0" if p["identifiable"] else "C3"
        if p["ci95"] is not None:
            lo, hi = (c / p["initial"] for c in p["ci95"])
            ax.plot([lo, hi], [i, i], color=color, lw=2, alpha=0.6 if p["identifiable"] else 0.3)
        ax.plot([ratio], [i], "o", color=color)
    ax.axvline(1.0, color="grey", lw=0.6)
    ax.set_xscale("log")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([n.rsplit(".", 1)[-1] for n in names], fontsize=7)
    ax.set_xlabel("fitted / scenario value (95% CI; red: not identifiable)")
    ax.set_title("Fitted parameters", fontsize=9)
    return _save(fig, path)


def validation(rows: list[dict], path: Path) -> Path:
    """Model against literature: model/published per target on a log axis, the published band
    as a bar (band/published), passed targets filled, failed ones open."""
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * n + 1.2))
    for i, r in enumerate(rows):
        y = n - 1 - i
        ax.plot([r["low"] / r["published"], r["high"] / r["published"]], [y, y],
                color="0.7", lw=6, solid_capstyle="butt")
        if r["model"] is not None and r["model"] > 0:
            ax.plot(r["model"] / r["published"], y, "o", ms=6,
                    color="tab:green" if r["passed"] else "tab:red",
                    mfc="tab:green" if r["passed"] else "white")
    ax.axvline(1.0, color="k", lw=0.5)
    ax.set_xscale("log")
    ratios = [r["model"] / r["published"] for r in rows if r["model"] is not None and r["model"] > 0]
    ratios += [r[k] / r["published"] for r in rows for k in ("low", "high")]
    lo, hi = min(ratios), max(ratios)
    ax.set_xlim(lo / 1.3, hi * 1.3)  # every marker inside the frame
    ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0) if lo / 1.3 <= t <= hi * 1.3]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_yticks(range(n))
    ax.set_yticklabels([r["id"] for r in rows][::-1], fontsize=7)
    ax.set_xlabel("model / published (grey: published band)")
    passed = sum(r["passed"] for r in rows)
    ax.set_title(f"validation: {passed} of {n} targets within the published band", fontsize=9)
    return _save(fig, path)


def heating(ds: xr.Dataset, values: dict, path: Path, release_c: float | None = None,
            plateau_h: tuple | None = None) -> Path:
    """Hyperthermia figure: T90/T50/T10 of the target region and the probe (tumor centre)
    temperature over the saved times, and the temperature against distance from the tumor
    centre at the saved time in the middle of the plateau (``plateau_h``: (start, end) h)."""
    temp = ds.temperature.transpose("time", ...)
    t_h = np.asarray(ds.time)
    space = [d for d in temp.dims if d != "time"]
    coords = np.meshgrid(*[np.asarray(ds[d]) for d in space], indexing="ij")
    dist = np.sqrt(sum(c**2 for c in coords))  # mm from the tumor centre
    tumor = np.asarray(ds.region) == 0
    series = {k: np.asarray([values[k][f"{t:g}"] for t in t_h])
              for k in ("heating_t90_c", "heating_t50_c", "heating_t10_c")}
    probe = np.asarray(temp).reshape(len(t_h), -1)[:, int(np.argmin(dist))]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    minutes = t_h * 60.0
    for k, lbl, ls in (("heating_t10_c", "T10", ":"), ("heating_t50_c", "T50", "--"),
                       ("heating_t90_c", "T90", "-")):
        a.plot(minutes, series[k], ls, marker=".", label=lbl + " (target region)")
    a.plot(minutes, probe, color="k", lw=0.8, label="probe (tumor centre)")
    if release_c is not None:
        a.axhline(release_c, color="r", lw=0.8, ls="-.", label=f"T_m {release_c:g} °C")
    hot = np.nonzero(np.max(np.asarray(temp).reshape(len(t_h), -1), axis=1) > 37.05)[0]
    if hot.size:
        lo, hi = minutes[max(hot[0] - 1, 0)], minutes[min(hot[-1] + 1, len(t_h) - 1)]
        a.set_xlim(lo, hi)
    a.set_xlabel("time (min)")
    a.set_ylabel("temperature (°C)")
    a.legend(fontsize=8)
    a.set_title("hyperthermia over the saved times", fontsize=10)
    if plateau_h is not None:
        mid = 0.5 * (plateau_h[0] + plateau_h[1])
    else:
        mid = t_h[int(np.argmax(series["heating_t90_c"]))]
    k = int(np.argmin(np.abs(t_h - mid)))
    tk = np.asarray(temp[k]).ravel()
    order = np.argsort(dist.ravel())
    b.plot(dist.ravel()[order], tk[order], "-" if len(space) == 1 else ".", color="C3")
    edge = float(np.max(dist[tumor])) if tumor.any() else None
    if edge is not None:
        b.axvspan(0, edge, color="0.9", label="tumor")
    if release_c is not None:
        b.axhline(release_c, color="r", lw=0.8, ls="-.", label=f"T_m {release_c:g} °C")
    b.set_xlabel("distance from the tumor centre (mm)")
    b.set_ylabel("temperature (°C)")
    b.set_title(f"temperature at {t_h[k] * 60:.0f} min (plateau)", fontsize=10)
    b.legend(fontsize=8)
    return _save(fig, path)


# ================================================================== the run command's figures
#: figure name → file of ``nanotransport run`` (``heating`` only for heated scenarios)
RUN_FIGURES = {"plasma_pk": "plasma_pk.png", "tumor_profiles": "tumor_profiles.png",
               "pressure_velocity": "pressure_velocity.png", "release_cells": "release_cells.png",
               "payload_locations": "payload_locations.png", "imaging": "imaging.png",
               "heating": "heating.png"}


def run_figures(ds: xr.Dataset, out: Path, names, label: str, values: dict,
                heated: dict | None = None) -> list[Path]:
    """The named figures of ``nanotransport run`` (``RUN_FIGURES``) into the folder ``out``.

    ``label``: the scenario's name (plasma legend); ``values``: its summary metrics
    (``summary.to_json_ready``; the heating figure reads T90/T50/T10 from them); ``heated``:
    the heating figure's ``{"release_c": °C, "plateau_h": (start, end)}``."""
    out = Path(out)
    draw = {"plasma_pk": lambda p: plasma_pk({label: ds}, p),
            "tumor_profiles": lambda p: tumor_profiles(ds, p),
            "pressure_velocity": lambda p: pressure_velocity(ds, p),
            "release_cells": lambda p: release_and_cells(ds, p),
            "payload_locations": lambda p: payload_locations(ds, p),
            "imaging": lambda p: imaging(ds, p),
            "heating": lambda p: heating(ds, values, p, **(heated or {}))}
    return [draw[name](out / RUN_FIGURES[name]) for name in names]


def run_figures_from_file(results_nc: Path, out: Path, names, label: str, values: dict,
                          heated: dict | None = None) -> list[Path]:
    """``run_figures`` from the run's written ``results.nc`` (what ``figure_worker`` calls in
    its second process: a file, not the Dataset, crosses between them)."""
    with xr.open_dataset(results_nc) as ds:
        return run_figures(ds.load(), out, names, label, values, heated)


# ================================================================== scans (scan.nc)
def plot_scan(ds, out: Path, metric: str = "efficacy") -> list[Path]:
    """All scan figures into ``out``: heat map, distributions (samples), Pareto front."""
    out = Path(out)
    paths = [plot_heatmap(ds, metric, out / f"scan_{_safe(metric)}.png"),
             plot_distributions(ds, out / "scan_distributions.png"),
             plot_pareto(ds, out / "scan_pareto.png")]
    return [p for p in paths if p is not None]



def plot_heatmap(ds, metric: str, path: Path, dims: tuple | None = None) -> Path | None:
    """Heat map of ``metric`` over two scan dimensions (others averaged); a line over one."""
    if metric not in ds:
        from .studies.scan_result import scalar_variables
        from .studies.scan_spec import ScanError  # (SciPy's statistics: imported when needed)

        raise ScanError(f"--plot-metric {metric}: not a scan variable; allowed: "
                        + ", ".join(scalar_variables(ds)))
    grid_dims = [d for d in str(ds.attrs.get("dims", "")).split() if d != "sample"]
    dims = tuple(dims or grid_dims[:2])
    if not dims:
        return None
    da = ds[metric]
    rest = [d for d in da.dims if d not in dims]
    note = f" (mean over {', '.join(rest)})" if rest else ""
    da = da.mean(rest) if rest else da
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if len(dims) == 1:
        x = ds[dims[0]]
        ax.plot(x, da.values, "o-")
        ax.set_xlabel(_label(ds, dims[0]))
        ax.set_ylabel(metric)
        _maybe_log(ax, x.values, "x")
    else:
        da = da.transpose(dims[1], dims[0])
        x, y = ds[dims[0]].values, ds[dims[1]].values
        mesh = ax.pcolormesh(_edges(x), _edges(y), da.values, shading="flat", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=metric)
        ax.set_xlabel(_label(ds, dims[0]))
        ax.set_ylabel(_label(ds, dims[1]))
        _maybe_log(ax, x, "x")
        _maybe_log(ax, y, "y")
    ax.set_title(f"{metric}{note}", fontsize=9)
    return _save(fig, path)



def plot_distributions(ds, path: Path, metrics=("efficacy", "toxicity",
                                                "tumor_drug_auc_ug_h_per_g")) -> Path | None:
    """Histograms of responses over the samples (one per grid point when there are ≤ 5)."""
    if "sample" not in ds.dims:
        return None
    metrics = [m for m in metrics if m in ds]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6))
    axes = np.atleast_1d(axes)
    grid_dims = [d for d in ds["efficacy"].dims if d != "sample"]
    n_grid = int(np.prod([ds.sizes[d] for d in grid_dims])) if grid_dims else 1
    for ax, m in zip(axes, metrics):
        da = ds[m]
        if grid_dims and n_grid <= 5:
            stacked = da.stack(point=grid_dims).transpose("point", "sample")
            for i in range(n_grid):
                key = np.atleast_1d(np.asarray(stacked["point"].values[i], dtype=object))
                label = ", ".join(f"{d}={float(v):.3g}" for d, v in zip(grid_dims, key))
                ax.hist(stacked.values[i], bins="auto", alpha=0.5, label=label)
            ax.legend(fontsize=7)
        else:
            ax.hist(np.asarray(da.values).reshape(-1), bins="auto", color="C0")
        ax.set_xlabel(m + (" (Σ weight·tox_*)" if m == "toxicity" else ""), fontsize=8)
        ax.set_ylabel("count")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.suptitle(f"responses over {ds.sizes['sample']} samples", fontsize=9)
    return _save(fig, path)



def plot_pareto(ds, path: Path) -> Path:
    """Efficacy against toxicity of every point; the non-dominated ones highlighted."""
    e = np.asarray(ds["efficacy"].values).reshape(-1)
    t = np.asarray(ds["toxicity"].values).reshape(-1)
    front = np.asarray(ds["pareto_front"].values).reshape(-1).astype(bool)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(t, e, s=8, c="0.6", label="scan points")
    order = np.argsort(t[front])
    ax.plot(t[front][order], e[front][order], "o-", color="C3", ms=5,
            label=f"Pareto front ({int(front.sum())})")
    ax.set_xlabel("toxicity: Σ weight·tox_* of the design objective (efficacy − J)", fontsize=8)
    ax.set_ylabel("efficacy (1 − mean SF)")
    _maybe_log(ax, t[np.isfinite(t)], "x")
    ax.legend(fontsize=8)
    ax.set_title("efficacy vs toxicity (higher efficacy, lower toxicity is better)", fontsize=9)
    return _save(fig, path)



def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)



def _label(ds, dim: str) -> str:
    unit = ds[dim].attrs.get("units", "")
    return f"{dim} ({unit})" if unit and unit != "1" else dim



def _edges(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5]) if x[0] == 0 else x[0] * np.array([0.9, 1.1])
    if np.all(x > 0) and x[-1] / x[0] > 20:  # log-spaced: geometric midpoints
        mid = np.sqrt(x[1:] * x[:-1])
        return np.concatenate([[x[0] ** 2 / mid[0]], mid, [x[-1] ** 2 / mid[-1]]])
    mid = 0.5 * (x[1:] + x[:-1])
    return np.concatenate([[2 * x[0] - mid[0]], mid, [2 * x[-1] - mid[-1]]])



def _maybe_log(ax, values, axis):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size > 1 and np.all(v > 0) and v.max() / v.min() > 50:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")



def fit_figures(rep: dict, curves: dict, out: Path) -> list[str]:
    """fit_observed_vs_predicted.png (log-log, 1:1 and 2-fold lines, coloured by tissue) and
    fit_time_courses.png (one panel per tissue × analyte: data ± sd and the fitted model) of a
    ``nanotransport fit`` report ``rep`` and its model ``curves``."""
    rows = rep["rows"]
    tissues = list(dict.fromkeys(r["tissue"] for r in rows))
    colors = {t: f"C{i % 10}" for i, t in enumerate(tissues)}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    # in mol/m³, so every unit shares the axes
    obs = np.array([r["observed_mol_per_m3"] for r in rows])
    pred = np.array([r["predicted_mol_per_m3"] for r in rows])
    ok = (obs > 0) & (pred > 0)
    for t in tissues:
        m = ok & np.array([r["tissue"] == t for r in rows])
        ax.scatter(obs[m] * 1e3, pred[m] * 1e3, s=18, color=colors[t], label=t, alpha=0.8)
    if ok.any():
        lo = min(obs[ok].min(), pred[ok].min()) * 1e3 / 2
        hi = max(obs[ok].max(), pred[ok].max()) * 1e3 * 2
        x = np.array([lo, hi])
        ax.plot(x, x, "k-", lw=0.8, label="1:1")
        ax.plot(x, 2 * x, "k--", lw=0.6, label="2-fold")
        ax.plot(x, x / 2, "k--", lw=0.6)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("observed (µM = mmol/m³)")
    ax.set_ylabel("predicted (µM = mmol/m³)")
    g = rep["goodness_of_fit"]["overall"]
    ax.set_title(f"{rep['scenario']}: AAFE {g['aafe']:.2f}, "
                 f"{100 * g['within_2_fold']:.0f} % within 2-fold" if g["aafe"] else
                 rep["scenario"], fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, out / "fit_observed_vs_predicted.png")

    from .studies.observations import UNITS

    def to_si(unit):  # mol/m³ per unit of ``unit`` at the report's dose
        a, b = UNITS[unit]
        return a + b * rep["dose_mol"]

    names = list(curves)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.2 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        tis, an = name.split("/")
        c = curves[name]
        t, v = np.array(c["time_h"]), np.array(c["value"])
        pos = v > 0
        ax.plot(t[pos], v[pos], "-", color=colors.get(tis, "C0"), label="fitted model")
        sel = [r for r in rows if r["tissue"] == tis and r["analyte"] == an]
        # a row in another unit than the panel's is converted to the panel's
        row = [to_si(r["unit"]) / to_si(c["unit"]) for r in sel]
        ys = np.array([r["observed"] * f for r, f in zip(sel, row)])
        sds = np.array([(r["sd"] or 0.0) * f for r, f in zip(sel, row)])
        ts = np.array([r["time_h"] for r in sel])
        ax.errorbar(ts, ys, yerr=[np.minimum(sds, ys * 0.9), sds], fmt="o", ms=4, color="k",
                    label="data (± sd)")
        ax.set_yscale("log")
        ax.set_title(f"{tis}: {an.replace('_', ' ')}", fontsize=9)
        ax.set_xlabel("time (h)")
        ax.set_ylabel(c["unit"].replace("ug/", "µg/").replace("uM", "µM"))
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    _save(fig, out / "fit_time_courses.png")
    return ["fit_observed_vs_predicted.png", "fit_time_courses.png"]


def network_map(ds: xr.Dataset, path: Path) -> Path:
    """The network seen from above (x–y projection): segments coloured by log10 flow and by
    discharge haematocrit, line width by radius."""
    from matplotlib.collections import LineCollection

    pos = ds.position_um.values
    ends = ds.segment_nodes.values
    lines = np.stack([pos[ends[:, 0], :2], pos[ends[:, 1], :2]], axis=1) / 1e3
    width = 0.4 + 2.0 * ds.radius_um.values / max(float(ds.radius_um.max()), 1e-9)
    flow = np.abs(ds.flow_nl_per_min.values)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for ax, values, label, cmap in (
            (axes[0], np.log10(np.maximum(flow, 1e-6)), "log10 |flow| (nl/min)", "viridis"),
            (axes[1], ds.hematocrit.values, "discharge haematocrit", "magma")):
        lc = LineCollection(lines, linewidths=width, cmap=cmap)
        lc.set_array(values)
        ax.add_collection(lc)
        ax.autoscale()
        ax.set_aspect("equal")
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
        fig.colorbar(lc, ax=ax, label=label, shrink=0.85)
    axes[0].set_title("blood flow (inlets at x = 0)")
    axes[1].set_title("red cells: phase separation at bifurcations")
    return _save(fig, path)


def network_delivery(ds: xr.Dataset, path: Path) -> Path:
    """Delivery from the network: carrier and free drug in the interstitium at the last saved
    time and the interstitial pressure, on the mid-plane z (through the box's centre), and the
    tissue means over time beside the plasma concentrations."""
    extent = [float(ds.x.min()) / 1e3, float(ds.x.max()) / 1e3,
              float(ds.y.min()) / 1e3, float(ds.y.max()) / 1e3]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    last = ds.time.values[-1]
    mid = {"z": ds.sizes["z"] // 2}
    z_mm = float(ds.z.values[mid["z"]]) / 1e3
    for ax, name, label in ((axes[0, 0], "carrier_ug_per_ml", "carrier (drug-equivalent)"),
                            (axes[0, 1], "free_drug_ug_per_ml", "free drug")):
        field = ds[name].isel(time=-1, **mid).values.T
        im = ax.imshow(field, origin="lower", extent=extent, cmap="inferno", aspect="equal")
        fig.colorbar(im, ax=ax, label="µg/mL interstitial fluid", shrink=0.85)
        ax.set_title(f"{label} at {last:g} h, z = {z_mm:.2f} mm")
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("y (mm)")
    im = axes[1, 0].imshow(ds.interstitial_pressure_mmHg.isel(**mid).values.T, origin="lower",
                           extent=extent, cmap="viridis", aspect="equal")
    fig.colorbar(im, ax=axes[1, 0], label="mmHg", shrink=0.85)
    axes[1, 0].set_title(f"interstitial fluid pressure, z = {z_mm:.2f} mm")
    axes[1, 0].set_xlabel("x (mm)")
    axes[1, 0].set_ylabel("y (mm)")
    ax = axes[1, 1]
    ax.semilogy(ds.plasma_time, ds.plasma_encapsulated_ug_per_ml, "C0--", label="plasma, "
                "encapsulated")
    ax.semilogy(ds.plasma_time, np.maximum(ds.plasma_free_unbound_ug_per_ml, 1e-9), "C1--",
                label="plasma, free unbound")
    ax.semilogy(ds.step, np.maximum(ds.tissue_mean_carrier_ug_per_ml, 1e-9), "C0",
                label="tissue, carrier")
    ax.semilogy(ds.step, np.maximum(ds.tissue_mean_free_ug_per_ml, 1e-9), "C1",
                label="tissue, free drug")
    if "tissue_mean_intracellular_ug_per_ml" in ds:
        ax.semilogy(ds.step, np.maximum(ds.tissue_mean_intracellular_ug_per_ml, 1e-9), "C2",
                    label="tissue, in cells")
    if "tissue_mean_macrophage_ug_per_ml" in ds:
        ax.semilogy(ds.step, np.maximum(ds.tissue_mean_macrophage_ug_per_ml, 1e-9), "C4",
                    label="tissue, in macrophages")
    bound = ds.get("tissue_mean_bound_payload_ug_per_ml")
    if bound is not None and float(bound.max()) > 0:  # targeted carriers only
        ax.semilogy(ds.step, np.maximum(bound, 1e-9), "C5", label="tissue, on receptors")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("µg/mL (tissue: per tissue volume)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("plasma input and tissue mean")
    temperature = ds.get("tumor_mean_temperature_C")
    if temperature is not None and float(temperature.max() - temperature.min()) > 0.01:
        twin = ax.twinx()
        twin.plot(ds.step, temperature, "C3:", label="tumor mean temperature")
        twin.set_ylabel("tumor mean temperature (°C)", color="C3")
        twin.tick_params(axis="y", colors="C3")
    return _save(fig, path)
