"""GRPO on CartPole: renshu against the simplified per-step original, and an ablation.

**Speed table.** Wall-clock and episodes until the *original program's* stop rule, 3 seeds,
all implementations in the same run (interleaved per seed), one torch thread each:

* ``original (per-step)``: the simplified CartPole GRPO people copy, re-implemented here as
  written, one step at a time: Gymnasium ``CartPole-v1`` capped at 200 steps; policy MLP
  4-64-2 with ReLU (PyTorch's default initialisation), Adam with lr 1e-3; a "group" is 5
  consecutive episodes from random starts (the first reset seeded, the others continuing the
  env's generator), played one step and one network forward at a time; reward = episode return
  / 200; advantage = (reward - mean) / (population std + 1e-8) over the 5; then 20 update
  iterations on the group, each recomputing the softmax probabilities step by step in a Python
  loop, with per-step loss ``-clip(ratio, 0.8, 1.2) * advantage`` (no min with the unclipped
  term, no KL), averaged over each episode's steps and then over the 5 episodes. Stop rule:
  every 20 groups (100 episodes), stop if the mean return of the last group is > 195.
* ``renshu GRPO, original's settings``: ``renshu.algos.grpo.GRPO`` on renshu's batched
  ``cartpole`` (CartPole-v1's dynamics) capped at 200 steps, set up like the original: one
  group of 5 random-start episodes per update (played side by side), the same 4-64-2 ReLU
  network (renshu's orthogonal initialisation), lr 1e-3, 20 iterations of clip 0.2, episode
  aggregation, no KL, no gradient clipping. Same stop rule: every 100 episodes (20 updates),
  the mean return of the last group > 195. What differs in the algorithm: renshu takes the
  PPO/GRPO ``min(r A, clip(r) A)``.
* ``renshu GRPO, preset``: renshu's CartPole preset (``renshu.envs.specs``:
  ``resolve("cartpole").preset("grpo")``, 4 groups of 8 same-start episodes per update, 4
  iterations) on the same 200-step ``cartpole``. Each time the episode count passes a multiple
  of 100, the stop rule is checked on the last group (the last 8 episodes of the update).

Seconds are training wall-clock from the first episode to the check that passes (building the
network and env excluded on every side); episodes are the episodes played until then. The
"x less wall-clock" column is the original's median seconds over the row's.

**Ablation table** (``--ablation``, on by default): the 2 x 2 x 2 combinations of
same-start / random-start groups, beta 0 / 0.001 (k3 KL to the initial policy) and episode /
step loss aggregation, everything else the CartPole preset, each trained through renshu's
runner on ``cartpole`` (CartPole-v1: 500-step cap) until the mean return of 100 greedy
evaluation episodes reaches 475 (evaluated every 10,000 env steps, evaluation time included),
3 seeds each. Env steps count the steps of the episodes played.

    python benchmarks/grpo_cartpole.py                 # speed table + ablation (~20 minutes)
    python benchmarks/grpo_cartpole.py --no-ablation   # speed table only
    python benchmarks/grpo_cartpole.py --quick         # 1 seed, smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

from _common import cpu_model, fmt_ratio, set_threads, version  # benchmarks/_common.py

CAP = 200  # the original's episode cap
GROUP = 5  # the original's group: 5 consecutive episodes
ITERATIONS = 20  # the original's update iterations per group
CHECK_EVERY = 100  # episodes between stop-rule checks (20 groups)
STOP_MEAN = 195.0  # the stop rule: mean return of the last group > 195


@dataclass
class Result:
    impl: str
    seed: int
    reached: bool
    episodes: int  # episodes played until the passing check (or in all)
    seconds: float  # wall-clock until then
    steps: int  # env steps until then


# ---------------------------------------------------------------------------------------------
# The original simplified GRPO, one step at a time.


def run_original(seed: int, max_episodes: int) -> Result:
    import gymnasium as gym
    import torch
    from torch import nn

    torch.manual_seed(seed)
    env = gym.make("CartPole-v1", max_episode_steps=CAP)
    policy = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    first_reset = True

    def play_episode():
        nonlocal first_reset
        state, _ = env.reset(seed=seed) if first_reset else env.reset()
        first_reset = False
        states, actions, old_probs, total = [], [], [], 0.0
        done = False
        while not done:
            s = torch.tensor(state, dtype=torch.float32)
            with torch.no_grad():
                probs = torch.softmax(policy(s), dim=-1)
            action = torch.distributions.Categorical(probs).sample().item()
            states.append(s)
            actions.append(action)
            old_probs.append(probs[action].item())
            state, reward, terminated, truncated, _ = env.step(action)
            total += reward
            done = terminated or truncated
        return states, actions, old_probs, total

    episodes, steps, groups = 0, 0, 0
    start = time.perf_counter()
    while episodes < max_episodes:
        group = [play_episode() for _ in range(GROUP)]
        episodes += GROUP
        steps += sum(len(g[0]) for g in group)
        rewards = torch.tensor([g[3] / CAP for g in group])
        advantages = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + 1e-8)
        for _ in range(ITERATIONS):
            episode_losses = []
            for (states, actions, old_probs, _), adv in zip(group, advantages):
                step_losses = []
                for s, a, old in zip(states, actions, old_probs):
                    probs = torch.softmax(policy(s), dim=-1)
                    ratio = probs[a] / old
                    step_losses.append(-torch.clamp(ratio, 0.8, 1.2) * adv)
                episode_losses.append(torch.stack(step_losses).mean())
            loss = torch.stack(episode_losses).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        groups += 1
        if groups % (CHECK_EVERY // GROUP) == 0:
            if sum(g[3] for g in group) / GROUP > STOP_MEAN:
                env.close()
                return Result("original (per-step)", seed, True, episodes,
                              time.perf_counter() - start, steps)  # fmt: skip
    env.close()
    return Result("original (per-step)", seed, False, episodes, time.perf_counter() - start, steps)


# ---------------------------------------------------------------------------------------------
# renshu GRPO under the same stop rule.

ORIGINAL_SETTINGS = dict(
    group_size=GROUP, num_groups=1, group_start="random", hidden=(64,), activation="relu",
    learning_rate=1e-3, update_epochs=ITERATIONS, clip_eps=0.2, loss_aggregation="episode",
    beta=0.0, max_grad_norm=1e9, anneal_lr=False,
)  # fmt: skip


def run_renshu(name: str, values: dict, seed: int, max_episodes: int) -> Result:
    from renshu.algos.base import update
    from renshu.algos.grpo import GRPO, GRPOConfig
    from renshu.envs.registry import make_env

    config = GRPOConfig(**values)
    env = make_env("cartpole", num_envs=config.num_envs, seed=seed, max_episode_steps=CAP)
    algo = GRPO(env, config, seed=seed)
    episodes = 0
    start = time.perf_counter()
    while episodes < max_episodes:
        before = episodes
        batch, _ = update(algo, 0.0)  # progress 0: no schedule runs (no budget here)
        returns = batch.episodes["return"]
        episodes += config.num_envs
        if episodes // CHECK_EVERY > before // CHECK_EVERY:
            last_group = returns[-config.group_size :]  # every episode ends within the cap
            if float(last_group.mean()) > STOP_MEAN:
                return Result(name, seed, True, episodes, time.perf_counter() - start,
                              algo.env_steps)  # fmt: skip
    return Result(name, seed, False, episodes, time.perf_counter() - start, algo.env_steps)


# ---------------------------------------------------------------------------------------------
# Ablation: solve CartPole-v1 through the runner.


def ablation_configs() -> list[tuple[str, dict]]:
    out = []
    for start in ("same", "random"):
        for beta in (0.0, 0.001):
            for agg in ("episode", "step"):
                name = f"{start}-start, beta {beta:g}, {agg} aggregation"
                out.append((name, dict(group_start=start, beta=beta, loss_aggregation=agg)))
    return out


def solve(values: dict, seed: int, max_steps: int) -> dict:
    from renshu.runner import RunSpec, start_run

    spec = RunSpec(
        algo="grpo", env="cartpole", seed=seed, steps=max_steps, target_return=475.0,
        eval_every=10_000, eval_episodes=100, animation=False, threads=1,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="renshu-grpo-") as tmp:
        _, s = start_run(spec, values, run_dir=os.path.join(tmp, "run"), progress=False)
    return {
        "seed": seed,
        "reached": s["target_reached_steps"] is not None,
        "steps": s["target_reached_steps"] or s["env_steps"],
        "seconds": s["target_reached_seconds"] or s["wall_seconds"],
    }


# ---------------------------------------------------------------------------------------------
# Tables.


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def speed_tables(results: list[Result]) -> str:
    lines = [
        "| implementation | seed | reached? | episodes | env steps | seconds |",
        "|---|---:|:---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.impl} | {r.seed} | {'yes' if r.reached else 'no'} | {r.episodes:,} "
            f"| {r.steps:,} | {r.seconds:.2f} |"
        )
    impls = list(dict.fromkeys(r.impl for r in results))

    def med(impl: str, key: str) -> float:
        # a seed that did not reach the rule counts as more than its budget (infinite)
        return _median([getattr(r, key) if r.reached else math.inf
                        for r in results if r.impl == impl])  # fmt: skip

    base = med(impls[0], "seconds")
    lines += [
        "",
        "| implementation | median seconds | median episodes | seeds reached "
        "| x less wall-clock than the original |",
        "|---|---:|---:|---:|---:|",
    ]
    for impl in impls:
        s, e = med(impl, "seconds"), med(impl, "episodes")
        n = [r for r in results if r.impl == impl]
        ratio = base / s if math.isfinite(base) and math.isfinite(s) else None
        lines.append(
            f"| {impl} | {s:.2f} | {e:,.0f} | {sum(r.reached for r in n)}/{len(n)} "
            f"| {fmt_ratio(ratio)} |"
        )
    return "\n".join(lines)


def ablation_table(rows: list[tuple[str, list[dict]]]) -> str:
    lines = [
        "| groups | beta | loss aggregation | seeds solved | median env steps | median seconds "
        "| env steps per seed | seconds per seed |",
        "|---|---:|---|---:|---:|---:|---|---|",
    ]
    for name, runs in rows:
        start, beta, agg = name.split(", ")
        ok = [r for r in runs if r["reached"]]
        steps = _median([r["steps"] if r["reached"] else math.inf for r in runs])
        secs = _median([r["seconds"] if r["reached"] else math.inf for r in runs])
        per_steps = " / ".join(f"{r['steps']:,}" + ("" if r["reached"] else "*") for r in runs)
        per_secs = " / ".join(f"{r['seconds']:.1f}" + ("" if r["reached"] else "*") for r in runs)
        fmt_steps = f"{steps:,.0f}" if math.isfinite(steps) else "not solved"
        fmt_secs = f"{secs:.1f}" if math.isfinite(secs) else "not solved"
        lines.append(
            f"| {start} | {beta.removeprefix('beta ')} | {agg.removesuffix(' aggregation')} "
            f"| {len(ok)}/{len(runs)} | {fmt_steps} | {fmt_secs} | {per_steps} | {per_secs} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (3; --quick: 1)")
    p.add_argument("--max-episodes", type=int, default=20_000, help="episode budget per run")
    p.add_argument("--max-steps", type=int, default=300_000, help="ablation env-step budget")
    p.add_argument("--no-ablation", action="store_true", help="only the speed table")
    p.add_argument("--no-original", action="store_true", help="skip the (slow) original")
    p.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed")
    args = p.parse_args(argv)
    seeds = range(args.seeds if args.seeds is not None else (1 if args.quick else 3))
    cores = set_threads(1)
    import torch

    from renshu.envs.specs import resolve

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    preset = resolve("cartpole").preset("grpo")
    results: list[Result] = []
    for seed in seeds:
        if not args.no_original:
            log(f"original seed {seed} ...")
            results.append(run_original(seed, args.max_episodes))
            log(f"  {results[-1]}")
        for name, values in (
            ("renshu GRPO, original's settings", ORIGINAL_SETTINGS),
            ("renshu GRPO, preset", preset),
        ):
            log(f"{name} seed {seed} ...")
            results.append(run_renshu(name, values, seed, args.max_episodes))
            log(f"  {results[-1]}")

    ablation: list[tuple[str, list[dict]]] = []
    if not args.no_ablation:
        for name, values in ablation_configs():
            runs = []
            for seed in seeds:
                log(f"ablation: {name}, seed {seed} ...")
                runs.append(solve({**preset, **values}, seed, args.max_steps))
                log(f"  {runs[-1]}")
            ablation.append((name, runs))

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": version("gymnasium"),
        "renshu": version("renshu"),
    }
    print(f"# GRPO on CartPole ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} cores ({len(cores)} used), 1 torch thread")
    print(f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items() if v)}")
    print(f"- seeds {list(seeds)}; episode budget {args.max_episodes:,}")
    print()
    print(f"## To the original stop rule (200-step cap, last group's mean > {STOP_MEAN:g})")
    print()
    print(speed_tables(results))
    if ablation:
        print()
        print("## Ablation: steps and seconds to solve CartPole-v1 (greedy eval mean >= 475)")
        print()
        print(ablation_table(ablation))
        print()
        print(f"(* not solved within {args.max_steps:,} env steps: the whole run is shown)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"speed": [asdict(r) for r in results], "ablation": dict(ablation)}, f, indent=2
            )


if __name__ == "__main__":
    main()
