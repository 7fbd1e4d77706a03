"""Atari ids and options through the EnvSpec: typed ALE options, v4 ids with v4 settings."""

import json

import pytest

pytest.importorskip("ale_py")

from renshu import cli  # noqa: E402
from renshu.envs.registry import make_env  # noqa: E402
from renshu.envs.specs import resolve  # noqa: E402


def test_ale_options_are_typed_from_their_text():
    spec = resolve("ALE/Breakout-v5")
    typed = spec.parse_options(
        {"repeat_action_probability": "0", "full_action_space": "false", "frameskip": "3"}
    )
    assert typed == {"repeat_action_probability": 0.0, "full_action_space": False,
                     "frameskip": 3}  # fmt: skip
    env = make_env("ALE/Breakout-v5", num_envs=2, seed=0, full_action_space="true", frameskip="3")
    assert env.num_actions == 18  # the full action set, from the string "true"
    env.close()


@pytest.mark.parametrize(
    "option, text, words",
    [
        ("repeat_action_probability", "x", ["must be a float in [0, 1]", "'x'"]),
        ("repeat_action_probability", "1.5", ["must be a float in [0, 1]", "1.5"]),
        ("full_action_space", "maybe", ["must be true or false", "'maybe'"]),
        ("noop_max", "-1", ["must be an int >= 0", "-1"]),
        ("frames", "4", ["unknown env option 'frames'", "Did you mean 'frameskip'"]),
    ],
)
def test_a_bad_ale_option_is_one_line_naming_it(option, text, words, tmp_path, capsys):
    argv = ["train", "dqn", "ALE/Breakout-v5", "--steps", "64", "--no-progress",
            "--run-dir", str(tmp_path / "r"), "--env-option", f"{option}={text}"]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("renshu train: error:") and err.count("\n") == 1 and "Traceback" not in err
    )
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "r").exists()


def test_v4_ids_run_on_ale_with_v4_settings_and_say_so(tmp_path, capsys):
    spec = resolve("BreakoutNoFrameskip-v4")
    assert spec.family == "atari" and "repeat_action_probability=0" in spec.note
    assert spec.options[0].name == "repeat_action_probability" and spec.options[0].default == 0.0
    assert resolve("Breakout-v4").note and resolve("ALE/Breakout-v5").note == ""
    run = tmp_path / "v4"
    code = cli.main(["train", "dqn", "BreakoutNoFrameskip-v4", "--steps", "64", "--no-progress",
                     "--run-dir", str(run), "--eval-episodes", "1", "--animation", "false",
                     "--env-option", "max_episode_steps=20", "--learning-starts", "32",
                     "--buffer-size", "256", "--num-envs", "2"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert config["env"] == "BreakoutNoFrameskip-v4"
    assert "v4 settings on ALE" in (run / "log.txt").read_text()
    assert cli.main(["envs", "BreakoutNoFrameskip-v4"]) == 0
    assert "v4 settings on ALE (repeat_action_probability=0" in capsys.readouterr().out


def test_unknown_atari_games_list_close_ids():
    with pytest.raises(ValueError, match="Did you mean 'BreakoutNoFrameskip-v4'"):
        resolve("BrekoutNoFrameskip-v4")
    with pytest.raises(ValueError, match="Did you mean 'ALE/Breakout-v5'"):
        resolve("ALE/Brekout-v5")
