"""Environment names and the command line."""

import json

import pytest
import torch

from renshu import cli
from renshu.envs.registry import make_env
from renshu.envs.specs import resolve


def test_make_env_by_name_and_alias():
    env = make_env("2048", num_envs=8, seed=0, obs="onehot")
    obs, info = env.reset()
    assert obs.shape == (8, 16, 4, 4) and obs.dtype == torch.float32
    assert info["action_mask"].shape == (8, 4)
    assert resolve("game2048").name == "game2048"


def test_unknown_env_lists_known_ones():
    with pytest.raises(ValueError, match="game2048") as e:
        make_env("game2049")
    assert "Did you mean" in str(e.value)


def test_unknown_option_names_valid_ones():
    with pytest.raises(ValueError, match="invalid_move"):
        make_env("game2048", colour="red")


def test_cli_envs_lists_2048(capsys):
    assert cli.main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "game2048" in out and "renshu/Game2048-v0" in out


def test_cli_bench_json(capsys):
    assert cli.main(["bench", "game2048", "--num-envs", "256", "--seconds", "0.2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"env", "num_envs", "steps_per_second", "device"}
    assert result["num_envs"] == 256 and result["device"] == "cpu"
    assert result["steps_per_second"] > 0


def test_cli_bench_unknown_env_is_one_clear_line(capsys):
    assert cli.main(["bench", "nope", "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown environment 'nope'" in err and "Traceback" not in err


def test_cli_rejects_bad_numbers(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "game2048", "--num-envs", "0"])
    assert "positive integer" in capsys.readouterr().err


def test_random_legal_actions_respect_mask():
    gen = torch.Generator().manual_seed(0)
    mask = torch.tensor([[False, True, False, False], [True, False, False, True]]).repeat(500, 1)
    from renshu.envs.base import random_legal_actions

    actions = random_legal_actions(mask, gen)
    assert mask.gather(1, actions[:, None]).all()
    second = actions[1::2]
    assert 0.4 < (second == 0).float().mean().item() < 0.6


def test_cli_record_random_gif(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "game.gif"
    assert cli.main(["record", "--env", "2048", "--out", str(out), "--max-steps", "20"]) == 0
    with Image.open(out) as im:
        assert im.n_frames >= 20


def test_random_legal_actions_uniform_over_legal():
    from renshu.envs.base import random_legal_actions

    gen = torch.Generator().manual_seed(1)
    mask = torch.tensor([[True, False, True, True]]).repeat(30_000, 1)
    counts = torch.bincount(random_legal_actions(mask, gen), minlength=4).float() / 30_000
    assert counts[1] == 0
    # Each legal action 1/3 within 5 binomial sigma (sigma = sqrt(p(1-p)/n) = 0.0027).
    assert ((counts[[0, 2, 3]] - 1 / 3).abs() < 0.014).all(), counts
