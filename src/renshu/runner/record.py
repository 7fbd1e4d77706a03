"""Animations of an agent playing one episode, with an overlay of what it thinks."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from renshu.envs.base import make_generator, random_legal_actions

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

    encoder = getattr(algo, "encoder", None)
    if encoder is None or not callable(getattr(encoder, "describe", None)):
        used = f"--encoder {spec.encoder}" if getattr(spec, "encoder", None) else "no encoder"
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


def _frames_native(
    game, act: ActFn, values: ValuesFn, seed: int, max_steps: int, title: str, max_frames: int,
    explain: ExplainFn | None = None,
):  # fmt: skip
    from renshu.envs.render import overlay_panel

    generator = make_generator(torch.device("cpu"), seed)
    state = game.init(1, generator)
    names = getattr(game, "action_meanings", tuple(str(a) for a in range(game.num_actions)))
    shots, total, step, terminated = [], 0.0, 0, False
    while step < max_steps:
        obs, mask = game.observe(state), game.legal_actions(state)
        action = act(obs, mask)
        label, vals = values(obs, mask)
        header = f"step {step}  " + _score_text(game, state, total)
        lines = [title, f"action: {names[int(action[0])]}", label]
        bars = {names[a]: float(vals[0, a]) for a in range(game.num_actions)}
        shots.append((state, header, lines, bars, obs))  # rendered later, only the frames kept
        state, reward, term = game.step(state, action, generator)
        total += float(reward[0])
        step += 1
        terminated = bool(term[0])
        if terminated:
            break
    kept = [shots[i] for i in _keep(len(shots), max_frames)]
    texts = _explain_lines(explain, [shot[4] for shot in kept])
    frames = [
        overlay_panel(game.render_rgb(st, 0, header=header), _with_text(lines, text), bars)
        for (st, header, lines, bars, _), text in zip(kept, texts)
    ]
    end = "game over" if terminated else f"stopped after {step} steps"
    header = f"step {step}  " + _score_text(game, state, total)
    last = overlay_panel(game.render_rgb(state, 0, header=header), [title, end], None)
    frames.extend([last] * 8)  # hold the final position for a moment
    return frames, step, total


def _score_text(game, state, total: float) -> str:
    if hasattr(state, "score"):
        return f"score {int(state.score[0])}"
    return f"return {total:g}"


def _frames_gym(
    env_id: str, act: ActFn, values: ValuesFn, seed: int, max_steps: int, title: str,
    max_frames: int, explain: ExplainFn | None = None,
):  # fmt: skip
    import gymnasium as gym

    from renshu.envs.render import overlay_panel

    env = gym.make(env_id, render_mode="rgb_array")
    obs, _ = env.reset(seed=seed)
    try:
        env.render()
    except gym.error.DependencyNotInstalled as e:
        env.close()
        raise ImportError(f"recording {env_id} needs its renderer: {e}") from None
    n = env.action_space.n
    shots, total, step, done = [], 0.0, 0, False
    while step < max_steps and not done:
        o = torch.as_tensor(np.asarray(obs)).unsqueeze(0)
        if o.dtype == torch.float64:
            o = o.float()
        mask = torch.ones(1, n, dtype=torch.bool)
        action = act(o, mask)
        label, vals = values(o, mask)
        bars = {str(a): float(vals[0, a]) for a in range(n)}
        lines = [title, f"step {step}  return {total:g}", f"action: {int(action[0])}", label]
        shots.append((np.asarray(env.render()), lines, bars, o))
        obs, reward, terminated, truncated, _ = env.step(int(action[0]))
        total += float(reward)
        step += 1
        done = terminated or truncated
    env.close()
    kept = [shots[i] for i in _keep(len(shots), max_frames)]
    texts = _explain_lines(explain, [shot[3] for shot in kept])
    frames = [
        overlay_panel(image, _with_text(lines, text), bars)
        for (image, lines, bars, _), text in zip(kept, texts)
    ]
    return frames, step, total


def _frames_atari(
    env_name: str, env_options: dict, act: ActFn, values: ValuesFn, seed: int, max_steps: int,
    title: str, max_frames: int, scale: int = 3, explain: ExplainFn | None = None,
):  # fmt: skip
    """One Atari game as the agent sees it: the newest 84x84 frame of its stack, enlarged."""
    from renshu.envs.atari import AtariEnv
    from renshu.envs.render import overlay_panel

    env = AtariEnv(env_name, num_envs=1, seed=seed, **env_options)
    names = env.action_meanings
    obs, info = env.reset(seed=seed)
    shots, total, step, done = [], 0.0, 0, False
    while step < max_steps and not done:
        mask = info["action_mask"]
        action = act(obs, mask)
        label, vals = values(obs, mask)
        bars = {names[a]: float(vals[0, a]) for a in range(env.num_actions)}
        lines = [
            title, f"step {step}  score {total:g}", f"action: {names[int(action[0])]}", label
        ]  # fmt: skip
        shots.append((obs[0, -1].numpy(), lines, bars, obs))
        obs, reward, _, _, info = env.step(action)
        total += float(reward[0])
        step += 1
        done = bool(info["done"][0])
    env.close()

    def frame(grey: np.ndarray) -> np.ndarray:
        big = grey.repeat(scale, 0).repeat(scale, 1)
        return np.repeat(big[:, :, None], 3, axis=2)

    kept = [shots[i] for i in _keep(len(shots), max_frames)]
    texts = _explain_lines(explain, [shot[3] for shot in kept])
    frames = [
        overlay_panel(frame(grey), _with_text(lines, text), bars)
        for (grey, lines, bars, _), text in zip(kept, texts)
    ]
    return frames, step, total


def record(
    env_name: str,
    env_options: dict,
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
    """Play one episode and write it to ``out`` (.gif or .mp4). Returns steps and return.

    Long episodes are shown with every k-th step so the animation has at most ``max_frames``
    frames (plus a held final frame). ``explain`` (see :func:`explainer`) writes a text on each
    frame shown, computed for those frames only.
    """
    from renshu.envs.registry import _ALIASES, NATIVE_ENVS
    from renshu.viz.animation import save_animation

    name = _ALIASES.get(env_name, env_name)
    if name in NATIVE_ENVS:
        game = NATIVE_ENVS[name].make_game(**env_options)
        limit = NATIVE_ENVS[name].max_episode_steps
        max_steps = min(max_steps, limit) if limit else max_steps
        frames, steps, total = _frames_native(
            game, act, values, seed, max_steps, title, max_frames, explain
        )
    elif name.startswith("ALE/"):
        frames, steps, total = _frames_atari(
            name, env_options, act, values, seed, max_steps, title, max_frames, explain=explain
        )
    else:
        frames, steps, total = _frames_gym(
            env_name, act, values, seed, max_steps, title, max_frames, explain
        )
    save_animation(frames, out, fps=fps)
    return {"out": str(out), "steps": steps, "return": total, "frames": len(frames)}


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
    return record(spec.env, spec.env_options, act, values, out, seed=seed, title=title, **kwargs)


def random_policy(seed: int) -> tuple[ActFn, ValuesFn]:
    """A uniformly random policy over legal actions, for baselines and demos."""
    generator = torch.Generator().manual_seed(seed)

    def act(obs, mask):
        return random_legal_actions(mask, generator)

    def values(obs, mask):
        p = mask.float()
        return "action probabilities", p / p.sum(dim=1, keepdim=True)

    return act, values
