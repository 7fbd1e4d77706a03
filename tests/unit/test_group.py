"""Several seeds without a cluster (renshu.runner.group, `train --seeds`), and the device each
run records (config.json, summary.json, log.txt)."""

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from renshu import cli
from renshu.runner import RunSpec, start_run
from renshu.runner.group import (
    GROUP_FILE,
    group_members,
    parse_seeds,
    run_group,
    summarize_group,
)
from renshu.runner.run import describe_device

CONFIG = {"num_envs": 4, "num_steps": 8, "hidden": [16]}
WALL = ("wall_seconds", "charts/steps_per_second")


def _spec(**kwargs) -> RunSpec:
    base = dict(algo="a2c", env="cartpole", steps=1024, eval_every=256, eval_episodes=4,
                animation=False)  # fmt: skip
    return RunSpec(**{**base, **kwargs})


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in WALL} for row in csv.DictReader(f)]


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def _has_colour(pixels, rgb, tol=6):
    return bool((np.abs(pixels - np.asarray(rgb)).sum(axis=-1) <= tol).any())


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """Seeds 0, 1 and 2 of a small A2C CartPole run, one after another."""
    out = tmp_path_factory.mktemp("group") / "g"
    torch.set_num_threads(1)
    group_dir, summary = run_group(_spec(target_return=20.0), CONFIG, "0-2", out, progress=False)
    assert group_dir == out
    return out, summary


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3-5,0") == [3, 4, 5, 0]
    assert parse_seeds(" 7 ") == [7]
    assert parse_seeds([2, 0]) == [2, 0]
    for text, needle in [("", "--seeds takes"), ("a,b", "--seeds takes"), ("1,-2", "--seeds"),
                         ("1,1", "seed 1 twice"), ("0-2,2", "seed 2 twice"),
                         ("3-1", "runs backwards")]:  # fmt: skip
        with pytest.raises(ValueError, match=needle):
            parse_seeds(text)


def test_group_holds_one_ordinary_run_per_seed(group, tmp_path):
    """Each seed's directory is the run start_run makes for that seed: the same rows."""
    out, summary = group
    assert sorted(p.name for p in out.iterdir()) == [
        "group.json", "learning_curve.png", "seed-0", "seed-1", "seed-2", "summary.md",
    ]  # fmt: skip
    for seed in (0, 1, 2):
        config = json.loads((out / f"seed-{seed}" / "config.json").read_text())
        assert config["run"]["seed"] == seed and config["algo_config"]["hidden"] == [16]
    alone, _ = start_run(_spec(seed=1, target_return=20.0), CONFIG, run_dir=tmp_path / "alone",
                         progress=False)  # fmt: skip
    assert _rows(out / "seed-1" / "metrics.csv") == _rows(alone / "metrics.csv")
    assert _rows(out / "seed-0" / "metrics.csv") != _rows(alone / "metrics.csv")
    assert summary["status"] == "finished" and summary["seeds"] == [0, 1, 2]


def test_group_summary_is_the_mean_and_std_of_the_seeds(group):
    out, summary = group
    seeds = [json.loads((out / f"seed-{s}" / "summary.json").read_text()) for s in (0, 1, 2)]
    finals = [s["last_eval"]["mean_return"] for s in seeds]
    mean = sum(finals) / 3
    std = math.sqrt(sum((f - mean) ** 2 for f in finals) / 3)
    assert summary["aggregates"]["mean_return"] == pytest.approx({"mean": mean, "std": std, "n": 3})
    reached = [s["target_reached_steps"] for s in seeds if s["target_reached_steps"] is not None]
    assert summary["aggregates"]["target_reached"] == len(reached) >= 1
    assert summary["aggregates"]["target_reached_steps"]["mean"] == pytest.approx(np.mean(reached))
    assert json.loads((out / GROUP_FILE).read_text())["aggregates"] == summary["aggregates"]
    table = (out / "summary.md").read_text()
    assert "| seed | status | env steps | wall s | final eval return | steps to 20 |" in table
    assert f"| mean ± std | 3 seeds |  |  | {mean:.1f} ± {std:.1f} |" in table
    assert f"({len(reached)} of 3 reached)" in table
    for s, final in zip((0, 1, 2), finals):
        assert f"| {s} | {seeds[s]['status']} | {seeds[s]['env_steps']:,} |" in table
        assert f"| {final:.1f} |" in table
    # the group curve: one band (tab:blue at alpha 0.2) and its mean line
    pixels = _pixels(out / "learning_curve.png")
    assert pixels.shape == (700, 1000, 3)
    assert _has_colour(pixels, (31, 119, 180))
    assert _has_colour(pixels, (210, 228, 240))


def test_summary_can_be_rebuilt_from_the_directory(group):
    out, summary = group
    again = summarize_group(out)
    assert again["aggregates"] == summary["aggregates"]


def test_jobs_run_seeds_in_processes_with_the_same_results(group, tmp_path):
    out, _ = group
    parallel, summary = run_group(_spec(target_return=20.0), CONFIG, [0, 2], tmp_path / "p", jobs=2,
                                  progress=False)  # fmt: skip
    assert summary["status"] == "finished" and summary["jobs"] == 2
    for seed in (0, 2):
        assert _rows(parallel / f"seed-{seed}" / "metrics.csv") == _rows(
            out / f"seed-{seed}" / "metrics.csv"
        )


def test_bad_input_writes_nothing(tmp_path):
    target = tmp_path / "g"
    with pytest.raises(ValueError, match="num_steps"):
        run_group(_spec(), {**CONFIG, "num_steps": 0}, "0,1", target, progress=False)
    with pytest.raises(ValueError, match="--jobs must be an integer >= 1"):
        run_group(_spec(), CONFIG, "0,1", target, jobs=0, progress=False)
    with pytest.raises(ValueError, match="--steps must be >= 1"):
        run_group(_spec(steps=0), CONFIG, "0,1", target, progress=False)
    assert not target.exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        run_group(_spec(), CONFIG, "0", other, progress=False)
    with pytest.raises(FileExistsError, match="not a renshu group directory"):
        run_group(_spec(), CONFIG, "0", other, overwrite=True, progress=False)
    assert (other / "notes.txt").read_text() == "mine"


def test_group_members(group, tmp_path):
    out, _ = group
    seeds = [out / f"seed-{s}" for s in (0, 1, 2)]
    assert group_members(out) == seeds
    assert group_members(str(out / "seed-*")) == seeds  # a quoted pattern
    assert group_members(seeds[1]) == [seeds[1]]  # one run: a group of one
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ValueError, match="holds no run directories"):
        group_members(plain)
    with pytest.raises(ValueError, match="no run directories match"):
        group_members(str(tmp_path / "nothing-*"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        group_members(tmp_path / "missing")


# -- the command line ----------------------------------------------------------------------------


def _cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_seeds_prints_the_table_and_plot_draws_groups(group, tmp_path, capsys):
    code, out, err = _cli(
        capsys, "train", "a2c", "cartpole", "--seeds", "3,4", "--steps", "512", "--num-envs", "4",
        "--num-steps", "8", "--hidden", "16", "--eval-episodes", "4", "--animation", "false",
        "--run-dir", tmp_path / "cli", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert "| mean ± std | 2 seeds |" in out and f"group directory: {tmp_path / 'cli'}" in out
    assert (tmp_path / "cli" / "seed-3" / "summary.json").is_file()
    png = tmp_path / "groups.png"
    code, out, err = _cli(capsys, "plot", "--group", group[0], tmp_path / "cli", "--out", png,
                          "--x", "episodes")  # fmt: skip
    assert code == 0 and f"wrote {png}" in out, err
    pixels = _pixels(png)
    assert _has_colour(pixels, (31, 119, 180)) and _has_colour(pixels, (255, 127, 14))
    code, out, _ = _cli(capsys, "plot", tmp_path / "cli")  # a group directory: its band
    assert code == 0 and f"wrote {tmp_path / 'cli' / 'learning_curve.png'}" in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--seeds", "0,1", "--seed", "3"], "give --seed or --seeds, not both"),
        (["--jobs", "2"], "--jobs runs several seeds at once; give them with --seeds"),
        (["--seeds", "0,x"], "--seeds takes seeds >= 0"),
        (["--resume", "somewhere", "--seeds", "0,1"], "--seeds cannot change it"),
    ],
)
def test_cli_seed_flags_are_one_clear_error(argv, needle, tmp_path, capsys):
    code, _, err = _cli(capsys, "train", "a2c", "cartpole", "--steps", "64", "--run-dir",
                        tmp_path / "g", "--no-progress", *argv)  # fmt: skip
    assert code == 2 and "Traceback" not in err and err.strip().count("\n") == 0, err
    assert needle in err, err
    assert not (tmp_path / "g").exists()


# -- the device a run records --------------------------------------------------------------------


def test_describe_device_on_the_cpu():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert describe_device("cpu") == "cpu, 1 thread"
        torch.set_num_threads(2)
        assert describe_device(torch.device("cpu")) == "cpu, 2 threads"
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_describe_device_on_cuda():
    name = torch.cuda.get_device_name(0)
    assert describe_device("cuda") == describe_device("cuda:0") == f"cuda:0 {name}"


def test_runs_record_the_device_they_used(group):
    """cartpole runs on one CPU thread (its spec's threads): config.json, summary.json and the
    first line of log.txt say so, though the run's --device is "auto"."""
    run = group[0] / "seed-0"
    expected = "cpu, 1 thread" if not torch.cuda.is_available() else describe_device("cuda")
    config = json.loads((run / "config.json").read_text())
    assert config["run"]["device"] == "auto" and config["device"] == expected
    assert json.loads((run / "summary.json").read_text())["device"] == expected
    first = (run / "log.txt").read_text().splitlines()[0]
    assert first.endswith(f"a2c on cartpole: {expected}")
