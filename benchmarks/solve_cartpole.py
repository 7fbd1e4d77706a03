"""Seconds to solve CartPole: ``renshu train`` as a user runs it vs Stable-Baselines3, in one run.

"Solved" = the mean return of N deterministic (greedy) evaluation episodes is >= 475, checked
every ``--eval-every`` env steps. Every run is its own process, timed twice: the training
seconds to the first passing evaluation (training *and* the periodic evaluations, from the
clock of each side's training loop) and the whole process (the wall clock from spawn to exit:
imports, building, training, evaluations, what is written at the end).

``--protocol 100,20`` runs everything once per episode count N (100-episode and 20-episode
evaluations, both every ``--eval-every`` steps on both sides): SB3's ``evaluate_policy`` steps
its episodes through a Python vec env while renshu's run batched, so N moves the ratio, and
each protocol has its own tables.

* ``renshu PPO`` / ``A2C`` / ``DQN``: the installed CLI, ``renshu train ALGO cartpole
  --target-return 475 --seed S --steps MAX --eval-every E --eval-episodes N --threads T
  --run-dir DIR`` (``--renshu-args`` adds flags), on the algorithm's CartPole preset
  (``resolve("cartpole").preset(algo)`` in ``renshu.envs.specs``; PPO's is RL Zoo's settings
  with 16 envs x 16 steps instead of 8 x 32, 7 epochs instead of 20 at a learning rate of 3e-3
  instead of 1e-3, and GAE lambda 0.95 instead of 0.8). Training seconds and steps are the run's
  ``summary.json`` ``target_reached_seconds`` / ``target_reached_steps`` (the runner's clock
  starts once the agent and envs are built); the final learning curve and ``episode.gif`` are
  part of the whole process, as for a user. ``renshu PPO, RL Zoo's settings`` (``--algos
  ppo-zoo``) passes RL Zoo's values as flags.
* ``SB3 PPO``: a Python process (this script's ``--sb3-worker``) that builds
  ``stable_baselines3.PPO`` with RL Zoo's tuned ``CartPole-v1`` hyperparameters
  (rl-baselines3-zoo ``hyperparams/ppo.yml``: n_envs 8, MlpPolicy, n_steps 32, batch_size 256,
  gae_lambda 0.8, gamma 0.98, n_epochs 20, ent_coef 0.0, learning_rate lin_0.001,
  clip_range lin_0.2; SB3 defaults otherwise) on ``make_vec_env("CartPole-v1", n_envs=8,
  seed=s)`` (DummyVecEnv), ``device="cpu"``. A callback evaluates with
  ``evaluate_policy(model, eval_env, n_eval_episodes=N, deterministic=True)`` on a separate
  vec env each time the step count crosses a multiple of E -- after a whole rollout *and* its
  update, exactly where renshu's runner evaluates -- and stops ``learn()`` once the mean is
  >= 475; its clock starts in ``on_training_start`` (model and envs built, envs reset) and
  stops when the passing evaluation returns. ``SB3 PPO, renshu's settings`` runs RL Zoo's
  values with the env count, rollout length, epochs, learning rate and GAE lambda of renshu's
  preset (one minibatch of the whole rollout, as in both), so that each renshu PPO row also
  has an SB3 row with the same hyperparameters (the "same settings" columns). The eval vec
  env has ``--sb3-eval-envs`` envs (default: as many as episodes, one episode each, the
  batching of renshu's evaluation).
* ``SB3 DQN`` (with ``--algos dqn``): ``stable_baselines3.DQN`` with RL Zoo's ``CartPole-v1``
  hyperparameters (``hyperparams/dqn.yml``: one env, lr 2.3e-3, batch 64, buffer 100k,
  learning_starts 1000, gamma 0.99, target_update_interval 10, train_freq 256, gradient_steps
  128, exploration_fraction 0.16, exploration_final_eps 0.04, net_arch [256, 256]), with the
  same callback. Epsilon schedules run over the budget on both sides; RL Zoo trains this for
  5e4 steps, so ``--max-steps 50000`` reproduces its schedule. Each renshu row is compared with
  SB3 of its own family (DQN with DQN; PPO and A2C with PPO).

Both sides get the same budget MAX (``--max-steps``); a seed that never passes is reported as
"not reached" with the time it spent. Learning rates anneal linearly to 0 over MAX on both
sides (SB3's ``lin_`` schedules run over ``learn()``'s ``total_timesteps``; RL Zoo trains for
1e5 steps, so ``--max-steps 100000`` reproduces its schedule exactly). Known differences in
the algorithms themselves: renshu's PPO preset keeps clip 0.2 constant and clips the value loss;
SB3 anneals the clip range and does not clip the value loss.

Threads: T torch threads on every side (``--threads``; renshu's CLI and the SB3 worker both
call ``torch.set_num_threads(T)``), and when T is below the number of cores this process and so
every process it starts is pinned to T cores. Seeds run one after another, the implementations
interleaved per seed, the protocols one after another. Medians are over seeds, with a seed
that did not reach 475 counted as "more than the budget" (so the median is "not reached" only
when half or more of the seeds fail).

    python benchmarks/solve_cartpole.py                        # both protocols, seeds 0-2
    python benchmarks/solve_cartpole.py --seeds 5 --protocol 20
    python benchmarks/solve_cartpole.py --quick                # 1 seed, 150k steps, 20 episodes
    python benchmarks/solve_cartpole.py --algos ppo,a2c --json out.json
    python benchmarks/solve_cartpole.py --algos dqn --max-steps 50000 --eval-every 5000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _common import (  # benchmarks/_common.py (this folder)
    cpu_model,
    fmt_ratio,
    set_threads,
    version,
)
from time_to_result import (  # benchmarks/time_to_result.py: renshu train as a user runs it
    flags,
    fmt_s,
    fmt_steps,
    machine_line,
    median,
    read_run,
    renshu_cli,
    run_timed,
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
    episodes: int = 0  # episodes per evaluation (the protocol)
    process_seconds: float | None = None  # the whole process, spawn to exit
    answer_seconds: float | None = None  # renshu: when its answer line reached stdout
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# renshu: the installed CLI.


def run_renshu(
    algo: str, seed: int, max_steps: int, eval_every: int, episodes: int, threads: int,
    work: Path, target: float = TARGET, extra: list[str] = (),
) -> Result:  # fmt: skip
    """``algo``: ppo, a2c or dqn on renshu's preset, or ``ppo-zoo``: PPO with RL Zoo's settings;
    ``renshu train`` in a process of its own, in a fresh directory under ``work``."""
    overrides, impl = {}, f"renshu {algo.upper()}"
    if algo == "ppo-zoo":
        algo, overrides, impl = "ppo", renshu_zoo_ppo(), RENSHU_ZOO
    cwd = Path(tempfile.mkdtemp(prefix="renshu-solve-", dir=work))
    argv = [
        *renshu_cli(), "train", algo, "cartpole", "--target-return", f"{target:g}",
        "--seed", str(seed), "--steps", str(max_steps), "--eval-every", str(eval_every),
        "--eval-episodes", str(episodes), "--threads", str(threads),
        "--run-dir", str(cwd / "run"), *flags(overrides), *extra,
    ]  # fmt: skip
    timed = run_timed(argv, cwd, cwd / "output.log")
    run = read_run(cwd / "run")
    shutil.rmtree(cwd, ignore_errors=True)
    summary = run["summary"]
    last = summary.get("last_eval") or {}
    return Result(
        impl=impl,
        seed=seed,
        reached=summary["target_reached_steps"] is not None,
        steps=summary["target_reached_steps"],
        seconds=summary["target_reached_seconds"],
        spent_seconds=summary["wall_seconds"],
        spent_steps=summary["env_steps"],
        evals=run["evals"],
        last_eval=last.get("mean_return"),
        episodes=episodes,
        process_seconds=timed.seconds,
        answer_seconds=timed.answer_seconds,
        extra={
            "status": summary["status"],
            "device": summary.get("device"),
            "command": " ".join(["renshu", *argv[1:]]),
        },
    )


# ---------------------------------------------------------------------------------------------
# Stable-Baselines3: a process of its own (this script's --sb3-worker).


def run_sb3_process(
    seed: int, max_steps: int, eval_every: int, episodes: int, eval_envs: int, threads: int,
    work: Path, target: float = TARGET, algo: str = "ppo", variant: str = "zoo",
) -> Result:  # fmt: skip
    """:func:`run_sb3` in a fresh Python process; its whole-process seconds are timed too."""
    cwd = Path(tempfile.mkdtemp(prefix="sb3-solve-", dir=work))
    job = dict(seed=seed, max_steps=max_steps, eval_every=eval_every, episodes=episodes,
               eval_envs=eval_envs, threads=threads, target=target, algo=algo,
               variant=variant)  # fmt: skip
    out = cwd / "result.json"
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--sb3-worker",
        json.dumps(job),
        str(out),
    ]
    timed = run_timed(argv, cwd, cwd / "output.log", answer=None)
    result = Result(**json.loads(out.read_text()))
    shutil.rmtree(cwd, ignore_errors=True)
    result.process_seconds = timed.seconds
    return result


def sb3_worker(job: str, out: str) -> None:
    """``--sb3-worker JOB OUT``: run one SB3 job (JSON keyword arguments of :func:`run_sb3`)
    and write its result to OUT."""
    result = run_sb3(**json.loads(job))
    Path(out).write_text(json.dumps(asdict(result)))


# ---------------------------------------------------------------------------------------------
# Stable-Baselines3: the run itself (inside the worker process).


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
        episodes=episodes,
        extra={"torch_threads": torch.get_num_threads()},
    )


# ---------------------------------------------------------------------------------------------
# Reporting.


def summarize(results: list[Result]) -> list[dict]:
    """One row per implementation (of one protocol): medians over seeds and the ratios."""
    impls = list(dict.fromkeys(r.impl for r in results))
    rows = []
    for impl in impls:
        rs = [r for r in results if r.impl == impl]
        rows.append(
            {
                "impl": impl,
                "seeds": len(rs),
                "reached": sum(r.reached for r in rs),
                "median_seconds": median([r.seconds for r in rs]),
                "median_process_seconds": median([r.process_seconds for r in rs]),
                "median_steps": median([r.steps for r in rs]),
            }
        )
    by_impl = {row["impl"]: row for row in rows}

    def ratio(baseline: str | None, row: dict, key: str) -> float | None:
        base = by_impl.get(baseline, {}).get(key)
        ok = base is not None and math.isfinite(base) and math.isfinite(row[key])
        return base / row[key] if ok else None

    for row in rows:
        sb3, same = sb3_baseline(row["impl"]), SAME_SETTINGS.get(row["impl"])
        row["x_faster_than_sb3"] = ratio(sb3, row, "median_seconds")
        row["x_faster_than_sb3_process"] = ratio(sb3, row, "median_process_seconds")
        row["x_faster_than_sb3_same_settings"] = ratio(same, row, "median_seconds")
        row["x_faster_than_sb3_same_settings_process"] = ratio(same, row, "median_process_seconds")
    return rows


# The SB3 row that runs the same hyperparameters as a renshu row.
SAME_SETTINGS = {"renshu PPO": SB3_RENSHU, RENSHU_ZOO: "SB3 PPO"}


def sb3_baseline(impl: str) -> str:
    """The SB3 row an implementation is compared with: SB3 DQN for DQN, else SB3 PPO."""
    return "SB3 DQN" if impl.endswith("DQN") else "SB3 PPO"


def _finite_or_none(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _progress(r: Result) -> str:
    whole = f"; whole process {r.process_seconds:.1f} s" if r.process_seconds else ""
    if r.reached:
        return f"reached at {r.steps:,} steps, {r.seconds:.1f} s{whole}"
    return f"not reached in {r.spent_steps:,} steps, {r.spent_seconds:.1f} s{whole}"


def per_seed_table(results: list[Result], target: float = TARGET) -> str:
    lines = [
        f"| implementation | seed | reached {target:g}? | env steps | training s | whole "
        "process s | answer line s | evals | last eval mean | whole run: steps, training s |",
        "|---|---:|:---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        last = f"{r.last_eval:.1f}" if r.last_eval is not None else "—"
        lines.append(
            f"| {r.impl} | {r.seed} | {'yes' if r.reached else 'no'} | {fmt_steps(r.steps)} "
            f"| {fmt_s(r.seconds)} | {fmt_s(r.process_seconds)} | {fmt_s(r.answer_seconds)} "
            f"| {r.evals} | {last} | {r.spent_steps:,}, {r.spent_seconds:.1f} |"
        )
    return "\n".join(lines)


def summary_table(rows: list[dict], target: float = TARGET) -> str:
    lines = [
        f"| implementation | median training s to {target:g} | median whole process s "
        "| median env steps | seeds reached | x SB3, training | x SB3, whole process "
        "| x SB3 same settings, training | x SB3 same settings, whole process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['impl']} | {fmt_s(row['median_seconds'])} "
            f"| {fmt_s(row['median_process_seconds'])} "
            f"| {fmt_steps(row['median_steps'])} | {row['reached']}/{row['seeds']} "
            f"| {fmt_ratio(row['x_faster_than_sb3'])} "
            f"| {fmt_ratio(row['x_faster_than_sb3_process'])} "
            f"| {fmt_ratio(row['x_faster_than_sb3_same_settings'])} "
            f"| {fmt_ratio(row['x_faster_than_sb3_same_settings_process'])} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (3; --quick: 1)")
    p.add_argument(
        "--max-steps", type=int, default=None, help="env steps per run (300000; --quick: 150000)"
    )
    p.add_argument("--eval-every", type=int, default=10_000, help="env steps between evals (10000)")
    p.add_argument(
        "--protocol",
        default=None,
        help="episodes per evaluation, one protocol each, comma-separated (100,20; --quick: 20)",
    )
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
    p.add_argument(
        "--renshu-args",
        default="",
        help="extra flags for every renshu command (e.g. '--animation false')",
    )
    p.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3")
    p.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 1 seed, 150k steps, 20 episodes"
    )
    args = p.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.max_steps is None:
        args.max_steps = 150_000 if args.quick else 300_000
    if args.protocol is None:
        args.protocol = "20" if args.quick else "100,20"
    try:
        args.protocol = [int(n) for n in args.protocol.split(",") if n.strip()]
    except ValueError:
        p.error(
            f"--protocol takes comma-separated episode counts such as 100,20, got {args.protocol!r}"
        )
    if not args.protocol or min(args.protocol) < 1:
        p.error("--protocol takes comma-separated episode counts >= 1, such as 100,20")
    args.algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    known = ("ppo", "ppo-zoo", "a2c", "dqn")
    if not args.algos or any(a not in known for a in args.algos):
        p.error(f"--algos takes a comma-separated subset of {','.join(known)}")
    for name in ("seeds", "max_steps", "eval_every", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.sb3_eval_envs is not None and args.sb3_eval_envs < 1:
        p.error("--sb3-eval-envs must be >= 1")
    args.renshu_args = shlex.split(args.renshu_args)
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    cores = set_threads(args.threads)  # pins this process, and so the ones it starts
    import torch

    sb3 = not args.no_sb3 and version("stable-baselines3") is not None
    if not args.no_sb3 and not sb3:
        print("stable-baselines3 is not installed: SB3 rows skipped", file=sys.stderr)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    E, MAX = args.eval_every, args.max_steps
    families = dict.fromkeys("dqn" if a == "dqn" else "ppo" for a in args.algos)
    sb3_runs = [(family, "zoo") for family in families]
    if "ppo" in args.algos:
        sb3_runs.append(("ppo", "renshu"))
    results: list[Result] = []
    work = Path(tempfile.mkdtemp(prefix="renshu-solve-cartpole-"))
    try:
        for N in args.protocol:
            eval_envs = args.sb3_eval_envs or N
            for seed in range(args.seeds):
                for algo in args.algos:
                    log(f"[{N} episodes] renshu {algo} seed {seed} ...")
                    r = run_renshu(algo, seed, MAX, E, N, args.threads, work, args.target,
                                   args.renshu_args)  # fmt: skip
                    results.append(r)
                    log(f"  {_progress(r)}")
                for family, variant in sb3_runs if sb3 else ():
                    log(f"[{N} episodes] SB3 {family.upper()} ({variant} settings) seed {seed} ...")
                    r = run_sb3_process(seed, MAX, E, N, eval_envs, args.threads, work,
                                        args.target, family, variant)  # fmt: skip
                    results.append(r)
                    log(f"  {_progress(r)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summaries = {N: summarize([r for r in results if r.episodes == N]) for N in args.protocol}

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "stable-baselines3": version("stable-baselines3"),
        "gymnasium": version("gymnasium"),
        "numpy": version("numpy"),
        "renshu": version("renshu"),
    }
    devices = sorted({str(r.extra["device"]) for r in results if r.extra.get("device")})
    sb3_threads = sorted({r.extra["torch_threads"] for r in results if "torch_threads" in r.extra})
    threads = f"{args.threads} on every side (renshu: {', '.join(devices)}" + (
        f"; SB3 torch.get_num_threads() {sb3_threads})" if sb3 else ")"
    )
    pinned = f"pinned to cores {cores}" if len(cores) < (os.cpu_count() or 0) else "not pinned"
    installed = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    meta = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_used": cores,
        "threads": args.threads,
        "threads_seen": threads,
        "seeds": list(range(args.seeds)),
        "max_steps": MAX,
        "eval_every": E,
        "protocols": args.protocol,
        "sb3_eval_envs": args.sb3_eval_envs,
        "target": args.target,
        "renshu_args": args.renshu_args,
        "sb3_hyperparameters": {"ppo": ZOO_PPO_CARTPOLE, "dqn": ZOO_DQN_CARTPOLE} if sb3 else None,
        "versions": versions,
    }
    print(f"# CartPole: seconds to mean return >= {args.target:g} ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"- {machine_line(threads)}; processes {pinned}")
    print(f"- versions: {installed}")
    print(
        f"- solved = mean return >= {args.target:g} over N deterministic episodes, evaluated "
        f"every {E:,} env steps (N per protocol below); training s = training + those "
        "evaluations up to the passing one, by each side's training clock; whole process = "
        f"wall clock of the process from spawn to exit; budget {MAX:,} env steps (PPO and A2C "
        "learning rates anneal to 0 over it, DQN epsilon schedules run over it); seeds "
        f"0..{args.seeds - 1}"
    )
    ppo = renshu_ppo_preset()
    own = (
        f"{ppo['num_envs']} envs x {ppo['num_steps']} steps, {ppo['update_epochs']} epochs at "
        f"lr {ppo['learning_rate']:g}, gae_lambda {ppo['gae_lambda']:g}"
    )
    extra = f" {' '.join(args.renshu_args)}" if args.renshu_args else ""
    print(
        "- renshu: `renshu train ALGO cartpole --target-return "
        f"{args.target:g} --seed S --steps {MAX} --eval-every {E} --eval-episodes N --threads "
        f"{args.threads} --run-dir DIR{extra}` on the CartPole presets of `renshu.envs.specs` "
        f"(PPO: RL Zoo's values with {own}); `renshu PPO, RL Zoo's settings` adds "
        f"`{' '.join(flags(renshu_zoo_ppo()))}`"
    )
    if sb3:
        print(
            "- SB3 (a Python process each): PPO with RL Zoo's tuned CartPole-v1 hyperparameters "
            "(n_envs 8, n_steps 32, batch 256, gae_lambda 0.8, gamma 0.98, 20 epochs, ent_coef "
            "0, lr lin_0.001, clip lin_0.2); `SB3 PPO, renshu's settings` runs them with "
            f"{own.replace('lr ', 'lr lin_')} (one minibatch); DQN with RL Zoo's CartPole-v1 "
            "hyperparameters (1 env, lr 2.3e-3, batch 64, buffer 100k, learning_starts 1000, "
            "gamma 0.99, target update 10, train_freq 256, gradient_steps 128, exploration "
            "0.16 -> 0.04, net [256, 256]; RL Zoo trains it for 50k steps); DummyVecEnv; eval "
            f"vec env of {args.sb3_eval_envs or 'N'} envs"
        )
    for N in args.protocol:
        print()
        print(f"## Protocol: {N}-episode evaluations every {E:,} env steps")
        print()
        print(f"{machine_line(threads)}; {installed}")
        print()
        print(summary_table(summaries[N], args.target))
        print()
        print(f"Per seed ({N}-episode evaluations; {machine_line(threads)}):")
        print()
        print(per_seed_table([r for r in results if r.episodes == N], args.target))
    if args.json:
        # not reached: null (JSON has no Infinity)
        finite = {
            str(N): [{k: _finite_or_none(v) for k, v in row.items()} for row in rows]
            for N, rows in summaries.items()
        }
        with open(args.json, "w") as f:
            json.dump(
                {"meta": meta, "results": [asdict(r) for r in results], "summary": finite},
                f,
                indent=2,
            )
    return results


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sb3-worker":
        sb3_worker(sys.argv[2], sys.argv[3])
    else:
        main()
