"""Plots: moving average numbers, and PNGs of the right size that actually show the curves."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from renshu.runner.logging import RunLogger
from renshu.viz.plots import moving_average, plot_compare, plot_learning_curve

TAB_BLUE = (31, 119, 180)  # episode returns
TAB_ORANGE = (255, 127, 14)  # evaluation
TAB_RED = (214, 39, 40)  # losses


def _pixels(path):
    with Image.open(path) as image:
        assert image.size == (1000, 700)  # figsize (10, 7) at dpi 100
        return np.asarray(image.convert("RGB"))


def _has_colour(pixels, rgb):
    return bool((np.abs(pixels.astype(int) - rgb).sum(axis=-1) <= 6).any())


def _fake_run(run_dir, iterations=30, envs=8, seed=0, evaluate=True):
    gen = torch.Generator().manual_seed(seed)
    with RunLogger(run_dir, tensorboard=False) as log:
        for i in range(1, iterations + 1):
            steps = i * 256
            returns = i + torch.randn(envs, generator=gen)
            log.log_episodes(steps, {"return": returns, "length": torch.full((envs,), 20)})
            metrics = {"loss/policy": 1.0 / i, "loss/value": 10.0 - i / 3, "train/approx_kl": 0.01}
            if evaluate and i % 10 == 0:
                metrics["eval/mean_return"] = float(i)
            log.log_iteration(steps, i * 0.5, metrics)


def test_moving_average_matches_hand_computation():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 10.0]
    np.testing.assert_allclose(moving_average(values, 3), [1.0, 1.5, 2.0, 3.0, 4.0, 19 / 3])
    np.testing.assert_allclose(moving_average(values, 1), values)
    np.testing.assert_allclose(moving_average(values, 100), [1.0, 1.5, 2.0, 2.5, 3.0, 25 / 6])
    assert moving_average([], 5).shape == (0,)
    with pytest.raises(ValueError, match="window"):
        moving_average(values, 0)


def test_learning_curve_png_shows_returns_evaluation_and_losses(tmp_path):
    run = tmp_path / "ppo-run"
    _fake_run(run)
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "env": "cartpole"}))
    out = plot_learning_curve(run)
    assert out == run / "learning_curve.png"
    pixels = _pixels(out)
    assert pixels.std() > 20  # not blank
    assert _has_colour(pixels, TAB_BLUE)
    assert _has_colour(pixels, TAB_ORANGE)
    assert _has_colour(pixels, TAB_RED)
    assert sorted(p.name for p in run.iterdir() if p.suffix in (".tmp", ".png")) == [
        "learning_curve.png"
    ]


@pytest.mark.parametrize("contents", ["nothing", "metrics only", "one episode"])
def test_learning_curve_never_fails_on_short_runs(tmp_path, contents):
    run = tmp_path / "run"
    run.mkdir()
    if contents != "nothing":
        with RunLogger(run, tensorboard=False) as log:
            if contents == "one episode":
                log.log_episodes(16, {"return": torch.tensor([3.0]), "length": torch.tensor([16])})
            log.log_iteration(16, 0.1, {"loss/policy": float("nan")})
    (run / "config.json").write_text("{not json")  # a broken config falls back to the dir name
    pixels = _pixels(plot_learning_curve(run, out=tmp_path / "plots" / "curve.png", title="t"))
    assert pixels.std() > 5
    assert _has_colour(pixels, TAB_BLUE) == (contents == "one episode")


@pytest.mark.parametrize("x", ["env_steps", "wall_seconds"])
def test_compare_draws_one_line_per_run(tmp_path, x):
    _fake_run(tmp_path / "a", seed=1, evaluate=False)
    _fake_run(tmp_path / "b", iterations=10, seed=2, evaluate=False)
    (tmp_path / "empty").mkdir()
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "empty"]
    out = plot_compare(runs, tmp_path / "compare.png", labels=["A", "B", "C"], x=x)
    pixels = _pixels(out)
    assert pixels.std() > 20
    assert _has_colour(pixels, TAB_BLUE)  # first run
    assert _has_colour(pixels, TAB_ORANGE)  # second run


def test_compare_rejects_bad_arguments(tmp_path):
    _fake_run(tmp_path / "a", iterations=2)
    with pytest.raises(ValueError, match="labels"):
        plot_compare([tmp_path / "a"], tmp_path / "c.png", labels=["x", "y"])
    with pytest.raises(ValueError, match="x must be"):
        plot_compare([tmp_path / "a"], tmp_path / "c.png", x="minutes")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_compare([tmp_path / "missing"], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()
