"""Agents with encoder features: the collector runs the encoder once per env step and never
while learning; features are stored as float16; runs with an encoder resume exactly and are
rebuilt by eval and record; bad input is one clear error."""

import csv
import json

import pytest
import torch

from renshu import cli
from renshu.algos.base import update
from renshu.algos.dqn import DQN, DQNConfig
from renshu.algos.ppo import PPO, PPOConfig
from renshu.core.nets import FeatureTorso
from renshu.encoders import base as encoders_base
from renshu.encoders.base import Encoder, EveryK
from renshu.envs.registry import make_env
from renshu.runner import RunSpec, load_trained, resume_run, start_run

FEATURES = 6


class ProjectionEncoder(Encoder):
    """A stand-in frozen model: a fixed random projection of the flattened observation.
    Counts its forward calls and rows, and notes each batch size."""

    name = "projection"
    out_dim = FEATURES
    device = torch.device("cpu")

    def __init__(self, seed: int = 0):
        self.calls = 0
        self.rows = 0
        self.batch_sizes: list[int] = []
        self.seed = int(seed)

    @torch.no_grad()
    def encode(self, obs: torch.Tensor, done: torch.Tensor | None = None) -> torch.Tensor:
        x = obs.reshape(obs.shape[0], -1).float()
        weight = torch.randn(x.shape[1], FEATURES, generator=torch.Generator().manual_seed(7))
        self.calls += 1
        self.rows += obs.shape[0]
        self.batch_sizes.append(obs.shape[0])
        return x @ weight + self.seed


class CountCuts:
    """Wraps ``env.step`` to count episodes cut by the time limit (done, not terminated)."""

    def __init__(self, env):
        self.cuts = 0
        self._step = env.step
        env.step = self

    def __call__(self, actions):
        out = self._step(actions)
        _, _, terminated, _, info = out
        self.cuts += int((info["done"] & ~terminated).sum())
        return out


def _env(num_envs: int = 4, limit: int = 5):
    """The grid world with a 5-step limit, so that time-limit cuts happen often."""
    return make_env("gridworld", num_envs=num_envs, seed=0, max_episode_steps=limit)


def test_dqn_encodes_once_per_env_step_and_never_while_learning():
    env = _env()
    encoder = ProjectionEncoder()
    config = DQNConfig(
        num_envs=4, train_freq=8, gradient_steps=3, batch_size=16, learning_starts=16,
        buffer_size=400, hidden=(16,), target_update_interval=32,
    )  # fmt: skip
    algo = DQN(env, config, seed=0, encoder=encoder)
    assert isinstance(algo.q.torso, FeatureTorso)
    assert (encoder.calls, encoder.rows) == (0, 0)  # the env starts at the first collection
    counter = CountCuts(env)
    train_round = algo._train_round
    during_training = []

    def counted_round(beta):
        before = encoder.rows
        out = train_round(beta)
        during_training.append(encoder.rows - before)
        return out

    algo._train_round = counted_round
    for _ in range(10):
        update(algo, 0.0)
    vector_steps = 10 * algo.vector_steps
    assert algo.grad_steps == 9 * 3 and during_training == [0] * 9  # from update 2 on
    assert counter.cuts > 0  # final observations were needed
    # One batch of the 4 envs per env step; the cut rows' final observations on top, only them.
    assert encoder.batch_sizes.count(4) == 1 + vector_steps
    assert encoder.rows == 4 * (1 + vector_steps) + counter.cuts
    # The buffer holds the features (float16) of the observations it holds.
    buf = algo.buffer
    stored = buf.data["feat"][: buf.size].flatten(0, 1)
    assert stored.dtype == torch.float16
    obs = buf.data["obs"][: buf.size].flatten(0, 1)
    expected = ProjectionEncoder().encode(obs).to(torch.float16)
    assert torch.equal(stored, expected)
    batch = buf.sample(32, torch.Generator().manual_seed(0))
    assert batch.next_obs["feat"].dtype == torch.float16
    recomputed = ProjectionEncoder().encode(batch.next_obs["obs"]).to(torch.float16)
    assert torch.equal(batch.next_obs["feat"], recomputed)  # incl. final observations of cuts


def test_ppo_encodes_once_per_env_step_and_never_while_learning():
    env = _env()
    encoder = ProjectionEncoder()
    config = PPOConfig(num_envs=4, num_steps=8, num_minibatches=4, update_epochs=3, hidden=(16,))
    algo = PPO(env, config, seed=0, encoder=encoder)
    counter = CountCuts(env)
    cut_calls = 0
    for i in range(3):
        before = encoder.calls
        update(algo, 0.0)
        first = int(i == 0)  # the reset observations, encoded by the first collection
        # 8 env steps, plus at most one call for the final observations of the rollout's cuts
        cut_calls += encoder.calls - before - 8 - first
        assert encoder.calls - before - first in (8, 9)
    assert counter.cuts > 0 and cut_calls >= 1
    # 4 x (1 + 24) rows for the env batch, and the cut rows once: the 3 x 3 x 4 minibatch steps
    # ran no encoder.
    assert encoder.rows == 4 * (1 + 3 * 8) + counter.cuts
    rollout = algo.collector.collect(algo.policy)
    assert rollout.features.shape == (8, 4, FEATURES)
    assert rollout.features.dtype == torch.float16
    expected = ProjectionEncoder().encode(rollout.obs.flatten(0, 1)).to(torch.float16)
    assert torch.equal(rollout.features.flatten(0, 1), expected)


def test_acting_outside_training_encodes_afresh():
    """Evaluation and recording encode their own observations (no every-k reuse)."""
    encoder = EveryK(ProjectionEncoder(), 4)
    algo = DQN(_env(), DQNConfig(num_envs=4, hidden=(16,)), seed=0, encoder=encoder)
    obs = make_env("gridworld", num_envs=3).reset(seed=1)[0]
    before = encoder.rows
    q = algo.action_values(obs)[1]
    assert q.shape == (3, 4) and encoder.rows == before + 3
    features = ProjectionEncoder().encode(obs).to(torch.float16)
    assert torch.allclose(q, algo.q(obs, features))
    assert algo.act(obs).shape == (3,)


def test_without_an_encoder_nothing_changes():
    algo = DQN(_env(), DQNConfig(num_envs=4, hidden=(16,)), seed=0)
    assert "feat" not in algo.buffer.data and not isinstance(algo.q.torso, FeatureTorso)
    assert "feat" not in algo.state_dict()
    ppo = PPO(_env(), PPOConfig(num_envs=4, num_steps=4, num_minibatches=1), seed=0)
    assert ppo.collector.collect(ppo.policy).features.shape == (4, 4, 0)


# ---------------------------------------------------------------------------------------------
# Runs: config.json, exact resume, eval and record rebuild the encoder.


@pytest.fixture
def projection_registered(monkeypatch):
    """The stand-in encoder under the name "projection", as `--encoder projection`."""
    monkeypatch.setitem(encoders_base.ENCODERS, "projection", f"{__name__}:ProjectionEncoder")


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in ("wall_seconds", "charts/steps_per_second")}
            for row in csv.DictReader(f)
        ]


@pytest.mark.parametrize(
    "algo, config",
    [
        ("dqn", dict(num_envs=4, train_freq=16, gradient_steps=2, batch_size=16, hidden=[16],
                     learning_starts=64, buffer_size=600, target_update_interval=64)),
        ("ppo", dict(num_envs=4, num_steps=16, num_minibatches=2, update_epochs=2, hidden=[16])),
    ],
)  # fmt: skip
def test_resume_with_an_encoder_is_exact(algo, config, projection_registered, tmp_path):
    """every_k=3 keeps features between steps: its state is part of the checkpoint too."""
    spec = dict(
        algo=algo, env="gridworld", steps=640, eval_every=320, eval_episodes=4,
        checkpoint_seconds=1e9, animation=False, encoder="projection",
        encoder_options={"every_k": "3", "seed": "2"},
    )  # fmt: skip
    ref, _ = start_run(RunSpec(**spec), config, run_dir=tmp_path / "ref", progress=False)
    cut, summary = start_run(
        RunSpec(**spec), config, run_dir=tmp_path / "cut", progress=False, stop_after_updates=4
    )
    assert summary["status"] == "interrupted"
    saved = json.loads((cut / "config.json").read_text())["run"]
    assert saved["encoder"] == "projection"
    assert saved["encoder_options"] == {"every_k": "3", "seed": "2"}
    resume_run(cut, progress=False)
    assert _rows(cut / "metrics.csv") == _rows(ref / "metrics.csv")
    assert (cut / "episodes.csv").read_bytes() == (ref / "episodes.csv").read_bytes()
    trained, spec_back = load_trained(cut)
    assert isinstance(trained.encoder, EveryK) and trained.encoder.inner.seed == 2
    assert spec_back.encoder == "projection"


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_cli_eval_and_record_rebuild_the_encoder(projection_registered, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "train", "dqn", "gridworld", "--steps", "256", "--run-dir", run, "--no-progress",
        "--encoder", "projection", "--encoder-option", "seed=1", "--eval-episodes", "4",
        "--num-envs", "4", "--learning-starts", "64", "--hidden", "16",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["run"]["encoder_options"] == {"seed": "1"}
    code, out, _ = run_cli(capsys, "eval", run, "--episodes", "8", "--json")
    result = json.loads(out)
    assert code == 0 and result["episodes"] == 8 and 0.0 <= result["success_rate"] <= 1.0
    code, _, err = run_cli(capsys, "record", run, "--out", tmp_path / "a.gif", "--max-steps", "5")
    assert code == 0 and (tmp_path / "a.gif").stat().st_size > 0, err
    # --explain needs a vision-language encoder
    code, _, err = run_cli(capsys, "record", run, "--out", tmp_path / "b.gif", "--explain")
    assert_clear_error(code, err, "--explain needs a run trained with --encoder hf-vlm",
                       "--encoder projection")  # fmt: skip
    # a resume cannot change the encoder
    code, _, err = run_cli(capsys, "train", "--resume", run, "--encoder", "hf-text")
    assert_clear_error(code, err, "--encoder cannot change it")


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["a2c", "gridworld", "--encoder", "hf-text"], ["a2c does not take encoder features",
                                                        "dqn, ppo"]),
        (["dqn", "gridworld", "--encoder", "hf-txt"], ["unknown encoder 'hf-txt'",
                                                       "Did you mean 'hf-text'"]),
        (["dqn", "gridworld", "--encoder-model", "x"], ["go with --encoder NAME"]),
        (["dqn", "gridworld", "--encoder", "hf-text", "--encoder-option", "cache"],
         ["--encoder-option takes KEY=VALUE"]),
        (["dqn", "gridworld", "--encoder", "projection", "--encoder-option", "colour=red"],
         ["unknown option(s) ['colour'] for encoder 'projection'"]),
        (["ppo", "gridworld", "--encoder", "hf-text", "--backend", "ray"],
         ["--encoder runs with --backend local"]),
    ],
)  # fmt: skip
def test_bad_encoder_flags_are_one_clear_error(
    argv, needles, projection_registered, tmp_path, capsys
):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *argv, "--run-dir", run, "--steps", "64",
                           "--no-progress")  # fmt: skip
    assert_clear_error(code, err, *needles)
    assert not run.exists()
