"""The Python API: renshu.train -> Run, load_run, custom torsos (BatchNorm) for DQN and PPO."""

import subprocess
import sys

import pytest
import torch
from torch import nn

import renshu
from renshu.api import Media, Run
from renshu.cli import main
from renshu.core.nets import CustomTorso

SMALL = dict(num_envs=4, num_steps=32, hidden=[16], update_epochs=2)
QUIET = dict(eval_episodes=4, animation=False, checkpoint_seconds=1e9)


def bn_mlp(in_features: int) -> nn.Module:
    """The DQN program's 128-64 MLP with BatchNorm (recorded by its path test_api:bn_mlp)."""
    return nn.Sequential(
        nn.Linear(in_features, 128), nn.BatchNorm1d(128), nn.ReLU(),
        nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    run_dir = tmp_path_factory.mktemp("api") / "run"
    return renshu.train("ppo", "cartpole", steps=1024, run_dir=run_dir, seed=3,
                        eval_every=256, milestones=3, **QUIET, **SMALL)  # fmt: skip


def test_import_renshu_stays_torch_free_and_exposes_the_api():
    code = "import sys, renshu; renshu.train; print('torch' in sys.modules)"
    lazy = "import sys, renshu; print('torch' in sys.modules, 'train' in dir(renshu))"
    out = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # torch loads when a run is made, not before


def test_train_returns_the_run_with_its_summary_metrics_and_config(run):
    assert run.dir.is_dir() and (run.dir / "config.json").is_file()
    assert run.summary["status"] == "finished" and run.summary["env_steps"] == 1024
    assert run.config["run"]["seed"] == 3 and run.config["algo_config"]["num_envs"] == 4
    metrics = run.metrics  # pandas is installed here: a DataFrame
    assert list(metrics["env_steps"])[-1] == 1024 and len(metrics) == 1024 // 128
    evals = metrics["eval/mean_return"].dropna()
    assert len(evals) == 4
    assert evals.iloc[-1] == pytest.approx(run.summary["last_eval"]["mean_return"])
    assert len(run.episodes) > 0


def test_metrics_are_a_list_of_dicts_without_pandas(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    rows = run.metrics
    assert isinstance(rows, list) and isinstance(rows[0], dict)
    assert [r["env_steps"] for r in rows] == [128.0 * i for i in range(1, 9)]
    assert rows[0]["eval/mean_return"] is None  # not evaluated at 128 steps


def test_evaluate_says_which_checkpoint_played(run):
    best = run.evaluate(episodes=6)
    assert best["checkpoint"] == "best" and best["episodes"] == 6
    assert best["checkpoint_steps"] in (256, 512, 768, 1024)
    untrained = run.evaluate(episodes=6, checkpoint="step-0")
    assert untrained["checkpoint_steps"] == 0
    again = run.evaluate(episodes=6, checkpoint="step-0")
    assert again["mean_return"] == untrained["mean_return"]  # seeded: the same episodes
    with pytest.raises(ValueError, match="available: best, latest, step-0, step-512, step-1024"):
        run.evaluate(checkpoint="step-5")


def test_record_timelapse_and_plot_write_files_that_jupyter_shows(run, tmp_path):
    gif = run.record(out=tmp_path / "e.gif", checkpoint="latest", max_steps=50)
    assert isinstance(gif, Media) and gif.path.stat().st_size > 0
    assert gif._repr_html_().startswith('<img src="data:image/gif;base64,')
    lapse = run.timelapse(out=tmp_path / "t.gif", max_frames=10)
    assert lapse.path.is_file()
    png = run.plot(out=tmp_path / "c.png", window=5)
    assert png._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    html = run._repr_html_()
    assert "ppo on cartpole" in html and "finished: 1,024 env steps" in html
    assert "image/png;base64" in html  # the learning curve
    assert "image/gif" not in html  # animation=False: no episode.gif or timelapse.gif in RUN
    assert run.timelapse(max_frames=5) == run.dir / "timelapse.gif"
    assert "image/gif;base64" in run._repr_html_()


def test_load_run_opens_a_cli_run(tmp_path, capsys):
    run_dir = tmp_path / "cli"
    assert main(["train", "a2c", "cartpole", "--steps", "256", "--run-dir", str(run_dir),
                 "--no-progress", "--animation", "false", "--num-envs", "4"]) == 0  # fmt: skip
    run = renshu.load_run(run_dir)
    assert run.summary["env_steps"] == 260 and run.config["algo"] == "a2c"  # 13 updates of 20
    assert run.evaluate(episodes=2)["episodes"] == 2
    with pytest.raises(FileNotFoundError, match="not a renshu run directory"):
        renshu.load_run(tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(lr=1e-3),
            r"unknown setting\(s\) lr for ppo; valid run settings: .*"
            r"valid ppo config fields: .*learning_rate",
        ),
        (dict(learning_rate="fast"), "learning_rate"),
        (dict(target_on="test"), "--target-on must be eval or train"),
        (dict(network=lambda n: nn.Linear(n, 8), steps=64), None),  # fine
    ],
)
def test_train_settings_are_checked(tmp_path, kwargs, message):
    kwargs = {"steps": 64, **kwargs}
    if message is None:
        run = renshu.train("ppo", "cartpole", run_dir=tmp_path / "r", **QUIET, **SMALL, **kwargs)
        assert run.summary["status"] == "finished"
        return
    with pytest.raises(ValueError, match=message):
        renshu.train("ppo", "cartpole", run_dir=tmp_path / "r", **kwargs)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_custom_torso_modes_follow_the_pass():
    torso = CustomTorso(bn_mlp(4), 4)
    assert torso.out_dim == 64
    one = torch.randn(1, 4)
    with torch.no_grad():  # acting: eval mode, a batch of one works and uses running stats
        a = torso(one)
    assert not torso.body.training and a.shape == (1, 64)
    torso(torch.randn(32, 4)).sum().backward()  # learning: train mode, running stats move
    assert torso.body.training
    bn = torso.body[1]
    assert int(bn.num_batches_tracked) == 1
    with torch.no_grad():
        b = torso(one)
    assert int(bn.num_batches_tracked) == 1  # acting did not touch them
    assert not torch.equal(a, b)  # the new running stats are used
    with pytest.raises(TypeError, match="must return a torch.nn.Module"):
        CustomTorso(lambda x: x, 4)
    with pytest.raises(ValueError, match=r"must map \[B, 4\] observations to \[B, features\]"):
        CustomTorso(nn.Flatten(0), 4)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_a_batchnorm_network_learns_cartpole_from_the_api(algo, tmp_path):
    """The custom torso is the one trained and saved: its BatchNorm layers' running statistics
    move and the weights in best.pt are of that shape; CartPole's greedy agent beats a random
    one's ~22 mean return."""
    config = dict(SMALL) if algo == "ppo" else dict(num_envs=4, learning_starts=256, hidden=[16])
    steps = 6144 if algo == "ppo" else 10_000
    run = renshu.train(algo, "cartpole", steps=steps, run_dir=tmp_path / algo, network=bn_mlp,
                       eval_every=steps // 4, **QUIET, **config)  # fmt: skip
    assert run.config["run"]["network"] == f"{bn_mlp.__module__}:bn_mlp"  # its import path
    data = torch.load(run.dir / "checkpoints" / "best.pt", weights_only=True)
    weights = data["acting_state"]["policy" if algo == "ppo" else "q"]
    tracked = [v for k, v in weights.items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(t) > 0 for t in tracked)
    assert any(v.shape == (128, 4) for v in weights.values())  # the 4 -> 128 layer
    assert run.evaluate(episodes=20)["mean_return"] > 60


def test_a_notebook_network_is_refused_elsewhere_with_the_fix(tmp_path):
    """A closure (as a notebook cell defines) works in its process; another process (the CLI)
    says how to supply it."""

    def make(width):
        return lambda n: nn.Sequential(nn.Linear(n, width), nn.ReLU())

    run = renshu.train("ppo", "cartpole", steps=128, run_dir=tmp_path / "nb", network=make(8),
                       **QUIET, **SMALL)  # fmt: skip
    assert "<locals>" in run.config["run"]["network"]
    assert run.evaluate(episodes=2)["episodes"] == 2  # same process: found
    out = subprocess.run(
        [sys.executable, "-m", "renshu.cli", "eval", str(run.dir), "--episodes", "2"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2
    err = out.stderr.strip()
    assert err.startswith("renshu eval: error: this run's network") and "\n" not in err
    assert "renshu.load_run(RUN, network=FUNCTION)" in err
    assert renshu.load_run(run.dir, network=make(8)).evaluate(episodes=2)["episodes"] == 2


def test_network_is_refused_for_algorithms_without_a_torso(tmp_path):
    with pytest.raises(ValueError, match="works with a2c, dqn, ppo, not ntuple"):
        renshu.train("ntuple", "2048", steps=64, run_dir=tmp_path / "r", network=bn_mlp)


def test_dqn_target_network_copies_batchnorm_statistics():
    from renshu.runner.run import RunSpec, build

    spec = RunSpec(algo="dqn", env="cartpole", network=f"{bn_mlp.__module__}:bn_mlp").resolved()
    algo, _, _ = build(spec, dict(num_envs=4, learning_starts=64, train_freq=64,
                                  target_update_interval=128))  # fmt: skip
    from renshu.algos.base import update

    for _ in range(2):  # learning rounds: the online network's statistics move
        update(algo, 0.5)
    online = dict(algo.q.named_buffers())
    target = dict(algo.target.named_buffers())
    moved = [k for k in online if k.endswith("running_mean") and online[k].abs().sum() > 0]
    assert moved and not all(torch.equal(online[k], target[k]) for k in online)
    algo._update_target()
    assert all(torch.equal(online[k], target[k]) for k in online)
