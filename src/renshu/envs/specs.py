"""EnvSpec: the one home of what renshu knows about an environment.

A spec holds an environment's canonical name and aliases, its options (typed: type, choices or
range, default, a line of doc), the default step budget and CPU threads of a run on it, the
per-algorithm presets, how evaluation runs on it, which episode extras it reports and how to
build it. :func:`resolve` turns any name a user types into its spec, once:

* a native game (``game2048`` or its alias ``2048``, ``cartpole``, ``gridworld``), also by its
  Gymnasium id (``renshu/Game2048-v0``, ``renshu/CartPole-v0``, ``renshu/GridWorld-v0``);
* an Atari id (``ALE/<Game>-v5``; ``<Game>NoFrameskip-v4`` and ``<Game>-v4`` with v4's settings),
  whose options are ALE's parameters;
* any other Gymnasium id, whose options are typed from its constructor's signature.

Nothing outside this module compares environment name strings.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from renshu.config import import_object

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str"}


@dataclass(frozen=True)
class EnvOption:
    """One typed option of an environment (``--env-option NAME=VALUE``)."""

    name: str
    type: type  # bool, int, float or str; ``object``: passed through as given
    default: Any
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    low: float | None = None  # inclusive bounds of a number
    high: float | None = None
    nullable: bool = False  # None (``none`` on the command line) is allowed

    def parse(self, value: Any, env: str) -> Any:
        """``value`` (a command-line or config-file string, or a Python value) as this option's
        type, checked; a ValueError naming the option, the expected type and the text given."""
        where = f"env option {self.name!r} of {env}"
        if isinstance(value, str) and self.type is not str:
            text = value.strip()
            if self.nullable and text.lower() in ("none", "null"):
                return None
            value = self._from_text(text, where)
        elif value is None and self.nullable:
            return None
        elif self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is not object and not _is_type(value, self.type):
            raise ValueError(f"{where} must be {self.kind()}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            valid = ", ".join(map(str, self.choices))
            raise ValueError(f"{where} must be one of {valid}, got {value!r}")
        if self.low is not None and not value >= self.low:
            raise ValueError(f"{where} must be {self.kind()}, got {value!r}")
        if self.high is not None and not value <= self.high:
            raise ValueError(f"{where} must be {self.kind()}, got {value!r}")
        return value

    def _from_text(self, text: str, where: str) -> Any:
        try:
            if self.type is bool:
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise ValueError
            if self.type is int:
                return int(text)
            if self.type is float:
                number = float(text)
                if math.isnan(number):
                    raise ValueError
                return number
        except ValueError:
            raise ValueError(f"{where} must be {self.kind()}, got {text!r}") from None
        return text

    def kind(self) -> str:
        """``'a float in [0, 1]'``, ``'one of mask, noop'``, ``'true or false'``, ..."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type is bool:
            return "true or false"
        name = _TYPE_NAMES.get(self.type, "any value")
        text = f"an {name}" if name == "int" else f"a {name}"
        if self.low is not None and self.high is not None:
            text += f" in [{_num(self.low)}, {_num(self.high)}]"
        elif self.low is not None:
            text += f" >= {_num(self.low)}"
        elif self.high is not None:
            text += f" <= {_num(self.high)}"
        return text + (" or none" if self.nullable else "")

    def describe(self) -> str:
        """One line for ``renshu envs``."""
        default = "none" if self.default is None else str(self.default).lower()
        doc = f": {self.doc}" if self.doc else ""
        return f"{self.name} ({self.kind()}; default {default}){doc}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _is_type(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, float) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


@dataclass(frozen=True)
class EvalSpec:
    """How evaluation and recording run on an environment."""

    num_envs: int = 16
    """most envs an evaluation steps at once"""
    episodes: int = 100
    """default episodes per evaluation (``--eval-episodes`` overrides)"""
    max_episode_steps: int | None = None
    """step limit of an evaluated or recorded episode (None: the env's own limit, and
    ``renshu.runner.evaluate.EVAL_STEP_LIMIT`` where the env has none)"""
    stuck_steps: int | None = None
    """truncate an evaluated or recorded episode whose observation stayed the same this many
    steps in a row (a greedy policy repeating a move that changes nothing; native games)"""
    epsilon: float = 0.0
    """value-based agents (``value_based`` algorithms: DQN) act epsilon-greedily in evaluation:
    a random legal action with this probability"""
    sample_policy: bool = False
    """policy-gradient agents (PPO, A2C, GRPO) sample their actions in evaluation instead of
    taking the most likely one"""
    min_interval: int | None = None
    """fewest env steps between periodic evaluations (default: a tenth of the budget, but not
    fewer than this; ``--eval-every`` overrides)"""
    animation_steps: int = 2000
    """most steps of the episode.gif and timelapse.gif written at the end of a run (a longer
    episode is cut there; ``renshu record`` takes ``--max-steps``)"""


MAX_EPISODE_STEPS = EnvOption(
    "max_episode_steps", int, None, "truncate episodes after this many steps (none: the env's "
    "own limit)", low=1, nullable=True,
)  # fmt: skip

# How the runner summarises an episode extra over evaluated episodes.
EXTRA_SUMMARIES = ("mean", "counts", "rate")


@dataclass(frozen=True)
class EnvSpec:
    """Everything renshu knows about one environment (see the module docstring)."""

    name: str
    """canonical name, as config.json records it"""
    description: str
    family: str
    """``native``, ``atari`` or ``gymnasium``"""
    make: Callable[..., Any] = field(repr=False)
    """``make(num_envs=, device=, seed=, max_episode_steps=, render=, **options) -> TensorEnv``
    (``render``: able to draw frames, for recording)"""
    aliases: tuple[str, ...] = ()
    options: tuple[EnvOption, ...] = ()
    max_episode_steps: int | None = None
    """the env's own step limit (None: none, or the Gymnasium id's registered one)"""
    default_steps: int = 1_000_000
    """step budget of a run given neither --steps nor --minutes"""
    threads: int | None = None
    """CPU threads of a run (None: torch's default); small networks gain nothing from more"""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """algorithm name -> config values that suit this env better than the generic defaults"""
    eval: EvalSpec = EvalSpec()
    extras: Mapping[str, str] = field(default_factory=dict)
    """episode extras the env reports and how evaluation summarises each (mean, counts, rate)"""
    note: str = ""
    """a line ``renshu envs`` and the run log print (e.g. which ALE settings an id implies)"""
    passthrough: bool = False
    """options not listed are passed on as given (Gymnasium ids with ``**kwargs``)"""
    play: str | None = None
    """``module:function(seed=, **options)`` that plays the game in a terminal (``renshu play``)"""

    def preset(self, algo: str) -> dict[str, Any]:
        """A copy of the preset config values of ``algo`` on this env ({} if none)."""
        return dict(self.presets.get(algo, {}))

    @property
    def all_options(self) -> tuple[EnvOption, ...]:
        """The env's options and the one every env takes (``max_episode_steps``)."""
        return (*self.options, MAX_EPISODE_STEPS)

    def parse_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` typed and checked by this spec; an unknown name lists the valid ones."""
        known = {o.name: o for o in self.all_options}
        out = {}
        for name, value in options.items():
            option = known.get(name)
            if option is None:
                if self.passthrough:
                    out[name] = value
                    continue
                valid = "; ".join(o.describe() for o in self.all_options)
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown env option {name!r} for {self.name}.{hint} Valid options: {valid}"
                )
            out[name] = option.parse(value, self.name)
        return out


# ---------------------------------------------------------------------------------------------
# Presets shared by several specs.

# RL Zoo's CartPole-v1 PPO settings with 16 envs x 16 steps, 7 epochs at 3e-3 and GAE lambda
# 0.95 (chosen on held-out seeds; docs/benchmarks.md has the search).
_CARTPOLE = {
    "ppo": dict(
        num_envs=16, num_steps=16, learning_rate=3e-3, gamma=0.98, gae_lambda=0.95,
        num_minibatches=1, update_epochs=7, ent_coef=0.0, clip_coef=0.2,
    ),
    "a2c": dict(num_envs=8, num_steps=5, ent_coef=0.0, learning_rate=7e-4),
    "grpo": dict(
        group_size=8, num_groups=4, learning_rate=1e-3, update_epochs=4, clip_eps=0.2,
        hidden=(64, 64), activation="tanh",
    ),
    # RL Zoo's CartPole-v1 DQN settings with a quarter of the gradient steps on a 64x64 network.
    "dqn": dict(
        num_envs=8, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
        learning_starts=1_000, gamma=0.99, target_update_interval=256, train_freq=256,
        gradient_steps=64, exploration_fraction=0.05, exploration_final_eps=0.04,
        hidden=(64, 64),
    ),
}  # fmt: skip

_GAME2048 = {
    # bf16 autocast where the CPU or GPU multiplies bfloat16 natively: the 256x256 network's
    # matmuls are most of an update. 2 epochs instead of 3 ran 1.34x faster but ended weaker
    # after 15 minutes (docs/benchmarks.md), so the preset keeps 3.
    "ppo": dict(
        num_envs=256, num_steps=64, learning_rate=3e-4, gamma=0.99, gae_lambda=0.9,
        num_minibatches=8, update_epochs=3, ent_coef=0.005, hidden=(256, 256),
        activation="relu", shared_torso=True, reward_scale=0.01, bf16="auto",
    ),
    "grpo": dict(
        group_size=8, num_groups=32, learning_rate=3e-4, update_epochs=2, num_minibatches=4,
        hidden=(256, 256), activation="relu",
    ),
    # PPO's network; 64 envs x 8 steps, RMSprop 7e-4: at 500k steps 5,300 against the 256-env
    # variant's 4,866 and PPO's 2,735 (3 seeds), at equal wall-clock even (docs/algorithms.md).
    "a2c": dict(
        num_envs=64, num_steps=8, learning_rate=7e-4, optimizer="rmsprop", gamma=0.99,
        gae_lambda=1.0, ent_coef=0.01, hidden=(256, 256), activation="relu", shared_torso=True,
        reward_scale=0.01,
    ),
    # n-tuple TD learning: 4096 games at once, collisions capped at 8 (docs/ntuple.md).
    "ntuple": dict(num_envs=4096, tuples="4x6", learning_rate=0.1, collision_cap=8),
    # 2.3-3.2x random play's mean score after 1.6M steps (3 seeds); docs/dqn.md.
    "dqn": dict(
        num_envs=64, learning_rate=2.5e-4, batch_size=256, buffer_size=200_000,
        learning_starts=10_000, gamma=0.99, target_update_interval=4_096, train_freq=256,
        gradient_steps=8, exploration_fraction=0.2, exploration_final_eps=0.01, n_step=5,
        dueling=True, hidden=(256, 256), reward_scale=0.01,
    ),
}  # fmt: skip

# A slow target and learning rate keep DQN's greedy policy from flipping between the near-equal
# actions beside the pit (with or without encoder features).
_GRIDWORLD = {
    "dqn": dict(
        num_envs=8, learning_rate=3e-4, batch_size=64, buffer_size=50_000,
        learning_starts=1_000, gamma=0.99, target_update_interval=1_000, train_freq=8,
        gradient_steps=1, exploration_fraction=0.2, exploration_final_eps=0.05, hidden=(64, 64),
    ),
}  # fmt: skip

# The Nature DQN settings with 8 envs and one gradient step per 4 transitions; PPO as in the PPO
# paper's Atari runs.
_ATARI = {
    "dqn": dict(
        num_envs=8, learning_rate=1e-4, batch_size=32, buffer_size=100_000,
        learning_starts=80_000, gamma=0.99, target_update_interval=1_000, train_freq=8,
        gradient_steps=2, exploration_fraction=0.1, exploration_final_eps=0.01,
        clip_rewards=True, max_grad_norm=10.0,
    ),
    "ppo": dict(
        num_envs=8, num_steps=128, learning_rate=2.5e-4, num_minibatches=4, update_epochs=4,
        clip_coef=0.1, ent_coef=0.01, shared_torso=True, clip_rewards=True,
    ),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Native games.


def _native(game: str, cls: str, limit: int | None) -> Callable[..., Any]:
    """A builder of a FunctionalEnv over the game class ``game:cls`` (imported when used);
    ``limit`` is the game's step limit unless the caller gives one."""

    def make(num_envs=1, device="cpu", seed=None, max_episode_steps=None, render=False,
             stuck_steps=None, **options):  # fmt: skip
        from renshu.envs.base import FunctionalEnv  # (native games always render)

        game_cls = import_object(f"renshu.envs.{game}:{cls}")
        steps = max_episode_steps if max_episode_steps is not None else limit
        return FunctionalEnv(
            game_cls(**options), num_envs=num_envs, device=device, max_episode_steps=steps,
            seed=seed, stuck_steps=stuck_steps,
        )  # fmt: skip

    return make


NATIVE: dict[str, EnvSpec] = {}


def _add(spec: EnvSpec) -> EnvSpec:
    NATIVE[spec.name] = spec
    return spec


_add(
    EnvSpec(
        name="game2048",
        description="2048 on a 4x4 board, batched bitboards (actions: left, right, up, down)",
        family="native",
        make=_native("game2048", "Game2048", None),
        aliases=("2048",),
        options=(
            EnvOption(
                "obs",
                str,
                "exponent",
                "observation encoding",
                choices=("exponent", "onehot", "log2", "raw"),
            ),
            EnvOption(
                "invalid_move",
                str,
                "mask",
                "mask: a move that changes nothing is illegal; noop: legal, nothing happens",
                choices=("mask", "noop"),
            ),
            EnvOption("compile", bool, False, "fuse the step with torch.compile"),
        ),  # fmt: skip
        default_steps=3_000_000,
        presets=_GAME2048,
        # 2048 has no step limit: evaluation gets a large one (a game to the 65,536 tile takes
        # about 30,000 moves), and with invalid_move=noop a greedy policy that repeats a move
        # changing nothing would repeat it forever: 100 unchanged boards in a row end it.
        eval=EvalSpec(num_envs=1024, max_episode_steps=200_000, stuck_steps=100),
        extras={"score": "mean", "max_tile": "counts"},
        play="renshu.play:play_2048",
    )
)
_add(
    EnvSpec(
        name="cartpole",
        description="CartPole-v1 physics as batched tensors (actions: push left, push right)",
        family="native",
        make=_native("cartpole", "CartPole", 500),
        max_episode_steps=500,
        default_steps=200_000,
        threads=1,
        presets=_CARTPOLE,
        eval=EvalSpec(num_envs=1024),
    )
)
_add(
    EnvSpec(
        name="gridworld",
        description="the classic 4x3 grid world: goal +1, pit -1, slippery moves "
        "(actions: left, right, up, down)",
        family="native",
        make=_native("gridworld", "GridWorld", 100),
        options=(
            EnvOption(
                "obs",
                str,
                "onehot",
                "observation encoding (rgb: uint8 [3, 84, 84])",
                choices=("onehot", "coords", "rgb"),
            ),
            EnvOption(
                "slip", float, 0.2, "probability a move goes sideways instead", low=0.0, high=1.0
            ),
            EnvOption(
                "step_cost",
                float,
                0.04,
                "reward -step_cost for every step that ends nowhere",
                low=-1.0,
                high=1.0,
            ),
        ),  # fmt: skip
        max_episode_steps=100,
        default_steps=50_000,
        presets=_GRIDWORLD,
        extras={"success": "rate"},
    )
)

_ALIASES = {alias: spec.name for spec in NATIVE.values() for alias in spec.aliases}

# The Gymnasium ids of the native games (registered by renshu.interop.registration): they run
# the batched engine, as the native names do.
GYM_IDS = {
    "renshu/Game2048-v0": "game2048",
    "renshu/CartPole-v0": "cartpole",
    "renshu/GridWorld-v0": "gridworld",
}


# ---------------------------------------------------------------------------------------------
# Atari.

_ALE_V5 = re.compile(r"ALE/(?P<game>[A-Za-z0-9]+)-v5")
_V4 = re.compile(r"(?P<game>[A-Za-z0-9]+?)(?P<nf>NoFrameskip)?-v4")


ATARI_EVAL = EvalSpec(episodes=10, max_episode_steps=27_000, epsilon=0.05, sample_policy=True,
                      min_interval=62_500, animation_steps=300)  # fmt: skip


def _atari_options(sticky: float) -> tuple[EnvOption, ...]:
    return (
        EnvOption("repeat_action_probability", float, sticky,
                  "sticky actions: the previous action repeats with this probability",
                  low=0.0, high=1.0),
        EnvOption("full_action_space", bool, False, "all 18 actions instead of the game's own"),
        EnvOption("frame_skip", int, 4, "emulator frames per agent step (max-pooled)", low=1),
        EnvOption("frameskip", int, 4, "Gymnasium's name for frame_skip", low=1),
        EnvOption("noop_max", int, 30, "most no-op actions after a reset", low=0),
        EnvOption("frame_stack", int, 4, "frames per observation", low=1),
        EnvOption("screen_size", int, 84, "observation height and width in pixels", low=8),
        EnvOption("fire_reset", bool, True, "press FIRE after a reset in games that need it"),
        EnvOption("num_threads", int, 0, "emulator threads (0: one per core)", low=0),
    )  # fmt: skip


def _make_atari(env_id: str, defaults: Mapping[str, Any]):
    def make(num_envs=1, device="cpu", seed=None, max_episode_steps=None, render=False,
             **options):  # fmt: skip
        from renshu.envs.atari import AtariEnv  # (frames come from the observations)

        if "frameskip" in options:
            options["frame_skip"] = options.pop("frameskip")
        merged = {**defaults, **options}
        return AtariEnv(env_id, num_envs, device=device, seed=seed,
                        max_episode_steps=max_episode_steps, **merged)  # fmt: skip

    return make


def _atari_spec(name: str) -> EnvSpec | None:
    """The spec of an Atari id, or None when ``name`` is not one. ``ALE/<Game>-v5`` and
    ``<Game>NoFrameskip-v4`` of a game ale-py does not ship raise a ValueError with matches."""
    from renshu.envs.atari import ATARI_EXTRA, rom_names

    v5, v4 = _ALE_V5.fullmatch(name), _V4.fullmatch(name)
    if v5 is None and v4 is None:
        return None
    game = (v5 or v4).group("game")
    if _camel_to_rom(game) not in rom_names():
        if v5 is None and v4.group("nf") is None:
            return None  # e.g. a MuJoCo "-v4" id: not Atari
        if not rom_names():
            raise ImportError(f"{name!r} is an Atari game, which needs ale-py: {ATARI_EXTRA}")
        form = "ALE/{}-v5" if v5 is not None else "{}NoFrameskip-v4"
        valid = [form.format(_rom_to_camel(r)) for r in sorted(rom_names())]
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown Atari game {name!r}.{hint} Atari ids look like 'ALE/Breakout-v5' or "
            f"'BreakoutNoFrameskip-v4'; {len(valid)} games ship with ale-py."
        )
    if v5 is not None:
        sticky, note = 0.25, ""
    else:
        sticky = 0.0
        note = (
            f"{name}: v4 settings on ALE (repeat_action_probability=0, the minimal action set, "
            "frame skip 4 with max-pooling, DeepMind preprocessing)"
        )
    return EnvSpec(
        name=name,
        description=f"Atari {game} (ALE, DeepMind preprocessing, 84x84x4 grey)",
        family="atari",
        make=_make_atari(f"ALE/{game}-v5", {"repeat_action_probability": sticky}),
        options=_atari_options(sticky),
        max_episode_steps=27_000,
        default_steps=10_000_000,
        presets=_ATARI,
        # The published protocol: 10 episodes capped at 108,000 frames (27,000 steps at frame
        # skip 4); value-based agents epsilon-greedy with 0.05 (Mnih et al. 2015, Nature DQN),
        # policy-gradient agents sampling from their policy (the PPO and A3C papers' scores).
        # Either way an agent that never presses FIRE after losing a life cannot idle.
        # Periodic evaluations at least 250,000 frames apart, so short runs evaluate at the end.
        eval=ATARI_EVAL,
        note=note,
    )


# ---------------------------------------------------------------------------------------------
# Any other Gymnasium id.

_GYM_PRESETS = {"CartPole-v1": _CARTPOLE}
_GYM_THREADS = {"CartPole-v1": 1}
_GYM_ENV_OPTIONS = (
    EnvOption("vectorization", str, "sync",
              "sync: copies stepped in this process; async: a worker process per copy",
              choices=("sync", "async")),
)  # fmt: skip


def _option_from_parameter(p: inspect.Parameter) -> EnvOption:
    default = None if p.default is inspect.Parameter.empty else p.default
    if isinstance(default, (bool, int, float, str)):
        return EnvOption(p.name, type(default), default)
    annotation = p.annotation if isinstance(p.annotation, type) else None
    if annotation in (bool, int, float, str):
        return EnvOption(p.name, annotation, default, nullable=default is None)
    return EnvOption(p.name, object, default)


def _gym_options(env_id: str) -> tuple[tuple[EnvOption, ...], bool]:
    """Options of a Gymnasium id, typed by its constructor's signature (and the registered
    keyword arguments); whether it takes ``**kwargs`` besides."""
    import gymnasium as gym

    spec = gym.spec(env_id)
    creator = spec.entry_point
    if isinstance(creator, str):
        try:
            creator = import_object(creator)
        except (ImportError, gym.error.DependencyNotInstalled) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ImportError(f"{env_id} needs a package that is not installed: {first}") from None
    try:
        params = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):  # a builtin or C extension: no signature to read
        return (), True
    options, passthrough = [], False
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            passthrough = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "render_mode":
            option = _option_from_parameter(p)
            if p.name in spec.kwargs:
                option = dataclasses.replace(option, default=spec.kwargs[p.name])
            options.append(option)
    return tuple(options), passthrough


def _make_gym(env_id: str, env_names: frozenset[str]):
    def make(num_envs=1, device="cpu", seed=None, max_episode_steps=None, render=False,
             wrappers=None, **options):  # fmt: skip
        from renshu.envs.gym import GymEnv

        env_options = {k: options.pop(k) for k in list(options) if k in env_names}
        return GymEnv(
            env_id, num_envs=num_envs, device=device, seed=seed,
            max_episode_steps=max_episode_steps, env_kwargs=options, wrappers=wrappers,
            render=render, **env_options,
        )  # fmt: skip

    return make


def _gym_spec(name: str) -> EnvSpec | None:
    import gymnasium as gym

    entry = gym.registry.get(name)
    if entry is None or str(entry.entry_point).startswith("ale_py"):
        return None  # not registered, or an Atari id ale-py registered (see _atari_spec)
    options, passthrough = _gym_options(name)
    env_options = _GYM_ENV_OPTIONS + options
    return EnvSpec(
        name=name,
        description=f"Gymnasium {name}",
        family="gymnasium",
        make=_make_gym(name, frozenset(o.name for o in _GYM_ENV_OPTIONS)),
        options=env_options,
        max_episode_steps=gym.spec(name).max_episode_steps,
        presets=_GYM_PRESETS.get(name, {}),
        threads=_GYM_THREADS.get(name),
        passthrough=passthrough,
    )


# ---------------------------------------------------------------------------------------------


@functools.cache
def resolve(name: str) -> EnvSpec:
    """The spec of any environment name a user may type, or a ValueError listing the names."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"environment name must be a non-empty string, got {name!r}")
    if name in NATIVE:
        return NATIVE[name]
    if name in _ALIASES:
        return NATIVE[_ALIASES[name]]
    if name in GYM_IDS:
        return NATIVE[GYM_IDS[name]]
    if name.startswith("ALE/"):
        spec = _atari_spec(name)
    else:
        spec = _gym_spec(name) or _atari_spec(name)
    if spec is None:
        raise _unknown(name)
    return spec


def _camel_to_rom(game: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def _rom_to_camel(rom: str) -> str:
    return "".join(part.capitalize() for part in rom.split("_"))


def native_names() -> list[str]:
    return sorted(NATIVE)


def _unknown(name: str) -> ValueError:
    import gymnasium as gym

    known = native_names() + sorted(_ALIASES)
    close = difflib.get_close_matches(name, known, n=1) or difflib.get_close_matches(
        name, list(gym.registry), n=1
    )
    hint = f" Did you mean {close[0]!r}?" if close else ""
    aliases = ", ".join(f"{a}={c}" for a, c in sorted(_ALIASES.items()))
    return ValueError(
        f"unknown environment {name!r}.{hint} Native environments: {', '.join(native_names())} "
        f"(aliases: {aliases}); Atari: ALE/<Game>-v5 or <Game>NoFrameskip-v4 (pip install "
        '"renshu[atari]"); any Gymnasium id works too (e.g. CartPole-v1). Run `renshu envs` '
        "for the list."
    )
