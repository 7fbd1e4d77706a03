"""The TensorEnv contract, one test per rule, parametrized over every native env (and its
observation modes) and over Gymnasium and Atari ids: what every algorithm relies on.

Each case is built through ``make_env`` by name, as a run builds it.
"""

import numpy as np
import pytest
import torch

from renshu.envs.base import TensorEnv, random_legal_actions
from renshu.envs.registry import make_env
from renshu.envs.specs import NATIVE, resolve

N = 6
CASES = {
    "game2048": {},
    "game2048-onehot": {"obs": "onehot"},
    "game2048-noop": {"invalid_move": "noop"},
    "cartpole": {},
    "gridworld": {},
    "gridworld-rgb": {"obs": "rgb"},
    "CartPole-v1": {},
    "ALE/Breakout-v5": {"max_episode_steps": 40},
}


def _name(case: str) -> str:
    return case.split("-")[0] if case.split("-")[0] in NATIVE else case


def _make(case: str, num_envs: int = N, seed: int = 0, **kw) -> TensorEnv:
    if case.startswith("ALE/"):
        pytest.importorskip("ale_py")
    return make_env(_name(case), num_envs=num_envs, seed=seed, **{**CASES[case], **kw})


def _rollout(env: TensorEnv, steps: int, seed: int = 0):
    """``steps`` steps of random legal actions; every step's outputs."""
    generator = torch.Generator().manual_seed(seed)
    obs, info = env.reset(seed=seed)
    out = []
    for _ in range(steps):
        actions = random_legal_actions(info["action_mask"], generator)
        step = env.step(actions)
        out.append((obs, actions, *step))
        obs, info = step[0], step[4]
    return out


def test_every_native_env_is_covered():
    covered = {_name(case) for case in CASES}
    assert set(NATIVE) <= covered


@pytest.mark.parametrize("case", list(CASES))
def test_reset_and_step_shapes_dtypes_and_spaces(case):
    env = _make(case)
    assert isinstance(env, TensorEnv)
    space = env.observation_space
    obs, info = env.reset(seed=0)
    assert obs.shape == (N, *space.shape) and obs.device == env.device
    assert obs.dtype == torch.from_numpy(np.zeros((), dtype=space.dtype)).dtype
    assert space.contains(obs[0].cpu().numpy())
    mask = info["action_mask"]
    assert mask.shape == (N, env.num_actions) and mask.dtype == torch.bool
    assert bool(mask.any(1).all())  # every env has a legal action
    assert len(env.action_meanings) == env.num_actions
    for obs, actions, nxt, reward, terminated, truncated, info in _rollout(env, 30):
        assert nxt.shape == obs.shape and nxt.dtype == obs.dtype
        assert reward.shape == (N,) and reward.dtype == torch.float32
        for flag in (terminated, truncated, info["done"]):
            assert flag.shape == (N,) and flag.dtype == torch.bool
        assert torch.equal(info["done"], terminated | truncated)
        assert not bool((terminated & truncated).any())
        assert info["final_obs"].shape == obs.shape
        assert set(info["episode"]) >= {"return", "length"}
        for value in info["episode"].values():
            assert value.shape == (N,)
        assert bool(mask.gather(1, actions.unsqueeze(1)).all())  # random_legal_actions obeyed
        mask = info["action_mask"]
    env.close()


@pytest.mark.parametrize("case", list(CASES))
def test_auto_reset_final_obs_and_episode_statistics(case):
    """A finished episode's last observation is in final_obs, the returned observation starts
    the next episode, and the episode's return and length are reported exactly once."""
    env = _make(case, max_episode_steps=12)  # every episode ends within the rollout
    running = torch.zeros(N)
    lengths = torch.zeros(N, dtype=torch.int64)
    ended = 0
    extras = set(resolve(_name(case)).extras)
    for _, _, nxt, reward, _, _, info in _rollout(env, 40, seed=1):
        running += reward.cpu()
        lengths += 1
        done = info["done"].cpu()
        ep = {k: v.cpu() for k, v in info["episode"].items()}
        assert extras <= set(ep)  # the extras the spec promises
        if bool(done.any()):
            ended += int(done.sum())
            torch.testing.assert_close(ep["return"][done], running[done])
            assert torch.equal(ep["length"][done], lengths[done])
            assert bool((lengths[done] <= 12).all())
        kept = ~done
        # where nothing ended, final_obs is the returned observation
        assert torch.equal(info["final_obs"][kept.to(env.device)], nxt[kept.to(env.device)])
        running *= kept
        lengths *= kept
    assert ended >= N  # every env finished at least one episode
    env.close()


@pytest.mark.parametrize("case", list(CASES))
def test_same_seed_same_episodes(case):
    a = _rollout(_make(case), 25, seed=3)
    b = _rollout(_make(case, seed=9), 25, seed=3)  # reset(seed) decides, not the build seed
    for x, y in zip(a, b):
        assert torch.equal(x[2], y[2]) and torch.equal(x[3], y[3])


@pytest.mark.parametrize("case", list(CASES))
def test_state_dict_round_trip_continues_the_same_episodes(case):
    """Envs that can save their games continue identically from a state_dict; the others say
    so with an empty one (a resumed run then starts new episodes)."""
    env = _make(case)
    _rollout(env, 7)
    saved = env.state_dict()
    if resolve(_name(case)).family == "native":
        assert saved  # native games always can
    if not saved:
        with pytest.raises(ValueError, match="cannot load a saved env state"):
            env.load_state_dict({"state": {}})
        return
    actions = torch.zeros(N, dtype=torch.int64)
    steps_a = [env.step(actions) for _ in range(5)]
    other = _make(case, seed=123)
    other.reset(seed=77)
    other.load_state_dict(saved)
    steps_b = [other.step(actions) for _ in range(5)]
    for a, b in zip(steps_a, steps_b):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("case", ["game2048", "cartpole", "gridworld-rgb", "ALE/Breakout-v5"])
def test_frames_draw_rgb_images(case):
    env = _make(case, num_envs=2, render=True)
    env.reset(seed=0)
    image = env.frame(1)("a header")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    env.step(torch.zeros(2, dtype=torch.int64))
    assert env.frame(0, final=True)(None).shape[2] == 3
    env.close()


@pytest.mark.parametrize("case", list(CASES))
def test_groups_start_from_one_state_where_supported(case):
    env = _make(case, num_envs=4)
    if not env.supports_groups:
        with pytest.raises(ValueError, match="group_start='random'"):
            env.reset_groups(2, seed=0)
        return
    obs, _ = env.reset_groups(2, seed=5)
    assert torch.equal(obs[0], obs[1]) and torch.equal(obs[2], obs[3])
