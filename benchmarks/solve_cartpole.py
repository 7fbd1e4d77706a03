"""Wall-clock to solve CartPole: renshu vs Stable-Baselines3, side by side in one run.

"Solved" = the mean return of 100 deterministic (greedy) evaluation episodes is >= 475, checked
every ``--eval-every`` env steps. The clock is training time *including* those periodic
evaluations, up to the first one that passes; both sides follow the same rule:

* ``renshu PPO`` / ``renshu A2C``: ``start_run(RunSpec(algo, env="cartpole", seed=s,
  steps=MAX, target_return=475, eval_every=E, eval_episodes=100, animation=False, threads=T))``
  with the algorithm's CartPole preset (``renshu.envs.specs``:
  ``resolve("cartpole").preset(algo)``; PPO's is RL Zoo's settings with 16 envs x 16 steps
  instead of 8 x 32, 7 epochs instead of 20 at a learning rate of 3e-3 instead of 1e-3, and
  GAE lambda 0.95 instead of 0.8).
  ``renshu PPO, RL Zoo's settings`` (``--algos ppo-zoo``) runs RL Zoo's values exactly.
  Seconds and steps are the run summary's ``target_reached_seconds`` /
  ``target_reached_steps`` (the runner's clock starts after the agent and envs are built).
  The total wall time of the ``start_run`` call (building,
  training to the target, the learning-curve plot) is reported too.
* ``SB3 PPO``: ``stable_baselines3.PPO`` with RL Zoo's tuned ``CartPole-v1`` hyperparameters
  (rl-baselines3-zoo ``hyperparams/ppo.yml``: n_envs 8, MlpPolicy, n_steps 32, batch_size 256,
  gae_lambda 0.8, gamma 0.98, n_epochs 20, ent_coef 0.0, learning_rate lin_0.001,
  clip_range lin_0.2; SB3 defaults otherwise), on ``make_vec_env("CartPole-v1", n_envs=8,
  seed=s)`` (DummyVecEnv), ``device="cpu"``. A callback evaluates with
  ``evaluate_policy(model, eval_env, n_eval_episodes=100, deterministic=True)`` on a separate
  vec env each time the step count crosses a multiple of E -- after a whole rollout *and* its
  update, exactly where renshu's runner evaluates -- and stops ``learn()`` once the mean is
  >= 475. ``SB3 PPO, renshu's settings`` runs RL Zoo's values with the env count, rollout
  length, epochs, learning rate and GAE lambda of renshu's preset (one minibatch of the
  whole rollout, as in both), so that each renshu PPO row also has an SB3 row with the same
  hyperparameters (the last column of the summary). Its clock starts in
  ``on_training_start`` (model and envs built, envs reset) and stops when the passing
  evaluation returns. The eval vec env has ``--sb3-eval-envs`` envs
  (default: as many as episodes, one episode each, the same batching as renshu's evaluation).
* ``renshu DQN`` / ``SB3 DQN`` (``--algos dqn``): renshu's DQN CartPole preset against
  ``stable_baselines3.DQN`` with RL Zoo's ``CartPole-v1`` hyperparameters (``hyperparams/dqn.yml``:
  one env, lr 2.3e-3, batch 64, buffer 100k, learning_starts 1000, gamma 0.99,
  target_update_interval 10, train_freq 256, gradient_steps 128, exploration_fraction 0.16,
  exploration_final_eps 0.04, net_arch [256, 256]), with the same callback. Epsilon schedules
  run over the budget on both sides; RL Zoo trains this for 5e4 steps, so ``--max-steps 50000``
  reproduces its schedule. Each renshu row is compared with SB3 of its own family (DQN with
  DQN; PPO and A2C with PPO).

Both sides get the same budget MAX (``--max-steps``); a seed that never passes is reported as
"not reached" with the time it spent. Learning rates anneal linearly to 0 over MAX on both
sides (SB3's ``lin_`` schedules run over ``learn()``'s ``total_timesteps``; RL Zoo trains for
1e5 steps, so ``--max-steps 100000`` reproduces its schedule exactly). Known differences in
the algorithms themselves: renshu's PPO preset keeps clip 0.2 constant and clips the value loss;
SB3 anneals the clip range and does not clip the value loss.

Threads: torch uses ``torch.set_num_threads(T)`` on every side (renshu's runner sets the same T),
and when T is below the number of cores the whole process is pinned to T cores. Seeds run one
after another, the implementations interleaved per seed. Medians are over seeds, with a seed
that did not reach 475 counted as "more than the budget" (so the median is "not reached" only
when half or more of the seeds fail).

    python benchmarks/solve_cartpole.py                        # 3 seeds, 300k steps (minutes)
    python benchmarks/solve_cartpole.py --seeds 5              # the README's table
    python benchmarks/solve_cartpole.py --quick                # 1 seed, 150k steps
    python benchmarks/solve_cartpole.py --seeds 5 --algos ppo,a2c --json out.json
    python benchmarks/solve_cartpole.py --algos dqn --max-steps 50000 --eval-every 5000
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
from dataclasses import asdict, dataclass, field

from _common import (  # benchmarks/_common.py (this folder)
    cpu_model,
    fmt_ratio,
    set_threads,
    version,
)

TARGET = 475.0  # CartPole-v1's reward threshold

# rl-baselines3-zoo, hyperparams/ppo.yml, "CartPole-v1" (marked "# Tuned" there).
ZOO_PPO_CARTPOLE = {
    "n_envs": 8,
    "n_timesteps": 1e5,
    "policy": "MlpPolicy",
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
}


RENSHU_ZOO = "renshu PPO, RL Zoo's settings"
SB3_RENSHU = "SB3 PPO, renshu's settings"


def renshu_zoo_ppo() -> dict:
    """renshu PPO config values equal to RL Zoo's CartPole-v1 settings (like for like)."""
    hp = ZOO_PPO_CARTPOLE
    return {
        "num_envs": hp["n_envs"], "num_steps": hp["n_steps"],
        "num_minibatches": hp["n_envs"] * hp["n_steps"] // hp["batch_size"],
        "update_epochs": hp["n_epochs"], "learning_rate": 0.001, "gamma": hp["gamma"],
        "gae_lambda": hp["gae_lambda"], "ent_coef": hp["ent_coef"], "clip_coef": 0.2,
    }  # fmt: skip


def renshu_ppo_preset() -> dict:
    """renshu's CartPole PPO preset (what ``renshu PPO`` runs)."""
    from renshu.envs.specs import resolve

    return resolve("cartpole").preset("ppo")


def sb3_ppo_settings(variant: str) -> dict:
    """SB3 PPO's settings: RL Zoo's (``zoo``), or RL Zoo's with the env count, rollout length,
    epochs, learning rate and GAE lambda of renshu's CartPole preset (``renshu``; one minibatch
    of the whole rollout, as in both), which must otherwise equal RL Zoo's."""
    hp = dict(ZOO_PPO_CARTPOLE)
    if variant == "renshu":
        preset = renshu_ppo_preset()
        own = ("num_envs", "num_steps", "update_epochs", "learning_rate", "gae_lambda")
        same = {k: v for k, v in renshu_zoo_ppo().items() if k not in own}
        differ = {k: (preset.get(k), v) for k, v in same.items() if preset.get(k) != v}
        if differ:
            raise SystemExit(
                "renshu's CartPole PPO preset differs from RL Zoo beyond envs, steps, epochs, "
                f"learning rate and GAE lambda: {differ}"
            )
        hp["n_envs"], hp["n_steps"] = preset["num_envs"], preset["num_steps"]
        hp["batch_size"] = preset["num_envs"] * preset["num_steps"]  # one minibatch
        hp["n_epochs"], hp["gae_lambda"] = preset["update_epochs"], preset["gae_lambda"]
        hp["learning_rate"] = f"lin_{preset['learning_rate']:g}"
    return hp


# rl-baselines3-zoo, hyperparams/dqn.yml, "CartPole-v1" (one env).
ZOO_DQN_CARTPOLE = {
    "n_timesteps": 5e4,
    "policy": "MlpPolicy",
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "net_arch": [256, 256],
}


@dataclass
class Result:
    impl: str
    seed: int
    reached: bool
    steps: int | None  # env steps at the passing evaluation (None: not reached)
    seconds: float | None  # training + evaluation seconds to it (None: not reached)
    spent_seconds: float  # training + evaluation seconds of the whole run
    spent_steps: int  # env steps of the whole run
    evals: int  # evaluations run
    last_eval: float | None  # mean return of the last evaluation
    call_seconds: float | None = None  # renshu: whole start_run() call
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# renshu.


def run_renshu(
    algo: str, seed: int, max_steps: int, eval_every: int, episodes: int, threads: int,
    target: float = TARGET,
) -> Result:  # fmt: skip
    """``algo``: ppo, a2c or dqn on renshu's preset, or ``ppo-zoo``: PPO with RL Zoo's settings."""
    from renshu.runner import RunSpec, start_run

    overrides, impl = {}, f"renshu {algo.upper()}"
    if algo == "ppo-zoo":
        algo, overrides, impl = "ppo", renshu_zoo_ppo(), RENSHU_ZOO

    spec = RunSpec(
        algo=algo, env="cartpole", seed=seed, steps=max_steps, target_return=target,
        eval_every=eval_every, eval_episodes=episodes, animation=False, threads=threads,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="renshu-solve-") as tmp:
        t0 = time.perf_counter()
        _, summary = start_run(spec, overrides, run_dir=os.path.join(tmp, "run"), progress=False)
        call = time.perf_counter() - t0
        evals = _count_evals(os.path.join(tmp, "run", "metrics.csv"))
    reached = summary["target_reached_steps"] is not None
    last = summary.get("last_eval") or {}
    return Result(
        impl=impl,
        seed=seed,
        reached=reached,
        steps=summary["target_reached_steps"],
        seconds=summary["target_reached_seconds"],
        spent_seconds=summary["wall_seconds"],
        spent_steps=summary["env_steps"],
        evals=evals,
        last_eval=last.get("mean_return"),
        call_seconds=call,
        extra={"status": summary["status"], "steps_per_second": summary["steps_per_second"]},
    )


def _count_evals(metrics_csv: str) -> int:
    """Rows of the run's metrics.csv with an ``eval/mean_return`` (-1 if it can't be read)."""
    import csv

    try:
        with open(metrics_csv, newline="") as f:
            return sum(1 for row in csv.DictReader(f) if row.get("eval/mean_return"))
    except (OSError, csv.Error):
        return -1


# ---------------------------------------------------------------------------------------------
# Stable-Baselines3.


def _linear(initial: float):
    """RL Zoo's ``lin_<x>``: x * progress_remaining (1 at the start, 0 at the end)."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def run_sb3(
    seed: int, max_steps: int, eval_every: int, episodes: int, eval_envs: int, threads: int,
    target: float = TARGET, algo: str = "ppo", variant: str = "zoo",
) -> Result:  # fmt: skip
    import torch
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(threads)
    n_envs = sb3_ppo_settings(variant)["n_envs"] if algo == "ppo" else 1
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    eval_env = make_vec_env("CartPole-v1", n_envs=eval_envs, seed=seed + 1_000_003)

    class SolveCallback(BaseCallback):
        """Evaluate after each update whose rollout crossed a multiple of ``eval_every``
        (``on_rollout_start`` runs after the previous ``train()``), stop at the target."""

        def __init__(self) -> None:
            super().__init__()
            self.start = 0.0
            self.checked = 0  # env steps at the last check
            self.evals = 0
            self.last_eval: float | None = None
            self.reached: tuple[int, float] | None = None
            self.end = 0.0

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _evaluate(self) -> None:
            steps = self.num_timesteps
            mean, _ = evaluate_policy(
                self.model, eval_env, n_eval_episodes=episodes, deterministic=True
            )
            self.evals += 1
            self.last_eval = float(mean)
            if self.last_eval >= target and self.reached is None:
                self.reached = (steps, time.perf_counter() - self.start)

        def _on_rollout_start(self) -> None:
            steps = self.num_timesteps
            if steps // eval_every > self.checked // eval_every:
                self._evaluate()
            self.checked = steps

        def _on_step(self) -> bool:
            return self.reached is None

        def _on_training_end(self) -> None:
            # The update of the last rollout ran after its on_rollout_start: check it too,
            # as renshu's runner does at the end of the budget.
            if self.reached is None and self.num_timesteps > self.checked:
                self._evaluate()
                self.checked = self.num_timesteps
            self.end = time.perf_counter()

    if algo == "ppo":
        hp = sb3_ppo_settings(variant)
        lr = float(hp["learning_rate"].removeprefix("lin_"))
        model = PPO(
            hp["policy"], env, n_steps=hp["n_steps"], batch_size=hp["batch_size"],
            gae_lambda=hp["gae_lambda"], gamma=hp["gamma"], n_epochs=hp["n_epochs"],
            ent_coef=hp["ent_coef"], learning_rate=_linear(lr), clip_range=_linear(0.2),
            seed=seed, device="cpu", verbose=0,
        )  # fmt: skip
    else:
        hp = ZOO_DQN_CARTPOLE
        model = DQN(
            hp["policy"], env, learning_rate=hp["learning_rate"], batch_size=hp["batch_size"],
            buffer_size=hp["buffer_size"], learning_starts=hp["learning_starts"],
            gamma=hp["gamma"], target_update_interval=hp["target_update_interval"],
            train_freq=hp["train_freq"], gradient_steps=hp["gradient_steps"],
            exploration_fraction=hp["exploration_fraction"],
            exploration_final_eps=hp["exploration_final_eps"],
            policy_kwargs={"net_arch": hp["net_arch"]}, seed=seed, device="cpu", verbose=0,
        )  # fmt: skip
    cb = SolveCallback()
    model.learn(total_timesteps=max_steps, callback=cb)
    spent = cb.end - cb.start
    env.close()
    eval_env.close()
    return Result(
        impl=SB3_RENSHU if variant == "renshu" else f"SB3 {algo.upper()}",
        seed=seed,
        reached=cb.reached is not None,
        steps=cb.reached[0] if cb.reached else None,
        seconds=cb.reached[1] if cb.reached else None,
        spent_seconds=spent,
        spent_steps=int(model.num_timesteps),
        evals=cb.evals,
        last_eval=cb.last_eval,
        extra={"torch_threads": torch.get_num_threads()},
    )


# ---------------------------------------------------------------------------------------------
# Reporting.


def _median(values: list[float | None]) -> float:
    """Median with ``None`` (not reached) counted as +inf."""
    return statistics.median([math.inf if v is None else v for v in values])


def summarize(results: list[Result]) -> list[dict]:
    impls = list(dict.fromkeys(r.impl for r in results))
    rows = []
    for impl in impls:
        rs = [r for r in results if r.impl == impl]
        rows.append(
            {
                "impl": impl,
                "seeds": len(rs),
                "reached": sum(r.reached for r in rs),
                "median_seconds": _median([r.seconds for r in rs]),
                "median_steps": _median([r.steps for r in rs]),
            }
        )
    medians = {row["impl"]: row["median_seconds"] for row in rows}

    def ratio(baseline: str | None, seconds: float) -> float | None:
        sb3 = medians.get(baseline)
        ok = sb3 is not None and math.isfinite(sb3) and math.isfinite(seconds)
        return sb3 / seconds if ok else None

    for row in rows:
        row["x_faster_than_sb3"] = ratio(sb3_baseline(row["impl"]), row["median_seconds"])
        row["x_faster_than_sb3_same_settings"] = ratio(
            SAME_SETTINGS.get(row["impl"]), row["median_seconds"]
        )
    return rows


# The SB3 row that runs the same hyperparameters as a renshu row.
SAME_SETTINGS = {"renshu PPO": SB3_RENSHU, RENSHU_ZOO: "SB3 PPO"}


def sb3_baseline(impl: str) -> str:
    """The SB3 row an implementation is compared with: SB3 DQN for DQN, else SB3 PPO."""
    return "SB3 DQN" if impl.endswith("DQN") else "SB3 PPO"


def _finite_or_none(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _fmt_s(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "not reached"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def _fmt_steps(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "not reached"
    return f"{x:,.0f}"


def _progress(r: Result) -> str:
    if r.reached:
        return f"reached at {r.steps:,} steps, {r.seconds:.1f} s"
    return f"not reached in {r.spent_steps:,} steps, {r.spent_seconds:.1f} s"


def per_seed_table(results: list[Result], target: float = TARGET) -> str:
    lines = [
        f"| implementation | seed | reached {target:g}? | env steps | seconds | evals "
        "| last eval mean | whole run: steps, s | start_run() call s |",
        "|---|---:|:---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        last = f"{r.last_eval:.1f}" if r.last_eval is not None else "—"
        call = f"{r.call_seconds:.1f}" if r.call_seconds is not None else "—"
        lines.append(
            f"| {r.impl} | {r.seed} | {'yes' if r.reached else 'no'} | {_fmt_steps(r.steps)} "
            f"| {_fmt_s(r.seconds)} | {r.evals} | {last} "
            f"| {r.spent_steps:,}, {r.spent_seconds:.1f} | {call} |"
        )
    return "\n".join(lines)


def summary_table(rows: list[dict], target: float = TARGET) -> str:
    lines = [
        f"| implementation | median seconds to {target:g} | median env steps | seeds reached "
        "| x faster than SB3 (RL Zoo's settings) | x faster than SB3 with the same settings |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['impl']} | {_fmt_s(row['median_seconds'])} "
            f"| {_fmt_steps(row['median_steps'])} | {row['reached']}/{row['seeds']} "
            f"| {fmt_ratio(row['x_faster_than_sb3'])} "
            f"| {fmt_ratio(row['x_faster_than_sb3_same_settings'])} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (3; --quick: 1)")
    p.add_argument(
        "--max-steps", type=int, default=None, help="env steps per run (300000; --quick: 150000)"
    )
    p.add_argument("--eval-every", type=int, default=10_000, help="env steps between evals (10000)")
    p.add_argument("--eval-episodes", type=int, default=100, help="episodes per evaluation (100)")
    p.add_argument("--target", type=float, default=TARGET, help="mean return to reach (475)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, every side (1)")
    p.add_argument(
        "--algos",
        default="ppo,ppo-zoo",
        help="renshu rows, comma-separated: ppo,ppo-zoo,a2c,dqn (ppo,ppo-zoo); ppo-zoo = renshu "
        "PPO with RL Zoo's settings; with ppo, SB3 also runs renshu's preset settings",
    )
    p.add_argument(
        "--sb3-eval-envs", type=int, default=None, help="SB3 eval vec env size (= episodes)"
    )
    p.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3")
    p.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 150k-step budget")
    args = p.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.max_steps is None:
        args.max_steps = 150_000 if args.quick else 300_000
    if args.sb3_eval_envs is None:
        args.sb3_eval_envs = args.eval_episodes
    args.algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    known = ("ppo", "ppo-zoo", "a2c", "dqn")
    if not args.algos or any(a not in known for a in args.algos):
        p.error(f"--algos takes a comma-separated subset of {','.join(known)}")
    for name in ("seeds", "max_steps", "eval_every", "eval_episodes", "threads", "sb3_eval_envs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    cores = set_threads(args.threads)
    import torch

    sb3 = None
    if not args.no_sb3:
        try:
            import stable_baselines3 as sb3
        except ImportError:
            print("stable-baselines3 is not installed: SB3 rows skipped", file=sys.stderr)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # One-time imports before any clock runs (the first start_run() call would pay for them).
    import renshu.runner.logging  # noqa: F401
    import renshu.runner.loop  # noqa: F401
    import renshu.viz.plots  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first optimizer imports dynamo

    E, N, MAX = args.eval_every, args.eval_episodes, args.max_steps
    results: list[Result] = []
    for seed in range(args.seeds):
        for algo in args.algos:
            log(f"renshu {algo} seed {seed} ...")
            r = run_renshu(algo, seed, MAX, E, N, args.threads, args.target)
            results.append(r)
            log(f"  {_progress(r)}")
        families = dict.fromkeys("dqn" if a == "dqn" else "ppo" for a in args.algos)
        runs = [(family, "zoo") for family in families]
        if "ppo" in args.algos:
            runs.append(("ppo", "renshu"))
        for family, variant in runs if sb3 is not None else ():
            log(f"SB3 {family.upper()} ({variant} settings) seed {seed} ...")
            r = run_sb3(
                seed, MAX, E, N, args.sb3_eval_envs, args.threads, args.target, family, variant
            )
            results.append(r)
            log(f"  {_progress(r)}")
    rows = summarize(results)

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable-baselines3": version("stable-baselines3"),
        "gymnasium": version("gymnasium"),
        "numpy": version("numpy"),
        "renshu": version("renshu"),
    }
    meta = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_used": cores,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "seeds": list(range(args.seeds)),
        "max_steps": MAX,
        "eval_every": E,
        "eval_episodes": N,
        "sb3_eval_envs": args.sb3_eval_envs if sb3 is not None else None,
        "target": args.target,
        "sb3_hyperparameters": {"ppo": ZOO_PPO_CARTPOLE, "dqn": ZOO_DQN_CARTPOLE}
        if sb3 is not None
        else None,
        "versions": versions,
    }
    installed = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    print(f"# CartPole: wall-clock to mean return >= {args.target:g} ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"- CPU: {meta['cpu']}, {meta['cores']} cores ({len(cores)} used: {cores})")
    print(
        f"- threads: {args.threads} on every side (torch.set_num_threads({args.threads}); "
        "renshu's runner sets the same)"
    )
    print(f"- versions: {installed}")
    print(
        f"- solved = mean return >= {args.target:g} over {N} deterministic episodes, evaluated "
        f"every {E:,} env steps; seconds = training + those evaluations up to the passing one; "
        f"budget {MAX:,} env steps (PPO and A2C learning rates anneal to 0 over it, DQN "
        f"epsilon schedules run over it); seeds 0..{args.seeds - 1}"
    )
    ppo = renshu_ppo_preset()
    own = (
        f"{ppo['num_envs']} envs x {ppo['num_steps']} steps, {ppo['update_epochs']} epochs at "
        f"lr {ppo['learning_rate']:g}, gae_lambda {ppo['gae_lambda']:g}"
    )
    print(
        "- renshu: CartPole presets of `renshu.envs.specs` (`resolve('cartpole').preset(algo)`; "
        f"PPO: RL Zoo's values with {own}), batched tensor env; SB3 PPO: RL Zoo's tuned "
        "CartPole-v1 hyperparameters (n_envs 8, n_steps 32, batch 256, gae_lambda 0.8, gamma "
        "0.98, 20 epochs, ent_coef 0, lr lin_0.001, clip lin_0.2); `renshu PPO, RL Zoo's "
        "settings` runs those values; `SB3 PPO, renshu's settings` runs them with "
        f"{own.replace('lr ', 'lr lin_')} (one minibatch); "
        "SB3 DQN: RL Zoo's CartPole-v1 hyperparameters (1 env, "
        "lr 2.3e-3, batch 64, buffer 100k, learning_starts 1000, gamma 0.99, target update 10, "
        "train_freq 256, gradient_steps 128, exploration 0.16 -> 0.04, net [256, 256]; "
        "RL Zoo trains it for 50k steps: run DQN with --max-steps 50000 for its schedule); "
        f"DummyVecEnv, eval on a {args.sb3_eval_envs}-env vec env"
    )
    print()
    print(per_seed_table(results, args.target))
    print()
    print(summary_table(rows, args.target))
    if args.json:
        # not reached: null (JSON has no Infinity)
        finite = [{k: _finite_or_none(v) for k, v in row.items()} for row in rows]
        with open(args.json, "w") as f:
            json.dump(
                {"meta": meta, "results": [asdict(r) for r in results], "summary": finite},
                f,
                indent=2,
            )
    return results


if __name__ == "__main__":
    main()
