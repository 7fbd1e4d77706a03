"""`renshu tune --backend ray`: Ray Tune's Optuna searcher over the study file, Ray's median
stopping rule on the evaluations (CartPole, tiny budget)."""

import csv

import pytest

pytest.importorskip("ray")
pytest.importorskip("optuna")

from renshu.tune import STUDY_FILE, run_tune  # noqa: E402

SPEC = """
algo = "ppo"
env = "cartpole"
trials = 4
sampler_seed = 3
startup_trials = 2

[run]
steps = 2048
eval_every = 512
eval_episodes = 5

[config]
num_envs = 4
num_steps = 32
hidden = [16]
update_epochs = 2

[params]
learning_rate = { low = 1e-6, high = 3e-2, log = true }
"""


def test_ray_backend_fills_the_same_study(tmp_path, ray_session):
    spec_path = tmp_path / "tune.toml"
    spec_path.write_text(SPEC)
    out = run_tune(spec_path, out=tmp_path / "out", backend="ray", jobs=2)
    assert (out / STUDY_FILE).is_file()
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert all(r["state"] == "complete" for r in rows)
    values = [float(r["value"]) for r in rows]
    assert max(values) > 2 * min(values)  # the learning rates matter: real runs, real returns
    assert all(1e-6 <= float(r["learning_rate"]) <= 3e-2 for r in rows)
    # Resuming a full study starts no trial.
    run_tune(resume=out, backend="ray")
    with open(out / "trials.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4
