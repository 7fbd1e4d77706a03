"""What a run is (:class:`RunSpec`), where it lives (run directories), and how it is built.

A run is an algorithm, an environment and these settings; ``config.json`` in its directory
records all of it, canonically (the env's canonical name and typed options, the algorithm's
whole config), so that ``--resume``, ``eval`` and ``record`` rebuild exactly the same run.
Run directories are never overwritten silently: a non-empty one is refused unless
``overwrite``, and then only if it is a renshu run directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from renshu import algos
from renshu.config import coerce, to_dict
from renshu.envs.base import check_seed
from renshu.envs.specs import EnvSpec, resolve
from renshu.fileio import LOCK_FILE, atomic_open

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


@dataclass
class RunSpec:
    """What a run is, besides the algorithm's config. Its documented fields are the flags of
    ``renshu train`` (``--steps``, ``--eval-every``, ...)."""

    algo: str = "ppo"
    env: str = "game2048"
    env_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    """random seed of the envs, the network and sampling"""
    steps: int | None = None
    """env step budget (default: the env's, `renshu envs` lists it)"""
    minutes: float | None = None
    """wall-clock budget in minutes"""
    device: str = "auto"
    """auto, cpu or cuda[:N] (auto: CUDA when present)"""
    target_return: float | None = None
    """stop when the periodic evaluation's mean return reaches this"""
    target_on: str = "eval"
    """what --target-return watches: eval (the periodic evaluation's mean) or train (the
    running mean of the last 100 training episodes)"""
    milestones: int = 5
    """weight-only snapshots kept over the budget (checkpoints/step-N.pt, the first before
    training) for the timelapse and --checkpoint step-N; 0 keeps none"""
    eval_every: int | None = None
    """env steps between evaluations (default: a tenth of the budget)"""
    eval_episodes: int | None = None
    """episodes per evaluation (default: the env's, 100 for most)"""
    checkpoint_seconds: float = 120.0
    """seconds between periodic checkpoints"""
    animation: bool = True
    """write episode.gif of the trained agent at the end"""
    threads: int | None = None
    """torch CPU threads (default: the env's, else torch's)"""
    backend: str = "local"
    """local, or ray: collect on Ray worker actors"""
    num_workers: int = 2
    """Ray workers with --backend ray"""
    ray_address: str | None = None
    """join the Ray cluster at ADDR (host:port) instead of starting a local Ray"""
    encoder: str | None = None
    """frozen pretrained encoder whose features the agent gets next to the observation"""
    encoder_model: str | None = None
    """the encoder's model: a local folder or a Hugging Face id"""
    encoder_prompt: str | None = None
    """hf-vlm: the question asked with every frame"""
    encoder_options: dict[str, Any] = field(default_factory=dict)
    network: str | None = None
    """import path module:function of a custom torso, network(in_features) -> nn.Module (dqn,
    ppo, a2c; see renshu.api.train)"""

    @property
    def env_spec(self) -> EnvSpec:
        return resolve(self.env)

    def resolved(self) -> RunSpec:
        """This spec checked, with the env's canonical name and typed options (what
        config.json records); raises a ValueError naming the field at fault."""
        env = resolve(self.env)
        spec = dataclasses.replace(
            self, env=env.name, env_options=env.parse_options(self.env_options)
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        algos.get_algorithm(self.algo)  # an unknown name lists the valid ones
        check_seed(self.seed)
        positive = {"steps": self.steps, "eval_every": self.eval_every,
                    "eval_episodes": self.eval_episodes, "threads": self.threads,
                    "num_workers": self.num_workers}  # fmt: skip
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ValueError(f"--{_flag(name)} must be >= 1, got {value}")
        if self.threads is not None and self.threads > 4096:
            raise ValueError(f"--threads must be at most 4096, got {self.threads}")
        if self.minutes is not None and not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise ValueError(f"--minutes must be a positive number, got {self.minutes}")
        seconds = self.checkpoint_seconds
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"--checkpoint-seconds must be a number >= 0, got {seconds}")
        if self.target_return is not None and not math.isfinite(self.target_return):
            raise ValueError(f"--target-return must be a finite number, got {self.target_return}")
        if self.backend not in ("local", "ray"):
            raise ValueError(f"--backend must be local or ray, got {self.backend!r}")
        if self.target_on not in ("eval", "train"):
            raise ValueError(f"--target-on must be eval or train, got {self.target_on!r}")
        if self.milestones < 0:
            raise ValueError(f"--milestones must be >= 0, got {self.milestones}")
        if self.network is not None:
            from renshu.core.nets import check_network_path

            check_network_path(self.network, self.algo)
            if self.backend != "local":
                raise ValueError("--network (a custom torso) runs with --backend local")
        self.validate_encoder()

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
        if not algos.get_algorithm(self.algo).takes_encoder:
            takes = [a for a in algos.algorithm_names() if algos.get_algorithm(a).takes_encoder]
            raise ValueError(
                f"{self.algo} does not take encoder features; --encoder works with "
                f"{', '.join(takes)}"
            )
        if self.backend != "local":
            raise ValueError("--encoder runs with --backend local (the collector encodes)")

    # -- budget and schedule ------------------------------------------------------------------

    def total_steps(self) -> int | None:
        """The step budget: ``steps``, none with only ``minutes``, else the env's default."""
        if self.steps is not None:
            return self.steps
        if self.minutes is not None:
            return None
        return self.env_spec.default_steps

    def episodes_per_eval(self) -> int:
        return self.eval_episodes or self.env_spec.eval.episodes

    def cpu_threads(self) -> int | None:
        return self.threads or self.env_spec.threads


def _flag(name: str) -> str:
    return name.replace("_", "-")


def run_flag_fields() -> list[dataclasses.Field]:
    """The RunSpec fields that are ``renshu train`` flags (the documented ones)."""
    from renshu.config import field_docs

    docs = field_docs(RunSpec)
    return [f for f in dataclasses.fields(RunSpec) if f.name in docs]


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


def algo_config(spec: RunSpec, values: dict[str, Any]):
    """The algorithm's config: the env's preset, then ``values`` (checked) on top."""
    cls = algos.get_algorithm(spec.algo)
    merged = spec.env_spec.preset(spec.algo)
    merged.update(coerce(cls.config_class, values))
    return cls.config_class(**merged)


def build(spec: RunSpec, values: dict[str, Any], device=None):
    """``(algo, collect, config)`` of a run: ``collect(progress)`` is the algorithm's own, or
    the Ray workers' with ``backend="ray"`` (:mod:`renshu.distributed`)."""
    from renshu.envs.base import resolve_device
    from renshu.envs.registry import make_env

    cls = algos.get_algorithm(spec.algo)
    config = algo_config(spec, values)
    device = resolve_device(spec.device if device is None else device)
    if spec.backend == "ray":
        from renshu.distributed import build_remote

        algo, collect = build_remote(spec, cls, config, device)
        return algo, collect, config
    try:
        env = make_env(
            spec.env, num_envs=config.num_envs, device=device, seed=spec.seed, **spec.env_options
        )
        algo = cls(env, config, seed=spec.seed, encoder=make_run_encoder(spec),
                   **network_kwargs(spec))  # fmt: skip
    except RuntimeError as e:  # torch's allocator: sizes (num_envs, hidden, ...) too large
        text = str(e)
        if "allocate" not in text and "overflow" not in text.lower():
            raise
        fields = to_dict(config)
        sizes = ", ".join(f"{k}={fields[k]}" for k in ("num_envs", "hidden", "buffer_size")
                          if k in fields)  # fmt: skip
        raise MemoryError(
            f"not enough memory for {spec.algo} on {spec.env} with {sizes}: lower --num-envs, "
            "--hidden or --buffer-size"
        ) from None
    return algo, algo.collect, config


def network_kwargs(spec: RunSpec) -> dict[str, Any]:
    """``{"network": factory}`` for a run with a custom torso (``spec.network``), else {}."""
    if spec.network is None:
        return {}
    from renshu.core.nets import resolve_network

    return {"network": resolve_network(spec.network)}


# ---------------------------------------------------------------------------------------------
# Run directories


def default_run_dir(spec: RunSpec) -> Path:
    env = re.sub(r"[^A-Za-z0-9_.-]+", "-", spec.env)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{spec.algo}-{env}-s{spec.seed}-{stamp}"


def check_run_dir(run_dir: Path, overwrite: bool) -> bool:
    """Whether ``run_dir`` holds a run that ``overwrite`` will replace; refuses a non-empty
    directory without ``overwrite``, and any that is not a renshu run directory."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"run directory {run_dir} exists and is not a directory")
    replace = run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir())
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
    return replace


def prepare_run_dir(run_dir: Path, replace: bool, spec: RunSpec, config: Any) -> None:
    """Replace the old run (only now that the new one proved buildable) and write config.json.
    The run's lock file stays (the caller holds it: a new file would be a second lock)."""
    if replace:
        clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_FILE, config_record(spec, config))


def clear_run_dir(run_dir: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove everything in ``run_dir`` but its lock file and the names in ``keep``."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK_FILE or entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def process_seconds() -> float | None:
    """Seconds since this process started (Linux: /proc; elsewhere None). The runner records
    it after the first update as ``startup_seconds``: what a user waits before training runs."""
    import os

    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def describe_device(device: Any) -> str:
    """The device a run actually uses, in words: ``"cuda:0 NVIDIA H100 80GB HBM3"`` or
    ``"cpu, 2 threads"`` (torch's current CPU thread count). config.json and summary.json
    record it, since ``--device auto`` alone does not say which."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu, {threads} thread{'s' if threads != 1 else ''}"
    return str(device)


def config_record(spec: RunSpec, config: Any) -> dict[str, Any]:
    """What config.json holds: the spec, the algorithm's whole config, versions and the device
    resolved from ``spec.device`` (with the CPU threads the run has set by now)."""
    import torch

    from renshu import __version__
    from renshu.envs.base import resolve_device

    return {
        "renshu_version": __version__,
        "algo": spec.algo,
        "env": spec.env,
        "run": dataclasses.asdict(spec),
        "algo_config": to_dict(config),
        "torch": torch.__version__,
        "device": describe_device(resolve_device(spec.device)),
    }


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
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a valid renshu run config: {e}") from None
    return spec.resolved(), values


def record_budget(run_dir: Path, steps: int) -> None:
    """Raise the step budget recorded in config.json (``train --resume --steps``)."""
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    config["run"]["steps"] = steps
    write_json(run_dir / CONFIG_FILE, config)


def write_json(path: Path, data: dict) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2) + "\n")
