"""The ``renshu`` command line: ``renshu envs | play | bench``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def cmd_envs(args: argparse.Namespace) -> int:
    from renshu.envs.registry import GYM_IDS, NATIVE_ENVS

    print("Native batched environments (renshu train/bench/play NAME):")
    for spec in NATIVE_ENVS.values():
        alias = f" (alias: {', '.join(spec.aliases)})" if spec.aliases else ""
        print(f"  {spec.name:<12} {spec.description}{alias}")
        for key, values in spec.options.items():
            print(f"  {'':<12}   option {key}: {values}")
    print("\nRegistered with Gymnasium (gymnasium.make after `import renshu`):")
    for env_id in GYM_IDS:
        print(f"  {env_id}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from renshu.envs.registry import resolve_name

    name = resolve_name(args.env)
    if name != "game2048":
        print(f"renshu play supports 2048 only, not {args.env!r}", file=sys.stderr)
        return 2
    from renshu.play import play_2048

    play_2048(seed=args.seed, invalid_move=args.invalid_move)
    return 0


def random_legal_actions(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One uniformly random legal action per row of a bool mask ``[n, A]``."""
    noise = torch.rand(mask.shape, generator=generator, device=mask.device)
    return noise.masked_fill_(~mask, -1.0).argmax(dim=1)


def measure_throughput(env, seconds: float, seed: int = 0, warmup_steps: int = 5) -> float:
    """Random-policy env steps per second (steps x num_envs / wall seconds)."""
    generator = torch.Generator(device=env.device).manual_seed(seed)
    _, info = env.reset(seed=seed)
    mask = info["action_mask"]
    for _ in range(warmup_steps):
        _, _, _, _, info = env.step(random_legal_actions(info["action_mask"], generator))
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    steps = 0
    start = time.perf_counter()
    while True:
        mask = info["action_mask"]
        _, _, _, _, info = env.step(random_legal_actions(mask, generator))
        steps += 1
        if steps % 8 == 0 or env.num_envs < 64:
            if env.device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return steps * env.num_envs / elapsed


def cmd_bench(args: argparse.Namespace) -> int:
    from renshu.envs.base import resolve_device
    from renshu.envs.registry import make_env

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    env = make_env(args.env, num_envs=args.num_envs, device=device, seed=args.seed)
    env.check = False  # actions come from the mask: skip the per-step host-side check
    sps = measure_throughput(env, args.seconds, seed=args.seed)
    result = {
        "env": args.env,
        "num_envs": args.num_envs,
        "steps_per_second": sps,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.env}: {sps:,.0f} random-policy steps/s with {args.num_envs} envs on {device} "
            f"({torch.get_num_threads()} threads)"
        )
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    if args.run is not None:
        raise ValueError(
            "recording a trained run needs `renshu train` (not available in this version); "
            "use --env ENV --policy random"
        )
    if args.policy != "random":
        raise ValueError(f"unknown policy {args.policy!r}; valid: random")
    from renshu.envs.base import make_generator
    from renshu.envs.registry import NATIVE_ENVS, resolve_name
    from renshu.envs.render import overlay_panel
    from renshu.viz.animation import save_animation

    spec = NATIVE_ENVS[resolve_name(args.env)]
    game = spec.make_game()
    generator = make_generator(torch.device("cpu"), args.seed)
    state = game.init(1, generator)
    names = getattr(game, "action_meanings", tuple(str(a) for a in range(game.num_actions)))
    frames, total, step = [], 0.0, 0
    while True:
        mask = game.legal_actions(state)[0]
        probs = mask.float() / mask.float().sum()
        action = random_legal_actions(mask.unsqueeze(0), generator)
        frame = game.render_rgb(state, 0, header=f"step {step}  return {total:g}")
        lines = [f"policy: {args.policy}", f"action: {names[int(action)]}"]
        bars = {names[a]: float(probs[a]) for a in range(game.num_actions)}
        frames.append(overlay_panel(frame, lines, bars))
        state, reward, terminated = game.step(state, action, generator)
        total += float(reward[0])
        step += 1
        if bool(terminated[0]) or step >= args.max_steps:
            end = "game over" if bool(terminated[0]) else f"stopped at {args.max_steps} steps"
            frame = game.render_rgb(state, 0, header=f"step {step}  return {total:g}")
            frames.extend([overlay_panel(frame, [f"policy: {args.policy}", end], None)] * 8)
            break
    save_animation(frames, args.out, fps=args.fps)
    print(f"wrote {args.out}: {step} steps, return {total:g}, {len(frames)} frames")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="renshu", description="renshu: fast, correct deep RL on batched tensor games."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("envs", help="list the environments")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("play", help="play a game in the terminal (2048: arrows or wasd, q quits)")
    p.add_argument("env", nargs="?", default="2048", help="game to play (default: 2048)")
    p.add_argument("--seed", type=int, default=None, help="seed for the tile spawns")
    p.add_argument("--invalid-move", choices=["mask", "noop"], default="mask")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("bench", help="random-policy environment steps per second")
    p.add_argument("env", help="environment name (see `renshu envs`)")
    p.add_argument("--num-envs", type=_positive_int, default=4096, help="batch size (default 4096)")
    p.add_argument("--seconds", type=_positive_float, default=3.0, help="time to measure")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("record", help="write an animation (.gif or .mp4) of an agent playing")
    p.add_argument("run", nargs="?", default=None, help="run directory (trained agent)")
    p.add_argument("--env", default="game2048", help="environment for --policy random")
    p.add_argument("--policy", default="random", help="random (uniform over legal actions)")
    p.add_argument("--out", required=True, help="output file, .gif or .mp4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=_positive_int, default=2000)
    p.add_argument("--fps", type=_positive_int, default=8)
    p.set_defaults(func=cmd_record)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, ImportError) as e:
        # Errors a user can cause get one clear line, not a traceback (RENSHU_DEBUG=1 shows it).
        if os.environ.get("RENSHU_DEBUG"):
            raise
        print(f"renshu {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
