"""GRPO: group advantages and the k3 KL estimator against hand computations, same-start groups,
dropped zero-variance groups, the loss and its aggregation, resume through the runner, and bad
input."""

import csv
import json
import math

import gymnasium
import numpy as np
import pytest
import torch

from renshu import cli
from renshu.algos.base import update
from renshu.algos.grpo import GRPO, Episodes, GRPOConfig
from renshu.core.losses import aggregation_weights, grpo_loss
from renshu.core.returns import group_advantages, kl_k3, reward_to_go
from renshu.envs.base import state_index
from renshu.envs.gym import GymEnv
from renshu.envs.registry import make_env
from renshu.runner import LATEST, RunSpec, Trainer, load_trained, resume_run, start_run
from renshu.runner.checkpoint import load_checkpoint

F, T_ = False, True


def _t(rows, dtype=torch.float32):
    return torch.tensor(rows, dtype=dtype)


# -- group advantages -----------------------------------------------------------------------------


def test_group_advantages_of_episode_returns_by_hand():
    # Two groups of three: returns 1, 2, 3 (mean 2, population std sqrt(2/3)) and 5, 5, 5.
    adv, kept = group_advantages(_t([1.0, 2.0, 3.0, 5.0, 5.0, 5.0]), group_size=3)
    s = math.sqrt(2 / 3)
    torch.testing.assert_close(adv, _t([-1 / s, 0.0, 1 / s, 0.0, 0.0, 0.0]))
    assert kept.tolist() == [True, False]  # all-equal returns: no signal, the group drops out


def test_group_advantages_eps_and_batch_normalisation_by_hand():
    # Groups of two: (0, 10) and (4, 6); eps 1 makes the division visible.
    scores = _t([0.0, 10.0, 4.0, 6.0])
    adv, kept = group_advantages(scores, group_size=2, eps=1.0)
    torch.testing.assert_close(adv, _t([-5 / 6, 5 / 6, -1 / 2, 1 / 2]))
    assert kept.tolist() == [True, True]
    # group_size = N: one group, the whole batch (mean 5, std sqrt(13)).
    adv, kept = group_advantages(scores, group_size=4)
    s = math.sqrt((25 + 25 + 1 + 1) / 4)
    torch.testing.assert_close(adv, _t([-5 / s, 5 / s, -1 / s, 1 / s]))
    assert kept.tolist() == [True]


def test_group_advantages_per_step_with_masks_by_hand():
    # One group of two episodes, T = 3: episode 0 has 3 steps, episode 1 only 1.
    scores = _t([[3.0, 1.0], [2.0, 7.0], [1.0, 7.0]])  # 7s are past episode 1's end
    valid = torch.tensor([[T_, T_], [T_, F], [T_, F]])
    adv, kept = group_advantages(scores, group_size=2, valid=valid)
    mean = (3 + 2 + 1 + 1) / 4
    std = math.sqrt(((3 - mean) ** 2 + (2 - mean) ** 2 + 2 * (1 - mean) ** 2) / 4)
    expect = [[(3 - mean) / std, (1 - mean) / std], [(2 - mean) / std, 0.0], [(1 - mean) / std, 0]]
    torch.testing.assert_close(adv, _t(expect))
    assert kept.tolist() == [True]
    # Equal valid scores drop the group even if the invalid entries differ.
    adv, kept = group_advantages(_t([[1.0, 1.0], [1.0, 9.0]]), 2, torch.tensor([[T_, T_], [T_, F]]))
    assert kept.tolist() == [False] and not adv.any()


def test_group_advantages_refuses_a_group_size_that_does_not_divide():
    with pytest.raises(ValueError, match="group_size 4 must divide the number of episodes 6"):
        group_advantages(torch.zeros(6), group_size=4)


def test_reward_to_go_by_hand():
    rewards = _t([[1.0, 2.0], [1.0, 0.0], [1.0, 0.0]])  # episode 1 ended after one step
    torch.testing.assert_close(
        reward_to_go(rewards, gamma=0.5), _t([[1 + 0.5 + 0.25, 2.0], [1.5, 0.0], [1.0, 0.0]])
    )
    torch.testing.assert_close(reward_to_go(rewards, 1.0)[:, 0], _t([3.0, 2.0, 1.0]))


# -- KL k3 ----------------------------------------------------------------------------------------


def test_kl_k3_value_and_gradient_by_hand():
    logp = torch.log(_t([0.5, 0.2])).requires_grad_()
    ref = torch.log(_t([0.25, 0.4]))
    k3 = kl_k3(logp, ref)
    # rho = ref / p: 0.5 and 2.  k3 = rho - log(rho) - 1.
    torch.testing.assert_close(k3, _t([0.5 - math.log(0.5) - 1, 2 - math.log(2) - 1]))
    k3.sum().backward()
    torch.testing.assert_close(logp.grad, _t([1 - 0.5, 1 - 2.0]))  # d k3 / d logp = 1 - rho


def test_kl_k3_matches_the_exact_kl_in_expectation():
    """Weighted by pi over all actions: the value is KL(pi || ref) exactly, and the gradient of
    the loss (samples held fixed, as in GRPO) is the gradient of KL(ref || pi)."""
    torch.manual_seed(0)
    logits = torch.randn(3, 5, requires_grad=True)
    ref_logits = torch.randn(3, 5)
    logp = torch.log_softmax(logits, -1)
    ref = torch.log_softmax(ref_logits, -1)
    p = logp.exp()
    k3 = kl_k3(logp, ref)
    expected_value = (p.detach() * k3).sum(-1)
    exact_forward = (p * (logp - ref)).sum(-1)
    torch.testing.assert_close(expected_value, exact_forward.detach())
    (grad,) = torch.autograd.grad(expected_value.sum(), logits, retain_graph=True)
    exact_reverse = (ref.exp() * (ref - logp)).sum(-1)  # KL(ref || pi)
    (grad_exact,) = torch.autograd.grad(exact_reverse.sum(), logits)
    torch.testing.assert_close(grad, grad_exact)
    assert bool((k3 >= 0).all())


# -- loss and aggregation -------------------------------------------------------------------------


def test_aggregation_weights_by_hand():
    episode = torch.tensor([4, 4, 4, 9])  # a 3-step and a 1-step episode
    torch.testing.assert_close(aggregation_weights(episode, "episode"), _t([1 / 6] * 3 + [1 / 2]))
    torch.testing.assert_close(aggregation_weights(episode, "step"), _t([1 / 4] * 4))
    with pytest.raises(ValueError, match="'episode' or 'step'"):
        aggregation_weights(episode, "token")


def test_grpo_loss_against_a_per_step_loop():
    torch.manual_seed(1)
    n = 7
    logp = torch.log(torch.rand(n) * 0.9 + 0.05).requires_grad_()
    old = logp.detach() + torch.randn(n) * 0.3  # ratios from about 0.5 to 2: some clip
    ref = logp.detach() + torch.randn(n) * 0.2
    adv = torch.randn(n)
    episode = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    lo, hi, beta = 0.2, 0.28, 0.05
    loss, parts = grpo_loss(
        logp, old, adv, aggregation_weights(episode, "episode"), lo, hi, beta, ref
    )
    # The same loss step by step: per-episode means of the per-step terms, then their mean.
    per_episode = {}
    lp = logp.detach().tolist()
    for i in range(n):
        r = math.exp(lp[i] - float(old[i]))
        a = float(adv[i])
        surrogate = min(r * a, min(max(r, 1 - lo), 1 + hi) * a)
        rho = math.exp(float(ref[i]) - lp[i])
        term = -(surrogate - beta * (rho - math.log(rho) - 1))
        per_episode.setdefault(int(episode[i]), []).append(term)
    expected = sum(sum(v) / len(v) for v in per_episode.values()) / len(per_episode)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    ratios = (logp.detach() - old).exp()
    clipped = ((ratios < 1 - lo) | (ratios > 1 + hi)).float().mean()
    assert 0 < float(clipped) < 1  # the example exercises both sides of the clip
    assert float(parts.clipfrac) == pytest.approx(float(clipped))
    assert float(parts.kl_ref) == pytest.approx(float(kl_k3(logp.detach(), ref).mean()))


def test_step_aggregation_weighs_every_step_the_same():
    logp = torch.zeros(4, requires_grad=True)
    adv = _t([1.0, 1.0, 1.0, -3.0])
    episode = torch.tensor([0, 0, 0, 1])
    step, _ = grpo_loss(logp, logp.detach(), adv, aggregation_weights(episode, "step"), 0.2, 0.2)
    per_ep, _ = grpo_loss(
        logp, logp.detach(), adv, aggregation_weights(episode, "episode"), 0.2, 0.2
    )
    assert float(step.detach()) == pytest.approx(-(3 - 3) / 4)  # ratio 1: minus the mean advantage
    assert float(per_ep.detach()) == pytest.approx(
        -(1 + -3) / 2
    )  # the short episode weighs 3x per step


# -- groups really start from the same state ------------------------------------------------------


def _algo(env_name="cartpole", seed=0, **cfg) -> GRPO:
    config = GRPOConfig(**{"group_size": 4, "num_groups": 3, "hidden": (16,), **cfg})
    env = make_env(env_name, num_envs=config.num_envs, seed=seed)
    return GRPO(env, config, seed=seed)


@pytest.mark.parametrize("env_name", ["cartpole", "game2048"])
def test_same_start_groups_start_from_identical_states(env_name):
    algo = _algo(env_name)
    ep = algo.collect(0.0)
    first = ep.obs[0].reshape(3, 4, -1)
    assert torch.equal(first, first[:, :1].expand_as(first))  # within a group: identical
    assert not torch.equal(first[0, 0], first[1, 0])  # across groups: different starts
    # The whole native state, not only the observation, is repeated.
    obs, _ = algo.reset_batch()
    state = algo.env.state
    for g in range(3):
        for m in range(1, 4):
            a, b = state_index(state, 4 * g), state_index(state, 4 * g + m)
            for field in type(state).__dataclass_fields__:
                assert torch.equal(getattr(a, field), getattr(b, field)), field
    # The group's episodes then differ: the policy samples, the game may be stochastic.
    lengths = ep.valid.sum(0).reshape(3, 4)
    assert bool((lengths != lengths[:, :1]).any())


def test_random_start_groups_start_from_different_states():
    ep = _algo(group_start="random").collect(0.0)
    first = ep.obs[0]
    assert len({tuple(row.tolist()) for row in first}) == 12


def test_gymnasium_groups_reset_with_one_seed_and_stay_identical_under_equal_actions():
    env = GymEnv("CartPole-v1", num_envs=6, seed=0)
    obs, _ = env.reset_groups(3, seed=11)
    assert torch.equal(obs[:3], obs[:1].expand(3, -1))
    assert torch.equal(obs[3:], obs[3:4].expand(3, -1))
    assert not torch.equal(obs[0], obs[3])
    reference = gymnasium.make("CartPole-v1")
    ref_obs, _ = reference.reset(seed=12)  # group 1 = seed + 1
    np.testing.assert_allclose(obs[3].numpy(), ref_obs.astype(np.float32))
    for _ in range(5):  # equal actions keep a group in equal states (the seed fixed them)
        obs, *_ = env.step(torch.tensor([1, 1, 1, 0, 0, 0]))
        assert torch.equal(obs[:3], obs[:1].expand(3, -1))
    env.close()


def test_episodes_are_masked_after_their_end_and_counted_once():
    algo = _algo()
    ep = algo.collect(0.0)
    lengths = ep.valid.sum(0)
    # valid steps are a prefix of each column, and each episode ended (cartpole's cap is 500)
    assert bool(ep.finished.all())
    steps = torch.arange(ep.valid.shape[0])[:, None]
    assert torch.equal(ep.valid, steps < lengths[None, :])
    assert ep.valid.shape[0] == int(lengths.max())  # collection stops when the last one ends
    assert torch.equal(ep.rewards.sum(0), lengths.float())  # cartpole: reward 1 per step
    assert torch.equal(ep.stats["length"], lengths)
    before = algo.env_steps
    batch, _ = update(algo, 0.0)
    assert algo.env_steps - before > 0
    assert batch.episodes["return"].numel() == 12


def test_max_rollout_steps_cuts_episodes_and_keeps_them_out_of_the_statistics():
    algo = _algo(max_rollout_steps=5)
    batch, _ = update(algo, 0.0)
    assert algo.env_steps <= 12 * 5
    assert batch.episodes["return"].numel() < 12  # some were still going when cut


# -- zero-variance groups drop out ----------------------------------------------------------------


def _episodes(returns: list[float], length: int = 2) -> Episodes:
    """A hand-made batch: episode i earns returns[i] on its first step, then 0."""
    n = len(returns)
    rewards = torch.zeros(length, n)
    rewards[0] = _t(returns)
    return Episodes(
        obs=torch.zeros(length, n, 4), masks=torch.ones(length, n, 2, dtype=torch.bool),
        actions=torch.zeros(length, n, dtype=torch.int64), logprobs=torch.zeros(length, n),
        rewards=rewards, valid=torch.ones(length, n, dtype=torch.bool),
        finished=torch.ones(n, dtype=torch.bool), stats={},
    )  # fmt: skip


def test_zero_variance_groups_get_no_advantage_and_no_steps():
    algo = _algo(group_size=2, num_groups=2)
    adv, kept = algo.advantages(_episodes([3.0, 3.0, 1.0, 2.0]))
    assert kept.tolist() == [False, False, True, True]
    torch.testing.assert_close(adv, _t([[0.0, 0.0, -1.0, 1.0]] * 2), atol=1e-6, rtol=0)
    # adv_norm=batch: one group of four, nothing dropped
    algo = _algo(group_size=2, num_groups=2, adv_norm="batch")
    adv, kept = algo.advantages(_episodes([3.0, 3.0, 1.0, 2.0]))
    assert bool(kept.all()) and adv[0, 0] > 0 > adv[0, 2]


def test_an_update_whose_groups_all_drop_out_leaves_the_policy_alone():
    # A one-step cap: every CartPole episode returns exactly 1, so every group has zero variance.
    config = GRPOConfig(group_size=4, num_groups=2, hidden=(16,))
    algo = GRPO(make_env("cartpole", num_envs=8, seed=0, max_episode_steps=1), config, seed=0)
    before = [p.detach().clone() for p in algo.policy.parameters()]
    _, metrics = update(algo, 0.0)
    assert metrics["train/groups_kept"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, algo.policy.parameters()))
    # with episodes of varying lengths the same update does change it
    algo = _algo()
    before = [p.detach().clone() for p in algo.policy.parameters()]
    assert update(algo, 0.0)[1]["train/groups_kept"] > 0
    assert not all(torch.equal(a, b) for a, b in zip(before, algo.policy.parameters()))


# -- learning signal ------------------------------------------------------------------------------


@pytest.mark.parametrize("agg", ["episode", "step"])
def test_an_update_raises_the_probability_of_better_episodes_actions(agg):
    algo = _algo(loss_aggregation=agg, update_epochs=1, learning_rate=1e-2)
    gen_state = algo.generator.get_state()
    ep = algo.collect(0.0)
    adv, kept = algo.advantages(ep)
    algo.generator.set_state(gen_state)  # the update collects the very same episodes
    update(algo, 0.0)
    with torch.no_grad():
        logits = algo.policy.logits(ep.obs.flatten(0, 1))
        new = torch.log_softmax(logits, -1).gather(1, ep.actions.reshape(-1, 1)).squeeze(1)
    change = (new - ep.logprobs.flatten())[ep.valid.flatten() & (adv.flatten() != 0)]
    a = adv.flatten()[ep.valid.flatten() & (adv.flatten() != 0)]
    assert float((change * a).sum()) > 0  # steps with positive advantage gained probability


# -- the reference policy -------------------------------------------------------------------------


def test_reference_policy_is_frozen_and_refreshed_on_schedule():
    algo = _algo(beta=0.001, ref_refresh=2)
    initial = [p.detach().clone() for p in algo.ref_policy.parameters()]
    _, m = update(algo, 0.0)
    assert m["train/kl_ref"] >= 0
    assert all(torch.equal(a, b) for a, b in zip(initial, algo.ref_policy.parameters()))
    update(algo, 0.0)  # update 2: reference := policy
    for a, b in zip(algo.ref_policy.parameters(), algo.policy.parameters()):
        assert torch.equal(a, b) and not a.requires_grad
    assert _algo().ref_policy is None  # beta 0: no reference network at all


# -- the runner: resume, checkpoints, CLI ---------------------------------------------------------


@pytest.fixture
def no_final_artefacts(monkeypatch):
    monkeypatch.setattr(Trainer, "finish", lambda self: None)


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in ("wall_seconds", "charts/steps_per_second")}
            for row in csv.DictReader(f)
        ]


SMALL = dict(group_size=4, num_groups=2, hidden=[16], update_epochs=2)


def _spec(**kw) -> RunSpec:
    values = dict(algo="grpo", env="cartpole", seed=3, steps=3000, eval_every=1000,
                  eval_episodes=4, checkpoint_seconds=1e9, animation=False)  # fmt: skip
    values.update(kw)
    return RunSpec(**values)


@pytest.mark.parametrize("config", [SMALL, {**SMALL, "beta": 0.01, "ref_refresh": 3}])
def test_resume_after_interrupt_is_exact(tmp_path, no_final_artefacts, config):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    _, ref = start_run(_spec(), config, run_dir=ref_dir, progress=False)
    assert ref["status"] == "finished" and ref["env_steps"] >= 3000
    _, first = start_run(_spec(), config, run_dir=run_dir, progress=False, stop_after_updates=4)
    assert first["status"] == "interrupted" and first["updates"] == 4
    ckpt = load_checkpoint(run_dir / LATEST)
    assert ckpt["algo"] == "grpo" and ckpt["algo_state"]["updates"] == 4
    assert ("ref_policy" in ckpt["algo_state"]) == ("beta" in config)
    summary = resume_run(run_dir, progress=False)
    assert summary["env_steps"] == ref["env_steps"] and summary["updates"] == ref["updates"]
    assert summary["last_eval"] == ref["last_eval"]
    rows = _rows(run_dir / "metrics.csv")
    assert len(rows) == ref["updates"] and rows == _rows(ref_dir / "metrics.csv")
    assert sum(1 for r in rows if r["eval/mean_return"]) >= 2  # evaluated before and after
    eps = (run_dir / "episodes.csv").read_bytes()
    assert eps == (ref_dir / "episodes.csv").read_bytes()
    assert len(_rows(run_dir / "episodes.csv")) == 8 * ref["updates"]  # one row per episode


def test_checkpoint_reloads_the_trained_policy(tmp_path, no_final_artefacts):
    run_dir, summary = start_run(_spec(steps=1000), SMALL, run_dir=tmp_path / "r", progress=False)
    algo, spec = load_trained(run_dir)
    assert spec.algo == "grpo" and algo.env_steps == summary["env_steps"]
    obs = torch.randn(64, 4)
    trained = torch.load(run_dir / LATEST, weights_only=True)["algo_state"]["policy"]
    fresh = GRPO(make_env("cartpole", num_envs=8), GRPOConfig(**{**SMALL, "hidden": (16,)}))
    fresh.policy.load_state_dict(trained)
    assert torch.equal(algo.act(obs), fresh.act(obs))
    label, probs = algo.action_values(obs)
    assert label == "action probabilities" and probs.shape == (64, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(64))


def test_cli_trains_grpo_on_game2048_with_groups_of_boards(tmp_path, capsys, no_final_artefacts):
    run = tmp_path / "g"
    code = cli.main(["train", "grpo", "game2048", "--steps", "600", "--group-size", "2",
                     "--num-groups", "2", "--num-minibatches", "1", "--hidden", "16",
                     "--eval-episodes", "2", "--run-dir", str(run), "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    assert (
        config["algo_config"]["group_size"] == 2 and config["algo_config"]["group_start"] == "same"
    )
    episodes = _rows(run / "episodes.csv")
    assert len(episodes) >= 4 and all(float(e["score"]) > 0 for e in episodes)
    assert json.loads((run / "summary.json").read_text())["env_steps"] >= 600


def test_cli_help_lists_grpo_fields(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "grpo", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    for flag in (
        "--group-size",
        "--group-start",
        "--beta",
        "--loss-aggregation",
        "--clip-eps-high",
    ):
        assert flag in out
    assert "DeepSeek-R1: 0.001" in out


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, needle",
    [
        (dict(group_size=1), "config field 'group_size' = 1: must be >= 2"),
        (dict(group_start="first"), "config field 'group_start' = 'first': same or random"),
        (dict(loss_aggregation="token"), "'loss_aggregation' = 'token': episode or step"),
        (dict(num_groups=3, num_minibatches=2), "'num_minibatches' = 2: must divide num_groups"),
        (dict(clip_eps=1.5), "'clip_eps' = 1.5"),
        (dict(beta=-1.0), "'beta' = -1.0"),
        (dict(reward="dense"), "'reward' = 'dense': outcome or return_to_go"),
    ],
)
def test_bad_config_values_name_the_field(values, needle):
    with pytest.raises(ValueError) as e:
        GRPOConfig(**values)
    assert needle in str(e.value)


def test_group_size_below_two_is_one_clear_cli_line(tmp_path, capsys):
    code = cli.main(["train", "grpo", "cartpole", "--group-size", "1", "--run-dir",
                     str(tmp_path / "x"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err
    assert "'group_size' = 1: must be >= 2" in err
    assert not (tmp_path / "x").exists()


def test_env_with_the_wrong_number_of_envs_is_refused():
    with pytest.raises(ValueError, match="groups of group_size = 4; the env has num_envs = 6"):
        GRPO(make_env("cartpole", num_envs=6), GRPOConfig(group_size=4, num_groups=2))


def test_continuous_action_space_is_refused_clearly(tmp_path):
    spec = RunSpec(algo="grpo", env="Pendulum-v1", steps=100, animation=False)
    with pytest.raises(ValueError, match="Discrete action spaces only"):
        start_run(spec, {}, run_dir=tmp_path / "p", progress=False)
    assert not (tmp_path / "p").exists()


class _UnseededEnv(gymnasium.Env):
    """Ignores reset's seed: its start state comes from an unseeded generator."""

    observation_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self):
        self._rng = np.random.default_rng()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._rng.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action):
        return self._rng.uniform(-1, 1, 2).astype(np.float32), 1.0, True, False, {}


@pytest.fixture
def unseeded_env_id():
    env_id = "renshu-test/Unseeded-v0"
    gymnasium.register(id=env_id, entry_point=_UnseededEnv, max_episode_steps=10)
    yield env_id
    del gymnasium.registry[env_id]


def test_env_that_cannot_be_reset_to_one_state_by_seed_is_refused(unseeded_env_id, tmp_path):
    config = GRPOConfig(group_size=2, num_groups=2, hidden=(8,))
    with pytest.raises(ValueError, match="cannot be reset to the same state by seed") as e:
        GRPO(GymEnv(unseeded_env_id, num_envs=4), config)
    assert "group_start='random'" in str(e.value)
    spec = RunSpec(algo="grpo", env=unseeded_env_id, steps=100, animation=False)
    with pytest.raises(ValueError, match="cannot be reset to the same state by seed"):
        start_run(spec, dict(group_size=2, num_groups=2), run_dir=tmp_path / "u", progress=False)
    assert not (tmp_path / "u").exists()
    # random-start groups do not need it
    algo = GRPO(GymEnv(unseeded_env_id, num_envs=4), GRPOConfig(**{**config.__dict__,
                "group_start": "random"}))  # fmt: skip
    assert update(algo, 0.0)[0].episodes["length"].tolist() == [1, 1, 1, 1]
