"""renshu from Python: ``renshu.train(...)`` returns a :class:`Run`, for notebooks and scripts.

::

    import renshu

    run = renshu.train("ppo", "cartpole", steps=20_000, seed=0, learning_rate=3e-3)
    run.summary["last_eval"]["mean_return"]      # the summary.json of the run, a dict
    run.metrics                                  # metrics.csv: a DataFrame (a list of dicts
                                                 # without pandas)
    run.evaluate(episodes=100)                   # best.pt by default; checkpoint="latest"...
    run.plot()                                   # learning_curve.png, shown inline in Jupyter
    run.record()                                 # an episode GIF;  run.timelapse(): milestones
    run                                          # in Jupyter: the summary, curve and animation

    again = renshu.load_run(run.dir)             # any run directory, also one the CLI wrote

A run made here is the same as one made by ``renshu train``: the same directory, files and
checkpoints, so ``renshu eval RUN``, ``renshu plot RUN`` and ``renshu train --resume RUN``
work on it (a run with a custom network resumes from the CLI only if the network can be
imported; see :func:`train`).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["Media", "Run", "load_run", "train"]

_SHOWN = ("timelapse.gif", "episode.gif")  # what a Run shows under its curve, the first found


class Media:
    """A file renshu wrote (a PNG or a GIF/MP4): a path for scripts (``os.fspath``, ``str``),
    and a picture in Jupyter, where it displays inline."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Media({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Media):
            return self.path == other.path
        if isinstance(other, (str, os.PathLike)):
            return self.path == Path(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.path)

    def _repr_png_(self) -> bytes | None:
        return self.path.read_bytes() if self.path.suffix.lower() == ".png" else None

    def _repr_html_(self) -> str | None:  # (a PNG shows as image/png)
        return None if self.path.suffix.lower() == ".png" else _media_html(self.path)


def _media_html(path: Path, width: int | None = None) -> str | None:
    """An ``<img>`` (PNG, GIF) or ``<video>`` (MP4) holding the file itself (base64)."""
    kinds = {".png": "image/png", ".gif": "image/gif", ".mp4": "video/mp4"}
    kind = kinds.get(path.suffix.lower())
    if kind is None or not path.is_file():
        return None
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    size = f' width="{width}"' if width else ""
    alt = html.escape(path.name)
    if kind == "video/mp4":
        return f'<video controls loop autoplay{size}><source src="data:{kind};base64,{data}" ' \
               f'type="{kind}"></video>'  # fmt: skip
    return f'<img src="data:{kind};base64,{data}" alt="{alt}"{size}/>'


class Run:
    """A run directory: what :func:`train` returns and :func:`load_run` opens.

    ``dir`` (a Path), ``summary`` (summary.json as a dict), ``config`` (config.json),
    ``metrics`` and ``episodes`` (metrics.csv and episodes.csv as DataFrames, or lists of dicts
    without pandas), and the methods :meth:`evaluate`, :meth:`record`, :meth:`timelapse`,
    :meth:`plot`. In Jupyter a Run shows its result, learning curve and animation.
    """

    def __init__(self, run_dir: str | os.PathLike):
        from renshu.runner.run import CONFIG_FILE

        self.dir = Path(run_dir)
        if not (self.dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{self.dir} is not a renshu run directory (no {CONFIG_FILE})")

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    # -- what the run wrote -----------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        return json.loads((self.dir / "config.json").read_text(encoding="utf-8"))

    @property
    def summary(self) -> dict[str, Any]:
        """summary.json (status, env steps, seconds, the last evaluation, ...); {} while the
        run has not ended."""
        path = self.dir / "summary.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def metrics(self):
        """metrics.csv, one row per training iteration (``env_steps``, ``wall_seconds``,
        losses, ``eval/mean_return`` where evaluated...): a pandas DataFrame when pandas is
        installed, else a list of dicts (empty cells are None)."""
        return _table(self.dir / "metrics.csv")

    @property
    def episodes(self):
        """episodes.csv, one row per finished training episode (``env_steps``, ``return``,
        ``length`` and the env's extras), as :attr:`metrics`."""
        return _table(self.dir / "episodes.csv")

    # -- using the trained agent ------------------------------------------------------------

    def evaluate(
        self,
        episodes: int = 100,
        checkpoint: str | None = None,
        seed: int = 12345,
        deterministic: bool = True,
    ) -> dict[str, Any]:
        """Play ``episodes`` episodes with the weights of ``checkpoint`` (best, latest or
        step-N; None: best.pt where it exists, else latest.pt) and return their summary
        (``mean_return``, ``std_return``, ..., the env's extras) with ``checkpoint`` and
        ``checkpoint_steps`` saying which weights played."""
        from renshu.runner.evaluate import evaluate, make_eval_env, summarize
        from renshu.runner.milestones import load_agent

        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes must be a positive int, got {episodes!r}")
        algo, spec, loaded = load_agent(self.dir, checkpoint, device="cpu")
        with _run_threads(spec):
            env = make_eval_env(spec, episodes, algo.device)
            try:
                stats = evaluate(
                    lambda o, m: algo.act(o, m, deterministic=deterministic), env, episodes, seed
                )
            finally:
                env.close()
        result = summarize(stats, spec.env_spec)
        result.update(checkpoint=loaded.name, checkpoint_steps=loaded.env_steps)
        return result

    def record(
        self,
        out: str | os.PathLike | None = None,
        checkpoint: str | None = None,
        seed: int | None = None,
        max_steps: int = 3000,
        fps: int = 12,
    ) -> Media:
        """An animation (.gif, or .mp4 with ``renshu[viz]``) of one greedy episode with the
        weights of ``checkpoint`` (as :meth:`evaluate`); ``out`` defaults to
        ``RUN/episode-<checkpoint>.gif``."""
        from renshu.runner.milestones import load_agent
        from renshu.runner.record import record_episode

        algo, spec, loaded = load_agent(self.dir, checkpoint, device="cpu")
        out = Path(out) if out is not None else self.dir / f"episode-{loaded.name}.gif"
        title = f"{spec.algo} ({loaded.name}, step {loaded.env_steps:,})"
        with _run_threads(spec):
            record_episode(algo, spec, out, seed=seed, title=title, max_steps=max_steps, fps=fps)
        return Media(out)

    def timelapse(
        self, out: str | os.PathLike | None = None, seed: int | None = None, max_frames: int = 60
    ) -> Media:
        """The run's milestones side by side playing the same game (``RUN/timelapse.gif`` by
        default; see :func:`renshu.runner.milestones.write_timelapse`)."""
        from renshu.runner.milestones import write_timelapse
        from renshu.runner.run import load_run as load_spec

        with _run_threads(load_spec(self.dir)[0]):
            result = write_timelapse(self.dir, out=out, seed=seed, max_frames=max_frames)
        return Media(result["out"])

    def plot(
        self, out: str | os.PathLike | None = None, x: str = "steps", window: int | None = None
    ) -> Media:
        """Draw the learning curve (``RUN/learning_curve.png`` by default): ``x`` steps,
        episodes or seconds; ``window`` episodes per moving average."""
        from renshu.viz.plots import plot_learning_curve

        return Media(plot_learning_curve(self.dir, out=out, x=x, window=window))

    # -- Jupyter ----------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        config, summary = self.config, self.summary
        head = f"<b>{html.escape(config.get('algo', '?'))} on {html.escape(config.get('env', '?'))}"
        head += f"</b> &nbsp; <code>{html.escape(str(self.dir))}</code>"
        facts = []
        if summary:
            facts.append(
                f"{html.escape(str(summary.get('status')))}: {summary.get('env_steps', 0):,} env "
                f"steps in {summary.get('wall_seconds', 0.0):.1f} s"
            )
            ev = summary.get("last_eval")
            if ev:
                facts.append(
                    f"last evaluation: mean return {ev['mean_return']:.2f} over "
                    f"{ev['episodes']} episodes"
                )
        parts = [f"<div>{head}</div>"] + [f"<div>{html.escape(f)}</div>" for f in facts]
        curve = self.dir / "learning_curve.png"
        pictures = [_media_html(curve, width=640)] if curve.is_file() else []
        for name in _SHOWN:
            if (self.dir / name).is_file():
                pictures.append(_media_html(self.dir / name))
                break
        parts += [f"<div>{p}</div>" for p in pictures if p]
        return "\n".join(parts)


class _run_threads:
    """The run env's CPU threads for the duration of a block (small networks run faster on
    one), restored after."""

    def __init__(self, spec):
        self.threads = spec.cpu_threads()

    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)
        return False


def _table(path: Path):
    from renshu.runner.logging import read_csv

    if not path.is_file():
        columns: dict[str, list] = {}
    else:
        columns = read_csv(path)
    try:
        import pandas
    except ImportError:
        names = list(columns)
        rows = len(columns[names[0]]) if names else 0
        return [{name: columns[name][i] for name in names} for i in range(rows)]
    return pandas.DataFrame(columns)


def _whole(name: str, value: Any) -> Any:
    """``steps=2e4`` is 20000 (a whole float for an int setting)."""
    if isinstance(value, float) and value.is_integer() and name in ("steps", "eval_every"):
        return int(value)
    return value


def train(
    algo: str = "ppo",
    env: str = "game2048",
    steps: int | None = None,
    run_dir: str | os.PathLike | None = None,
    seed: int = 0,
    *,
    network=None,
    env_options: dict[str, Any] | None = None,
    encoder_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **config: Any,
) -> Run:
    """Train ``algo`` on ``env`` for ``steps`` env steps (None: the env's default budget) into
    ``run_dir`` (None: ``runs/<algo>-<env>-s<seed>-<time>``) and return the :class:`Run`.

    ``config`` holds the settings of ``renshu train``'s flags by their field names: run
    settings (``minutes``, ``target_return``, ``target_on``, ``eval_every``,
    ``eval_episodes``, ``milestones``, ``animation``, ``threads``, ``device``, ...) and the
    algorithm's config fields (``learning_rate``, ``num_envs``, ``hidden``, ...; ``renshu
    train ALGO --help`` lists them). An unknown name raises a ValueError listing the valid
    ones. ``env_options``: the env's options (``renshu envs ENV``), e.g. ``{"obs": "onehot"}``;
    ``encoder_options``: those of ``encoder=`` (``--encoder-option``, docs/encoders.md).
    ``progress`` shows the progress bar.

    ``network``: your own torso, for ppo, a2c and dqn: a callable ``network(in_features) ->
    torch.nn.Module`` mapping a float batch ``[B, in_features]`` (the observation flattened,
    e.g. 4 numbers for CartPole, 16 exponents for 2048) to features ``[B, F]``. ``F`` is the
    module's ``out_dim`` attribute if it has one, else measured on a dummy batch. The
    algorithm adds its heads on top (policy logits and value for ppo/a2c, which call
    ``network`` once for the actor and once for the critic unless ``shared_torso=True``;
    Q-values for dqn) and initialises the whole under the run's seed. BatchNorm and Dropout
    run in train mode only in the passes that learn (those that record gradients) and in eval
    mode while acting, so BatchNorm acts on its running statistics, also on one observation.

    The run records the network as its import path ``module:qualname``. In this Python
    process it is always found again; elsewhere (``renshu eval`` / ``record`` / ``train
    --resume`` from a shell, or a new notebook session) only if that path can be imported:
    define the function in a module, or open the run with ``load_run(dir, network=fn)``.
    ``network`` may also be given as such a path string ("mypackage.nets:bn_mlp").
    """
    from renshu import algos
    from renshu.runner import RunSpec, start_run
    from renshu.runner.run import run_flag_fields

    cls = algos.get_algorithm(algo)
    run_names = {f.name for f in run_flag_fields()} - {"seed", "steps", "network"}
    algo_names = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(config) - run_names - algo_names)
    if unknown:
        raise ValueError(
            f"renshu.train: unknown setting(s) {', '.join(unknown)} for {algo}; valid run "
            f"settings: {', '.join(sorted(run_names))}; valid {algo} config fields: "
            f"{', '.join(sorted(algo_names))}"
        )
    from renshu.config import coerce

    run_values = coerce(RunSpec, {k: _whole(k, v) for k, v in config.items() if k in run_names})
    algo_values = {k: v for k, v in config.items() if k in algo_names}
    coerce(cls.config_class, algo_values)  # types checked before anything is built
    if network is not None:
        from renshu.core.nets import network_path

        run_values["network"] = network_path(network)
    spec = RunSpec(
        algo=algo, env=env, env_options=dict(env_options or {}), seed=seed,
        encoder_options=dict(encoder_options or {}), steps=_whole("steps", steps), **run_values,
    )  # fmt: skip
    run_dir, _ = start_run(spec, algo_values, run_dir=run_dir, overwrite=overwrite,
                           progress=progress)  # fmt: skip
    return Run(run_dir)


def load_run(run_dir: str | os.PathLike, network=None) -> Run:
    """Open a run directory (made by :func:`train` or ``renshu train``) as a :class:`Run`.

    ``network``: the torso factory of a run trained with a custom network that cannot be
    imported here (defined in another notebook session): it is used for the network the run
    recorded. A run whose network can be found neither way raises a ValueError saying so.
    """
    run = Run(run_dir)
    recorded = run.config.get("run", {}).get("network")
    if recorded:
        from renshu.core.nets import _LIVE_NETWORKS, network_path, resolve_network

        if network is not None:
            network_path(network)
            _LIVE_NETWORKS[recorded] = network
        resolve_network(recorded)  # a clear ValueError now rather than at evaluate()
    elif network is not None:
        raise ValueError(f"{run.dir} was trained without a custom network; do not pass network=")
    return run
