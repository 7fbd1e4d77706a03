"""Commentary on any agent (`record --explain --encoder hf-vlm`): a tiny random LLaVA-NeXT built
from a config (renshu.encoders.tiny), offline, comments on the env's colour pictures beside a
random, an untrained or a trained agent."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers / huggingface_hub load

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

pytest.importorskip("transformers", reason="needs the llm extra: renshu[llm]")

from renshu import cli  # noqa: E402
from renshu.encoders.hf_vlm import HFVisionLanguageEncoder  # noqa: E402
from renshu.encoders.tiny import save_tiny_clip, save_tiny_llava_next  # noqa: E402
from renshu.envs import render  # noqa: E402
from renshu.runner import RunSpec  # noqa: E402
from renshu.runner.evaluate import make_eval_env  # noqa: E402
from renshu.runner.record import (  # noqa: E402
    commentator,
    describe_frames,
    explainer,
    record_episode,
    untrained_agent,
)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return save_tiny_llava_next(tmp_path_factory.mktemp("tiny-llava-next"))


@pytest.fixture
def seen(monkeypatch):
    """What the VLM is given (each ``describe`` batch) and what the GIF's panels show; the real
    model still runs."""
    log = {"batches": [], "panels": []}
    describe, overlay = HFVisionLanguageEncoder.describe, render.overlay_panel

    def spy_describe(self, obs, prompt=None, max_new_tokens=32):
        answers = describe(self, obs, prompt=prompt, max_new_tokens=max_new_tokens)
        log["batches"].append((obs.clone(), answers))
        return answers

    def spy_overlay(frame, lines, bars=None, **kwargs):
        log["panels"].append((list(lines), dict(bars or {})))
        return overlay(frame, lines, bars, **kwargs)

    monkeypatch.setattr(HFVisionLanguageEncoder, "describe", spy_describe)
    monkeypatch.setattr(render, "overlay_panel", spy_overlay)
    return log


def _cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _first_frame(env: str, seed: int) -> np.ndarray:
    """The env's own picture of the recorded episode's first step (no header)."""
    e = make_eval_env(RunSpec(env=env, seed=seed).resolved(), 1, "cpu", render=True)
    e.reset(seed=seed)
    try:
        return e.frame(0)(None)
    finally:
        e.close()


def test_random_agent_on_2048_with_vlm_commentary(llava, seen, tmp_path, capsys):
    """2048's observations are 16 exponents; the VLM gets the coloured board instead, once per
    shown frame in one batch, and its answers are on the panels."""
    gif = tmp_path / "random.gif"
    code, out, err = _cli(
        capsys, "record", "--env", "2048", "--policy", "random", "--encoder", "hf-vlm",
        "--encoder-model", llava, "--encoder-option", "device=cpu", "--explain", "--out", gif,
        "--max-steps", "6", "--explain-tokens", "3", "--seed", "4",
    )  # fmt: skip
    assert code == 0 and f"wrote {gif}: 6 steps" in out, err
    [(batch, answers)] = seen["batches"]
    assert batch.dtype == torch.uint8 and batch.shape[0] == 6 and batch.shape[-1] == 3
    first = _first_frame("game2048", 4)
    assert torch.equal(batch[0], torch.from_numpy(first))  # the board as drawn, in colour
    assert batch.shape[1:3] == first.shape[:2] and min(first.shape[:2]) > 84
    assert (batch[..., 0] != batch[..., 2]).any()  # colour, not grey
    shown = [lines for lines, bars in seen["panels"] if bars]
    assert len(shown) == 6
    for lines, answer in zip(shown, answers):
        assert lines[0] == "random policy"
        assert " ".join(lines[2:-1]).startswith(f"VLM: {answer or '(no answer)'}"[:20])
        assert lines[-1] == "action probabilities"
    with Image.open(gif) as image:
        assert image.n_frames == 6 + 1  # the steps and the held end (one longer GIF frame)


def test_untrained_agent_with_commentary_and_a_prompt(llava, seen, tmp_path, capsys):
    gif = tmp_path / "untrained.gif"
    code, out, err = _cli(
        capsys, "record", "--env", "cartpole", "--policy", "untrained", "--algo", "dqn",
        "--encoder", "hf-vlm", "--encoder-model", llava, "--encoder-option", "device=cpu",
        "--explain", "--explain-prompt", "what is in this image?", "--out", gif,
        "--max-steps", "4", "--explain-tokens", "2",
    )  # fmt: skip
    assert code == 0 and gif.stat().st_size > 0, err
    shown = [(lines, bars) for lines, bars in seen["panels"] if bars]
    assert [lines[0] for lines, _ in shown] == ["dqn (untrained)"] * len(shown) and shown
    assert all(lines[-1] == "Q-values" and set(bars) == {"left", "right"} for lines, bars in shown)
    batch = seen["batches"][0][0]
    assert torch.equal(batch[0], torch.from_numpy(_first_frame("cartpole", 0)))
    # the prompt given is the one asked
    enc = HFVisionLanguageEncoder(llava, device="cpu", prompt="what is in this image?")
    assert seen["batches"][0][1] == enc.describe(batch, max_new_tokens=2)


def test_untrained_agent_is_the_fresh_network_of_its_seed():
    spec = RunSpec(algo="ppo", env="cartpole", seed=3).resolved()
    a, b = untrained_agent(spec), untrained_agent(spec)
    for p, q in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(p, q)
    other = untrained_agent(RunSpec(algo="ppo", env="cartpole", seed=4).resolved())
    assert not all(
        torch.equal(p, q)
        for p, q in zip(a.policy.parameters(), other.policy.parameters(), strict=True)
    )
    assert a.env_steps == 0


def test_describe_frames_batches_by_size_and_keeps_the_order(llava):
    enc = HFVisionLanguageEncoder(llava, device="cpu")
    gen = np.random.default_rng(0)
    small = [gen.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(2)]
    large = gen.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    frames = [small[0], large, small[1]]
    expected = [enc.describe(torch.from_numpy(f)[None], max_new_tokens=3)[0] for f in frames]
    calls = enc.calls
    assert describe_frames(enc, frames, max_new_tokens=3) == expected
    assert enc.calls == calls  # generation does not count as feature forward passes


def test_a_trained_runs_own_vlm_comments_on_the_picture(llava, seen, tmp_path):
    """A run trained with --encoder hf-vlm explains the env's picture too (here the grid world's
    rendered grid, not its 84x84 observation)."""
    from renshu.algos.dqn import DQN, DQNConfig
    from renshu.encoders import make_encoder
    from renshu.envs.registry import make_env

    spec = RunSpec(algo="dqn", env="gridworld", env_options={"obs": "rgb"}, encoder="hf-vlm",
                   encoder_model=llava).resolved()  # fmt: skip
    env = make_env("gridworld", num_envs=2, seed=0, obs="rgb")
    encoder = make_encoder("hf-vlm", model=llava, device="cpu")
    algo = DQN(env, DQNConfig(num_envs=2, hidden=(16,), learning_starts=8, batch_size=4), seed=0,
               encoder=encoder)  # fmt: skip
    record_episode(algo, spec, tmp_path / "trained.gif", seed=1, max_steps=3,
                   explain=explainer(algo, spec, max_new_tokens=2))  # fmt: skip
    batch = seen["batches"][-1][0]
    picture = _first_frame("gridworld", 1)
    assert picture.shape != (84, 84, 3) and torch.equal(batch[0], torch.from_numpy(picture))


def test_commentary_errors_are_one_clear_line(llava, tmp_path, capsys):
    clip = save_tiny_clip(tmp_path / "clip")
    capsys.readouterr()  # (its progress bars)
    gif = tmp_path / "x.gif"
    cases = [
        (["--explain"], "needs a commentator: --encoder hf-vlm --encoder-model DIR"),
        (["--encoder", "hf-vlm", "--encoder-model", llava], "add --explain"),
        (["--encoder-model", llava, "--explain"], "go with --encoder NAME"),
        (["--encoder", "hf-vlm", "--explain"], "needs a model: --encoder-model"),
        (["--encoder", "hf-image", "--encoder-model", clip, "--explain"], "gives features only"),
        (["--encoder", "hf-vision", "--explain"], "unknown encoder 'hf-vision'"),
        (["--policy", str(tmp_path / "nowhere")], "--policy takes random, untrained or a RUN"),
        (["--policy", "untrained", "--algo", "sarsa"], "sarsa"),
        (["--algo", "dqn"], "--algo picks the agent of --policy untrained"),
        ([str(tmp_path), "--policy", "random"], "give a RUN directory or --policy, not both"),
    ]
    for argv, needle in cases:
        code, _, err = _cli(capsys, "record", "--env", "cartpole", "--out", gif, *argv)
        assert code == 2 and "Traceback" not in err and err.strip().count("\n") == 0, (argv, err)
        assert needle in err, (argv, err)
    assert not gif.exists()
    assert callable(commentator(HFVisionLanguageEncoder(llava, device="cpu")))
