"""The one training loop: budget, progress bar, metrics, evaluation, checkpoints, plots, GIF.

Algorithms do the math (``update()``); everything with side effects happens here.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import shutil
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from renshu import algos
from renshu.config import coerce, to_dict
from renshu.envs.base import check_seed, resolve_device
from renshu.envs.registry import make_env
from renshu.fileio import atomic_open
from renshu.runner.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from renshu.runner.evaluate import evaluate, summarize

CONFIG_FILE = "config.json"


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or inf loss or gradient; the run stopped at its last good state."""


LATEST = "checkpoints/latest.pt"


@dataclass
class RunSpec:
    """What a run is: everything in ``config.json`` besides the algorithm's config."""

    algo: str = "ppo"
    env: str = "game2048"
    env_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    steps: int | None = None
    minutes: float | None = None
    device: str = "auto"
    target_return: float | None = None
    eval_every: int | None = None
    eval_episodes: int = 100
    checkpoint_seconds: float = 120.0
    animation: bool = True
    threads: int | None = None
    backend: str = "local"
    num_workers: int = 2
    ray_address: str | None = None
    encoder: str | None = None
    encoder_model: str | None = None
    encoder_prompt: str | None = None
    encoder_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        check_seed(self.seed)
        self.validate_encoder()
        if self.backend not in ("local", "ray"):
            raise ValueError(f"--backend must be local or ray, got {self.backend!r}")
        if self.num_workers < 1:
            raise ValueError(f"--num-workers must be >= 1, got {self.num_workers}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"--minutes must be > 0, got {self.minutes}")
        if self.eval_episodes < 1:
            raise ValueError(f"--eval-episodes must be >= 1, got {self.eval_episodes}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"--eval-every must be >= 1, got {self.eval_every}")

    def validate_encoder(self) -> None:
        """Encoder flags need --encoder, a known name, an algorithm that takes features, and
        local collection."""
        if self.encoder is None:
            if self.encoder_model or self.encoder_prompt or self.encoder_options:
                raise ValueError(
                    "--encoder-model, --encoder-prompt and --encoder-option go with --encoder NAME"
                )
            return
        from renshu.encoders.base import encoder_class

        encoder_class(self.encoder)  # an unknown name: one error listing the valid ones
        if not _takes_encoder(self.algo):
            takes = [a for a in algos.algorithm_names() if _takes_encoder(a)]
            raise ValueError(
                f"{self.algo} does not take encoder features; --encoder works with "
                f"{', '.join(takes)}"
            )
        if self.backend != "local":
            raise ValueError("--encoder runs with --backend local (the collector encodes)")


def _takes_encoder(algo: str) -> bool:
    return "encoder" in inspect.signature(algos.get_algorithm(algo)).parameters


def make_run_encoder(spec: RunSpec):
    """The encoder of a run (None without one), built from its spec as config.json records it."""
    if spec.encoder is None:
        return None
    from renshu.encoders import make_encoder

    options = dict(spec.encoder_options)
    if spec.encoder_model is not None:
        options["model"] = spec.encoder_model
    if spec.encoder_prompt is not None:
        options["prompt"] = spec.encoder_prompt
    return make_encoder(spec.encoder, **options)


def default_run_dir(spec: RunSpec) -> Path:
    env = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.env)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{spec.algo}-{env}-s{spec.seed}-{stamp}"


def build(spec: RunSpec, algo_values: dict[str, Any]):
    """(algo instance, its config) for a spec and explicit config values (preset underneath)."""
    cls = algos.get_algorithm(spec.algo)
    values = algos.preset(spec.algo, spec.env)
    values.update(coerce(cls.config_class, algo_values))
    config = cls.config_class(**values)
    device = resolve_device(spec.device)
    if spec.backend == "ray":  # envs and policy copies on Ray workers (renshu.distributed)
        from renshu.distributed import build_remote

        return build_remote(spec, cls, config, device), config
    env = make_env(
        spec.env, num_envs=config.num_envs, device=device, seed=spec.seed, **spec.env_options
    )
    if spec.encoder is not None:
        return cls(env, config, seed=spec.seed, encoder=make_run_encoder(spec)), config
    return cls(env, config, seed=spec.seed), config


def make_eval_env(spec: RunSpec, episodes: int, device):
    num = min(episodes, 1024 if spec.env in ("game2048", "2048", "cartpole") else 16)
    return make_env(spec.env, num_envs=num, device=device, seed=spec.seed, **spec.env_options)


class _DeferredInterrupt:
    """Ctrl-C while training: the first one lets the current update finish and then stops (so
    the checkpoint holds a state between updates and a resume is exact); a second stops at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstopping after this update to save a checkpoint (Ctrl-C again stops at once)",
            file=sys.stderr,
        )

    def install(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():  # signals: main thread only
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGINT, previous)
            self._installed = False


class Trainer:
    """Runs one training job in ``run_dir`` (fresh or resumed)."""

    def __init__(
        self,
        run_dir: Path,
        spec: RunSpec,
        algo_values: dict[str, Any],
        progress: bool = True,
        stop_after_updates: int | None = None,
    ):
        from renshu.runner.logging import RunLogger

        self.run_dir = Path(run_dir)
        self.spec = spec
        self.algo, self.config = build(spec, algo_values)
        self.device = self.algo.device
        self.progress_bar = progress
        self.stop_after_updates = stop_after_updates
        self.wall_offset = 0.0
        self.updates = 0
        self.evals = 0
        self.recent = deque(maxlen=100)
        self.target_reached: dict[str, float] | None = None
        self.last_eval: dict | None = None
        self.resume_step: int | None = None
        self.logger_cls = RunLogger
        threads = spec.threads or algos.DEFAULT_THREADS.get(spec.env)
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)

    # -- budget -----------------------------------------------------------------------------

    def total_steps(self) -> int | None:
        if self.spec.steps is not None:
            return self.spec.steps
        if self.spec.minutes is not None:
            return None
        return algos.default_steps(self.spec.env)

    def fraction_done(self, wall: float) -> float:
        parts = []
        total = self.total_steps()
        if total is not None:
            parts.append(self.algo.env_steps / total)
        if self.spec.minutes is not None:
            parts.append(wall / (60.0 * self.spec.minutes))
        return min(1.0, max(parts))

    def eval_due(self, before: int, steps: int, before_frac: float, frac: float) -> bool:
        """Evaluate after this update? Every ``eval_every`` env steps (default a tenth of the
        step budget); with only a --minutes budget, at every tenth of the time; and at the end."""
        if self.spec.eval_every is None and self.total_steps() is None:
            return int(10 * frac) > int(10 * before_frac)
        interval = self.eval_interval()
        total = self.total_steps()
        return steps // interval > before // interval or (total is not None and steps >= total)

    def eval_interval(self) -> int:
        if self.spec.eval_every is not None:
            return self.spec.eval_every
        total = self.total_steps()
        return max(self.algo.steps_per_update, (total or 1_000_000) // 10)

    # -- checkpoints ------------------------------------------------------------------------

    def save(self, wall: float) -> None:
        save_checkpoint(
            self.run_dir / LATEST,
            {
                "algo": self.spec.algo,
                "env": self.spec.env,
                "algo_state": self.algo.state_dict(),
                "env_state": self.algo.env.state_dict()
                if hasattr(self.algo.env, "state_dict")
                else {},
                "runner": {
                    "wall_seconds": wall,
                    "updates": self.updates,
                    "evals": self.evals,
                    "recent": list(self.recent),
                    "target_reached": self.target_reached,
                    "last_eval": json.dumps(self.last_eval),
                },
            },
        )

    def restore(self, data: dict) -> None:
        if data.get("algo") != self.spec.algo or data.get("env") != self.spec.env:
            raise CheckpointError(
                f"checkpoint is for {data.get('algo')} on {data.get('env')}, "
                f"but this run is {self.spec.algo} on {self.spec.env}"
            )
        try:
            self.algo.load_state_dict(data["algo_state"])
            if data.get("env_state"):
                self.algo.env.load_state_dict(data["env_state"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint does not match this run's configuration: {e}"
            ) from None
        r = data["runner"]
        self.wall_offset = float(r["wall_seconds"])
        self.updates = int(r["updates"])
        self.evals = int(r["evals"])
        self.recent.extend(r["recent"])
        self.target_reached = r["target_reached"]
        self.last_eval = json.loads(r["last_eval"])
        self.resume_step = self.algo.env_steps

    # -- the loop ---------------------------------------------------------------------------

    def run_eval(self) -> dict:
        episodes = self.spec.eval_episodes
        env = make_eval_env(self.spec, episodes, self.device)
        stats = evaluate(
            lambda o, m: self.algo.act(o, m, deterministic=True),
            env,
            episodes,
            seed=self.spec.seed + 1_000_003 * (self.evals + 1),
        )
        self.evals += 1
        return summarize(stats)

    def train(self) -> dict:
        try:
            return self._train()
        finally:
            if self.spec.backend == "ray":  # stop the workers (and a Ray this run started)
                self.algo.env.close()

    def _log_env_notes(self, logger) -> None:
        """What a remote env reports (Ray workers started, died, restarted) goes to log.txt."""
        for note in getattr(self.algo.env, "pop_notes", list)():
            logger.log_text(note)

    def _train(self) -> dict:
        logger = self.logger_cls(self.run_dir, resume_step=self.resume_step)
        total = self.total_steps()
        start = time.perf_counter() - self.wall_offset
        bar = None
        if self.progress_bar:
            from tqdm import tqdm

            bar = tqdm(
                total=total, initial=self.algo.env_steps, unit="step", unit_scale=True,
                dynamic_ncols=True, desc=f"{self.spec.algo} {self.spec.env}",
            )  # fmt: skip
        status = "finished"
        last_ckpt = time.perf_counter()
        interrupt = _DeferredInterrupt().install()
        busy = False  # from the start of an update until its row is logged: not saveable
        try:
            while True:
                wall = time.perf_counter() - start
                if self.fraction_done(wall) >= 1.0:
                    break
                self.algo.progress = self.fraction_done(wall)
                reached_now = False
                before = self.algo.env_steps
                busy = True
                metrics = self.algo.update()
                self.updates += 1
                self._log_env_notes(logger)
                episodes = metrics.pop("episodes")
                steps = self.algo.env_steps
                wall = time.perf_counter() - start
                logger.log_episodes(steps, episodes)
                if "return" in episodes and episodes["return"].numel():
                    self.recent.extend(episodes["return"].tolist())
                metrics["charts/steps_per_second"] = steps / max(wall, 1e-9)
                if self.recent:
                    metrics["charts/return_recent_mean"] = sum(self.recent) / len(self.recent)
                if self.eval_due(before, steps, self.algo.progress, self.fraction_done(wall)):
                    ev = self.run_eval()
                    self.last_eval = ev
                    metrics["eval/mean_return"] = ev["mean_return"]
                    metrics["eval/std_return"] = ev["std_return"]
                    if "mean_score" in ev:
                        metrics["eval/mean_score"] = ev["mean_score"]
                    target = self.spec.target_return
                    if (
                        target is not None
                        and ev["mean_return"] >= target
                        and not self.target_reached
                    ):
                        self.target_reached = {"env_steps": steps, "wall_seconds": wall}
                        reached_now = True
                        logger.log_text(
                            f"target return {target} reached at {steps} steps, {wall:.1f} s"
                        )
                logger.log_iteration(steps, wall, metrics)
                busy = False
                if metrics.get("train/nonfinite_steps", 0) > 0:
                    # The algorithm skipped those optimizer steps: the weights are the last
                    # good ones, and they are what the checkpoint below keeps.
                    status = "nonfinite_loss"
                    logger.log_text(f"non-finite loss or gradient at {steps} env steps; stopping")
                    break
                if bar is not None:
                    bar.update(steps - before)
                    post = {"sps": f"{metrics['charts/steps_per_second']:,.0f}"}
                    if self.recent:
                        post["return"] = f"{metrics['charts/return_recent_mean']:.1f}"
                    if self.last_eval:
                        post["eval"] = f"{self.last_eval['mean_return']:.1f}"
                    bar.set_postfix(post, refresh=False)
                if reached_now:  # (a resumed run that had reached it goes on to its budget)
                    status = "target_reached"
                    break
                if time.perf_counter() - last_ckpt >= self.spec.checkpoint_seconds:
                    self.save(wall)
                    last_ckpt = time.perf_counter()
                if interrupt.requested or (
                    self.stop_after_updates is not None and self.updates >= self.stop_after_updates
                ):
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            interrupt.uninstall()
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - start
        if busy:  # stopped inside an update: its state is half-way, keep the last checkpoint
            logger.log_text("stopped inside an update; the previous checkpoint is kept")
        else:
            self.save(wall)
        logger.log_text(f"{status} at {self.algo.env_steps} env steps, {wall:.1f} s")
        logger.close()
        summary = {
            "status": status,
            "env_steps": self.algo.env_steps,
            "wall_seconds": wall,
            "steps_per_second": self.algo.env_steps / max(wall, 1e-9),
            "updates": self.updates,
            "target_return": self.spec.target_return,
            "target_reached_steps": (self.target_reached or {}).get("env_steps"),
            "target_reached_seconds": (self.target_reached or {}).get("wall_seconds"),
            "last_eval": self.last_eval,
        }
        _write_json(self.run_dir / "summary.json", summary)
        if status == "nonfinite_loss":
            raise NonFiniteLossError(
                f"the loss or its gradient became NaN or inf at {self.algo.env_steps} env steps, "
                f"so training stopped; those updates were skipped and {self.run_dir / LATEST} "
                "holds the last good weights. Try a lower learning rate, gradient clipping "
                "(max_grad_norm) or smaller rewards (reward_scale, clip_rewards)."
            )
        if status != "interrupted":
            self.finish()
        return summary

    def finish(self) -> None:
        """Final artefacts: learning curve and an animation of the trained agent."""
        from renshu.viz.plots import plot_learning_curve

        plot_learning_curve(self.run_dir)
        if self.spec.animation:
            from renshu.runner.record import record_episode

            try:
                record_episode(self.algo, self.spec, self.run_dir / "episode.gif")
            except ImportError as e:  # a Gymnasium env whose renderer needs an extra package
                print(f"episode.gif skipped: {e}", file=sys.stderr)


def _write_json(path: Path, data: dict) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2) + "\n")


def start_run(
    spec: RunSpec,
    algo_values: dict[str, Any],
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    stop_after_updates: int | None = None,
) -> tuple[Path, dict]:
    """Start a fresh run; refuses an existing non-empty run directory unless ``overwrite``
    (which replaces only a renshu run directory, and only once the new run's config is valid)."""
    spec.validate()
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(spec)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run directory {run_dir} exists and is not a directory")
    replace = run_dir.exists() and any(run_dir.iterdir())
    if replace:
        if not overwrite:
            raise FileExistsError(
                f"run directory {run_dir} already exists and is not empty; choose another "
                f"--run-dir, continue it with --resume {run_dir}, or pass --overwrite to replace it"
            )
        if not (run_dir / CONFIG_FILE).is_file():
            raise FileExistsError(
                f"{run_dir} is not empty and not a renshu run directory (no {CONFIG_FILE}); "
                "--overwrite replaces only run directories, so choose another --run-dir"
            )
    trainer = Trainer(run_dir, spec, algo_values, progress, stop_after_updates)
    if replace:  # only now that the new run's config proved valid
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "renshu_version": _version(),
        "algo": spec.algo,
        "env": spec.env,
        "run": dataclasses.asdict(spec),
        "algo_config": to_dict(trainer.config),
        "torch": torch.__version__,
    }
    _write_json(run_dir / CONFIG_FILE, config)
    return run_dir, trainer.train()


def load_run(run_dir: str | Path) -> tuple[RunSpec, dict[str, Any]]:
    """(spec, algo config values) from a run directory's config.json, with clear errors."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a renshu run directory (no {CONFIG_FILE})")
    try:
        config = json.loads(path.read_text())
        spec = RunSpec(**config["run"])
        values = dict(config["algo_config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a valid renshu run config: {e}") from None
    return spec, values


def resume_run(
    run_dir: str | Path,
    steps: int | None = None,
    progress: bool = True,
    stop_after_updates: int | None = None,
    ray_address: str | None = None,
) -> dict:
    """Continue a run from its latest checkpoint towards its budget (or a raised ``steps``);
    a Ray run may continue on another cluster (``ray_address``)."""
    run_dir = Path(run_dir)
    spec, values = load_run(run_dir)
    if ray_address is not None:
        spec.ray_address = ray_address
    data = load_checkpoint(run_dir / LATEST)
    if steps is not None:
        budget = spec.steps
        if budget is None and spec.minutes is None:
            budget = algos.default_steps(spec.env)
        if budget is not None and steps < budget:
            raise ValueError(
                f"--steps {steps} is below the run's budget of {budget} steps; "
                "--resume can only keep or raise it"
            )
        spec.steps = steps
    trainer = Trainer(run_dir, spec, values, progress, stop_after_updates)
    trainer.restore(data)
    if steps is not None:  # record the raised budget only once the checkpoint proved usable
        config = json.loads((run_dir / CONFIG_FILE).read_text())
        config["run"]["steps"] = steps
        _write_json(run_dir / CONFIG_FILE, config)
    return trainer.train()


def load_trained(run_dir: str | Path, device: str | None = None):
    """(algo with the run's latest weights, spec) for evaluation and recording."""
    spec, values = load_run(run_dir)
    if device is not None:
        spec.device = device
    data = load_checkpoint(Path(run_dir) / LATEST)
    algo, _ = build(dataclasses.replace(spec, backend="local"), values)
    if data.get("algo") != spec.algo:
        raise CheckpointError(f"checkpoint in {run_dir} is for {data.get('algo')}, not {spec.algo}")
    try:
        algo.load_state_dict(data["algo_state"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint does not match the run's configuration: {e}") from None
    return algo, spec


def _version() -> str:
    from renshu import __version__

    return __version__
