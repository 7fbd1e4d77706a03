"""`renshu train | eval | record | plot` end to end on small budgets, and bad input."""

import csv
import json
import os
import pickle
import shutil
import signal

import pytest
import torch
from PIL import Image

from renshu import cli
from renshu.envs.base import FunctionalEnv
from renshu.envs.specs import resolve
from renshu.runner import LATEST, RunSpec, Trainer, start_run
from renshu.runner.checkpoint import load_checkpoint


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_error(code: int, err: str, *needles: str) -> None:
    """Exit status 2 and one line on stderr naming the reason, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0, err
    for needle in needles:
        assert needle in err, (needle, err)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _snapshot(folder) -> dict:
    """Every file under ``folder`` with its bytes and modification time (but the run's lock
    file, which records the PID of the last process that locked the run)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def no_final_artefacts(monkeypatch):
    """Skip the learning curve and GIF (~1-2 s a run) where a test does not look at them."""
    monkeypatch.setattr(Trainer, "finish", lambda self: None)


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "D"
    torch.set_num_threads(1)
    code = cli.main(["train", "ppo", "cartpole", "--steps", "2048", "--run-dir", str(run),
                     "--no-progress", "--num-envs", "4", "--num-steps", "64",
                     "--eval-episodes", "10"])  # fmt: skip
    assert code == 0
    return run


@pytest.fixture(scope="module")
def target_run(tmp_path_factory):
    """Stops at the first evaluation with mean return >= 100 (about 1,500 steps here)."""
    run = tmp_path_factory.mktemp("cli") / "D2"
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:  # its final artefacts are not looked at
        mp.setattr(Trainer, "finish", lambda self: None)
        code = cli.main(["train", "ppo", "cartpole", "--steps", "20000", "--run-dir", str(run),
                         "--no-progress", "--num-envs", "4", "--num-steps", "64", "--eval-every",
                         "256", "--eval-episodes", "10", "--target-return", "100"])  # fmt: skip
    assert code == 0
    return run


@pytest.fixture
def small_run(tmp_path):
    """An interrupted a2c cartpole run (budget 512 steps, checkpoint at 128): cheap to make."""
    run = tmp_path / "small"
    spec = RunSpec(algo="a2c", env="cartpole", steps=512, eval_every=256, eval_episodes=2,
                   checkpoint_seconds=1e9, animation=False)  # fmt: skip
    config = dict(num_envs=4, num_steps=8, hidden=[16])
    _, summary = start_run(spec, config, run_dir=run, progress=False, stop_after_updates=4)
    assert summary["status"] == "interrupted" and summary["env_steps"] == 128
    return run


# -- a run and its artefacts -------------------------------------------------------------------


def test_train_writes_every_artefact(cartpole_run):
    run = cartpole_run
    for name in ("config.json", "summary.json", "metrics.csv", "episodes.csv", "log.txt",
                 "learning_curve.png", "episode.gif", "checkpoints/latest.pt"):  # fmt: skip
        assert (run / name).is_file(), name
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tensorboard").iterdir())

    config = json.loads((run / "config.json").read_text())
    assert config["algo"] == "ppo" and config["env"] == "cartpole"
    assert config["run"]["steps"] == 2048 and config["run"]["seed"] == 0
    assert config["algo_config"]["num_envs"] == 4 and config["algo_config"]["num_steps"] == 64
    preset = resolve("cartpole").preset("ppo")  # the cartpole preset underneath the flags
    assert config["algo_config"]["learning_rate"] == preset["learning_rate"]
    assert config["algo_config"]["update_epochs"] == preset["update_epochs"]

    summary = json.loads((run / "summary.json").read_text())
    for key in ("env_steps", "wall_seconds", "steps_per_second", "target_reached_steps",
                "target_reached_seconds"):  # fmt: skip
        assert key in summary
    assert summary["status"] == "finished" and summary["env_steps"] == 2048
    assert summary["wall_seconds"] > 0
    assert summary["steps_per_second"] == pytest.approx(2048 / summary["wall_seconds"])
    assert summary["target_reached_steps"] is None and summary["target_reached_seconds"] is None
    assert summary["last_eval"]["episodes"] == 10

    rows = _rows(run / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows] == list(range(256, 2049, 256))
    assert float(rows[-1]["eval/mean_return"]) == summary["last_eval"]["mean_return"]
    episodes = _rows(run / "episodes.csv")
    assert len(episodes) > 10 and all(1 <= float(e["length"]) <= 500 for e in episodes)

    data = load_checkpoint(run / LATEST)
    assert data["algo_state"]["env_steps"] == 2048 and data["runner"]["updates"] == 8
    assert (run / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(run / "episode.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames > 10


def test_eval_json(cartpole_run, capsys):
    code, out, _ = run_cli(capsys, "eval", cartpole_run, "--episodes", "10", "--json")
    assert code == 0
    result = json.loads(out)
    assert {"episodes", "mean_return", "std_return"} <= set(result)
    assert result["episodes"] == 10
    assert 1 <= result["min_return"] <= result["mean_return"] <= result["max_return"] <= 500
    assert result["std_return"] >= 0
    # seeded: the same evaluation twice gives the same numbers
    assert json.loads(run_cli(capsys, "eval", cartpole_run, "--episodes", "10", "--json")[1]) == (
        result
    )


@pytest.mark.parametrize("suffix, magic", [(".gif", b"GIF8"), (".mp4", b"ftyp")])
def test_record_gif_and_mp4(cartpole_run, tmp_path, capsys, suffix, magic):
    out_file = tmp_path / f"x{suffix}"
    code, out, _ = run_cli(capsys, "record", cartpole_run, "--out", out_file, "--max-steps", "60")
    assert code == 0 and f"wrote {out_file}" in out
    head = out_file.read_bytes()[:12]
    assert magic in head


def test_target_return_stops_early(target_run):
    summary = json.loads((target_run / "summary.json").read_text())
    assert summary["status"] == "target_reached" and summary["target_return"] == 100.0
    assert summary["target_reached_steps"] == summary["env_steps"] < 20000
    assert 0 < summary["target_reached_seconds"] <= summary["wall_seconds"]
    evals = [float(r["eval/mean_return"]) for r in _rows(target_run / "metrics.csv")]
    assert len(evals) == summary["env_steps"] // 256 >= 2  # an evaluation after every update
    assert evals[-1] >= 100 and max(evals[:-1]) < 100
    assert "target return 100.0 reached" in (target_run / "log.txt").read_text()


def test_plot_compares_runs(cartpole_run, target_run, tmp_path, capsys):
    out_file = tmp_path / "cmp.png"
    code, out, _ = run_cli(capsys, "plot", cartpole_run, target_run, "--out", out_file)
    assert code == 0 and f"wrote {out_file}" in out
    assert out_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_game2048_train_and_eval(tmp_path, capsys, no_final_artefacts):
    run = tmp_path / "g"
    code, _, _ = run_cli(
        capsys, "train", "ppo", "2048", "--steps", "512", "--run-dir", run, "--no-progress",
        "--num-envs", "16", "--num-steps", "16", "--hidden", "16", "--num-minibatches", "2",
        "--update-epochs", "1", "--eval-episodes", "4",
    )  # fmt: skip
    assert code == 0
    assert json.loads((run / "config.json").read_text())["algo_config"]["hidden"] == [16]
    code, out, _ = run_cli(capsys, "eval", run, "--episodes", "10", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["episodes"] == 10 and result["mean_score"] > 0
    counts = result["max_tile_counts"]
    assert sum(counts.values()) == 10
    assert all(int(t) >= 16 and int(t) & (int(t) - 1) == 0 for t in counts)  # powers of two


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["toml", "json"])
def test_config_file_sets_fields_and_flags_win(kind, tmp_path, capsys, no_final_artefacts):
    path = tmp_path / f"cfg.{kind}"
    if kind == "toml":
        path.write_text(
            "learning_rate = 0.002\nhidden = [32, 32]\nanneal_lr = false\nsteps = 256\n"
            "seed = 3\neval_episodes = 2\nnum_envs = 4\n"
        )
    else:
        path.write_text(json.dumps({
            "learning_rate": 0.002, "hidden": [32, 32], "anneal_lr": False, "steps": 256,
            "seed": 3, "eval_episodes": 2, "num_envs": 4,
        }))  # fmt: skip
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "ppo", "cartpole", "--config", path, "--run-dir", run,
                           "--no-progress", "--num-envs", "8")  # fmt: skip
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["algo_config"]["learning_rate"] == 0.002
    assert config["algo_config"]["hidden"] == [32, 32]
    assert config["algo_config"]["anneal_lr"] is False
    assert config["algo_config"]["num_envs"] == 8  # the flag wins over the file
    assert config["run"]["steps"] == 256 and config["run"]["seed"] == 3
    assert config["run"]["eval_episodes"] == 2
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 256


PPO_HELP = (["--clip-coef", "surrogate clipping epsilon", "--num-minibatches"], ["--optimizer"])
A2C_HELP = (["--optimizer", "rmsprop (alpha 0.99, eps 1e-5) or adam"], ["--clip-coef"])


@pytest.mark.parametrize("argv, present, absent", [
    (["train", "--help"], *PPO_HELP),
    (["train", "a2c", "--help"], *A2C_HELP),
    (["train", "--seed", "1", "--no-progress", "a2c", "cartpole", "--help"], *A2C_HELP),
    (["train", "--target-return", "-5", "a2c", "--help"], *A2C_HELP),
])  # fmt: skip
def test_train_help_lists_config_fields_with_docstrings(argv, present, absent, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for needle in [*present, "--learning-rate", "--resume", "--target-return", "(default:"]:
        assert needle in text, needle
    for needle in absent:
        assert needle not in text


# -- resume budgets ----------------------------------------------------------------------------


def test_cli_resume_budget(small_run, capsys, no_final_artefacts):
    config_before = (small_run / "config.json").read_bytes()
    ckpt_before = (small_run / LATEST).read_bytes()
    code, _, err = run_cli(capsys, "train", "--resume", small_run, "--steps", "256")
    assert_clear_error(code, err, "--steps 256 is below the run's budget of 512 steps")
    assert (small_run / "config.json").read_bytes() == config_before
    assert (small_run / LATEST).read_bytes() == ckpt_before

    code, out, _ = run_cli(capsys, "train", "--resume", small_run, "--no-progress")
    assert code == 0 and "finished: 512 env steps" in out
    assert json.loads((small_run / "summary.json").read_text())["env_steps"] == 512

    code, _, _ = run_cli(capsys, "train", "--resume", small_run, "--steps", "640", "--no-progress")
    assert code == 0
    assert json.loads((small_run / "summary.json").read_text())["env_steps"] == 640
    assert json.loads((small_run / "config.json").read_text())["run"]["steps"] == 640
    assert [int(r["env_steps"]) for r in _rows(small_run / "metrics.csv")] == list(
        range(32, 641, 32)
    )


def _ctrl_c_on_step(monkeypatch, call: int, times: int) -> None:
    """``times`` SIGINTs (Ctrl-C) on the ``call``-th env step of the run (mid-rollout)."""
    original = FunctionalEnv.step
    count = [0]

    def step(self, actions):
        count[0] += 1
        if count[0] == call:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return original(self, actions)

    monkeypatch.setattr(FunctionalEnv, "step", step)


@pytest.mark.parametrize("times", [1, 2])
def test_cli_ctrl_c_exits_130_and_says_how_to_continue(times, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    _ctrl_c_on_step(monkeypatch, call=3, times=times)  # inside the first update (num_steps 8)
    argv = ["train", "a2c", "cartpole", "--steps", "512", "--run-dir", run, "--no-progress",
            "--num-envs", "4", "--num-steps", "8"]  # fmt: skip
    code, out, err = run_cli(capsys, *argv)
    assert code == 130 and "interrupted" in out
    if times == 1:  # the first update is finished and saved
        assert "Ctrl-C again" in err
        assert f"continue with: renshu train --resume {run}" in out
        assert load_checkpoint(run / LATEST)["algo_state"]["env_steps"] == 32
    else:  # stopped inside it: nothing consistent to save
        assert "no checkpoint to resume from" in out and not (run / LATEST).exists()


def test_cli_resume_refuses_flags_it_would_ignore(small_run, capsys):
    before = _snapshot(small_run)
    code, _, err = run_cli(capsys, "train", "--resume", small_run, "--learning-rate", "0.1",
                           "--seed", "0")  # fmt: skip
    assert_clear_error(code, err, "--learning-rate", "--seed", "own config.json")
    assert _snapshot(small_run) == before


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, needles", [
    (["train", "dqnn", "cartpole"],
     ["unknown algorithm 'dqnn'", "algorithms: a2c, ", "grpo, ntuple, ppo"]),
    (["train", "ppo", "cartpol"], ["unknown environment 'cartpol'", "cartpole", "game2048"]),
    (["train", "ppo", "cartpole", "--learning-rate", "-1"], ["'learning_rate'", "must be > 0"]),
    (["train", "ppo", "cartpole", "--num-minibatches", "3"],
     ["'num_minibatches'", "must divide num_envs * num_steps = 256"]),
    (["train", "ppo", "cartpole", "--gamma", "2"], ["'gamma'", "[0, 1]"]),
    (["train", "a2c", "cartpole", "--optimizer", "sgd"], ["'optimizer'", "rmsprop or adam"]),
    (["train", "ppo", "cartpole", "--hidden", "a,b"], ["'hidden'", "'a,b'"]),
    (["train", "ppo", "cartpole", "--env-option", "obs"], ["KEY=VALUE", "'obs'"]),
    (["train", "ppo", "cartpole", "--config", "missing.toml"], ["config file missing.toml"]),
])  # fmt: skip
def test_bad_train_input_is_one_clear_line(argv, needles, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, *argv, "--run-dir", run, "--steps", "64", "--no-progress")
    assert_clear_error(code, err, *needles)
    assert not run.exists()  # nothing was created


def test_unknown_config_file_field_lists_valid_fields(tmp_path, capsys):
    path = tmp_path / "cfg.toml"
    path.write_text("learning_rate = 0.001\nclip_coeff = 0.1\n")
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "ppo", "cartpole", "--config", path, "--run-dir", run)
    assert_clear_error(code, err, "['clip_coeff']", "valid fields", "clip_coef", "learning_rate")
    assert not run.exists()
    path.write_text("steps = 'many'\n")  # a run field of the wrong type
    code, _, err = run_cli(capsys, "train", "ppo", "cartpole", "--config", path, "--run-dir", run)
    assert_clear_error(code, err, "'steps'", "'many'")
    path.write_text("learning_rate = \n")
    code, _, err = run_cli(capsys, "train", "ppo", "cartpole", "--config", path, "--run-dir", run)
    assert_clear_error(code, err, f"config file {path}")


def test_existing_run_directory_refused_untouched_then_replaced(
    small_run, capsys, no_final_artefacts
):
    (small_run / "notes.txt").write_text("mine")
    before = _snapshot(small_run)
    argv = ["train", "a2c", "cartpole", "--steps", "64", "--run-dir", small_run, "--no-progress",
            "--eval-episodes", "2", "--num-envs", "4", "--num-steps", "16"]  # fmt: skip
    code, _, err = run_cli(capsys, *argv)
    assert_clear_error(code, err, "already exists", "--overwrite", "--resume")
    assert _snapshot(small_run) == before
    # --overwrite with a bad config: still refused before anything is deleted
    code, _, err = run_cli(capsys, *argv, "--overwrite", "--gamma", "2")
    assert_clear_error(code, err, "'gamma'")
    assert _snapshot(small_run) == before

    code, out, _ = run_cli(capsys, *argv, "--overwrite")
    assert code == 0 and "finished: 64 env steps" in out
    assert not (small_run / "notes.txt").exists()
    assert json.loads((small_run / "config.json").read_text())["run"]["steps"] == 64


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n")
    code, _, err = run_cli(capsys, "train", "ppo", "cartpole", "--run-dir", folder,
                           "--overwrite", "--steps", "64")  # fmt: skip
    assert_clear_error(code, err, "not a renshu run directory")
    assert (folder / "data.csv").read_text() == "a,b\n"


class Planted:
    """Unpickling this calls ``open(path, "w")``: a marker file appears if a loader runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _corrupt(kind: str, path, marker):
    good = path.read_bytes()
    if kind == "random bytes":
        gen = torch.Generator().manual_seed(1)
        path.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=gen).tolist()))
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign dict":
        torch.save({"model": torch.zeros(3), "epoch": 4}, path)
    elif kind == "torch.save object":
        torch.save(Planted(marker), path)
    elif kind == "pickle object":
        path.write_bytes(pickle.dumps(Planted(marker)))


@pytest.mark.parametrize("kind, reason", [
    ("random bytes", "corrupt or not a renshu checkpoint"),
    ("truncated", "corrupt or not a renshu checkpoint"),
    ("empty", "corrupt or not a renshu checkpoint"),
    ("foreign dict", "no 'renshu-checkpoint' marker"),
    ("torch.save object", "could run code"),
    ("pickle object", "could run code"),
])  # fmt: skip
def test_resume_eval_record_of_a_bad_checkpoint_fail_clearly(
    kind, reason, small_run, tmp_path, capsys
):
    marker = tmp_path / "code-ran"
    _corrupt(kind, small_run / LATEST, marker)
    before = _snapshot(small_run)
    code, _, err = run_cli(capsys, "train", "--resume", small_run, "--no-progress")
    assert_clear_error(code, err, reason, "latest.pt")
    code, _, err = run_cli(capsys, "eval", small_run, "--episodes", "2")
    assert_clear_error(code, err, reason)
    code, _, err = run_cli(capsys, "record", small_run, "--out", tmp_path / "x.gif")
    assert_clear_error(code, err, reason)
    assert not marker.exists()  # the pickled object was never called
    assert _snapshot(small_run) == before  # and the run was left as it was


def test_resume_missing_or_checkpointless_run(small_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "nope")
    assert_clear_error(code, err, "not a renshu run directory", "config.json")
    shutil.rmtree(small_run / "checkpoints")
    (small_run / "config.json").write_text("{not json")
    code, _, err = run_cli(capsys, "train", "--resume", small_run)
    assert_clear_error(code, err, "not a valid renshu run config")
    assert os.listdir(small_run)  # nothing was deleted


def _needs_pygame_env():
    import gymnasium
    import numpy as np

    class NeedsPygame(gymnasium.Env):
        metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
        observation_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
        action_space = gymnasium.spaces.Discrete(2)

        def __init__(self, render_mode=None):
            self.render_mode = render_mode
            self.t = 0

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return np.zeros(2, np.float32), {}

        def step(self, action):
            self.t += 1
            return np.zeros(2, np.float32), 1.0, self.t >= 5, False, {}

        def render(self):
            raise gymnasium.error.DependencyNotInstalled(
                'pygame is not installed, run `pip install "gymnasium[classic-control]"`'
            )

    return NeedsPygame


@pytest.fixture
def needs_pygame_env_id():
    import gymnasium

    env_id = "renshu-test/NeedsPygame-v0"
    gymnasium.register(id=env_id, entry_point=_needs_pygame_env(), max_episode_steps=5)
    yield env_id
    del gymnasium.registry[env_id]


def test_missing_renderer_skips_the_gif_with_the_package_to_install(
    needs_pygame_env_id, tmp_path, capsys
):
    """Training finishes (summary, plot, checkpoint) and says which package the GIF needs;
    ``record`` refuses with the same message instead of a traceback."""
    spec = RunSpec(algo="ppo", env=needs_pygame_env_id, steps=256, eval_every=256,
                   eval_episodes=2, animation=True)  # fmt: skip
    overrides = dict(num_envs=2, num_steps=64, hidden=[8])
    run_dir, summary = start_run(spec, overrides, run_dir=tmp_path / "run", progress=False)
    assert summary["env_steps"] == 256
    assert (run_dir / "learning_curve.png").exists() and not (run_dir / "episode.gif").exists()
    err = capsys.readouterr().err
    assert "episode.gif skipped" in err and 'pip install "gymnasium[classic-control]"' in err

    code, _, err = run_cli(capsys, "record", run_dir, "--out", tmp_path / "x.gif")
    assert code == 2
    assert f"recording {needs_pygame_env_id} needs its renderer" in err and "pygame" in err
    assert not (tmp_path / "x.gif").exists()
