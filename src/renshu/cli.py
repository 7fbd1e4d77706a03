"""The ``renshu`` command line: parsing only; the work happens in the library.

``renshu envs | play | bench | train | eval | record | plot | sweep``. Every error a user can
cause ends in one line ``renshu <command>: error: ...`` and exit status 2, never a traceback
(``RENSHU_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    if value > _LARGEST:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer up to {_LARGEST}, got {text}"
        )
    return value


_LARGEST = 2**31 - 1  # (counts beyond this overflow the C ints below torch and numpy)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 2**63 - 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {value}")
    return value


def _key_values(pairs: list[str], flag: str) -> dict[str, str]:
    """``["obs=onehot", ...]`` from repeated KEY=VALUE flags -> ``{"obs": "onehot"}``."""
    bad = [kv for kv in pairs if "=" not in kv or not kv.split("=", 1)[0]]
    if bad:
        raise ValueError(f"{flag} takes KEY=VALUE, got {bad[0]!r}")
    return dict(kv.split("=", 1) for kv in pairs)


# -- renshu envs / play / bench ----------------------------------------------------------------


def cmd_envs(args: argparse.Namespace) -> int:
    from renshu.envs.specs import NATIVE

    print("Native batched environments (renshu train/bench/play NAME):")
    for spec in NATIVE.values():
        alias = f" (alias: {', '.join(spec.aliases)})" if spec.aliases else ""
        print(f"  {spec.name:<12} {spec.description}{alias}")
        budget = f"default budget {spec.default_steps:,} steps"
        limit = f", {spec.max_episode_steps}-step episodes" if spec.max_episode_steps else ""
        print(f"  {'':<12}   {budget}{limit}; presets: {', '.join(sorted(spec.presets)) or '-'}")
        for option in spec.all_options:
            print(f"  {'':<12}   option {option.describe()}")
    print(
        '\nAtari (pip install "renshu[atari]"): ALE/<Game>-v5 (sticky actions 0.25), or '
        "<Game>NoFrameskip-v4 / <Game>-v4\n  (v4 settings on ALE: repeat_action_probability=0, "
        "the minimal action set); DeepMind preprocessing,\n  84x84x4 grey frames. Options: "
        "repeat_action_probability, full_action_space, frame_skip, noop_max, frame_stack, ...\n"
        "  (`renshu envs ALE/Breakout-v5` lists them)."
    )
    import gymnasium

    ours = sorted(k for k in gymnasium.registry if k.startswith("renshu/"))
    print("\nRegistered with Gymnasium (gymnasium.make / make_vec after `import renshu`):")
    print("  " + ", ".join(ours))
    print(
        "\nAny other Gymnasium id with discrete actions (e.g. CartPole-v1); its options are its "
        "constructor's\n  arguments (`renshu envs ID` lists them)."
    )
    if args.env:
        from renshu.envs.specs import resolve

        spec = resolve(args.env)
        print(f"\n{spec.name}: {spec.description}")
        if spec.note:
            print(f"  {spec.note}")
        for option in spec.all_options:
            print(f"  option {option.describe()}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from renshu.envs.specs import NATIVE, resolve

    spec = resolve(args.env)
    if spec.play is None:
        playable = ", ".join(s.name for s in NATIVE.values() if s.play is not None)
        raise ValueError(f"renshu play has no terminal version of {spec.name}; it plays {playable}")
    from renshu.config import import_object

    search = _search_flags(args)
    if args.hint == "":
        raise ValueError("--hint takes a RUN directory, got ''")
    extra = {} if args.hint is None else {"hint": _play_hint(args.hint, spec, search)}
    if search is not None and args.hint is None:
        raise ValueError("--search goes with --hint RUN (the searched advice of a trained run)")
    import_object(spec.play)(
        seed=args.seed, **spec.parse_options({"invalid_move": args.invalid_move}), **extra
    )
    return 0


def _play_hint(run: str, spec, search):
    """The advice of trained ``run`` for ``renshu play --hint RUN`` (its latest weights)."""
    from renshu.runner.hint import hint_from_run
    from renshu.runner.milestones import load_agent

    if not os.path.isdir(run):
        raise ValueError(f"--hint {run}: no such run directory")
    algo, run_spec, _ = load_agent(run, device="cpu")
    if run_spec.env != spec.name:
        raise ValueError(f"--hint {run}: that run plays {run_spec.env}, not {spec.name}")
    _use_run_threads(run_spec)
    return hint_from_run(algo, run_spec, search)


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from renshu.envs.base import resolve_device
    from renshu.envs.registry import make_env
    from renshu.envs.throughput import measure_throughput

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    options = _key_values(args.env_option, "--env-option")
    env = make_env(args.env, num_envs=args.num_envs, device=device, seed=args.seed, **options)
    env.check = False  # actions come from the mask: skip the per-step host-side check
    sps = measure_throughput(env, args.seconds, seed=args.seed)
    env.close()
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


# -- renshu train ------------------------------------------------------------------------------

_TRAIN_SWITCHES = ("--overwrite", "--no-progress", "-h", "--help")  # train options without a value


def _train_algo_name(argv: list[str]) -> str:
    """The ALGO positional of `renshu train` (to add that algorithm's config flags)."""
    from renshu.algos import ALGORITHMS

    rest = argv[argv.index("train") + 1 :] if "train" in argv else []
    i = 0
    while i < len(rest):
        token = rest[i]
        if not token.startswith("-"):
            return token if token in ALGORITHMS else "ppo"
        # an option: skip its value too, unless it is a switch or written --name=value
        i += 1 if "=" in token or token in _TRAIN_SWITCHES else 2
    return "ppo"


def _read_config_file(path: str) -> dict:
    import tomllib

    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise FileNotFoundError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(text.decode()) if path.endswith(".toml") else json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table/object of config fields")
    env = data.pop("env", {})
    if not isinstance(env, dict):
        raise ValueError(f"config file {path}: [env] must be a table of env options")
    return {"values": data, "env": env}


def _run_fields() -> list[str]:
    from renshu.runner.run import run_flag_fields

    return [f.name for f in run_flag_fields()]


def _given_flags(args: argparse.Namespace, names: set[str]) -> list[str]:
    """The flags among ``names`` (argparse dests) given on the command line."""
    return [
        "--" + key.split("_", 1)[1].replace("_", "-") if key.startswith(("cfg_", "run_"))
        else "--" + key.replace("_", "-")
        for key, value in vars(args).items()
        if key in names and value not in (None, False, [])
    ]  # fmt: skip


def cmd_train(args: argparse.Namespace) -> int:
    from renshu.config import coerce, overrides_from_args
    from renshu.runner import RunSpec, resume_run, start_run

    fields = _run_fields()
    if args.resume:
        # A resumed run keeps its own config.json; only --steps may raise its budget (and a
        # Ray run may continue on another cluster: --ray-address).
        fixed = {f"run_{n}" for n in fields} - {"run_steps", "run_ray_address"}
        fixed |= {"run_dir", "config", "env_option", "encoder_option", "overwrite"}
        fixed |= {"seeds", "jobs"}  # (resume each seed's run directory on its own)
        fixed |= {k for k in vars(args) if k.startswith("cfg_")}
        given = _given_flags(args, fixed)
        if given:
            raise ValueError(
                f"--resume continues {args.resume} with its own config.json; "
                f"{', '.join(given)} cannot change it (only --steps can raise the budget)"
            )
        run = overrides_from_args(args, RunSpec, "run_", "run setting")
        summary = resume_run(
            args.resume, steps=run.get("steps"), progress=not args.no_progress,
            ray_address=run.get("ray_address"),
        )  # fmt: skip
        _print_result(summary)
        run_dir = args.resume
    else:
        from renshu.algos import get_algorithm

        cls = get_algorithm(args.algo)
        from_file = _read_config_file(args.config) if args.config else {"values": {}, "env": {}}
        values = from_file["values"]
        run_values = coerce(RunSpec, {k: values.pop(k) for k in list(values) if k in fields})
        run_values.update(overrides_from_args(args, RunSpec, "run_", "run setting"))
        values.update(overrides_from_args(args, cls.config_class))
        env_options = {**from_file["env"], **_key_values(args.env_option, "--env-option")}
        spec = RunSpec(
            algo=args.algo, env=args.env, env_options=env_options,
            encoder_options=_key_values(args.encoder_option, "--encoder-option"), **run_values,
        )  # fmt: skip
        if spec.backend != "ray" and ("num_workers" in run_values or spec.ray_address):
            raise ValueError("--num-workers and --ray-address go with --backend ray")
        if args.seeds is not None or args.jobs is not None:
            return _train_group(args, spec, values, run_values)
        run_dir, summary = start_run(
            spec, values, run_dir=args.run_dir, overwrite=args.overwrite,
            progress=not args.no_progress, on_summary=_print_result,
        )  # fmt: skip
    _print_summary(run_dir, summary)
    return _exit_status(summary)


def _exit_status(summary: dict) -> int:
    """0, or for a stopped run the shell's 128 + signal: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    if summary["status"] != "interrupted":
        return 0
    import signal

    name = summary.get("signal") or "SIGINT"
    return 128 + int(getattr(signal, name, signal.SIGINT))


def _train_group(args: argparse.Namespace, spec, values: dict, run_values: dict) -> int:
    """``renshu train ... --seeds 0,1,2 [--jobs N]``: one run per seed in a group directory."""
    from renshu.runner.group import CURVE_FILE, TABLE_FILE, run_group

    if args.seeds is None:
        raise ValueError("--jobs runs several seeds at once; give them with --seeds, e.g. 0,1,2")
    if "seed" in run_values:
        raise ValueError("give --seed or --seeds, not both (--seeds 0,1,2 runs each seed)")
    group_dir, summary = run_group(
        spec, values, args.seeds, group_dir=args.run_dir, overwrite=args.overwrite,
        jobs=args.jobs or 1, progress=not args.no_progress,
    )  # fmt: skip
    print("\n" + (group_dir / TABLE_FILE).read_text(encoding="utf-8"))
    print(f"group directory: {group_dir} ({TABLE_FILE}, {CURVE_FILE}, group.json, seed-*/)")
    return _exit_status(summary)


def _print_result(summary: dict) -> None:
    """What the run reached (printed as soon as training ends, before the artefacts)."""
    print(
        f"\n{summary['status']}: {summary['env_steps']:,} env steps in "
        f"{summary['wall_seconds']:.1f} s ({summary['steps_per_second']:,.0f} steps/s)"
    )
    if summary.get("target_reached_steps") is not None:
        print(
            f"target return {summary['target_return']} reached after "
            f"{summary['target_reached_steps']:,} steps, {summary['target_reached_seconds']:.1f} s"
        )
    ev = summary.get("last_eval")
    if ev:
        print(
            f"last evaluation: mean return {ev['mean_return']:.2f} over {ev['episodes']} episodes"
        )
    sys.stdout.flush()


def _print_summary(run_dir, summary: dict, printed: bool = True) -> None:
    """Where the run's files are (after the result, which ``printed`` says is out already)."""
    from renshu.runner import LATEST

    if not printed:
        _print_result(summary)
    if summary["status"] == "interrupted":
        if os.path.isfile(os.path.join(run_dir, LATEST)):
            print(f"checkpoint saved; continue with: renshu train --resume {run_dir}")
        else:  # a second Ctrl-C inside the first update
            print("stopped before the first update finished: no checkpoint to resume from")
    else:
        print(
            f"run directory: {run_dir} (learning_curve.png, "
            + ("episode.gif, " if os.path.isfile(os.path.join(run_dir, "episode.gif")) else "")
            + "metrics.csv, checkpoints/)"
        )
        print(f"TensorBoard:   tensorboard --logdir {run_dir}/tensorboard")


# -- renshu eval / record / plot / sweep ---------------------------------------------------------


def _use_run_threads(spec) -> None:
    """The CPU threads the run's env asks for (small networks run faster on one)."""
    threads = spec.cpu_threads()
    if threads:
        import torch

        torch.set_num_threads(threads)


def _search_flags(args: argparse.Namespace):
    """The play-time search of ``--search NAME --depth D --cutoff P`` (None without it)."""
    from renshu.runner.search import parse_search

    return parse_search(args.search, args.depth, args.cutoff)


def _eval_act(algo, spec, search=None, stochastic: bool = False):
    """``act(obs, mask)`` of a loaded run: greedy (or sampled), or its ``search``."""
    if search is None:  # greedy, or as the env's evaluation protocol says (Atari: eval_policy)
        from renshu.runner.evaluate import eval_policy

        return eval_policy(algo, spec.env_spec, spec.seed, stochastic)[0]
    from renshu.runner.search import check_search, search_policy

    check_search(spec.algo, search)
    return search_policy(algo, search)[0]


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from renshu.runner.evaluate import evaluate, make_eval_env, summarize
    from renshu.runner.milestones import load_agent

    search = _search_flags(args)
    if search is not None and args.stochastic:
        raise ValueError("--stochastic samples the policy; --search plays its best searched move")
    if args.compare_greedy and search is None:
        raise ValueError("--compare-greedy goes with --search (the run's own greedy play beside)")
    for other_run in args.compare:  # before any work
        if not os.path.isdir(other_run):
            raise ValueError(f"--compare {other_run}: no such run directory")
    algo, spec, loaded = load_agent(args.run, args.checkpoint, device=args.device)
    print(loaded.describe(), file=sys.stderr if args.json else sys.stdout)
    _use_run_threads(spec)
    act = _eval_act(algo, spec, search, args.stochastic)
    env = make_eval_env(spec, args.episodes, algo.device)
    stats = evaluate(act, env, args.episodes, seed=args.seed)
    result = summarize(stats, spec.env_spec)
    if args.stochastic:
        name = spec.algo
    else:  # greedy, or the env's protocol (Atari: "dqn (epsilon-greedy 0.05)", "ppo (sampled)")
        from renshu.runner.evaluate import eval_policy

        name = f"{spec.algo} ({eval_policy(algo, spec.env_spec, spec.seed)[1]})"
    if search is not None:
        name = f"{spec.algo} ({search.name} {search.depth})"
        result["search"] = {"name": search.name, "depth": search.depth, "cutoff": search.cutoff}
    results = {name: result}
    if args.compare_greedy:
        env = make_eval_env(spec, args.episodes, algo.device)
        result["greedy"] = summarize(evaluate(_eval_act(algo, spec), env, args.episodes,
                                              seed=args.seed), spec.env_spec)  # fmt: skip
        results[f"{spec.algo} (greedy)"] = result["greedy"]
    for other_run in args.compare:  # other runs of the same env, greedy, on the same seeds
        other, other_spec, _ = load_agent(other_run, device=args.device)
        if other_spec.env != spec.env:
            raise ValueError(f"--compare {other_run} plays {other_spec.env}, not {spec.env}")
        env = make_eval_env(other_spec, args.episodes, other.device)
        other_result = summarize(evaluate(_eval_act(other, other_spec), env, args.episodes,
                                          seed=args.seed), spec.env_spec)  # fmt: skip
        result.setdefault("compared", {})[str(other_run)] = other_result
        key = f"{other_spec.algo} (greedy)"
        results[key if key not in results else os.path.basename(os.path.normpath(other_run))] = (
            other_result
        )
    if args.compare_random:
        from renshu.runner.record import random_policy

        act, _ = random_policy(args.seed)
        env = make_eval_env(spec, args.episodes, torch.device("cpu"))
        result["random"] = summarize(evaluate(act, env, args.episodes, seed=args.seed),
                                     spec.env_spec)  # fmt: skip
        results["random play"] = result["random"]
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{spec.env}, {result['episodes']} episodes each:")
    names = list(results)
    width = {n: max(18, len(n) + 2) for n in names}
    print(f"  {'':<22}" + "".join(f"{n:>{width[n]}}" for n in names))
    rows = [("mean return", "mean_return", "{:.1f}"), ("std return", "std_return", "{:.1f}")]
    for extra, how in spec.env_spec.extras.items():
        if how == "mean":
            rows.append((f"mean {extra}", f"mean_{extra}", "{:.1f}"))
        elif how == "rate":
            rows.append((f"{extra} rate", f"{extra}_rate", "{:.1%}"))
    for label, key, fmt in rows:
        cells = [f"{fmt.format(results[n][key]):>{width[n]}}" for n in names]
        print(f"  {label:<22}" + "".join(cells))
    for extra, how in spec.env_spec.extras.items():
        if how != "counts":
            continue
        key = f"{extra}_counts"
        values = sorted({int(t) for r in results.values() for t in r.get(key, {})})
        for value in values:
            shares = {n: results[n][key].get(str(value), 0) / results[n]["episodes"]
                      for n in names}  # fmt: skip
            label = f"{extra.replace('_', ' ')} {value}"
            print(f"  {label:<22}" + "".join(f"{shares[n]:>{width[n]}.1%}" for n in names))
    return 0


def _record_commentator(args: argparse.Namespace):
    """The VLM that ``record --explain --encoder NAME`` builds to comment (None without one)."""
    if args.encoder is None:
        if args.encoder_model is not None or args.encoder_option:
            raise ValueError("--encoder-model and --encoder-option go with --encoder NAME")
        return None
    if not args.explain:
        raise ValueError("record --encoder NAME is the commentator of --explain; add --explain")
    from renshu.encoders import make_encoder
    from renshu.encoders.base import encoder_class
    from renshu.runner.record import commentator

    if not encoder_class(args.encoder).describes:  # before loading any model
        raise ValueError(
            f"--explain needs a vision-language encoder that answers in text (hf-vlm); "
            f"{args.encoder} gives features only"
        )
    options = _key_values(args.encoder_option, "--encoder-option")
    if args.encoder_model is not None:
        options["model"] = args.encoder_model
    if args.explain_prompt is not None:
        options["prompt"] = args.explain_prompt
    return commentator(make_encoder(args.encoder, **options), None, args.explain_tokens)


def cmd_record(args: argparse.Namespace) -> int:
    from renshu.runner.record import random_policy, record, record_episode

    run, policy = args.run, args.policy
    if run is not None and policy is not None:
        raise ValueError("give a RUN directory or --policy, not both")
    if policy not in (None, "random", "untrained"):
        if not os.path.isdir(policy):
            raise ValueError(
                f"unknown policy {policy!r}; --policy takes random, untrained or a RUN directory"
            )
        run, policy = policy, None
    if args.algo is not None and policy != "untrained":
        raise ValueError("--algo picks the agent of --policy untrained")
    search = _search_flags(args)
    if search is not None and args.timelapse:
        raise ValueError("--search records one agent's searched moves; not with --timelapse")
    if search is not None and run is None and policy != "untrained":
        raise ValueError("--search plays a RUN's (or --policy untrained's) searched moves")
    commentary = _record_commentator(args)
    play = {"max_steps": args.max_steps, "fps": args.fps, "explain": commentary}
    if args.max_frames is not None:
        play["max_frames"] = args.max_frames
    if args.timelapse:
        return _record_timelapse(args, run)
    if args.out is None:
        raise ValueError("--out FILE is required: the animation to write, .gif or .mp4")
    if args.checkpoint is not None and run is None:
        raise ValueError("--checkpoint picks the weights of a RUN directory; give the RUN")
    if run is not None:
        from renshu.runner.milestones import load_agent

        algo, spec, loaded = load_agent(run, args.checkpoint, device=args.device)
        print(loaded.describe())
        _use_run_threads(spec)
        if args.explain and commentary is None:
            from renshu.runner.record import explainer

            play["explain"] = explainer(algo, spec, args.explain_prompt, args.explain_tokens)
        result = record_episode(algo, spec, args.out, seed=args.seed, search=search, **play)
    else:
        from renshu.runner import RunSpec

        if args.explain and commentary is None:
            raise ValueError(
                "--explain without a RUN trained with --encoder hf-vlm needs a commentator: "
                "--encoder hf-vlm --encoder-model DIR"
            )
        seed = args.seed if args.seed is not None else 0
        if policy == "untrained":
            from renshu.runner.record import untrained_agent

            spec = RunSpec(algo=args.algo or "ppo", env=args.env, seed=seed).resolved()
            _use_run_threads(spec)
            algo = untrained_agent(spec, device=args.device)
            title = f"{spec.algo} (untrained{', ' + search.label if search else ''})"
            result = record_episode(algo, spec, args.out, seed=seed, title=title, search=search,
                                    **play)  # fmt: skip
        else:
            spec = RunSpec(env=args.env, seed=seed).resolved()
            act, values = random_policy(seed)
            result = record(spec, act, values, args.out, seed=seed, title="random policy", **play)
    print(f"wrote {result['out']}: {result['steps']} steps, return {result['return']:g}")
    return 0


def _record_timelapse(args: argparse.Namespace, run: str | None) -> int:
    """``renshu record RUN --timelapse [--out x.gif|x.mp4]``: the run's milestones side by side."""
    if run is None:
        raise ValueError("--timelapse shows a run's milestones: give the RUN directory")
    if args.explain or args.checkpoint is not None:
        raise ValueError("--timelapse plays every milestone; it takes no --explain or --checkpoint")
    from renshu.runner.milestones import write_timelapse
    from renshu.runner.run import load_run

    _use_run_threads(load_run(run)[0])
    frames = {"max_frames": args.max_frames} if args.max_frames is not None else {}
    result = write_timelapse(run, out=args.out, seed=args.seed, max_steps=args.max_steps,
                             **frames)  # fmt: skip
    steps = ", ".join(f"{s:,}" for s in result["milestones"])
    print(f"wrote {result['out']}: {result['panels']} milestones (steps {steps}), "
          f"{result['frames']} frames in {result['seconds']:.1f} s")  # fmt: skip
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from renshu.distributed.cluster import require_ray

    require_ray()  # before any work: the one-line install hint
    from renshu.distributed.sweep import run_sweep

    out = run_sweep(
        args.spec, out=args.out, address=args.ray_address, max_concurrent=args.max_concurrent
    )
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"sweep directory: {out} (summary.csv, summary.md, trials.csv, curves.png, trials/)")
    if (out / "errors.txt").is_file():
        print(f"some trials failed; their errors are in {out / 'errors.txt'}", file=sys.stderr)
        return 1
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from renshu.tune import run_tune

    out = run_tune(args.spec, out=args.out, resume=args.resume, jobs=args.jobs,
                   backend=args.backend, address=args.ray_address)  # fmt: skip
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"tuning directory: {out} (summary.md, trials.csv, study.db, trials/)")
    return 0


def _check_image_out(out: str) -> None:
    """``plot --out``: a file name matplotlib can write (by its suffix)."""
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise ValueError(f"--out {out!r}: the picture's name must end in .png, .pdf, .svg or .jpg")


def cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from renshu.runner.group import CURVE_FILE, GROUP_FILE, group_members
    from renshu.viz.plots import plot_compare, plot_groups, plot_learning_curve

    if args.out is not None:
        _check_image_out(args.out)
    style = {"x": args.x, "window": args.window}
    one = args.runs[0]
    if args.group or (len(args.runs) == 1 and (Path(one) / GROUP_FILE).is_file()):
        groups = [group_members(path) for path in args.runs]
        labels = [Path(path).name if Path(path).is_dir() else path for path in args.runs]
        if args.out is None and not (len(args.runs) == 1 and Path(one).is_dir()):
            raise ValueError("plotting several groups (or a pattern) needs --out FILE.png")
        out = args.out if args.out is not None else Path(one) / CURVE_FILE
        out = plot_groups(groups, out, labels, **style)
    elif len(args.runs) == 1:
        out = plot_learning_curve(one, out=args.out, **style)
    else:
        if args.out is None:
            raise ValueError("comparing several runs needs --out FILE.png")
        out = plot_compare(args.runs, args.out, **style)
    print(f"wrote {out}")
    return 0


# -- the parser --------------------------------------------------------------------------------


def _add_train(sub, train_algo: str | None) -> None:
    """The `train` subcommand. Its flags come from RunSpec and the algorithm's config, which
    import torch, so with ``train_algo=None`` (a command line without `train`) only its name
    and help are added: `renshu --help` and `renshu envs` stay fast."""
    p = sub.add_parser(
        "train",
        help="train an agent (default: ppo on game2048)",
        description="Train ALGO on ENV. Every config field of the algorithm is a flag below "
        "(`renshu train ALGO --help` lists that algorithm's fields).",
    )
    if train_algo is None:
        return
    from renshu.algos import algorithm_names
    from renshu.config import add_config_arguments
    from renshu.runner.run import RunSpec

    p.add_argument(
        "algo", nargs="?", default="ppo", help=f"{' | '.join(algorithm_names())} (default ppo)"
    )
    p.add_argument("env", nargs="?", default="game2048", help="environment (default game2048)")
    p.add_argument("--run-dir", default=None, help="run directory (default runs/<algo>-<env>-...)")
    p.add_argument("--config", default=None,
                   help="JSON or TOML file of config fields and run settings, with an [env] "
                   "table of env options")  # fmt: skip
    p.add_argument("--env-option", action="append", default=[], metavar="KEY=VALUE",
                   help="environment option, e.g. obs=onehot (repeatable; `renshu envs ENV` "
                   "lists them)")  # fmt: skip
    p.add_argument("--encoder-option", action="append", default=[], metavar="KEY=VALUE",
                   help="encoder option (repeatable): cache=N (LRU entries), every_k=K (reuse "
                   "features for K steps), features=first_token_logits, dtype=, batch_size=, "
                   "quantize=4bit, device=, state_text= (see docs/encoders.md)")  # fmt: skip
    p.add_argument("--resume", default=None, metavar="RUN", help="continue RUN from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--seeds", default=None, metavar="LIST",
                   help="run once per seed (0,1,2 or 0-4) into a group directory (--run-dir) "
                   "with a summary table and a mean +/- std curve")  # fmt: skip
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="with --seeds: N seeds at a time in separate processes (default 1)",
    )
    add_config_arguments(p, RunSpec, "run_", "run settings", _run_fields())
    p.set_defaults(func=cmd_train)
    from renshu.algos import get_algorithm

    add_config_arguments(p, get_algorithm(train_algo).config_class)


def _add_search_arguments(p: argparse.ArgumentParser) -> None:
    """``--search NAME --depth D --cutoff P`` (eval, record, play --hint)."""
    p.add_argument("--search", default=None, metavar="expectimax",
                   help="play with a search at each move (ntuple runs: expectimax)")  # fmt: skip
    p.add_argument("--depth", type=int, default=None, metavar="D",
                   help="search depth 1-3 (default 2; 1 is the greedy move; depth 2 expands "
                   "every tile that can appear, depth 3 is about 40x slower again)")  # fmt: skip
    p.add_argument("--cutoff", type=float, default=None, metavar="P",
                   help="value chance nodes reached with a probability below P by the network "
                   "instead of expanding them (default 0: exact; speeds up depth 3)")  # fmt: skip


def build_parser(train_algo: str | None = "ppo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="renshu", description="renshu: fast, correct deep RL on batched tensor games."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("envs", help="list the environments (and one env's options)")
    p.add_argument("env", nargs="?", default=None, help="also list this environment's options")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("play", help="play a game in the terminal (2048: arrows or wasd, q quits)")
    p.add_argument("env", nargs="?", default="2048", help="game to play (default: 2048)")
    p.add_argument("--seed", type=_seed, default=None, help="seed for the tile spawns")
    p.add_argument("--invalid-move", choices=["mask", "noop"], default="mask")
    p.add_argument("--hint", default=None, metavar="RUN",
                   help="show a trained run's suggested move and its value of each move under "
                   "the board (with --search: its searched values)")  # fmt: skip
    _add_search_arguments(p)
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("bench", help="random-policy environment steps per second")
    p.add_argument("env", help="environment name (see `renshu envs`)")
    p.add_argument("--num-envs", type=_positive_int, default=4096, help="batch size (default 4096)")
    p.add_argument("--seconds", type=_positive_float, default=3.0, help="time to measure")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--env-option", action="append", default=[], metavar="KEY=VALUE",
                   help="environment option, e.g. compile=true (repeatable)")  # fmt: skip
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("record", help="write an animation (.gif or .mp4) of an agent playing")
    p.add_argument("run", nargs="?", default=None, help="run directory (trained agent)")
    p.add_argument("--env", default="game2048", help="environment without a RUN")
    p.add_argument("--policy", default=None, metavar="random|untrained|RUN",
                   help="without RUN: random (over legal actions, the default), untrained (a "
                   "freshly initialised --algo agent) or a run directory")  # fmt: skip
    p.add_argument("--algo", default=None, help="agent of --policy untrained (default ppo)")
    p.add_argument("--out", default=None,
                   help="output file, .gif or .mp4 (required, except with --timelapse: "
                   "RUN/timelapse.gif)")  # fmt: skip
    p.add_argument("--checkpoint", default=None, metavar="best|latest|step-N",
                   help="the RUN's weights to record (default: best.pt if there is one, else "
                   "latest.pt)")  # fmt: skip
    p.add_argument("--timelapse", action="store_true",
                   help="the RUN's milestones side by side playing the same game (.mp4 needs "
                   "renshu[viz])")  # fmt: skip
    p.add_argument("--seed", type=_seed, default=None, help="seed of the recorded episode")
    p.add_argument("--max-steps", type=_positive_int, default=3000)
    p.add_argument("--fps", type=_positive_int, default=12)
    p.add_argument("--max-frames", type=_positive_int, default=None, metavar="N",
                   help="show a long episode in at most N frames, every k-th step (default 150; "
                   "60 with --timelapse)")  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--explain", action="store_true",
                   help="write a VLM's text answer on each shown frame, read from the env's "
                   "colour picture: --encoder's, else the run's own --encoder hf-vlm "
                   "(generation is slow, so it happens only here)")  # fmt: skip
    p.add_argument(
        "--encoder",
        default=None,
        metavar="NAME",
        help="commentator for --explain beside any agent: hf-vlm",
    )
    p.add_argument(
        "--encoder-model",
        default=None,
        metavar="DIR",
        help="the commentator's model: a local folder or a Hugging Face id",
    )
    p.add_argument(
        "--encoder-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="commentator option (repeatable), e.g. device=cpu, dtype=float32",
    )
    p.add_argument("--explain-prompt", default=None, metavar="TEXT",
                   help="question for --explain (default: the run's --encoder-prompt)")  # fmt: skip
    p.add_argument("--explain-tokens", type=_positive_int, default=24, metavar="N",
                   help="longest answer in tokens for --explain (default 24)")  # fmt: skip
    _add_search_arguments(p)
    p.set_defaults(func=cmd_record)

    _add_train(sub, train_algo)

    p = sub.add_parser("eval", help="evaluate a trained run")
    p.add_argument("run", help="run directory")
    p.add_argument("--episodes", type=_positive_int, default=100)
    p.add_argument("--seed", type=_seed, default=12345)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of greedy")
    p.add_argument("--checkpoint", default=None, metavar="best|latest|step-N",
                   help="the weights to evaluate (default: best.pt if there is one, else "
                   "latest.pt)")  # fmt: skip
    p.add_argument("--compare-random", action="store_true", help="also evaluate random play")
    _add_search_arguments(p)
    p.add_argument("--compare-greedy", action="store_true",
                   help="with --search: also the run's greedy play, on the same seeds")  # fmt: skip
    p.add_argument("--compare", action="append", default=[], metavar="RUN",
                   help="also evaluate this run of the same env (greedy, same seeds; "
                   "repeatable): one table side by side")  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "sweep",
        help="grid or random search over config fields x seeds on Ray Tune",
        description="Run the sweep described by SPEC.toml (see docs/distributed.md): every "
        "configuration once per seed, each trial a normal run directory; writes summary.csv, "
        "summary.md, trials.csv and curves.png.",
    )
    p.add_argument("spec", help="sweep file (TOML)")
    p.add_argument("--out", default=None, help="sweep directory (default sweeps/<name>-<time>)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="join the Ray cluster at ADDR instead of starting one")  # fmt: skip
    p.add_argument("--max-concurrent", type=_positive_int, default=None,
                   help="trials at once (default: as the cluster's CPUs allow)")  # fmt: skip
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "tune",
        help="Optuna search (TPE, median pruning) over config fields; resumable",
        description="Run the Optuna tuning described by SPEC.toml (see docs/distributed.md): "
        "TPE sampling, trials pruned on their periodic evaluations, the study in OUT/study.db "
        "so the same command (or --resume OUT) continues a stopped tuning; writes summary.md "
        "(with parameter importances) and trials.csv.",
    )
    p.add_argument("spec", nargs="?", default=None, help="tuning file (TOML)")
    p.add_argument("--out", default=None, help="tuning directory (default tunes/<name>)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the tuning in DIR")
    p.add_argument("--jobs", type=_positive_int, default=None,
                   help="trials at once, one process each (default: the file's, 1)")  # fmt: skip
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local processes (default) or Ray Tune's Optuna searcher")  # fmt: skip
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --backend ray: join the Ray cluster at ADDR")  # fmt: skip
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("plot", help="plot a run's learning curve or compare runs or groups")
    p.add_argument("runs", nargs="+", help="run directories (with --group: group directories "
                   "made by train --seeds, or quoted patterns of run directories)")  # fmt: skip
    p.add_argument("--out", default=None, help="output PNG (default RUN/learning_curve.png)")
    p.add_argument(
        "--x",
        choices=["steps", "episodes", "seconds", "env_steps", "wall_seconds"],
        default="steps",
        metavar="steps|episodes|seconds",
        help="x axis: env steps (default), finished episodes or wall-clock seconds",
    )
    p.add_argument("--window", type=_positive_int, default=None, metavar="N",
                   help="episodes per moving average and percentile band (default: a fiftieth "
                   "of the run's episodes, at least 10)")  # fmt: skip
    p.add_argument(
        "--group",
        action="store_true",
        help="each argument is a group of runs: drawn as its mean +/- std band",
    )
    p.set_defaults(func=cmd_plot)
    return parser


def _error_text(e: BaseException) -> str:
    """The one line of an error: renshu's own message, or for an OS error on a path the user
    gave (a folder that cannot be made, a file that cannot be read) the path and the reason."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        import errno

        code = errno.errorcode.get(e.errno or 0, "")
        return f"{os.fsdecode(e.filename)}: {e.strerror}" + (f" ({code})" if code else "")
    return str(e)


def main(argv: list[str] | None = None) -> int:
    from renshu.errors import (
        CheckpointError,
        NonFiniteLossError,
        RunInUseError,
        StopSignal,
        WriteError,
    )

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_train_algo_name(argv) if "train" in argv else None)
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser: "renshu train: error: unrecognized ..."
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (
        ValueError, TypeError, ImportError, FileExistsError, FileNotFoundError, ConnectionError,
        MemoryError, NonFiniteLossError, CheckpointError, WriteError, RunInUseError, OSError,
    ) as e:  # fmt: skip
        # Errors a user can cause get one clear line, not a traceback (RENSHU_DEBUG=1 shows it).
        if os.environ.get("RENSHU_DEBUG"):
            raise
        print(f"renshu {args.command}: error: {_error_text(e)}", file=sys.stderr)
        return 2
    except StopSignal as e:  # a second SIGINT/SIGTERM/SIGHUP: stopped at once
        return e.exit_status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
