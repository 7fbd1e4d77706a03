"""The one training loop: budget, progress bar, metrics, evaluation, checkpoints, plots, GIF.

Each round the loop asks for a batch (``collect(progress)``: the algorithm's own, or the Ray
workers') and hands it to ``algo.learn``; everything with side effects happens here.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from renshu.errors import NonFiniteLossError, StopSignal
from renshu.fileio import RunLock
from renshu.runner.checkpoint import LATEST, restore_runner, save_run_checkpoint
from renshu.runner.evaluate import eval_policy, evaluate, make_eval_env, summarize
from renshu.runner.run import (
    SUMMARY_FILE,
    RunSpec,
    build,
    check_run_dir,
    default_run_dir,
    describe_device,
    prepare_run_dir,
    process_seconds,
    write_json,
)

# on_eval(env_steps, evaluation summary) -> True to stop the run now (status "stopped")
EvalCallback = Callable[[int, dict], bool]


# Ctrl-C; what timeout, Slurm and Kubernetes send; a terminal that closes
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class _DeferredInterrupt:
    """SIGINT (Ctrl-C), SIGTERM and SIGHUP while training: the first one lets the current
    update finish and then stops (so the checkpoint holds a state between updates and a resume
    is exact); a second one stops at once (:class:`~renshu.errors.StopSignal`), keeping the
    previous checkpoint. ``signum`` is the first signal's number (None: none came).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise StopSignal(signum)
        self.signum = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(
            f"\n{name}: stopping after this update to save a checkpoint "
            f"({name} again stops at once)",
            file=sys.stderr,
        )

    def install(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():  # signals: main thread only
            for name in STOP_SIGNALS:
                number = getattr(signal, name, None)  # (Windows has no SIGHUP)
                if number is not None:
                    self._previous[number] = signal.signal(number, self._handle)
        return self

    def uninstall(self) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}


@dataclass
class RunnerState:
    """The loop's own counters, saved in every checkpoint."""

    wall_seconds: float = 0.0
    updates: int = 0
    evals: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=100))  # last episode returns
    target_reached: dict[str, float] | None = None
    last_eval: dict | None = None


class Trainer:
    """Runs one training job in ``run_dir`` (fresh or resumed)."""

    def __init__(
        self,
        run_dir: Path,
        spec: RunSpec,
        algo_values: dict[str, Any],
        progress: bool = True,
        stop_after_updates: int | None = None,
        on_eval: EvalCallback | None = None,
        on_summary: Callable[[dict], None] | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.on_summary = on_summary  # called with the summary before the final artefacts
        self.spec = spec
        self.algo, self.collect, self.config = build(spec, algo_values)
        self.device = self.algo.device
        self.progress_bar = progress
        self.stop_after_updates = stop_after_updates
        self.on_eval = on_eval
        self.state = RunnerState()
        self.resume_step: int | None = None
        # The target-seeking evaluation schedule (see eval_due): wall-clock, not checkpointed.
        self._last_eval_steps = 0
        self._last_eval_seconds = 0.0
        self._trained_since_eval = 0.0
        self._startup_seconds: float | None = None
        self._interrupt: _DeferredInterrupt | None = None
        threads = spec.cpu_threads()
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)

    # -- budget -----------------------------------------------------------------------------

    def fraction_done(self, wall: float) -> float:
        parts = []
        total = self.spec.total_steps()
        if total is not None:
            parts.append(self.algo.env_steps / total)
        if self.spec.minutes is not None:
            parts.append(wall / (60.0 * self.spec.minutes))
        return min(1.0, max(parts))

    def eval_due(self, before: int, steps: int, before_frac: float, frac: float) -> bool:
        """Evaluate after this update? Every ``eval_every`` env steps (default a tenth of the
        step budget); with only a --minutes budget, at every tenth of the time; and at the end.

        With ``--target-return`` and no ``--eval-every``, evaluation follows the run so as to
        notice the target soon after it is reached: after an update once the env steps have
        grown by a tenth since the last evaluation (so the target is caught within about 10% of
        the steps it took) and the training since then took at least as long as that evaluation
        did (so evaluation stays at most about half of the wall-clock, and far less while
        episodes are short). When the evaluations happen then depends on the clock; what is
        learned does not.
        """
        total = self.spec.total_steps()
        if total is not None and steps >= total:
            return True
        seeking = self.spec.target_return is not None and self.spec.target_on == "eval"
        if seeking and self.spec.eval_every is None:
            if self.state.target_reached:  # (a resumed run going on to its budget)
                return int(10 * frac) > int(10 * before_frac)
            grown = steps >= 1.1 * self._last_eval_steps
            return grown and self._trained_since_eval >= self._last_eval_seconds
        if self.spec.eval_every is None and total is None:
            return int(10 * frac) > int(10 * before_frac)
        floor = self.spec.env_spec.eval.min_interval or 0  # (Atari: 250k frames)
        interval = self.spec.eval_every or max(self.algo.steps_per_update, total // 10, floor)
        return steps // interval > before // interval

    def target_met(self, evaluation: dict | None) -> bool:
        """Whether --target-return is reached now: by the evaluation's mean return
        (``--target-on eval``), or by the running mean of the last 100 training episodes
        (``train``, once 100 have finished). False once reached (a resumed run goes on)."""
        target, st = self.spec.target_return, self.state
        if target is None or st.target_reached:
            return False
        if self.spec.target_on == "train":
            return len(st.recent) == st.recent.maxlen and sum(st.recent) / len(st.recent) >= target
        return evaluation is not None and evaluation["mean_return"] >= target

    # -- checkpoints ------------------------------------------------------------------------

    def save(self, wall: float) -> None:
        self.state.wall_seconds = wall
        save_run_checkpoint(self.run_dir / LATEST, self.spec, self.algo, self.state)

    def restore(self, data: dict) -> None:
        restore_runner(data, self.spec, self.algo, self.state)
        self.resume_step = self.algo.env_steps

    # -- the loop ---------------------------------------------------------------------------

    def run_eval(self) -> dict:
        episodes = self.spec.episodes_per_eval()
        env = make_eval_env(self.spec, episodes, self.device)
        seed = self.spec.seed + 1_000_003 * (self.state.evals + 1)
        act, _ = eval_policy(self.algo, self.spec.env_spec, seed)  # greedy, or the env's protocol
        try:
            stats = evaluate(act, env, episodes, seed=seed)
        finally:
            env.close()
        self.state.evals += 1
        return summarize(stats, self.spec.env_spec)

    def train(self) -> dict:
        try:
            return self._train()
        finally:
            if self._interrupt is not None:
                self._interrupt.uninstall()
            if self.spec.backend == "ray":  # stop the workers (and a Ray this run started)
                self.algo.env.close()

    def _train(self) -> dict:
        from renshu.runner.logging import RunLogger

        st = self.state
        logger = RunLogger(self.run_dir, resume_step=self.resume_step)
        where = f"{self.spec.algo} on {self.spec.env}: {describe_device(self.device)}"
        logger.log_text(where)
        if self.progress_bar:  # the first line above the progress bar
            print(where, file=sys.stderr)
        if self.spec.env_spec.note and self.resume_step is None:
            logger.log_text(self.spec.env_spec.note)
        from renshu.runner.milestones import Milestones

        resumed = None if self.resume_step is None else self.fraction_done(st.wall_seconds)
        milestones = Milestones(self.run_dir, self.spec, self.algo, resumed, logger.log_text)
        total = self.spec.total_steps()
        start = time.perf_counter() - st.wall_seconds
        bar = None
        if self.progress_bar:
            from tqdm import tqdm

            bar = tqdm(
                total=total, initial=self.algo.env_steps, unit="step", unit_scale=True,
                dynamic_ncols=True, desc=f"{self.spec.algo} {self.spec.env}",
            )  # fmt: skip
        status = "finished"
        # The first checkpoint right after the first update (a run stopped at any time after
        # it can resume), then every --checkpoint-seconds.
        saved = (self.run_dir / LATEST).is_file()
        last_ckpt = time.perf_counter()
        interrupt = self._interrupt = _DeferredInterrupt().install()
        busy = False  # from the start of an update until its row is logged: not saveable
        try:
            while True:
                wall = time.perf_counter() - start
                progress = self.fraction_done(wall)
                if progress >= 1.0:
                    break
                stop_now = False
                before = self.algo.env_steps
                busy = True
                round_start = time.perf_counter()
                batch = self.collect(progress)
                metrics = self.algo.learn(batch, progress)
                self._trained_since_eval += time.perf_counter() - round_start
                st.updates += 1
                if self._startup_seconds is None:  # the wait before the first update was done
                    self._startup_seconds = process_seconds()
                for note in self.algo.env.pop_notes():
                    logger.log_text(note)
                episodes = batch.episodes
                steps = self.algo.env_steps
                wall = time.perf_counter() - start
                logger.log_episodes(steps, episodes)
                if "return" in episodes and episodes["return"].numel():
                    st.recent.extend(episodes["return"].tolist())
                metrics["charts/steps_per_second"] = steps / max(wall, 1e-9)
                if st.recent:
                    metrics["charts/return_recent_mean"] = sum(st.recent) / len(st.recent)
                milestones.reached(self.fraction_done(wall))
                train_hit = self.spec.target_on == "train" and self.target_met(None)
                if self.eval_due(before, steps, progress, self.fraction_done(wall)) or train_hit:
                    eval_start = time.perf_counter()
                    ev = self.run_eval()
                    self._last_eval_seconds = time.perf_counter() - eval_start
                    self._last_eval_steps, self._trained_since_eval = steps, 0.0
                    st.last_eval = ev
                    metrics["eval/mean_return"] = ev["mean_return"]
                    metrics["eval/std_return"] = ev["std_return"]
                    if "mean_score" in ev:
                        metrics["eval/mean_score"] = ev["mean_score"]
                    milestones.evaluated(self.fraction_done(wall), ev)
                    if train_hit or self.target_met(ev):
                        st.target_reached = {"env_steps": steps, "wall_seconds": wall}
                        status, stop_now = "target_reached", True
                        on = self.spec.target_on
                        logger.log_text(f"target return {self.spec.target_return} reached ({on}) "
                                        f"at {steps} steps, {wall:.1f} s")  # fmt: skip
                    if self.on_eval is not None and self.on_eval(steps, ev) and not stop_now:
                        status, stop_now = "stopped", True
                        logger.log_text(f"stopped by the evaluation callback at {steps} steps")
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
                    if st.recent:
                        post["return"] = f"{metrics['charts/return_recent_mean']:.1f}"
                    if st.last_eval:
                        post["eval"] = f"{st.last_eval['mean_return']:.1f}"
                    bar.set_postfix(post, refresh=False)
                if stop_now:  # (a resumed run that had reached its target goes on to its budget)
                    break
                if not saved or time.perf_counter() - last_ckpt >= self.spec.checkpoint_seconds:
                    self.save(wall)
                    saved, last_ckpt = True, time.perf_counter()
                if interrupt.requested or (
                    self.stop_after_updates is not None and st.updates >= self.stop_after_updates
                ):
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            status = "interrupted"
        except BaseException as e:  # e.g. a checkpoint or log that could not be written
            try:
                logger.log_text(f"stopped: {e}")
                logger.close()
            except OSError:
                pass
            raise
        finally:
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - start
        if busy:  # stopped inside an update: its state is half-way, keep the last checkpoint
            logger.log_text("stopped inside an update; the previous checkpoint is kept")
        else:
            self.save(wall)
            if status in ("finished", "target_reached", "stopped"):
                milestones.finish(self.fraction_done(wall))  # the final agent is the last
        logger.log_text(f"{status} at {self.algo.env_steps} env steps, {wall:.1f} s")
        logger.close()
        summary = {
            "status": status,
            "env_steps": self.algo.env_steps,
            "wall_seconds": wall,
            "steps_per_second": self.algo.env_steps / max(wall, 1e-9),
            "updates": st.updates,
            "device": describe_device(self.device),
            "startup_seconds": self._startup_seconds,
            "target_return": self.spec.target_return,
            "target_reached_steps": (st.target_reached or {}).get("env_steps"),
            "target_reached_seconds": (st.target_reached or {}).get("wall_seconds"),
            "last_eval": st.last_eval,
            "signal": interrupt.signal_name if status == "interrupted" else None,
        }
        write_json(self.run_dir / SUMMARY_FILE, summary)
        interrupt.uninstall()  # saved: a signal from here on stops the plots and the GIF at once
        if status == "nonfinite_loss":
            raise NonFiniteLossError(
                f"the loss or its gradient became NaN or inf at {self.algo.env_steps} env steps, "
                f"so training stopped; those updates were skipped and {self.run_dir / LATEST} "
                "holds the last good weights. Try a lower learning rate, gradient clipping "
                "(max_grad_norm) or smaller rewards (reward_scale, clip_rewards)."
            )
        if self.on_summary is not None:  # the answer first, then the plots and the GIF
            self.on_summary(summary)
        if status != "interrupted":
            self.finish()
        return summary

    def finish(self) -> None:
        """Final artefacts: learning curve and an animation of the trained agent."""
        from renshu.viz.plots import plot_learning_curve

        plot_learning_curve(self.run_dir)
        if self.spec.animation:
            steps = self.spec.env_spec.eval.animation_steps  # (Atari: the first 300 steps)
            from renshu.runner.record import record_episode

            try:
                record_episode(self.algo, self.spec, self.run_dir / "episode.gif", max_steps=steps)
            except ImportError as e:  # a Gymnasium env whose renderer needs an extra package
                print(f"episode.gif skipped: {e}", file=sys.stderr)
            from renshu.runner.milestones import list_milestones, write_timelapse

            if self.spec.encoder is not None:  # every milestone would run the encoder anew
                print("timelapse.gif skipped for a run with an encoder (slow); make it with "
                      f"renshu record {self.run_dir} --timelapse", file=sys.stderr)  # fmt: skip
            elif len(list_milestones(self.run_dir)) > 1:  # the milestones side by side
                try:
                    write_timelapse(self.run_dir, max_steps=steps)
                except ImportError as e:
                    print(f"timelapse.gif skipped: {e}", file=sys.stderr)


def start_run(
    spec: RunSpec,
    algo_values: dict[str, Any],
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    stop_after_updates: int | None = None,
    on_eval: EvalCallback | None = None,
    on_summary: Callable[[dict], None] | None = None,
) -> tuple[Path, dict]:
    """Start a fresh run; refuses an existing non-empty run directory unless ``overwrite``
    (which replaces only a renshu run directory, and only once the new run's config is valid).
    ``on_eval(env_steps, evaluation)`` is called after every periodic evaluation; returning
    True stops the run there (status ``stopped``: e.g. a tuner pruning the trial);
    ``on_summary(summary)`` once training has ended, before the learning curve and the GIF are
    drawn."""
    spec = spec.resolved()
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(spec)
    replace = check_run_dir(run_dir, overwrite)
    trainer = Trainer(run_dir, spec, algo_values, progress, stop_after_updates, on_eval, on_summary)
    with RunLock(run_dir):  # one writer: refused while another process trains this run
        prepare_run_dir(run_dir, replace, spec, trainer.config)
        return run_dir, trainer.train()
