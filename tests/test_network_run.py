"""The network model end to end: ``nanotransport network`` and ``run`` on a network scenario,
on a small synthetic network; bad network inputs get named errors (exit status 2)."""
from __future__ import annotations

import json

import numpy as np
import xarray as xr

from nanotransport import cli

SMALL = ["--set", "network.box_mm=[0.4, 0.4, 0.4]", "--set", "network.tumor_radius_mm=0.15",
         "--set", "network.core_radius_mm=0.05", "--set", "numerics.t_end_h=1",
         "--set", "numerics.max_dt_min=15", "--quiet"]


def test_network_command_writes_results(tmp_path, capsys):
    out = tmp_path / "net"
    assert cli.main(["network", "--out", str(out)] + SMALL) == 0
    summary = json.loads((out / "network_summary.json").read_text())
    assert summary["haemodynamics_residual"] <= 1e-9
    assert summary["blood_inflow_nl_per_min"] > 0
    assert 0 < summary["fluid_leak_fraction_of_inflow"] < 1
    assert summary["tissue_final_carrier_ug_per_ml"] > 0
    with xr.open_dataset(out / "network.nc") as ds:
        assert ds.sizes["segment"] == summary["segments"]
        assert np.all(np.isfinite(ds.carrier_ug_per_ml.values))
        assert float(ds.carrier_ug_per_ml.min()) >= -1e-9
        assert list(ds.time.values) == [1.0]
    for name in ("network_map.png", "network_delivery.png"):
        assert (out / name).stat().st_size > 10_000
    assert "blood_inflow_nl_per_min" in capsys.readouterr().out


def test_run_dispatches_a_network_scenario(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["run", "tumor-network", "--out", str(out), "--set",
                     "outputs.figures=false"] + SMALL) == 0
    assert (out / "network.nc").exists() and not (out / "results.nc").exists()


def test_missing_and_bad_network_files_are_named(tmp_path, capsys):
    rc = cli.main(["network", "--out", str(tmp_path / "a"), "--set",
                   f"tissue.network_file={tmp_path / 'none.dat'}", "--quiet"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    bad = tmp_path / "dangling.h5"
    from nanotransport.model import network_hdf5
    from nanotransport.model.vessel_network import PRESSURE, VesselNetwork
    net = VesselNetwork(node_position_m=[[0, 0, 0], [1e-4, 0, 0], [2e-4, 0, 0], [1e-4, 1e-4, 0]],
                        segment_nodes=[[0, 1], [1, 2], [1, 3]], segment_radius_m=[4e-6] * 3,
                        segment_length_m=[1e-4] * 3, boundary_node=[0, 2, 3],
                        boundary_kind=[PRESSURE] * 3, boundary_value=[4000.0, 1000.0, 1000.0],
                        boundary_hematocrit=[0.45, np.nan, np.nan])
    network_hdf5.write_hdf5(net, bad)
    import h5py
    with h5py.File(bad, "r+") as f:  # drop node 3's boundary condition: a dangling segment
        for key in ("node", "kind", "value", "hematocrit"):
            data = f["boundary"][key][:2]
            del f["boundary"][key]
            f["boundary"][key] = data
    rc = cli.main(["network", "--out", str(tmp_path / "b"), "--set",
                   f"tissue.network_file={bad}", "--quiet"])
    assert rc == 2 and "dangling" in capsys.readouterr().err
    rc = cli.main(["network", "doxil", "--out", str(tmp_path / "c"), "--quiet"])
    assert rc == 2 and "tissue.network_file is empty" in capsys.readouterr().err
    rc = cli.main(["compare", "tumor-network", "doxil", "--out", str(tmp_path / "d"), "--quiet"])
    assert rc == 2 and "runs the network model" in capsys.readouterr().err
