"""Animations of an agent playing one episode, with an overlay of what it thinks."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from renshu.envs.base import random_legal_actions

# act(obs [1, ...], mask [1, A]) -> action [1];  values(obs, mask) -> (label, [1, A] tensor)
ActFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ValuesFn = Callable[[torch.Tensor, torch.Tensor], tuple[str, torch.Tensor]]
# explain(obs [B, ...]) -> one text per observation, drawn on the frame (``--explain``)
ExplainFn = Callable[[torch.Tensor], list[str]]

EXPLAIN_WIDTH = 24  # characters per panel line
EXPLAIN_LINES = 6  # panel lines an explanation may take


def explainer(algo, spec, prompt: str | None = None, max_new_tokens: int = 24) -> ExplainFn:
    """The text answers of a run's vision-language encoder (``describe``) for recorded frames.

    Raises a ValueError unless the run was trained with ``--encoder hf-vlm``.
    """
    from renshu.encoders import stateless

    encoder = None if spec.encoder is None else algo.encoder
    if encoder is None or not encoder.describes:
        used = f"--encoder {spec.encoder}" if spec.encoder else "no encoder"
        raise ValueError(
            f"--explain needs a run trained with --encoder hf-vlm (this run used {used})"
        )
    model = stateless(encoder)

    def explain(obs: torch.Tensor) -> list[str]:
        return model.describe(obs, prompt=prompt, max_new_tokens=max_new_tokens)

    return explain


def _explain_lines(explain: ExplainFn | None, obs: list[torch.Tensor]) -> list[list[str]]:
    """Panel lines of the explanation of each observation (all at once: one batched call)."""
    if explain is None or not obs:
        return [[] for _ in obs]
    import textwrap

    out = []
    for text in explain(torch.cat(obs)):
        wrapped = textwrap.wrap(f"VLM: {text.strip() or '(no answer)'}", EXPLAIN_WIDTH)
        if len(wrapped) > EXPLAIN_LINES:
            wrapped = [*wrapped[: EXPLAIN_LINES - 1], wrapped[EXPLAIN_LINES - 1][:-3] + "..."]
        out.append(wrapped)
    return out


def _with_text(lines: list[str], text: list[str]) -> list[str]:
    """``lines`` with the explanation above their last line (the label of the bars)."""
    return [*lines[:-1], *text, lines[-1]] if text else lines


def _keep(n: int, max_frames: int) -> range:
    """Indices of the frames kept when an episode of ``n`` steps is shown in ``max_frames``."""
    return range(0, n, max(1, math.ceil(n / max_frames)))


def record(
    spec,
    act: ActFn,
    values: ValuesFn,
    out: str | Path,
    seed: int = 0,
    max_steps: int = 3000,
    fps: int = 12,
    title: str = "",
    max_frames: int = 150,
    explain: ExplainFn | None = None,
) -> dict:
    """Play one episode of run ``spec``'s env and write it to ``out`` (.gif or .mp4). Returns
    steps, return and frames.

    The episode runs in the evaluation loop (:func:`~renshu.runner.evaluate.play`) on one env.
    Long episodes are shown with every k-th step so the animation has at most ``max_frames``
    frames (plus a held final frame); native games draw only those. ``explain`` (see
    :func:`explainer`) writes a text on each frame shown, computed for those frames only.
    """
    from renshu.envs.render import overlay_panel
    from renshu.runner.evaluate import make_eval_env, play
    from renshu.viz.animation import save_animation

    env = make_eval_env(spec, 1, "cpu", render=True)
    names = env.action_meanings
    score = "score" if "score" in spec.env_spec.extras else "return"
    shots: list = []  # (frame, header, obs, mask, action) per step; drawn only if kept
    total, ended = [0.0], [False]

    def act_and_watch(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        action = act(obs, mask)
        header = f"step {len(shots)}  {score} {total[0]:g}"
        shots.append((env.frame(0), header, obs, mask, int(action[0])))
        return action

    def on_step(obs, mask, action, reward, info) -> bool:
        total[0] += float(reward[0])
        ended[0] = bool(info["done"][0])
        return ended[0] or len(shots) >= max_steps

    try:
        play(act_and_watch, env, 1, seed, max_steps=max_steps, on_step=on_step)
        kept = [shots[i] for i in _keep(len(shots), max_frames)]
        # What the agent thinks of each shown step, in one batched call.
        label, vals = values(torch.cat([s[2] for s in kept]), torch.cat([s[3] for s in kept]))
        texts = _explain_lines(explain, [shot[2] for shot in kept])
        images = []
        for (frame, header, _, _, action), row, text in zip(kept, vals.tolist(), texts):
            lines = [title, f"action: {names[action]}", label]
            bars = dict(zip(names, row))
            images.append(overlay_panel(frame(header), _with_text(lines, text), bars))
        steps = len(shots)
        end = "episode over" if ended[0] else f"stopped after {steps} steps"
        last = env.frame(0, final=ended[0])(f"step {steps}  {score} {total[0]:g}")
    finally:
        env.close()
    images.extend([overlay_panel(last, [title, end], None)] * 8)  # hold the final position
    save_animation(images, out, fps=fps)
    return {"out": str(out), "steps": steps, "return": total[0], "frames": len(images)}


def record_episode(algo, spec, out: str | Path, seed: int | None = None, **kwargs) -> dict:
    """Record a trained algorithm (greedy actions) on its run's environment."""
    device = algo.device

    def act(obs, mask):
        return algo.act(obs.to(device), mask.to(device), deterministic=True).cpu()

    def values(obs, mask):
        label, vals = algo.action_values(obs.to(device), mask.to(device))
        return label, vals.cpu()

    title = f"{spec.algo} (greedy)"
    seed = spec.seed + 7 if seed is None else seed
    return record(spec, act, values, out, seed=seed, title=title, **kwargs)


def random_policy(seed: int) -> tuple[ActFn, ValuesFn]:
    """A uniformly random policy over legal actions, for baselines and demos."""
    generator = torch.Generator().manual_seed(seed)

    def act(obs, mask):
        return random_legal_actions(mask, generator)

    def values(obs, mask):
        p = mask.float()
        return "action probabilities", p / p.sum(dim=1, keepdim=True)

    return act, values
