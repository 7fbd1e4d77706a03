"""Animations of an agent playing one episode, with an overlay of what it thinks.

The agent may be a trained run (:func:`record_episode`), a freshly initialised one
(:func:`untrained_agent`) or random play (:func:`random_policy`). With ``explain``, a
vision-language model comments on every frame shown: it is given the env's own colour picture
of the step (``env.frame(0)(None)``: the board, the grid, the rendered game; its processor
resizes it as the model wants), not the agent's observation, so it works beside any agent,
including one whose observations are numbers (2048's exponents) or grey frame stacks (Atari).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from renshu.envs.base import random_legal_actions

# act(obs [1, ...], mask [1, A]) -> action [1];  values(obs, mask) -> (label, [1, A] tensor)
ActFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ValuesFn = Callable[[torch.Tensor, torch.Tensor], tuple[str, torch.Tensor]]
# explain(frames: RGB uint8 [H, W, 3] pictures) -> one text per frame, drawn beside it
ExplainFn = Callable[[list[np.ndarray]], list[str]]

EXPLAIN_WIDTH = 24  # characters per panel line
EXPLAIN_LINES = 6  # panel lines an explanation may take


def commentator(encoder, prompt: str | None = None, max_new_tokens: int = 24) -> ExplainFn:
    """The text answers (``describe``) of a vision-language encoder for recorded frames.

    ``encoder`` is any encoder that ``describes`` (``hf-vlm``), the run's own or one built for
    the commentary (``renshu record --encoder hf-vlm --encoder-model DIR``); ``prompt`` None
    asks the encoder's own question. A ValueError for an encoder that gives no text.
    """
    from renshu.encoders import stateless

    if not encoder.describes:
        raise ValueError(
            f"--explain needs a vision-language encoder that answers in text (hf-vlm); "
            f"{encoder.name} gives features only"
        )
    model = stateless(encoder)

    def explain(frames: list[np.ndarray]) -> list[str]:
        return describe_frames(model, frames, prompt, max_new_tokens)

    return explain


def describe_frames(
    encoder, frames: list[np.ndarray], prompt: str | None = None, max_new_tokens: int = 24
) -> list[str]:
    """``encoder.describe`` of RGB frames: one batched call per frame size (a game's frames
    all share one), each on a ``uint8 [B, H, W, 3]`` batch."""
    answers: list[str] = [""] * len(frames)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, frame in enumerate(frames):
        by_shape.setdefault(np.shape(frame), []).append(i)
    for rows in by_shape.values():
        batch = torch.from_numpy(np.stack([np.asarray(frames[i], dtype=np.uint8) for i in rows]))
        texts = encoder.describe(batch, prompt=prompt, max_new_tokens=max_new_tokens)
        for i, text in zip(rows, texts, strict=True):
            answers[i] = text
    return answers


def explainer(algo, spec, prompt: str | None = None, max_new_tokens: int = 24) -> ExplainFn:
    """The commentary of a run's own vision-language encoder (:func:`commentator`).

    Raises a ValueError unless the run was trained with ``--encoder hf-vlm``.
    """
    encoder = None if spec.encoder is None else algo.encoder
    if encoder is None or not encoder.describes:
        used = f"--encoder {spec.encoder}" if spec.encoder else "no encoder"
        raise ValueError(
            f"--explain needs a run trained with --encoder hf-vlm (this run used {used}), or a "
            "commentator: --encoder hf-vlm --encoder-model DIR"
        )
    return commentator(encoder, prompt, max_new_tokens)


def _explain_lines(explain: ExplainFn | None, frames: list) -> list[list[str]]:
    """Panel lines of the explanation of each frame (all at once: batched calls); ``frames``
    are the env's pictures (:class:`~renshu.envs.base.Frame`), drawn here without a header."""
    if explain is None or not frames:
        return [[] for _ in frames]
    import textwrap

    out = []
    for text in explain([frame(None) for frame in frames]):
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
    :func:`commentator`) writes a text on each frame shown, computed for those frames only
    from the env's picture of the step.
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
        texts = _explain_lines(explain, [shot[0] for shot in kept])
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


def record_episode(
    algo,
    spec,
    out: str | Path,
    seed: int | None = None,
    title: str | None = None,
    search=None,
    **kwargs,
) -> dict:
    """Record an algorithm's greedy actions on its run's environment (``title`` defaults to
    "<algo> (greedy)"), or with ``search`` (:class:`~renshu.runner.search.Search`) its searched
    moves and values."""
    device = algo.device
    if search is not None:  # the moves and values of a play-time search
        from renshu.runner.search import search_policy

        act, values = search_policy(algo, search)
        title = f"{spec.algo} ({search.label})" if title is None else title
        seed = spec.seed + 7 if seed is None else seed
        return record(spec, act, values, out, seed=seed, title=title, **kwargs)

    from renshu.runner.evaluate import eval_policy

    seed = spec.seed + 7 if seed is None else seed
    # greedy, or as the env's evaluation protocol says (Atari: epsilon 0.05 or sampled)
    policy, how = eval_policy(algo, spec.env_spec, seed)

    def act(obs, mask):
        return policy(obs, mask).cpu()

    def values(obs, mask):
        label, vals = algo.action_values(obs.to(device), mask.to(device))
        return label, vals.cpu()

    title = f"{spec.algo} ({how})" if title is None else title
    return record(spec, act, values, out, seed=seed, title=title, **kwargs)


def untrained_agent(spec, device="cpu"):
    """A freshly initialised ``spec.algo`` agent (the env's preset config, ``spec.seed``),
    never trained: the "before" of a demo. Built as a collecting copy (``learner=False``: no
    replay memory or optimizer)."""
    from renshu import algos
    from renshu.envs.registry import make_env
    from renshu.runner.run import algo_config, network_kwargs

    cls = algos.get_algorithm(spec.algo)
    config = algo_config(spec, {})
    env = make_env(spec.env, num_envs=config.num_envs, device=device, seed=spec.seed,
                   **spec.env_options)  # fmt: skip
    return cls(env, config, seed=spec.seed, learner=False, **network_kwargs(spec))


def random_policy(seed: int) -> tuple[ActFn, ValuesFn]:
    """A uniformly random policy over legal actions, for baselines and demos."""
    generator = torch.Generator().manual_seed(seed)

    def act(obs, mask):
        return random_legal_actions(mask, generator)

    def values(obs, mask):
        p = mask.float()
        return "action probabilities", p / p.sum(dim=1, keepdim=True)

    return act, values
