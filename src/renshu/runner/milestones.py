"""Milestones and the best policy: weight-only snapshots of a run, and choosing what to load.

While a run trains, :class:`Milestones` keeps, next to the full ``checkpoints/latest.pt``:

* ``checkpoints/step-XXXXXXXX.pt`` (the 8-digit env step): ``--milestones K`` snapshots of the
  acting weights spread evenly over the budget, the first before any training (the untrained
  agent) and the last at the end, so "the agent at 0%, 25%, ..., 100% of training" can be
  watched (:func:`write_timelapse`) and evaluated (``--checkpoint step-N``);
* ``checkpoints/best.pt``: the acting weights at the periodic evaluation with the best mean
  return so far, so a run whose agent collapses late still holds its best one.

Both are written with :func:`~renshu.runner.checkpoint.save_checkpoint` (atomic, tensors and
plain data, loadable with ``torch.load(weights_only=True)``) and hold the algorithm's
``acting_state()`` (what a collecting copy needs: the weights), not the optimizer or replay
memory, so they are small. Weights over :data:`MAX_SNAPSHOT_BYTES` (the n-tuple learner's
256 MiB tables) are kept only as best.pt; the log says so.

:func:`load_agent` loads ``best``, ``latest`` or ``step-N`` of a run for ``eval``, ``record``
and the Python API; the default is best.pt where it exists, else latest.pt.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from renshu.errors import CheckpointError
from renshu.runner.checkpoint import LATEST, load_checkpoint, save_checkpoint

__all__ = [
    "BEST",
    "Milestones",
    "available_checkpoints",
    "checkpoint_path",
    "list_milestones",
    "load_agent",
    "write_timelapse",
]

CHECKPOINT_DIR = "checkpoints"
BEST = "checkpoints/best.pt"
TIMELAPSE_FILE = "timelapse.gif"
MAX_SNAPSHOT_BYTES = 64 * 2**20
_STEP_FILE = re.compile(r"^step-(\d{8,})\.pt$")


def milestone_file(env_steps: int) -> str:
    return f"{CHECKPOINT_DIR}/step-{env_steps:08d}.pt"


def milestone_fractions(k: int) -> list[float]:
    """The shares of the budget at which ``k`` milestones are kept: 0 (before training) to 1."""
    if k <= 0:
        return []
    if k == 1:
        return [1.0]
    return [i / (k - 1) for i in range(k)]


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


def _snapshot(kind: str, spec, algo, progress: float, evaluation: dict | None) -> dict:
    return {
        "kind": kind,
        "algo": spec.algo,
        "env": spec.env,
        "env_steps": int(algo.env_steps),
        "progress": float(progress),
        "time": time.time(),
        "mean_return": None if evaluation is None else float(evaluation["mean_return"]),
        "evaluation": json.dumps(evaluation),
        "acting_state": algo.acting_state(),
    }


class Milestones:
    """Writes a run's milestones and best.pt as it trains (the loop calls it; see the module
    docstring). ``resumed_progress``: the share of the budget a resumed run had done (the
    milestones up to it exist already), None for a fresh run, whose first milestone (the
    untrained agent) is written here. ``log`` gets lines for the run's log."""

    def __init__(self, run_dir: Path, spec, algo, resumed_progress: float | None = None, log=None):
        self.run_dir = Path(run_dir)
        self.spec, self.algo = spec, algo
        self.fractions = milestone_fractions(spec.milestones)
        done = -1.0 if resumed_progress is None else resumed_progress
        self.next = sum(1 for f in self.fractions if f <= done)
        self.last_step: int | None = None
        self.best: float = -math.inf
        size = _nbytes(algo.acting_state())
        if self.fractions and size > MAX_SNAPSHOT_BYTES:
            if log is not None:
                log(f"milestones skipped: the {spec.algo} weights take {size / 2**20:,.0f} MiB "
                    "each (best.pt is still kept; --milestones 0 silences this)")  # fmt: skip
            self.fractions = []
        best = self.run_dir / BEST
        if resumed_progress is not None and best.is_file():
            try:
                value = load_checkpoint(best).get("mean_return")
                self.best = -math.inf if value is None else float(value)
            except CheckpointError:
                pass  # a damaged best.pt is replaced at the next evaluation
        if resumed_progress is None:
            self.reached(0.0)

    def reached(self, progress: float) -> None:
        """Write the milestones due at ``progress`` (the share of the budget done)."""
        due = False
        while self.next < len(self.fractions) and self.fractions[self.next] <= progress + 1e-12:
            self.next += 1
            due = True
        if due:
            self._write(progress)

    def finish(self, progress: float) -> None:
        """At the end of a run (budget, target or callback): the final agent is a milestone."""
        if self.fractions and self.last_step != self.algo.env_steps:
            self.next = len(self.fractions)
            self._write(progress)

    def evaluated(self, progress: float, evaluation: dict) -> bool:
        """After a periodic evaluation: best.pt follows the best mean return. True if it did."""
        mean = float(evaluation["mean_return"])
        if not mean > self.best:
            return False
        self.best = mean
        save_checkpoint(
            self.run_dir / BEST, _snapshot("best", self.spec, self.algo, progress, evaluation)
        )
        return True

    def _write(self, progress: float) -> None:
        step = int(self.algo.env_steps)
        if step == self.last_step:
            return
        path = self.run_dir / milestone_file(step)
        save_checkpoint(path, _snapshot("milestone", self.spec, self.algo, progress, None))
        self.last_step = step


# ---------------------------------------------------------------------------------------------
# Choosing and loading a checkpoint.


def list_milestones(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(env_steps, path), ...]`` of a run's milestones, by step."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _STEP_FILE.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def available_checkpoints(run_dir: str | Path) -> list[str]:
    """The names ``--checkpoint`` takes for this run: best, latest, step-N (those that exist)."""
    run_dir = Path(run_dir)
    names = [n for n, rel in (("best", BEST), ("latest", LATEST)) if (run_dir / rel).is_file()]
    return names + [f"step-{step}" for step, _ in list_milestones(run_dir)]


def checkpoint_path(run_dir: str | Path, checkpoint: str | None = None) -> tuple[str, Path]:
    """``(name, path)`` of ``checkpoint`` (best, latest, step-N; None: best if it exists, else
    latest) in ``run_dir``; a ValueError naming the ones there are otherwise."""
    run_dir = Path(run_dir)
    if checkpoint is None:
        checkpoint = "best" if (run_dir / BEST).is_file() else "latest"
    name = str(checkpoint).strip()
    there = ", ".join(available_checkpoints(run_dir)) or "none"
    if name in ("best", "latest"):
        path = run_dir / (BEST if name == "best" else LATEST)
        if not path.is_file():
            why = " (it is written at the first periodic evaluation)" if name == "best" else ""
            raise ValueError(f"--checkpoint {name}: {run_dir} has no {path.name}{why}; "
                             f"available: {there}")  # fmt: skip
        return name, path
    match = re.fullmatch(r"step-(\d+)", name)
    if match is None:
        raise ValueError(
            f"--checkpoint takes best, latest or step-N (N an env step), got {checkpoint!r}; "
            f"available in {run_dir}: {there}"
        )
    step = int(match.group(1))
    for found, path in list_milestones(run_dir):
        if found == step:
            return f"step-{step}", path
    raise ValueError(f"--checkpoint {name}: {run_dir} has no milestone at step {step:,}; "
                     f"available: {there}")  # fmt: skip


@dataclass
class Loaded:
    """What :func:`load_agent` loaded: the name (best, latest, step-N), file, the env step of
    its weights and, for best.pt, the evaluation that chose it."""

    name: str
    path: Path
    env_steps: int
    evaluation: dict | None = None

    def describe(self) -> str:
        text = (
            f"loaded {self.name} ({self.path.name}): the agent after {self.env_steps:,} env steps"
        )
        if self.evaluation:
            text += f", evaluation mean return {self.evaluation['mean_return']:.2f}"
        return text


def acting_agent(spec, values: dict, device="cpu", encoder=None, env=None):
    """A collecting copy (``learner=False``) of run ``spec``'s algorithm with its config
    ``values``, on CPU by default: what recordings and the timelapse act with (``encoder``:
    the run's encoder, for a run trained with one; several agents may share it, and an
    ``env`` made by :func:`agent_env`, which the agents only read their shapes from)."""
    from renshu import algos
    from renshu.runner.run import algo_config, network_kwargs

    cls = algos.get_algorithm(spec.algo)
    config = algo_config(spec, values)
    env = agent_env(spec, values, device) if env is None else env
    return cls(env, config, seed=spec.seed, learner=False, encoder=encoder,
               **network_kwargs(spec))  # fmt: skip


def agent_env(spec, values: dict, device="cpu", num_envs: int | None = None):
    """The env an acting agent of run ``spec`` is built on (its config's env count unless
    ``num_envs``: an acting copy only reads the env's spaces, as a Ray worker's share does)."""
    from renshu.envs.registry import make_env
    from renshu.runner.run import algo_config

    num_envs = algo_config(spec, values).num_envs if num_envs is None else num_envs
    return make_env(spec.env, num_envs=num_envs, device=device, seed=spec.seed,
                    **spec.env_options)  # fmt: skip


def _load_acting(algo, data: dict, path: Path) -> None:
    try:
        algo.load_acting_state(data["acting_state"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path} does not match this run's configuration: {e}") from None


def load_agent(run_dir: str | Path, checkpoint: str | None = None, device: str | None = None):
    """``(algo, spec, loaded)``: run ``run_dir``'s algorithm with the weights of ``checkpoint``
    (best, latest, step-N; None: best.pt where it exists, else latest.pt) for evaluation and
    recording; ``loaded`` (:class:`Loaded`) says which step that is."""
    import dataclasses

    from renshu.runner.checkpoint import load_trained
    from renshu.runner.run import build, load_run

    run_dir = Path(run_dir)
    name, path = checkpoint_path(run_dir, checkpoint)
    if name == "latest":
        algo, spec = load_trained(run_dir, device=device)
        return algo, spec, Loaded(name, path, int(algo.env_steps))
    spec, values = load_run(run_dir)
    if device is not None:
        spec.device = device
    data = load_checkpoint(path)
    if data.get("algo") != spec.algo:
        raise CheckpointError(f"{path} is for {data.get('algo')}, not {spec.algo}")
    algo, _, _ = build(dataclasses.replace(spec, backend="local"), values)
    _load_acting(algo, data, path)
    evaluation = json.loads(data["evaluation"]) if data.get("evaluation") else None
    return algo, spec, Loaded(name, path, int(data["env_steps"]), evaluation)


# ---------------------------------------------------------------------------------------------
# The timelapse: the milestones side by side, playing the same game.


def _episode() -> dict:
    return {"shots": [], "obs": [], "mask": [], "score": 0.0, "ended": False, "final": None}


def _play_together(spec, agents: list, seed: int, max_steps: int) -> tuple[list, tuple] | None:
    """One episode per agent, all in one batched env whose games start from one and the same
    state (``reset_groups``), each game played by its agent, greedily. Per episode and step:
    the frame (drawn only if shown), the score before it, the action, and the observation and
    mask the agent saw. None for an env that cannot start its games from one state."""
    from renshu.runner.evaluate import make_eval_env

    k = len(agents)
    env = make_eval_env(spec, k, "cpu", render=True)
    try:
        if env.num_envs != k:
            return None
        try:
            obs, info = env.reset_groups(k, seed=seed)
        except ValueError:
            return None
        episodes = [_episode() for _ in agents]
        active = list(range(k))
        with torch.no_grad():
            for _ in range(max_steps):
                mask = info["action_mask"]
                actions = mask.to(torch.int64).argmax(1)  # (a legal one for the games over)
                for i in active:
                    row_obs, row_mask = obs[i : i + 1], mask[i : i + 1]
                    action = int(agents[i].act(row_obs, row_mask, deterministic=True)[0])
                    actions[i] = action
                    ep = episodes[i]
                    ep["shots"].append((env.frame(i), ep["score"], action))
                    ep["obs"].append(row_obs)
                    ep["mask"].append(row_mask)
                obs, reward, _, _, info = env.step(actions)
                rewards, done = reward.tolist(), info["done"].tolist()
                for i in list(active):
                    episodes[i]["score"] += rewards[i]
                    if done[i]:
                        episodes[i].update(ended=True, final=env.frame(i, final=True))
                        active.remove(i)
                if not active:
                    break
        for i in active:
            episodes[i]["final"] = env.frame(i)
        return episodes, env.action_meanings
    finally:
        env.close()


def _play_apart(spec, agents: list, seed: int, max_steps: int) -> tuple[list, tuple]:
    """:func:`_play_together` for envs that cannot start games from a given state: one env
    per agent, each reset with the same seed (the same first state for seeded envs)."""
    from renshu.runner.evaluate import make_eval_env, play

    episodes = []
    for agent in agents:
        env = make_eval_env(spec, 1, "cpu", render=True)
        ep = _episode()

        def act_and_watch(obs, mask, ep=ep, env=env, agent=agent):
            action = agent.act(obs, mask, deterministic=True)
            ep["shots"].append((env.frame(0), ep["score"], int(action[0])))
            ep["obs"].append(obs)
            ep["mask"].append(mask)
            return action

        def on_step(obs, mask, action, reward, info, ep=ep):
            ep["score"] += float(reward[0])
            ep["ended"] = bool(info["done"][0])
            return ep["ended"] or len(ep["shots"]) >= max_steps

        try:
            play(act_and_watch, env, 1, seed, max_steps=max_steps + 1, on_step=on_step)
            ep["final"] = env.frame(0, final=ep["ended"])
            names = env.action_meanings
        finally:
            env.close()
        episodes.append(ep)
    return episodes, names


def write_timelapse(
    run_dir: str | Path,
    out: str | Path | None = None,
    seed: int | None = None,
    max_frames: int = 60,
    max_steps: int = 2000,
    fps: int = 8,
    panel_width: int = 280,
) -> dict:
    """Write ``timelapse.gif`` (or ``out``, .gif or .mp4): run ``run_dir``'s milestones side by
    side, each playing the same game from the same start (seed ``seed``, default the run's
    seed + 7, as episode.gif), greedily. Each panel is titled with its env step and shows the
    score, the action and the agent's action probabilities or Q-values below the picture. The
    longest episode is shown in at most ``max_frames`` frames (every k-th step); a game that
    ended earlier holds its final position; pictures wider than ``panel_width`` are scaled
    down. The agents act on one game at a time, so torch runs on one CPU thread meanwhile (the
    caller's count is restored). Returns ``{"out", "panels", "frames", "steps",
    "scores", "seconds"}``.
    """
    from renshu.runner.run import load_run

    started = time.perf_counter()
    run_dir = Path(run_dir)
    spec, values = load_run(run_dir)
    milestones = list_milestones(run_dir)
    if not milestones:
        raise ValueError(
            f"{run_dir} has no milestones (checkpoints/step-N.pt) to put in a timelapse; "
            "train with --milestones K (the default keeps 5)"
        )
    out = Path(out) if out is not None else run_dir / TIMELAPSE_FILE
    seed = spec.seed + 7 if seed is None else seed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every pass is on one game: extra threads only add their syncs
    try:
        return _timelapse(run_dir, spec, values, milestones, out, seed, max_frames, max_steps,
                          fps, panel_width, started)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _timelapse(run_dir, spec, values, milestones, out, seed, max_frames, max_steps, fps,
               panel_width, started) -> dict:  # fmt: skip
    from renshu.runner.run import make_run_encoder
    from renshu.viz.animation import save_animation
    from renshu.viz.timelapse import timelapse_frames

    encoder = make_run_encoder(spec)  # (one, shared by the agents, as is the env they read)
    agents = []
    shapes = agent_env(spec, values, num_envs=1)
    try:
        for _, path in milestones:
            agent = acting_agent(spec, values, encoder=encoder, env=shapes)
            _load_acting(agent, load_checkpoint(path), path)
            agents.append(agent)
    finally:
        shapes.close()
    score = "score" if "score" in spec.env_spec.extras else "return"
    budget = spec.total_steps()
    played = _play_together(spec, agents, seed, max_steps)
    panels, names = played if played is not None else _play_apart(spec, agents, seed, max_steps)
    for (step, _), p in zip(milestones, panels):
        p["title"] = f"step {step:,}"
        if step == 0:
            p["title"] += " (untrained)"
        elif budget:
            p["title"] += f" ({min(1.0, step / budget):.0%})"
    longest = max(len(p["shots"]) for p in panels)
    shown = list(range(0, longest, max(1, math.ceil(longest / max_frames))))
    columns = []
    with torch.no_grad():
        for agent, p in zip(agents, panels):
            rows = [t for t in shown if t < len(p["shots"])]
            if rows:  # what the agent thinks of each shown step, in one batched call
                obs = torch.cat([p["obs"][t] for t in rows])
                mask = torch.cat([p["mask"][t] for t in rows])
                label, vals = agent.action_values(obs, mask)
                vals = vals.float().cpu().tolist()
            else:
                label, vals = "", []
            column = []
            for i, t in enumerate(rows):
                frame, total, action = p["shots"][t]
                lines = [f"{score} {total:g}", f"action: {names[action]}", label]
                column.append((frame, lines, dict(zip(names, vals[i]))))
            end = "episode over" if p["ended"] else f"stopped at {len(p['shots'])} steps"
            column.append((p["final"], [f"{score} {p['score']:g}", end, ""], None))
            columns.append(column)
    titles = [p["title"] for p in panels]
    images = timelapse_frames(columns, titles, len(shown), panel_width=panel_width)
    images.extend([images[-1]] * max(1, fps))  # hold the end for a second
    save_animation(images, out, fps=fps)
    return {
        "out": str(out),
        "panels": len(panels),
        "frames": len(images),
        "steps": [len(p["shots"]) for p in panels],
        "scores": [p["score"] for p in panels],
        "milestones": [step for step, _ in milestones],
        "seconds": time.perf_counter() - started,
    }
