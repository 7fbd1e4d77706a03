"""Env steps per second with rollouts on 1 and 2 Ray workers, against SB3's SubprocVecEnv.

Two environments whose steps cost real CPU time, where spreading envs over processes pays:

* ``slow``: Gymnasium ``CartPole-v1`` behind a wrapper that busy-waits ``--spin-ms`` (1 ms) per
  step -- CPU time, like a heavy simulator (a sleep would scale on any number of cores);
* ``atari``: ``ALE/Breakout-v5`` with DeepMind preprocessing (frame skip 4, 84x84 grey, stacks
  of 4): renshu's ``AtariEnv`` with one emulator thread per worker; SB3 gets
  ``gymnasium.make("ALE/Breakout-v5", obs_type="grayscale")`` (frame skip 4 built in), an
  84x84 Pillow resize and ``FrameStackObservation(4)`` per env.

Rows, all with the same total number of envs on the same cores (``--envs``, 8, for the slow
env; ``--atari-envs``, 32, for Atari):

* ``renshu local``: one process, PPO's own ``collect`` (no Ray), for reference;
* ``renshu ray, W workers``: ``renshu.distributed`` -- each worker a Ray actor holding
  ``envs / W`` envs and a collecting copy of PPO; one measured unit is a whole remote
  collection (``RemoteCollector(algo, env)(progress)``): the learner sends the acting state,
  every worker collects ``--num-steps`` steps of its envs *with the policy* (a forward pass per
  step: the 64x64 MLP for CartPole, the Nature CNN for Atari) and the learner receives and
  joins the rollout tensors;
* ``SB3 SubprocVecEnv``: one process per env, stepped with uniformly random actions (no
  policy forward pass, which favours SB3).

Every measurement runs ``--seconds`` after one warm-up collection (or 20 warm-up steps).
Workers and the learner run torch on 1 thread each; Ray is started with as many CPUs as cores.
The target of the issue: **2 workers >= 1.7x one worker**.

Why Atari runs 32 envs (16 per worker) by default: each vector step of a worker costs a fixed
part whatever its number of envs (the Nature CNN's forward pass, about 0.6 ms of it mostly
reading the 3136x512 layer's 6.4 MB of weights, plus the vector env's own overhead) and a part
per env (emulation, preprocessing, the CNN's per-frame work). Splitting 8 envs into 2 x 4 pays
the fixed part twice as often per env step, which caps two workers near 1.7x one worker on two
cores before any transfer; with 16 envs per worker the cap is near 1.9x. ``--atari-envs 8`` and
``--atari-envs 16`` show the trend (docs/distributed.md has the figures).

    python benchmarks/ray_scaling.py                    # both envs (about 4 minutes)
    python benchmarks/ray_scaling.py --envs-to-run slow --seconds 3
    python benchmarks/ray_scaling.py --envs-to-run atari --atari-envs 8
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, fmt_rate, fmt_ratio, version  # noqa: E402


class SpinWrapper(gym.Wrapper):
    """Busy-waits ``ms`` milliseconds of CPU time in every step."""

    def __init__(self, env: gym.Env, ms: float):
        super().__init__(env)
        self.seconds = ms / 1000.0

    def step(self, action):
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return self.env.step(action)


def slow_gym_env(spin_ms: float) -> gym.Env:
    return SpinWrapper(gym.make("CartPole-v1"), spin_ms)


class Resize84(gym.ObservationWrapper):
    """Greyscale frames resized to 84x84 with Pillow (what AtariPreprocessing does with cv2)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 255, (84, 84), np.uint8)

    def observation(self, frame):
        from PIL import Image

        return np.asarray(Image.fromarray(frame).resize((84, 84), Image.BILINEAR))


def atari_gym_env() -> gym.Env:
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", obs_type="grayscale")  # frame skip 4, sticky actions
    return gym.wrappers.FrameStackObservation(Resize84(env), 4)


def slow_tensor_env(num_envs: int, seed: int, spin_ms: float):
    """renshu's side of ``slow``: a GymEnv (one process) of spinning CartPoles."""
    from renshu.envs.gym import GymEnv

    return GymEnv(
        "CartPole-v1", num_envs=num_envs, seed=seed,
        wrappers=functools.partial(SpinWrapper, ms=spin_ms),
    )  # fmt: skip


def atari_tensor_env(num_envs: int, seed: int):
    from renshu.envs.registry import make_env

    return make_env("ALE/Breakout-v5", num_envs=num_envs, seed=seed, num_threads=1)


def ppo_config(kind: str, envs: int, num_steps: int):
    from renshu.algos.ppo import PPOConfig
    from renshu.envs.specs import resolve

    values = resolve("ALE/Breakout-v5").preset("ppo") if kind == "atari" else {}
    values.update(num_envs=envs, num_steps=num_steps, num_minibatches=1)
    return PPOConfig(**values)


def _spin_count(seconds: float) -> int:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
    return n


def free_cores(processes: int, seconds: float = 1.0) -> float:
    """How many cores' worth of CPU ``processes`` spinning processes get together, relative to
    one alone: about ``processes`` on an idle machine, less when others use the cores."""
    import multiprocessing as mp

    alone = _spin_count(seconds)
    with mp.get_context("fork").Pool(processes) as pool:
        together = sum(pool.map(_spin_count, [seconds] * processes))
    return together / alone


def _timed(step, seconds: float) -> tuple[int, float]:
    """Calls ``step()`` (returning env steps done) for ``seconds``: (steps, wall seconds)."""
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += step()
    return steps, time.perf_counter() - start


def measure_local(factory, config, seconds: float) -> dict:
    from renshu.algos.ppo import PPO

    algo = PPO(factory(num_envs=config.num_envs, seed=0), config, seed=0)
    per = config.num_envs * config.num_steps
    algo.collect(0.0)  # warm-up
    steps, wall = _timed(lambda: (algo.collect(0.0), per)[1], seconds)
    algo.env.close()
    return {"steps_per_second": steps / wall, "processes": 1, "threads": torch.get_num_threads()}


def measure_ray(factory, config, workers: int, seconds: float) -> dict:
    from renshu.algos.ppo import PPO
    from renshu.distributed import RayEnv, RemoteCollector, WorkerPool, split

    pool = WorkerPool("ppo", config, factory, split(config.num_envs, workers), seed=0, threads=1)
    try:
        env = RayEnv(pool)
        collect = RemoteCollector(PPO(env, config, seed=0), env)
        per = config.num_envs * config.num_steps
        collect(0.0)  # warm-up
        steps, wall = _timed(lambda: (collect(0.0), per)[1], seconds)
        threads = [d["threads"] for d in pool.info]
    finally:
        pool.close()
    return {"steps_per_second": steps / wall, "processes": workers, "threads": threads}


def measure_sb3(make_one, envs: int, seconds: float) -> dict:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    vec = SubprocVecEnv([make_one] * envs)
    try:
        rng = np.random.default_rng(0)
        n = vec.action_space.n
        vec.reset()
        for _ in range(20):
            vec.step(rng.integers(0, n, size=envs))

        def step():
            vec.step(rng.integers(0, n, size=envs))
            return envs

        steps, wall = _timed(step, seconds)
    finally:
        vec.close()
    return {"steps_per_second": steps / wall, "processes": envs, "threads": 1}


def run(kind: str, args) -> list[dict]:
    if kind == "slow":
        factory = functools.partial(slow_tensor_env, spin_ms=args.spin_ms)
        make_one = functools.partial(slow_gym_env, args.spin_ms)
        title = f"CartPole-v1 + {args.spin_ms:g} ms CPU per step"
    else:
        factory, make_one, title = atari_tensor_env, atari_gym_env, "ALE/Breakout-v5"
    envs = args.envs if kind == "slow" else args.atari_envs
    title = f"{title}, {envs} envs"
    config = ppo_config(kind, envs, args.num_steps)
    rows = [{"env": title, "impl": "renshu local (no Ray)",
             **measure_local(factory, config, args.seconds)}]  # fmt: skip
    for workers in (1, 2):
        result = measure_ray(factory, config, workers, args.seconds)
        name = f"renshu ray, {workers} worker{'s' if workers > 1 else ''}"
        rows.append({"env": title, "impl": name, **result})
    rows.append({"env": title, "impl": "SB3 SubprocVecEnv (random actions)",
                 **measure_sb3(make_one, envs, args.seconds)})  # fmt: skip
    one = rows[1]["steps_per_second"]
    sb3 = rows[-1]["steps_per_second"]
    for row in rows:
        row["x_one_worker"] = row["steps_per_second"] / one
        row["x_sb3"] = row["steps_per_second"] / sb3
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs-to-run", default="slow,atari", help="slow, atari or both")
    p.add_argument(
        "--envs", type=int, default=8, help="slow env: envs in total (split over workers) (8)"
    )
    p.add_argument(
        "--atari-envs", type=int, default=32, help="Atari: envs in total (split over workers) (32)"
    )
    p.add_argument("--num-steps", type=int, default=32, help="steps per env per collection")
    p.add_argument("--seconds", type=float, default=5.0, help="measured time per row")
    p.add_argument("--spin-ms", type=float, default=1.0, help="CPU milliseconds per slow step")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    free = free_cores(cores)
    from renshu.distributed import connect

    connect(None, num_cpus=cores)
    rows = []
    for kind in args.envs_to_run.split(","):
        rows += run(kind.strip(), args)

    import ray

    ray.shutdown()
    print(
        f"\n{cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"torch {torch.__version__}, ray {version('ray')}, SB3 {version('stable-baselines3')}, "
        f"ale-py {version('ale-py')}; envs in total as in each row's name, {args.num_steps} "
        f"steps per collection, {args.seconds:g} s per row; before the run: load average "
        f"{load:.2f}, {cores} spinning processes got {free:.2f} cores' worth of CPU\n"
    )
    print("| env | implementation | processes | torch threads | steps/s | x 1 worker | x SB3 |")
    print("|---|---|---:|---|---:|---:|---:|")
    for r in rows:
        threads = r["threads"]
        threads = "+".join(map(str, threads)) if isinstance(threads, list) else str(threads)
        print(
            f"| {r['env']} | {r['impl']} | {r['processes']} | {threads} | "
            f"{fmt_rate(r['steps_per_second'])} | {fmt_ratio(r['x_one_worker'])} | "
            f"{fmt_ratio(r['x_sb3'])} |"
        )
    for env in dict.fromkeys(r["env"] for r in rows):
        two = next(r for r in rows if r["env"] == env and r["impl"].endswith("2 workers"))
        verdict = "met" if two["x_one_worker"] >= 1.7 else "NOT met"
        print(f"\n{env}: 2 workers = {fmt_ratio(two['x_one_worker'])} one worker "
              f"(target >= 1.7x: {verdict})")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
