"""Curves that show learning: trailing percentiles and shares by hand, the 2048 tile panel and the
percentile band in real PNGs, and the steps / episodes / seconds axes."""

import json

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from renshu.runner.logging import RunLogger
from renshu.viz import plots
from renshu.viz.plots import (
    plot_compare,
    plot_learning_curve,
    trailing_percentiles,
    trailing_shares,
)

TAB_BLUE = np.array([31, 119, 180])


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def _has_colour(pixels, rgb, tol=6):
    return bool((np.abs(pixels - np.asarray(rgb)).sum(axis=-1) <= tol).any())


def _over_white(rgb, alpha):
    """The colour matplotlib draws for ``rgb`` at ``alpha`` on the white axes."""
    return np.round(alpha * np.asarray(rgb, dtype=float) + (1 - alpha) * 255)


def _viridis(k):
    """The stack colours of a counts panel with ``k`` classes (as drawn: alpha 0.95)."""
    colours = matplotlib.colormaps["viridis"](np.linspace(0.05, 0.95, k))[:, :3] * 255
    return [_over_white(c, 0.95) for c in colours]


def _run_2048(run_dir, env="game2048", updates=40, envs=16, seed=0):
    """A 2048-like run: the max tile grows from 64 to 1024 over training."""
    gen = torch.Generator().manual_seed(seed)
    with RunLogger(run_dir, tensorboard=False) as log:
        for i in range(1, updates + 1):
            level = 6 + 4 * i / updates  # exponent 6 (64) -> 10 (1024)
            exps = (level + 0.7 * torch.randn(envs, generator=gen)).round().clamp(6, 10)
            tiles = 2 ** exps.long()
            returns = 10.0 * tiles + 50 * torch.randn(envs, generator=gen)
            log.log_episodes(i * 2048, {"return": returns, "length": torch.full((envs,), 300),
                                        "score": returns, "max_tile": tiles})  # fmt: skip
            metrics = {"loss/policy": 1.0 / i, "loss/value": 3.0 - i / 20}
            if i % 10 == 0:
                metrics["eval/mean_return"] = float(returns.mean())
            log.log_iteration(i * 2048, 2.5 * i, metrics)
    (run_dir / "config.json").write_text(json.dumps({"algo": "ppo", "env": env}))
    return run_dir


# -- the statistics, by hand ---------------------------------------------------------------------


def test_trailing_percentiles_are_those_of_the_moving_window():
    values = np.array([5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 0.0])
    out = trailing_percentiles(values, np.array([0, 2, 6]), window=3)
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out[:, 0], [5.0, 5.0, 5.0])  # one value so far
    np.testing.assert_allclose(out[:, 1], np.percentile([5.0, 1.0, 4.0], [10, 50, 90]))
    np.testing.assert_allclose(out[:, 2], np.percentile([3.0, 10.0, 0.0], [10, 50, 90]))
    np.testing.assert_allclose(out[1, 2], 3.0)  # the median of the last three


def test_trailing_shares_count_each_value_in_the_window():
    tiles = np.array([64, 128, 128, np.nan, 256, 256, 256, 512])
    labels, shares = trailing_shares(tiles, np.array([2, 7]), window=4)
    assert labels == ["64", "128", "256", "512"]
    # episodes 0-2: 64, 128, 128; episodes 4-7: 256 x3, 512 (episode 3 has no value)
    np.testing.assert_allclose(shares[:, 0], [1 / 3, 2 / 3, 0, 0])
    np.testing.assert_allclose(shares[:, 1], [0, 0, 3 / 4, 1 / 4])
    np.testing.assert_allclose(shares.sum(axis=0), 1.0)


def test_trailing_shares_merge_the_smallest_values_beyond_the_limit():
    tiles = np.array([8, 16, 32, 64, 128, 256, 512, 1024, 2048], dtype=float)
    labels, shares = trailing_shares(tiles, np.array([8]), window=9, max_classes=4)
    assert labels == ["\u2264 256", "512", "1024", "2048"]
    np.testing.assert_allclose(shares[:, 0], [6 / 9, 1 / 9, 1 / 9, 1 / 9])
    assert trailing_shares(np.full(3, np.nan), np.array([2]), 3) == ([], pytest.approx([]))


# -- the panels, in the PNG ----------------------------------------------------------------------


@pytest.mark.parametrize("env", ["game2048", "2048"])
def test_2048_curve_has_a_stacked_tile_panel(tmp_path, env):
    """The counts extra of the env's spec (2048's max_tile) gets a panel: a taller figure with
    every tile's colour of the stack, next to the returns' percentile band."""
    run = _run_2048(tmp_path / "run", env=env)
    pixels = _pixels(plot_learning_curve(run))
    assert pixels.shape == (980, 1000, 3)  # 7 in + one 2.8 in counts panel, at 100 dpi
    for colour in _viridis(5):  # 64, 128, 256, 512, 1024
        assert _has_colour(pixels, colour), colour
    assert _has_colour(pixels, _over_white(TAB_BLUE, plots.BAND_ALPHA))  # the 10-90 percentile band
    assert _has_colour(pixels, TAB_BLUE)  # the mean


def test_other_envs_get_the_band_but_no_counts_panel(tmp_path):
    """gridworld's extra is a rate, cartpole has none: the figure keeps its size and has no
    stack colours; the percentile band is drawn for every env."""
    for env in ("gridworld", "cartpole"):
        run = _run_2048(tmp_path / env, env=env)
        pixels = _pixels(plot_learning_curve(run))
        assert pixels.shape == (700, 1000, 3)
        assert not any(_has_colour(pixels, c, tol=3) for c in _viridis(5)[1:])
        assert _has_colour(pixels, _over_white(TAB_BLUE, plots.BAND_ALPHA))


@pytest.mark.parametrize("episodes", [0, 1])
def test_tile_panel_never_fails_on_short_runs(tmp_path, episodes):
    run = tmp_path / "run"
    with RunLogger(run, tensorboard=False) as log:
        if episodes:
            log.log_episodes(64, {"return": torch.tensor([500.0]), "length": torch.tensor([80]),
                                  "score": torch.tensor([500.0]),
                                  "max_tile": torch.tensor([64])})  # fmt: skip
        log.log_iteration(64, 0.5, {"loss/policy": 0.1})
    (run / "config.json").write_text(json.dumps({"algo": "ppo", "env": "game2048"}))
    pixels = _pixels(plot_learning_curve(run, x="episodes", window=5))
    assert pixels.shape[0] == (980 if episodes else 700)  # no max_tile column: no panel
    assert _has_colour(pixels, _viridis(1)[0]) == bool(episodes)


# -- the x axes and the window -------------------------------------------------------------------


def test_episode_and_second_axes_map_env_steps(tmp_path):
    run = _run_2048(tmp_path / "run", updates=4, envs=3)  # episodes finish at 2048, 4096, ...
    data = plots._Run.read(run)
    np.testing.assert_array_equal(data.episode_x("episodes"), np.arange(1, 13))
    # by step 4096, 6 episodes had finished; by 5000 still 6; by 8192 all 12
    np.testing.assert_array_equal(data.x_at(np.array([4096.0, 5000.0, 8192.0]), "episodes"),
                                  [6, 6, 12])  # fmt: skip
    # metrics.csv: step 2048 at 2.5 s, 4096 at 5 s, ...; the run starts at (0, 0)
    np.testing.assert_allclose(data.x_at(np.array([0.0, 1024.0, 3072.0]), "seconds"),
                               [0.0, 1.25, 3.75])  # fmt: skip
    np.testing.assert_array_equal(data.episode_x("steps"), np.repeat([2048, 4096, 6144, 8192], 3))
    for x in ("steps", "episodes", "seconds"):
        assert _pixels(plot_learning_curve(run, out=tmp_path / f"{x}.png", x=x)).std() > 20


def test_window_sets_the_moving_average(tmp_path):
    run = _run_2048(tmp_path / "run", updates=4, envs=3)
    data = plots._Run.read(run)
    at, smooth, used = data.smooth("steps", window=4)
    assert used == 4
    np.testing.assert_allclose(smooth[-1], data.returns[-4:].mean())
    np.testing.assert_array_equal(at, [2048, 4096, 6144, 8192])  # the last of each step
    assert data.smooth("steps", window=None)[2] == 10  # the default: at least 10 episodes


def test_bad_axis_or_window_is_one_clear_error(tmp_path):
    run = _run_2048(tmp_path / "run", updates=2)
    for call in (plot_learning_curve, lambda r, **k: plot_compare([r], tmp_path / "c.png", **k)):
        with pytest.raises(ValueError, match="x must be one of steps, episodes, seconds"):
            call(run, x="minutes")
        with pytest.raises(ValueError, match="window must be an integer >= 1"):
            call(run, window=0)
    assert not (run / "learning_curve.png").exists() and not (tmp_path / "c.png").exists()


def test_cli_plot_takes_x_and_window(tmp_path, capsys):
    from renshu import cli

    run = _run_2048(tmp_path / "run")
    out = tmp_path / "episodes.png"
    code = cli.main(["plot", str(run), "--x", "episodes", "--window", "25", "--out", str(out)])
    assert code == 0 and f"wrote {out}" in capsys.readouterr().out
    assert _pixels(out).shape == (980, 1000, 3)  # one run: its learning curve, tile panel too
    with pytest.raises(SystemExit) as exit_:  # argparse's own one-line usage error
        cli.main(["plot", str(run), "--window", "0"])
    assert exit_.value.code == 2 and "--window" in capsys.readouterr().err
