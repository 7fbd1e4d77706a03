"""renshu's batched games as Gymnasium vector envs (renshu.interop.gymnasium): make_vec with the
vector entry point, Gymnasium's SAME_STEP conventions (checked against SyncVectorEnv step by
step), Gymnasium's vector wrappers, masks, seeding, options, bad input, and a CleanRL-style PPO
loop that learns the grid world through it."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env, data_equivalence
from gymnasium.utils.passive_env_checker import data_shares_objects
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import DictInfoToList, RecordEpisodeStatistics
from torch import nn

import renshu  # noqa: F401  (registers the Gymnasium ids)
from renshu.envs import game2048 as g
from renshu.interop.gymnasium import GYM_IDS, TensorVectorEnv, make_vector_env

IDS = sorted(GYM_IDS)


def vector(env_id, num_envs, **kwargs):
    return gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
    )


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_builds_one_batched_engine(env_id):
    envs = vector(env_id, 8)
    assert isinstance(envs.unwrapped, TensorVectorEnv) and envs.num_envs == 8
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    single = gym.make(env_id)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.action_space == gym.spaces.MultiDiscrete([single.action_space.n] * 8)
    obs, info = envs.reset(seed=0)
    assert obs in envs.observation_space
    assert info["action_mask"].shape == (8, single.action_space.n)
    assert info["action_mask"].dtype == np.int8
    envs.action_space.seed(0)
    for _ in range(20):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert obs in envs.observation_space
        assert reward.shape == terminated.shape == truncated.shape == (8,)
        assert terminated.dtype == truncated.dtype == np.bool_
    # make_vec without a mode picks the vector entry point; "sync" builds Python copies.
    assert isinstance(gym.make_vec(env_id, num_envs=2).unwrapped, TensorVectorEnv)
    sync = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync")
    assert isinstance(sync, gym.vector.SyncVectorEnv)
    sync.reset(seed=0)
    sync.step(sync.action_space.sample())


@pytest.mark.parametrize("env_id", ["renshu/CartPole-v0", "renshu/GridWorld-v0"])
def test_single_game_entry_points_pass_gymnasium_env_checker(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs in env.observation_space and info["action_mask"].dtype == np.int8


def test_grid_world_matches_sync_vector_env_step_for_step():
    """With slip=0 the grid world is deterministic, so renshu's batched engine and Gymnasium's
    own SyncVectorEnv (SAME_STEP) over the single-game env must agree on every array, the
    final observations and statistics included, under the same random actions."""
    n = 12
    ours = RecordEpisodeStatistics(vector("renshu/GridWorld-v0", n, slip=0.0))
    sync = RecordEpisodeStatistics(
        gym.make_vec(
            "renshu/GridWorld-v0", num_envs=n, vectorization_mode="sync", slip=0.0,
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        )
    )  # fmt: skip
    (obs_a, info_a), (obs_b, info_b) = ours.reset(seed=0), sync.reset(seed=0)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(info_a["action_mask"], info_b["action_mask"])
    rng = np.random.default_rng(0)
    ended = truncations = 0
    for _ in range(300):
        actions = rng.integers(0, 4, size=n)
        a, b = ours.step(actions), sync.step(actions)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        ia, ib = a[4], b[4]
        assert ("final_obs" in ia) == ("final_obs" in ib)
        if "final_obs" in ia:
            np.testing.assert_array_equal(ia["_final_obs"], ib["_final_obs"])
            assert data_equivalence(ia["final_obs"], ib["final_obs"])
            fa, fb = ia["final_info"], ib["final_info"]
            for key in ("success", "_success"):
                np.testing.assert_array_equal(fa[key], fb[key])
            np.testing.assert_array_equal(ia["_final_info"], ib["_final_info"])
            # Our own per-episode statistics equal RecordEpisodeStatistics' on both envs.
            np.testing.assert_allclose(fa["episode"]["r"], ia["episode"]["r"], rtol=1e-6, atol=1e-5)
            np.testing.assert_array_equal(fa["episode"]["l"], ia["episode"]["l"])
            np.testing.assert_allclose(ia["episode"]["r"], ib["episode"]["r"], rtol=1e-6, atol=1e-5)
            ended += int(ia["_final_obs"].sum())
            truncations += int(a[3].sum())
        np.testing.assert_array_equal(ia["action_mask"], ib["action_mask"])
    assert ended > 50 and truncations > 0  # both kinds of episode end were compared
    assert list(ours.return_queue) == pytest.approx(list(sync.return_queue), abs=1e-5)


def test_record_episode_statistics_on_2048():
    envs = RecordEpisodeStatistics(vector("renshu/Game2048-v0", 64), buffer_length=1000)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    running = np.zeros(64)
    finished = 0
    for _ in range(400):
        _, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        running += reward
        if "episode" in info:
            done = info["_episode"]
            np.testing.assert_array_equal(done, terminated | truncated)
            np.testing.assert_allclose(info["episode"]["r"][done], running[done])
            final = info["final_info"]
            # 2048's reward is the merge score: return == score; max_tile is a real tile.
            np.testing.assert_array_equal(final["score"][done], running[done])
            assert set(final["max_tile"][done].tolist()) <= {2**k for k in range(2, 16)}
            finished += int(done.sum())
            running[done] = 0
    assert finished >= 50 and len(envs.return_queue) == finished


def test_dict_info_to_list_wrapper():
    envs = DictInfoToList(vector("renshu/CartPole-v0", 4))
    _, infos = envs.reset(seed=0)
    assert len(infos) == 4 and infos[0]["action_mask"].tolist() == [1, 1]
    for _ in range(100):
        _, _, terminated, truncated, infos = envs.step(np.ones(4, dtype=np.int64))
        done = terminated | truncated
        if done.any():
            i = int(np.flatnonzero(done)[0])
            assert infos[i]["final_obs"].shape == (4,)
            assert infos[i]["final_info"]["episode"]["l"] == infos[i]["final_info"]["episode"]["r"]
            return
    pytest.fail("always pushing right should end an episode within 100 steps")


def test_2048_action_mask_is_the_legal_moves_of_the_observation():
    envs = vector("renshu/Game2048-v0", 256)
    obs, info = envs.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(100):
        legal = g.legal_moves(g.board_from_exponents(obs)).numpy()
        np.testing.assert_array_equal(info["action_mask"], legal.astype(np.int8))
        # a random legal move per game (every game here has one)
        noise = rng.random(legal.shape) * legal
        obs, _, _, _, info = envs.step(noise.argmax(1))
    assert (info["action_mask"].sum(1) < 4).any()  # some moves were illegal: the mask is real
    noop = vector("renshu/Game2048-v0", 8, invalid_move="noop")
    assert noop.reset(seed=0)[1]["action_mask"].tolist() == [[1, 1, 1, 1]] * 8


def test_seeding_is_repeatable():
    def rollout(seed, then_unseeded=False):
        envs = vector("renshu/Game2048-v0", 16)
        out = [envs.reset(seed=seed)[0]]
        if then_unseeded:
            out.append(envs.reset()[0])
        for t in range(50):
            out.append(envs.step(np.full(16, t % 4))[0])
        return np.stack(out)

    np.testing.assert_array_equal(rollout(3), rollout(3))
    np.testing.assert_array_equal(rollout(3, True), rollout(3, True))
    assert not np.array_equal(rollout(3), rollout(4))
    envs = vector("renshu/Game2048-v0", 4)
    with pytest.raises(ValueError, match="one generator drives all the games"):
        envs.reset(seed=[0, 1, 2, 3])


def test_returned_data_is_never_reused():
    """Gymnasium's own identity check: no two calls share an array."""
    envs = vector("renshu/CartPole-v0", 8)
    calls = [envs.reset(seed=0)]
    for _ in range(40):  # long enough for some episode to end
        obs, *_, info = envs.step(np.ones(8, dtype=np.int64))
        calls.append((obs, info))
    assert any("final_obs" in info for _, info in calls)
    for i in range(len(calls)):
        for j in range(i + 1, len(calls)):
            assert not data_shares_objects(calls[i][0], calls[j][0])
            assert not data_shares_objects(calls[i][1], calls[j][1])


def test_torch_backend_gives_the_same_games_as_tensors():
    a = vector("renshu/Game2048-v0", 32)
    b = vector("renshu/Game2048-v0", 32, backend="torch")
    oa, ia = a.reset(seed=5)
    ob, ib = b.reset(seed=5)
    assert isinstance(ob, torch.Tensor) and ob.dtype == torch.uint8
    assert ib["action_mask"].dtype == torch.bool
    np.testing.assert_array_equal(oa, ob.numpy())
    rng = np.random.default_rng(5)
    ended = 0
    for _ in range(300):
        actions = rng.integers(0, 4, size=32)
        ra, rb = a.step(actions), b.step(torch.as_tensor(actions))
        for x, y in zip(ra[:4], rb[:4]):
            assert isinstance(y, torch.Tensor)
            np.testing.assert_array_equal(x, y.numpy())
        info_t = rb[4]
        assert info_t["final_obs"].shape == (32, 4, 4)  # always there: no host sync
        if "final_obs" in ra[4]:
            done = ra[4]["_final_obs"]
            np.testing.assert_array_equal(info_t["_final_obs"].numpy(), done)
            np.testing.assert_array_equal(
                np.stack(ra[4]["final_obs"][done]), info_t["final_obs"].numpy()[done]
            )
            np.testing.assert_array_equal(
                ra[4]["final_info"]["score"], info_t["final_info"]["score"].numpy()
            )
            ended += int(done.sum())
    assert ended > 0


def test_render_rgb_array():
    envs = vector("renshu/GridWorld-v0", 3, render_mode="rgb_array")
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 3 and frames[0].dtype == np.uint8 and frames[0].shape[2] == 3
    assert vector("renshu/GridWorld-v0", 3).render() is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"obs": "pixels"}, "obs.* must be one of exponent, onehot, log2, raw, got 'pixels'"),
        ({"colour": "red"}, "unknown env option 'colour' for game2048.*Valid options: obs"),
        ({"backend": "jax"}, "backend must be one of numpy, torch, got 'jax'"),
        ({"render_mode": "human"}, "render_mode must be one of rgb_array or None"),
    ],
)
def test_bad_options_name_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vector("renshu/Game2048-v0", 4, **kwargs)


def test_bad_reset_options_and_actions():
    envs = vector("renshu/Game2048-v0", 4)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['start'\].*valid: board"):
        envs.reset(options={"start": 1})
    cartpole = vector("renshu/CartPole-v0", 4)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['board'\].*valid: none"):
        cartpole.reset(options={"board": np.zeros((4, 4))})
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        envs.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 3\]; env 2 got 7"):
        envs.step(np.array([0, 1, 7, 2]))
    with pytest.raises(ValueError, match="integer dtype"):
        envs.step(np.zeros(4))
    with pytest.raises(ValueError, match="integer array"):
        envs.step([None] * 4)
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        make_vector_env("game2048", 0)


def test_import_renshu_does_not_import_sb3():
    code = "import sys, renshu; print('stable_baselines3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- a CleanRL-style PPO loop on the vector env ------------------------------------------------


def ppo_gridworld(total_steps: int, seed: int) -> nn.Module:
    """PPO as CleanRL's ppo.py writes it, on gymnasium.make_vec's numpy arrays. SAME_STEP
    autoreset: a truncated episode is bootstrapped from info["final_obs"]."""
    torch.manual_seed(seed)
    num_envs, num_steps, epochs, minibatches, lr = 16, 32, 4, 4, 2.5e-3
    gamma, lam, clip = 0.99, 0.95, 0.2
    envs = vector("renshu/GridWorld-v0", num_envs)
    obs_dim, n_actions = envs.single_observation_space.shape[0], envs.single_action_space.n

    def mlp(out: int, std: float) -> nn.Sequential:
        net = nn.Sequential(
            nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, out)
        )
        nn.init.orthogonal_(net[-1].weight, std)
        nn.init.zeros_(net[-1].bias)
        return net

    actor, critic = mlp(n_actions, 0.01), mlp(1, 1.0)
    params = [*actor.parameters(), *critic.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr, eps=1e-5)
    obs_b = torch.zeros(num_steps, num_envs, obs_dim)
    act_b = torch.zeros(num_steps, num_envs, dtype=torch.long)
    logp_b, rew_b, done_b, val_b = (torch.zeros(num_steps, num_envs) for _ in range(4))
    obs = torch.as_tensor(envs.reset(seed=seed)[0])
    updates = total_steps // (num_envs * num_steps)
    for update in range(updates):
        optimizer.param_groups[0]["lr"] = lr * (1 - update / updates)
        for t in range(num_steps):
            with torch.no_grad():
                dist = torch.distributions.Categorical(logits=actor(obs))
                action = dist.sample()
                value = critic(obs).squeeze(1)
            next_obs, reward, terminated, truncated, info = envs.step(action.numpy())
            reward = torch.as_tensor(reward)
            cut = np.flatnonzero(truncated)
            if cut.size:
                with torch.no_grad():
                    last = torch.as_tensor(np.stack(info["final_obs"][cut]))
                    reward[cut] += gamma * critic(last).squeeze(1)
            obs_b[t], act_b[t], logp_b[t], val_b[t] = obs, action, dist.log_prob(action), value
            rew_b[t] = reward
            done_b[t] = torch.as_tensor(terminated | truncated, dtype=torch.float32)
            obs = torch.as_tensor(next_obs)
        with torch.no_grad():
            next_value = critic(obs).squeeze(1)
        advantages = torch.zeros_like(rew_b)
        running = torch.zeros(num_envs)
        for t in reversed(range(num_steps)):
            following = next_value if t == num_steps - 1 else val_b[t + 1]
            alive = 1.0 - done_b[t]
            delta = rew_b[t] + gamma * following * alive - val_b[t]
            running = delta + gamma * lam * alive * running
            advantages[t] = running
        returns = advantages + val_b
        batch = num_envs * num_steps
        b_obs, b_act, b_logp = obs_b.view(batch, -1), act_b.view(batch), logp_b.view(batch)
        b_adv, b_ret = advantages.view(batch), returns.view(batch)
        for _ in range(epochs):
            for idx in torch.randperm(batch).view(minibatches, -1):
                dist = torch.distributions.Categorical(logits=actor(b_obs[idx]))
                ratio = (dist.log_prob(b_act[idx]) - b_logp[idx]).exp()
                adv = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)
                policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
                value_loss = 0.5 * (critic(b_obs[idx]).squeeze(1) - b_ret[idx]).pow(2).mean()
                loss = policy_loss + 0.5 * value_loss - 0.01 * dist.entropy().mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, 0.5)
                optimizer.step()
    return actor


def evaluate_gridworld(policy, episodes: int = 500) -> tuple[float, float]:
    """Mean return and success rate of the first ``episodes`` episodes (100 envs at once)."""
    envs = RecordEpisodeStatistics(vector("renshu/GridWorld-v0", 100), buffer_length=episodes)
    obs, _ = envs.reset(seed=123)
    successes = []
    while len(envs.return_queue) < episodes:
        obs, _, _, _, info = envs.step(policy(obs))
        if "final_info" in info:
            successes.extend(info["final_info"]["success"][info["_final_info"]].tolist())
    return float(np.mean(list(envs.return_queue)[:episodes])), float(np.mean(successes[:episodes]))


def test_cleanrl_style_ppo_learns_the_grid_world_through_the_vector_env():
    """Bar: after 16,384 steps the greedy policy's mean return over 500 episodes is >= 0.65
    and it reaches the goal in >= 95% of them (optimal: 0.745 and 98.6%, by value iteration;
    uniformly random actions: about -1.5 and a third)."""
    rng = np.random.default_rng(0)
    random_return, random_success = evaluate_gridworld(lambda o: rng.integers(0, 4, len(o)))
    actor = ppo_gridworld(total_steps=16_384, seed=0)
    with torch.no_grad():
        mean_return, success = evaluate_gridworld(
            lambda o: actor(torch.as_tensor(o)).argmax(1).numpy()
        )
    assert random_return < -1.0 and random_success < 0.5
    assert mean_return >= 0.65 and success >= 0.95, (mean_return, success)
