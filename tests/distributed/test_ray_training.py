"""Training on Ray workers: exact remote collection, the learning bar, a killed worker."""

import os
import signal

import pytest
import torch

pytest.importorskip("ray")

from renshu.distributed import RayEnv, RemoteCollector, WorkerPool  # noqa: E402
from renshu.envs.registry import make_env  # noqa: E402
from renshu.envs.specs import resolve  # noqa: E402
from renshu.runner import LATEST, RunSpec, Trainer, load_trained, start_run  # noqa: E402
from renshu.runner.checkpoint import load_checkpoint  # noqa: E402
from renshu.runner.evaluate import evaluate, summarize  # noqa: E402


@pytest.fixture(autouse=True)
def _ray(ray_session):
    return ray_session


def _remote_and_local(algo_name: str, config, seed: int = 3):
    """The same algorithm built on one Ray worker and locally (same seeds)."""
    import functools

    from renshu.algos import get_algorithm

    cls = get_algorithm(algo_name)
    factory = functools.partial(make_env, "cartpole", device="cpu")
    pool = WorkerPool(algo_name, config, factory, [config.num_envs], seed=seed)
    env = RayEnv(pool)
    remote = cls(env, config, seed=seed)
    local = cls(make_env("cartpole", num_envs=config.num_envs, seed=seed), config, seed=seed)
    return remote, RemoteCollector(remote, env), local, env


def test_one_worker_collects_exactly_what_a_local_run_collects():
    """A worker runs the algorithm's own collection: with the same seed and weights, one Ray
    worker's PPO rollouts equal a local collector's, tensor for tensor, over two iterations."""
    from renshu.algos.ppo import PPOConfig

    config = PPOConfig(num_envs=4, num_steps=16, hidden=(16,))
    remote, collect, local, env = _remote_and_local("ppo", config)
    try:
        for _ in range(2):
            a, b = collect(0.0), local.collect(0.0)
            for name in ("obs", "actions", "logprobs", "values", "rewards", "terminated",
                         "truncated", "masks", "final_values", "next_value"):  # fmt: skip
                torch.testing.assert_close(getattr(a, name), getattr(b, name), msg=name)
            with torch.no_grad():  # change the weights: the workers must get the new ones
                for p_remote, p_local in zip(remote.policy.parameters(), local.policy.parameters()):
                    p_remote.mul_(0.5)
                    p_local.mul_(0.5)
    finally:
        env.close()


def test_grpo_on_one_worker_matches_local_episodes():
    """GRPO's same-start groups, played remotely, equal the local collection (same seed)."""
    from renshu.algos.grpo import GRPOConfig

    config = GRPOConfig(group_size=4, num_groups=2, hidden=(16,))
    remote, collect, local, env = _remote_and_local("grpo", config)
    try:
        a, b = collect(0.0), local.collect(0.0)
        for name in ("obs", "actions", "logprobs", "rewards", "valid", "finished"):
            torch.testing.assert_close(getattr(a, name), getattr(b, name), msg=name)
        assert int(a.valid.sum()) > 8  # real episodes were played
    finally:
        env.close()


def test_dqn_on_one_worker_stores_what_a_local_run_stores():
    """DQN's workers act with the learner's Q-network and epsilon; the learner writes their
    transitions to its buffer. Without gradient steps (so the generators draw the same
    sequence), one worker's replay buffer equals a local run's after epsilon-greedy play."""
    from renshu.algos.dqn import DQNConfig

    config = DQNConfig(num_envs=4, hidden=(16,), learning_starts=24, train_freq=16,
                       gradient_steps=0, buffer_size=256, target_update_interval=32)  # fmt: skip
    remote, collect, local, env = _remote_and_local("dqn", config)
    try:
        progress = 0.05  # epsilon 0.525: both random and greedy actions
        for _ in range(5):
            a, b = collect(progress), local.collect(progress)
            remote.learn(a, progress)
            local.learn(b, progress)
            for key in ("return", "length"):
                torch.testing.assert_close(a.episodes.get(key), b.episodes.get(key))
        assert remote.env_steps == local.env_steps == 80 and remote.added == 80
        for name in ("actions", "rewards", "terminal", "done"):
            torch.testing.assert_close(getattr(remote.buffer, name), getattr(local.buffer, name))
        for part in ("obs", "mask"):
            torch.testing.assert_close(remote.buffer.data[part], local.buffer.data[part])
        torch.testing.assert_close(remote.buffer.final["obs"], local.buffer.final["obs"])
        torch.testing.assert_close(_flat(remote.target), _flat(local.target))
    finally:
        env.close()


def _flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_dqn_two_workers_solves_cartpole(tmp_path):
    """Bar (the local DQN test's): mean return >= 475 over 100 greedy evaluation episodes for
    at least 2 of 3 seeds, with the transitions collected by 2 Ray workers (4 envs each)."""
    solved = []
    for seed in (0, 1, 2):
        spec = _spec(seed, 100_000, algo="dqn", eval_every=5_000)
        _, summary = start_run(spec, {}, run_dir=tmp_path / f"dqn{seed}", progress=False)
        ev = summary["last_eval"]
        solved.append(summary["target_reached_steps"] is not None and ev["mean_return"] >= 475)
        if sum(solved) >= 2:
            break
    assert sum(solved) >= 2, solved


def _spec(seed: int, steps: int, **kw) -> RunSpec:
    values = dict(
        algo="ppo", env="cartpole", seed=seed, steps=steps, target_return=475.0,
        eval_every=10_000, eval_episodes=100, animation=False, threads=1, backend="ray",
        num_workers=2,
    )  # fmt: skip
    values.update(kw)
    return RunSpec(**values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_two_workers_solves_cartpole(tmp_path, seed):
    """Bar (the local PPO test's): mean return >= 475 over 100 greedy evaluation episodes,
    for each of 3 seeds, with the rollouts collected by 2 Ray workers (half the preset's envs
    each)."""
    run_dir, summary = start_run(_spec(seed, 150_000), {}, run_dir=tmp_path / "run", progress=False)
    assert summary["target_reached_steps"] is not None, summary["last_eval"]
    assert summary["last_eval"]["episodes"] == 100
    assert summary["last_eval"]["mean_return"] >= 475.0
    log = (run_dir / "log.txt").read_text()
    half = resolve("cartpole").preset("ppo")["num_envs"] // 2
    assert "ray backend: 2 workers" in log and f"envs per worker [{half}, {half}]" in log


def test_killed_workers_are_replaced_and_training_completes(tmp_path, monkeypatch):
    """Worker 1's process is SIGKILLed before the 3rd iteration's collection and worker 0 is
    killed through Ray before the 6th: both are restarted, the run reaches its budget, the log
    says what happened, and the final checkpoint loads and plays."""
    kills = {3: 1, 6: 0}
    seen = {"collect": 0, "pids": []}
    original = WorkerPool.call

    def call(self, method, args=None):
        if method == "collect":
            seen["collect"] += 1
            victim = kills.get(seen["collect"])
            if victim == 1:
                seen["pids"].append(self.info[1]["pid"])
                os.kill(self.info[1]["pid"], signal.SIGKILL)
            elif victim == 0:
                seen["pids"].append(self.info[0]["pid"])
                self.ray.kill(self.handles[0], no_restart=True)
        return original(self, method, args)

    monkeypatch.setattr(WorkerPool, "call", call)
    steps = 20 * 256  # 20 updates of 8 envs x 32 steps
    spec = _spec(0, steps, target_return=None, eval_every=steps, eval_episodes=20)
    trainer_pools = []
    original_init = Trainer.__init__

    def init(self, *a, **k):
        original_init(self, *a, **k)
        trainer_pools.append(self.algo.env.pool)

    monkeypatch.setattr(Trainer, "__init__", init)
    run_dir, summary = start_run(spec, {}, run_dir=tmp_path / "run", progress=False)

    assert summary["status"] == "finished"
    assert summary["env_steps"] == steps and summary["updates"] == 20
    assert seen["collect"] == 20
    pool = trainer_pools[0]
    assert pool.restarts == [1, 1]
    log = (run_dir / "log.txt").read_text()
    assert log.count(" died (") == 2, log
    assert "ray worker 1 died (" in log and "ray worker 0 died (" in log
    assert log.count("restarted as pid") == 2
    for pid in seen["pids"]:  # the replacements are new processes
        assert f"restarted as pid {pid} " not in log

    data = load_checkpoint(run_dir / LATEST)
    assert data["algo_state"]["env_steps"] == steps
    algo, loaded_spec = load_trained(run_dir)
    assert loaded_spec.backend == "ray"
    env = make_env("cartpole", num_envs=8, seed=5)
    result = summarize(evaluate(lambda o, m: algo.act(o, m), env, 8, seed=5))
    assert result["episodes"] == 8 and result["mean_return"] > 9.0


def test_interrupted_ray_run_resumes_to_its_budget(tmp_path):
    """A Ray run stopped after 5 updates continues from its checkpoint with new workers."""
    from renshu.runner import resume_run

    spec = _spec(0, 4096, target_return=None, eval_every=4096, eval_episodes=10)
    run_dir, summary = start_run(
        spec, {}, run_dir=tmp_path / "run", progress=False, stop_after_updates=5
    )
    assert summary["status"] == "interrupted" and summary["env_steps"] == 5 * 256
    summary = resume_run(run_dir, progress=False)
    assert summary["status"] == "finished" and summary["env_steps"] == 4096
    assert load_checkpoint(run_dir / LATEST)["algo_state"]["env_steps"] == 4096
    assert (run_dir / "log.txt").read_text().count("ray backend: 2 workers") == 2
