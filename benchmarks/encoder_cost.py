"""What a vision-language encoder costs a DQN: renshu's design against the original design.

Both sides train Double DQN on the grid world with the same vision-language model — a tiny
random LLaVA-NeXT built from a config and loaded from a folder (``renshu.encoders.tiny``), so
that this runs offline on a CPU — and the same settings: N envs stepped together (``--envs``,
by default 4 and then 16), one gradient step of batch 64 per 4 env steps (the replay ratio of
the Nature DQN, renshu's default batch size), so N / 4 gradient steps per step of the envs. The
VLM reads the grid world's 84x84 RGB frame of each state (``to_image``) with its default
prompt, features = the last prompt token's hidden state; the Q-network is a 64x64 MLP branch on
the one-hot cell next to the normalised features (``FeatureTorso``), so that the agent's own
network is cheap and the table shows what the VLM costs. (A real 7B VLM costs thousands of
times more per frame than this tiny one, so the ratios below are what the design saves at the
least.)

* ``original``: the VLM sits inside the Q-network, as in the experiment people gave up on: the
  network runs it on the observation to act at every env step, and every gradient step runs it
  on the batch's states and next states. Written here, charitably: the next states' features
  are computed once for both the online and the target network of Double DQN (a Q-network with
  the VLM inside would run it for each).
* ``renshu``: ``renshu.algos.dqn.DQN`` with ``encoder=`` the same model
  (``make_encoder("hf-vlm")``): the collector runs it once per env step and stores the features
  (float16) in the replay buffer; gradient steps read them from there.
* ``renshu + cache``: the same with the LRU cache on the observation bytes (``cache=1000``): the
  grid world has 11 distinct frames, so the model runs on each once.

Each side first fills its buffer to ``learning_starts`` (not timed), then runs ``--updates``
updates (one step of the N envs and its N / 4 gradient steps each; the original runs
``--updates / N`` of them, as they cost about N times more) while the model's forward passes and
frames are counted, split into acting (collection) and learning.

Why the env count moves the speed-up: both designs pay for the env step, the Q-network's
gradient steps and one model call to act on the N frames, and the original also pays 16 model
calls (128 frames, hf-vlm's ``batch_size`` of 8) per gradient step. With 4 envs renshu's
update is one 4-frame model call plus one gradient step; with 16 envs it is one 16-frame call
(two forward passes of 8) plus four gradient steps, so the fixed cost of a model call weighs
less per env step on renshu's side, while the original's cost per env step stays 33 frames.

Same process, same thread count; the timed rounds of the designs alternate (``--rounds``), so a
busy machine slows them alike.

``--scale K`` makes both towers of the random model K times wider and deeper (``--scale 8``:
12.8 M parameters), to show how the speed-up moves from the ratio of forward passes towards the
ratio of frames as the model's per-frame work outgrows each call's fixed cost.

    python benchmarks/encoder_cost.py                        # 4 and 16 envs, ~25 s, one thread
    python benchmarks/encoder_cost.py --envs 4,8,16          # three env counts
    python benchmarks/encoder_cost.py --scale 8              # ~2 minutes
    python benchmarks/encoder_cost.py --updates 20 --rounds 1   # quicker
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model comes from a local folder

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _common import cpu_model, fmt_rate, fmt_ratio, set_threads, version  # noqa: E402

ENV_STEPS_PER_GRADIENT_STEP = 4  # the Nature DQN's replay ratio
BATCH = 64
LEARNING_STARTS = 128
HIDDEN = (64, 64)


class CountingEncoder:
    """Passes ``encode`` to the encoder it wraps and counts forward passes and frames into
    ``phase`` buckets ("act" or "learn"); ``describe``/``out_dim`` pass through."""

    def __init__(self, encoder):
        self.inner = encoder
        self.phase = "act"
        self.counts = {"act": [0, 0], "learn": [0, 0]}  # [forward passes, frames]

    def __getattr__(self, name):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def encode(self, obs, done=None):
        calls, rows = self.inner.calls, self.inner.rows
        out = self.inner.encode(obs, done=done)
        bucket = self.counts[self.phase]
        bucket[0] += self.inner.calls - calls
        bucket[1] += self.inner.rows - rows
        return out

    def reset_counts(self):
        self.counts = {"act": [0, 0], "learn": [0, 0]}


class OriginalDQN:
    """Double DQN with the VLM inside the Q-network (see the module docstring)."""

    def __init__(self, env, vlm: CountingEncoder, seed: int = 0, lr: float = 1e-4):
        self.num_envs = env.num_envs
        self.gradient_steps = env.num_envs // ENV_STEPS_PER_GRADIENT_STEP
        from renshu.algos.dqn import QNetwork
        from renshu.core.buffers import ReplayBuffer
        from renshu.core.nets import adam

        self.env, self.vlm = env, vlm
        torch.manual_seed(seed)
        space, n = env.observation_space, env.num_actions
        self.q = QNetwork(space, n, HIDDEN, "relu", False, feature_dim=vlm.out_dim)
        self.obs_dtype = env.reset(seed=seed)[0].dtype
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.optimizer = adam(self.q.parameters(), lr)
        parts = {"obs": (tuple(space.shape), self.obs_dtype), "mask": ((n,), torch.bool)}
        self.buffer = ReplayBuffer(20_000, env.num_envs, parts, env.device, gamma=0.99)
        self.generator = torch.Generator().manual_seed(seed)
        self.obs, info = env.reset(seed=seed)
        self.mask = info["action_mask"]
        self.epsilon = 0.1

    def q_values(self, net, obs: torch.Tensor) -> torch.Tensor:
        """The original Q-network: the VLM runs on ``obs`` inside the forward pass."""
        return net(obs, self.vlm.encode(obs))

    @torch.no_grad()
    def env_step(self) -> None:
        from renshu.envs.base import random_legal_actions

        self.vlm.phase = "act"
        greedy = self.q_values(self.q, self.obs).argmax(-1)
        explore = torch.rand(self.num_envs, generator=self.generator) < self.epsilon
        action = torch.where(explore, random_legal_actions(self.mask, self.generator), greedy)
        obs, mask = self.obs, self.mask
        self.obs, reward, terminated, _, info = self.env.step(action)
        self.mask = info["action_mask"]
        final = {"obs": info["final_obs"], "mask": mask}
        self.buffer.add({"obs": obs, "mask": mask}, action, reward, terminated, info["done"], final)

    def gradient_step(self) -> None:
        self.vlm.phase = "learn"
        b = self.buffer.sample(BATCH, self.generator)
        with torch.no_grad():
            next_features = self.vlm.encode(b.next_obs["obs"])  # once for both networks
            online_next = self.q(b.next_obs["obs"], next_features)
            target_next = self.target(b.next_obs["obs"], next_features)
            best = online_next.argmax(-1, keepdim=True)
            y = b.returns + b.discounts * target_next.gather(1, best).squeeze(1)
        q = self.q_values(self.q, b.obs["obs"]).gather(1, b.actions.unsqueeze(1)).squeeze(1)
        loss = F.smooth_l1_loss(q, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def update(self) -> None:
        self.env_step()
        for _ in range(self.gradient_steps):
            self.gradient_step()


def make_renshu(env, encoder, seed: int = 0):
    """renshu's DQN with ``encoder`` and its ``update()``: one collect + learn round."""
    from renshu.algos.base import update
    from renshu.algos.dqn import DQN, DQNConfig

    num_envs = env.num_envs
    config = DQNConfig(
        num_envs=num_envs, batch_size=BATCH, train_freq=num_envs,
        gradient_steps=num_envs // ENV_STEPS_PER_GRADIENT_STEP,
        learning_starts=LEARNING_STARTS, buffer_size=20_000, hidden=HIDDEN,
        exploration_fraction=0.0, exploration_final_eps=0.1,
    )  # fmt: skip
    algo = DQN(env, config, seed=seed, encoder=encoder)
    learn = algo._train_round

    def counted_round(beta):  # the gradient steps: count the encoder's work as learning
        encoder.phase = "learn"
        try:
            return learn(beta)
        finally:
            encoder.phase = "act"

    algo._train_round = counted_round
    # exploration_fraction=0: epsilon is its final value at any progress, so progress stays 0
    return algo, lambda: update(algo, 0.0)


def cell_frames(obs: torch.Tensor) -> list:
    """The RGB frames (``uint8 [84, 84, 3]``) of one-hot grid-world observations."""
    from renshu.envs.gridworld import GridWorld

    game = GridWorld(obs="rgb")
    frames = game.observe(game.from_cells(obs.argmax(dim=1).cpu()))
    return list(frames.permute(0, 2, 3, 1).numpy())


def measure(
    name: str, update, encoder: CountingEncoder, updates: int, rounds: int, num_envs: int
) -> dict:
    """``rounds`` generator steps of ``updates`` calls of ``update()`` (one step of the
    ``num_envs`` envs and its gradient steps) each; counts and seconds summed."""
    encoder.reset_counts()
    seconds = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(updates):
            update()
        seconds += time.perf_counter() - start
        yield
    updates *= rounds
    env_steps = updates * num_envs
    grad_steps = env_steps // ENV_STEPS_PER_GRADIENT_STEP
    act, learn = encoder.counts["act"], encoder.counts["learn"]
    yield {
        "design": name,
        "updates": updates,
        "seconds": seconds,
        "env_steps_per_second": env_steps / seconds,
        "forwards_per_env_step": (act[0] + learn[0]) / env_steps,
        "frames_per_env_step": (act[1] + learn[1]) / env_steps,
        "forwards_in_gradient_step": learn[0] / grad_steps,
        "frames_in_gradient_step": learn[1] / grad_steps,
        "forwards_per_gradient_step_all": (act[0] + learn[0]) / grad_steps,
        "frames_per_gradient_step_all": (act[1] + learn[1]) / grad_steps,
    }


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _ratio(base: float, ours: float) -> str:
    if ours == 0:
        return "∞ (none)" if base > 0 else "—"
    return fmt_ratio(base / ours)


def table(rows: list[dict]) -> str:
    original = rows[0]
    cols = [
        ("model forwards / env step", "forwards_per_env_step"),
        ("frames / env step", "frames_per_env_step"),
        ("model forwards inside a gradient step", "forwards_in_gradient_step"),
        ("model forwards / gradient step, acting included", "forwards_per_gradient_step_all"),
        ("frames / gradient step, acting included", "frames_per_gradient_step_all"),
    ]
    head = "| design | " + " | ".join(c for c, _ in cols) + " | env steps/s |"
    lines = [head, "|---" * (len(cols) + 2) + "|"]
    for r in rows:
        cells = [_num(r[k]) for _, k in cols]
        lines.append(
            f"| {r['design']} | "
            + " | ".join(cells)
            + f" | {fmt_rate(r['env_steps_per_second'])} |"
        )
    for r in rows[1:]:
        cells = [_ratio(original[k], r[k]) for _, k in cols]
        speed = fmt_ratio(r["env_steps_per_second"] / original["env_steps_per_second"])
        lines.append(f"| {r['design']} vs original | " + " | ".join(cells) + f" | {speed} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--updates",
        type=int,
        default=40,
        help="timed updates of renshu per round (the original: this / the env count)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny models: 1)")
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="width and depth multiplier of the random LLaVA-NeXT (1: the test-suite's tiny one)",
    )
    parser.add_argument(
        "--envs",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[4, 16],
        help="comma-separated env counts, each a multiple of 4 (default: 4,16)",
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results")
    args = parser.parse_args()
    if any(n < 1 or n % ENV_STEPS_PER_GRADIENT_STEP for n in args.envs):
        parser.error(f"--envs: counts must be multiples of {ENV_STEPS_PER_GRADIENT_STEP}")
    cores = set_threads(args.threads)

    from renshu.encoders import make_encoder
    from renshu.encoders.tiny import save_tiny_llava_next
    from renshu.envs.registry import make_env

    folder = save_tiny_llava_next(tempfile.mkdtemp(prefix="tiny-llava-next-"), scale=args.scale)

    tables = []
    for num_envs in args.envs:

        def env(num_envs=num_envs):
            return make_env("gridworld", num_envs=num_envs, seed=0)

        def vlm(cache: int = 0) -> CountingEncoder:
            encoder = make_encoder(
                "hf-vlm", model=folder, device="cpu", cache=cache, to_image=cell_frames
            )
            return CountingEncoder(encoder)

        enc = vlm()
        params = sum(p.numel() for p in enc.inner.model.parameters())
        original = OriginalDQN(env(), enc)
        while len(original.buffer) < LEARNING_STARTS:  # fill the buffers (not timed)
            original.env_step()
        # The original's updates cost about num_envs times more: fewer of them per round.
        runs = [measure("original (VLM in the Q-network)", original.update, enc,
                        max(1, args.updates // num_envs), args.rounds, num_envs)]  # fmt: skip
        for name, cache in (("renshu", 0), ("renshu + cache", 1000)):
            enc = vlm(cache)
            algo, update = make_renshu(env(), enc)
            while algo.env_steps < LEARNING_STARTS:
                update()
            runs.append(measure(name, update, enc, args.updates, args.rounds, num_envs))
        for _ in range(args.rounds):  # the timed rounds, alternating
            for run in runs:
                next(run)
        rows = [next(run) for run in runs]
        for row in rows:
            row["num_envs"] = num_envs
        tables.append(rows)

        print(
            f"# Encoder cost: DQN on gridworld, random LLaVA-NeXT (scale {args.scale}, "
            f"{params / 1e6:.2f} M parameters) on its frames, {num_envs} envs, batch {BATCH}, "
            f"1 gradient step per {ENV_STEPS_PER_GRADIENT_STEP} env steps"
        )
        print(
            f"CPU: {cpu_model()} ({torch.get_num_threads()} torch threads, cores {cores}); "
            f"python {platform.python_version()}, torch {torch.__version__}, "
            f"transformers {version('transformers')}\n"
        )
        print(table(rows), flush=True)
        print()
    if len(tables) > 1:
        print("| envs | renshu vs original, env steps/s | renshu + cache vs original |")
        print("|---:|---:|---:|")
        for rows in tables:
            base = rows[0]["env_steps_per_second"]
            print(
                f"| {rows[0]['num_envs']} | {fmt_ratio(rows[1]['env_steps_per_second'] / base)} "
                f"| {fmt_ratio(rows[2]['env_steps_per_second'] / base)} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump([row for rows in tables for row in rows], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
