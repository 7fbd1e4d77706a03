"""Milestones, best.pt, --checkpoint best|latest|step-N, the timelapse and --target-on."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from renshu.cli import main
from renshu.runner import RunSpec, resume_run, start_run
from renshu.runner import milestones as ms
from renshu.runner.checkpoint import LATEST, load_checkpoint
from renshu.runner.milestones import (
    BEST,
    checkpoint_path,
    list_milestones,
    load_agent,
    milestone_fractions,
    write_timelapse,
)
from renshu.runner.run import build

PPO = dict(num_envs=4, num_steps=32, hidden=[16], update_epochs=2)  # 128 env steps an update


def _spec(**kw) -> RunSpec:
    values = dict(algo="ppo", env="cartpole", steps=1024, eval_every=256, eval_episodes=4,
                  checkpoint_seconds=1e9, animation=False, milestones=3)  # fmt: skip
    values.update(kw)
    return RunSpec(**values)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _policy(algo) -> dict:
    return {k: v.clone() for k, v in algo.acting_state()["policy"].items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("m") / "run"
    _, summary = start_run(_spec(), PPO, run_dir=run_dir, progress=False)
    return run_dir, summary


def test_fractions_spread_from_the_untrained_agent_to_the_end():
    assert milestone_fractions(0) == []
    assert milestone_fractions(1) == [1.0]
    assert milestone_fractions(5) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_milestones_are_spread_over_the_budget_and_load_with_weights_only(run):
    run_dir, summary = run
    steps = [step for step, _ in list_milestones(run_dir)]
    # 1024 steps in updates of 128: the untrained agent, the update crossing 50%, the end
    assert steps == [0, 512, 1024] == [0, 512, summary["env_steps"]]
    for step, path in list_milestones(run_dir):
        assert path.name == f"step-{step:08d}.pt"
        data = torch.load(path, weights_only=True)
        assert data["kind"] == "milestone" and data["env_steps"] == step
        assert set(data["acting_state"]) == {"policy"}  # weights only: no optimizer, no env
    assert (run_dir / BEST).is_file() and (run_dir / LATEST).is_file()


def test_step_0_is_the_untrained_agent_and_the_last_is_latest(run):
    run_dir, _ = run
    fresh, _, _ = build(_spec().resolved(), PPO)
    untrained, _, loaded = load_agent(run_dir, "step-0")
    assert loaded.name == "step-0" and loaded.env_steps == 0
    assert _same(_policy(untrained), _policy(fresh))
    last, _, _ = load_agent(run_dir, "step-1024")
    latest, _, loaded = load_agent(run_dir, "latest")
    assert loaded.env_steps == 1024
    assert _same(_policy(last), _policy(latest))
    assert not _same(_policy(last), _policy(fresh))


def test_best_holds_the_best_periodic_evaluation(run):
    run_dir, _ = run
    evals = [(float(r["eval/mean_return"]), int(r["env_steps"]))
             for r in _rows(run_dir / "metrics.csv") if r["eval/mean_return"]]  # fmt: skip
    assert len(evals) == 4  # every 256 steps
    best_mean = max(mean for mean, _ in evals)
    first_best_step = next(step for mean, step in evals if mean == best_mean)
    data = load_checkpoint(run_dir / BEST)
    assert data["kind"] == "best"
    assert data["mean_return"] == pytest.approx(best_mean)
    assert data["env_steps"] == first_best_step  # later ties do not replace it
    assert json.loads(data["evaluation"])["episodes"] == 4
    _, _, loaded = load_agent(run_dir)  # the default: best
    assert loaded.name == "best" and loaded.env_steps == first_best_step
    assert "evaluation mean return" in loaded.describe()


def test_default_is_latest_without_best(tmp_path):
    run_dir = tmp_path / "run"
    start_run(_spec(steps=256, eval_every=None, milestones=0), PPO, run_dir=run_dir,
              progress=False)  # fmt: skip
    # (the end of the budget is evaluated, so best.pt exists; remove it as an older run lacks it)
    (run_dir / BEST).unlink()
    assert list_milestones(run_dir) == []
    assert checkpoint_path(run_dir)[0] == "latest"
    with pytest.raises(ValueError, match="has no best.pt .* available: latest$"):
        checkpoint_path(run_dir, "best")


@pytest.mark.parametrize(
    "value, message",
    [
        (
            "step-77",
            "no milestone at step 77; available: best, latest, step-0, step-512, step-1024",
        ),
        ("bogus", "takes best, latest or step-N"),
        ("step-", "takes best, latest or step-N"),
    ],
)
def test_bad_checkpoint_values_name_the_available_ones(run, value, message):
    with pytest.raises(ValueError, match=message):
        checkpoint_path(run[0], value)


def test_cli_eval_says_which_checkpoint_it_loaded(run, capsys):
    run_dir, _ = run
    assert main(["eval", str(run_dir), "--episodes", "4", "--checkpoint", "step-512"]) == 0
    assert "loaded step-512 (step-00000512.pt): the agent after 512 env steps" in (
        capsys.readouterr().out
    )
    assert main(["eval", str(run_dir), "--episodes", "4", "--checkpoint", "step-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("renshu eval: error: --checkpoint step-3:") and "\n" not in err


def test_weights_too_big_for_milestones_keep_only_best(tmp_path, monkeypatch):
    monkeypatch.setattr(ms, "MAX_SNAPSHOT_BYTES", 100)
    run_dir = tmp_path / "run"
    start_run(_spec(steps=256, eval_every=128), PPO, run_dir=run_dir, progress=False)
    assert list_milestones(run_dir) == []
    assert (run_dir / BEST).is_file()
    assert "milestones skipped" in (run_dir / "log.txt").read_text()


def test_a_resumed_run_keeps_its_milestones_and_best(tmp_path):
    run_dir = tmp_path / "run"
    start_run(_spec(), PPO, run_dir=run_dir, progress=False, stop_after_updates=3)
    assert [s for s, _ in list_milestones(run_dir)] == [0]
    before = load_checkpoint(run_dir / BEST)["mean_return"]
    resume_run(run_dir, progress=False)
    assert [s for s, _ in list_milestones(run_dir)] == [0, 512, 1024]
    assert load_checkpoint(run_dir / BEST)["mean_return"] >= before


def test_timelapse_shows_every_milestone_side_by_side(run, tmp_path):
    run_dir, _ = run
    out = tmp_path / "t.gif"
    result = write_timelapse(run_dir, out=out, max_frames=20, panel_width=160)
    assert result["panels"] == 3 and result["milestones"] == [0, 512, 1024]
    assert len(result["steps"]) == 3 and all(s >= 1 for s in result["steps"])
    longest = max(result["steps"])
    gif = Image.open(out)
    assert gif.size[0] == 3 * 160 + 2 * 8  # three panels, two gaps
    assert 2 <= gif.n_frames <= result["frames"] <= 20 + 1 + 8
    # each panel: the same start (same seed), so the first pictures are the same cart and pole
    gif.seek(0)
    first = np.asarray(gif.convert("RGB"))
    top = 30  # below the title strip
    panels = [first[top : top + 80, x : x + 160] for x in (0, 168, 336)]
    assert np.array_equal(panels[0], panels[1]) and np.array_equal(panels[0], panels[2])
    assert longest <= 500


def test_timelapse_without_milestones_is_one_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    start_run(_spec(steps=128, milestones=0), PPO, run_dir=run_dir, progress=False)
    with pytest.raises(ValueError, match="has no milestones .* --milestones K"):
        write_timelapse(run_dir)
    assert main(["record", str(run_dir), "--timelapse"]) == 2


def test_target_on_train_stops_on_the_running_mean_of_100_episodes(tmp_path):
    run_dir = tmp_path / "run"
    _, summary = start_run(
        _spec(steps=30_000, eval_every=None, target_return=40.0, target_on="train",
              milestones=2),
        PPO, run_dir=run_dir, progress=False,
    )  # fmt: skip
    assert summary["status"] == "target_reached"
    stop = summary["target_reached_steps"]
    assert stop == summary["env_steps"] < 30_000
    returns = [float(r["return"]) for r in _rows(run_dir / "episodes.csv")
               if int(r["env_steps"]) <= stop]  # fmt: skip
    assert len(returns) >= 100
    assert np.mean(returns[-100:]) >= 40.0
    # not one update earlier: the episodes finished by the update before did not reach it
    per_update = 128
    earlier = [float(r["return"]) for r in _rows(run_dir / "episodes.csv")
               if int(r["env_steps"]) <= stop - per_update]  # fmt: skip
    assert len(earlier) < 100 or np.mean(earlier[-100:]) < 40.0
    assert summary["last_eval"] is not None  # evaluated where it stopped
    assert [s for s, _ in list_milestones(run_dir)] == [0, stop]  # the final agent is the last


def test_target_on_takes_eval_or_train(capsys):
    with pytest.raises(ValueError, match="--target-on must be eval or train, got 'test'"):
        RunSpec(target_on="test").resolved()
    with pytest.raises(ValueError, match="--milestones must be >= 0"):
        RunSpec(milestones=-1).resolved()


def test_cli_record_timelapse_as_mp4_and_one_line_without_the_extra(run, tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    run_dir, _ = run
    out = tmp_path / "t.mp4"
    assert (
        main(["record", str(run_dir), "--timelapse", "--out", str(out), "--max-frames", "5"]) == 0
    )
    assert "wrote" in capsys.readouterr().out and out.stat().st_size > 0
    import imageio.v2 as imageio

    frames = imageio.mimread(out, memtest=False)
    assert len(frames) == 5 + 1 + 8  # shown steps, the final positions, a second held at 8 fps
    monkeypatch.setitem(__import__("sys").modules, "imageio_ffmpeg", None)
    assert main(["record", str(run_dir), "--timelapse", "--out", str(tmp_path / "u.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("renshu record: error:") and 'pip install "renshu[viz]"' in err
    assert "\n" not in err


def test_cli_record_uses_best_and_says_so(run, tmp_path, capsys):
    run_dir, _ = run
    assert (
        main(["record", str(run_dir), "--out", str(tmp_path / "e.gif"), "--max-steps", "20"]) == 0
    )
    best_step = load_checkpoint(run_dir / BEST)["env_steps"]
    assert f"loaded best (best.pt): the agent after {best_step:,} env steps" in (
        capsys.readouterr().out
    )
    assert main(["record", "--env", "cartpole", "--checkpoint", "best", "--out", "x.gif"]) == 2
    assert "give the RUN" in capsys.readouterr().err
