"""docs/notebook.ipynb runs for real (nbclient + ipykernel) and shows what it says it shows."""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebook.ipynb"


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _kinds(cell) -> set[str]:
    return {kind for o in cell.outputs if "data" in o for kind in o["data"]}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook executed in a kernel of this very interpreter (a kernel spec of its own, so
    a user's other "python3" kernel is never picked), in a scratch directory."""
    work = tmp_path_factory.mktemp("notebook")
    spec_dir = work / "jupyter" / "kernels" / "renshu-test"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "renshu test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(kernel))
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    before = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(work / "jupyter")
    try:
        client = nbclient.NotebookClient(
            nb, timeout=180, kernel_name="renshu-test", resources={"metadata": {"path": str(work)}}
        )
        client.execute()
    finally:
        if before is None:
            del os.environ["JUPYTER_PATH"]
        else:
            os.environ["JUPYTER_PATH"] = before
    return nb, work


def test_the_stored_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_notebook_runs_and_shows_its_results(executed):
    nb, work = executed
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    run_cell, summary, metrics, plot, evaluate, record, custom = code
    # the Run shows its result, curve (PNG) and timelapse (GIF) inline
    html = run_cell.outputs[0]["data"]["text/html"]
    assert "ppo on cartpole" in html and "image/png;base64" in html
    assert "image/gif;base64" in html
    mean = re.search(r"mean return (-?\d+\.\d) over 20 episodes", _text(summary))
    assert mean and 0 < float(mean.group(1)) <= 500
    assert "text/html" in _kinds(metrics)  # the DataFrame's table
    assert "image/png" in _kinds(plot)
    best = re.search(r"best \(step ([\d,]+)\): mean return (\d+\.\d)", _text(evaluate))
    untrained = re.search(r"untrained: mean return (\d+\.\d)", _text(evaluate))
    assert best and untrained and float(best.group(2)) > float(untrained.group(1))
    assert "text/html" in _kinds(record)
    assert (work / "runs" / "notebook-ppo" / "episode-best.gif").is_file()
    dqn = re.search(r"DQN with BatchNorm, best \(step [\d,]+\): mean return (\d+\.\d)",
                    _text(custom))  # fmt: skip
    assert dqn and float(dqn.group(1)) > 30  # random play: about 22
