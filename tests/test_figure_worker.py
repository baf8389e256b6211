"""The run command's second process for figures (``figure_worker``): same pixels as drawing
them here, its errors raised here, and nothing started when it is switched off."""
import json

import matplotlib.image
import numpy as np
import pytest

from nanotransport import cli, figure_worker, plots, scenario

TINY = ["--set", "numerics.cells=16", "--set", "numerics.t_end_h=2", "--set",
        "numerics.max_dt_min=30", "--quiet"]


def _fail(message):
    raise ValueError(message)


@pytest.fixture(scope="module")
def heated_run(tmp_path_factory):
    """A tiny heated run (thermodox: every figure of the run, heating included), its figures
    drawn in this process."""
    out = tmp_path_factory.mktemp("here")
    assert cli.main(["run", "thermodox", *TINY, "--out", str(out)]) == 0
    return out


def test_worker_draws_the_same_pixels_as_this_process(heated_run, tmp_path, monkeypatch):
    monkeypatch.setenv(figure_worker.ENV, "1")
    values = json.loads((heated_run / "summary.json").read_text())
    here = sorted(p.name for p in heated_run.glob("*.png"))
    assert here == sorted(plots.RUN_FIGURES.values())  # the heated run draws all seven
    sets = [TINY[i + 1] for i in range(0, len(TINY) - 1, 2)]
    names, heated = cli.run_figures_of(scenario.load("thermodox", sets))
    with figure_worker.FigureWorker() as worker:
        assert worker._pool is not None
        future = worker.submit(plots.run_figures_from_file, heated_run / "results.nc", tmp_path,
                               names, "thermodox", values, heated)
        paths = worker.result(future)
    assert sorted(p.name for p in paths) == here
    for name in here:
        a = matplotlib.image.imread(heated_run / name)
        b = matplotlib.image.imread(tmp_path / name)
        assert a.shape == b.shape and np.array_equal(a, b), name


def test_worker_errors_are_raised_here(monkeypatch):
    monkeypatch.setenv(figure_worker.ENV, "1")
    with figure_worker.FigureWorker() as worker:
        future = worker.submit(_fail, "drawn wrong")
        with pytest.raises(ValueError, match="drawn wrong"):
            worker.result(future)


def test_switched_off_it_runs_here_at_once(monkeypatch):
    monkeypatch.setenv(figure_worker.ENV, "0")
    with figure_worker.FigureWorker() as worker:
        assert worker._pool is None
        future = worker.submit(sum, [1, 2])
        assert future.done() and worker.result(future) == 3
