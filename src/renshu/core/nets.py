"""Network building blocks chosen from an observation space.

``make_torso(space)`` returns a module mapping a batch of observations (as the env returns them:
uint8 2048 exponents, float vectors, uint8 image stacks) to a flat feature vector, and its size.
"""

from __future__ import annotations

import functools
import math

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def layer_init(layer: nn.Module, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with ``gain`` and constant bias (the usual policy-gradient init)."""
    if isinstance(layer, (nn.Linear, nn.Conv2d)):
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.constant_(layer.bias, bias)
    return layer


def mlp(sizes: list[int], activation: str = "tanh", last_activation: bool = True) -> nn.Sequential:
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(layer_init(nn.Linear(a, b)))
        if last_activation or i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class Board2048Torso(nn.Module):
    """uint8 exponents ``[B, 4, 4]`` -> features.

    Each cell's exponent is embedded (the same as a linear layer over 16 one-hot planes), then
    the 16 cell embeddings go through an MLP.
    """

    def __init__(
        self, hidden: tuple[int, ...] = (256, 256), embed_dim: int = 16, activation="relu"
    ):
        super().__init__()
        self.embed = nn.Embedding(16, embed_dim)
        self.body = mlp([16 * embed_dim, *hidden], activation)
        self.out_dim = hidden[-1]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.embed(obs.reshape(obs.shape[0], 16).long())
        return self.body(x.flatten(1))


class MLPTorso(nn.Module):
    """Float vectors (any shape, flattened) -> features."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (64, 64), activation: str = "tanh"):
        super().__init__()
        self.body = mlp([in_dim, *hidden], activation)
        self.out_dim = hidden[-1]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs.reshape(obs.shape[0], -1).float())


class NatureCNN(nn.Module):
    """uint8 frame stacks ``[B, C, 84, 84]`` -> 512 features (the DQN Nature network).

    Weights and inputs are kept channels-last (NHWC): oneDNN's convolutions run several times
    faster in that layout on CPU than in the default NCHW (see benchmarks/atari_throughput.py),
    and cuDNN prefers it too.
    """

    def __init__(self, channels: int = 4, out_dim: int = 512):
        super().__init__()
        self.body = nn.Sequential(
            layer_init(nn.Conv2d(channels, 32, 8, stride=4)),
            nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)),
            nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)),
            nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(64 * 7 * 7, out_dim)),
            nn.ReLU(),
        )
        self.out_dim = out_dim
        self.body.to(memory_format=torch.channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # conv(x / 255, W) == conv(x, W / 255): scaling the 8k first-layer weights instead of
        # the 900k-number input batch saves a full pass over it (same parameters, same grads).
        x = obs.contiguous(memory_format=torch.channels_last).float()
        first, *rest = self.body
        x = F.conv2d(x, first.weight * (1.0 / 255.0), first.bias, first.stride)
        for layer in rest:
            x = layer(x)
        return x


class FeatureTorso(nn.Module):
    """A torso on the raw observation next to frozen-encoder features.

    ``h = MLP([torso(obs), P(LayerNorm(features) / sqrt(D))])``: the ``D`` features (any float
    dtype, e.g. the float16 a replay buffer keeps) are centred and scaled to unit length (the
    LayerNorm's unit variance per number, divided by sqrt(D)), because embeddings come in any
    scale and the texts or frames of one game embed close together; ``P`` (one layer) projects
    them to the torso's width, so that a 384- or 4,096-number embedding neither saturates the
    activations nor drowns the observation branch. The encoder never runs here.
    """

    def __init__(
        self, torso: nn.Module, feature_dim: int, hidden: tuple[int, ...], activation: str
    ):
        super().__init__()
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {feature_dim}")
        self.torso = torso
        self.norm = nn.LayerNorm(feature_dim)
        self.project = mlp([feature_dim, hidden[-1]], activation)
        self.body = mlp([torso.out_dim + hidden[-1], hidden[-1]], activation)
        self.feature_dim = feature_dim
        self.out_dim = hidden[-1]

    def forward(self, obs: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        if features is None:
            raise ValueError("this network takes encoder features next to the observation")
        unit = self.norm(features.float()) * self.feature_dim**-0.5
        x = torch.cat([self.torso(obs), self.project(unit)], dim=-1)
        return self.body(x)


# ---------------------------------------------------------------------------------------------
# A user's own torso: ``network(in_features) -> nn.Module`` (renshu.train(..., network=...)).

NETWORK_ALGOS = ("a2c", "dqn", "ppo")  # the algorithms whose torso can be replaced
_LIVE_NETWORKS: dict[str, object] = {}  # import path -> the callable given in this process


class CustomTorso(nn.Module):
    """A user's torso: flattened float observations ``[B, in_features]`` -> features ``[B, F]``.

    ``body = network(in_features)`` is any ``nn.Module``; ``F`` is its ``out_dim`` attribute
    when it has one, else the width of its output on two zero observations. The algorithm adds
    its heads (policy logits and value, or Q-values) on top.

    Train and eval mode follow the pass, not the caller: a pass that records gradients
    (learning) runs ``body`` in train mode, any other (acting, targets, evaluation, recording,
    all under ``torch.no_grad``) in eval mode. So BatchNorm learns its statistics from the
    learning minibatches and acts with its running averages, also on a batch of one, and
    Dropout is off while acting.
    """

    def __init__(self, body: nn.Module, in_features: int):
        super().__init__()
        if not isinstance(body, nn.Module):
            raise TypeError(
                f"network(in_features) must return a torch.nn.Module, got {type(body).__name__}"
            )
        self.body = body
        self.in_features = in_features
        out_dim = getattr(body, "out_dim", None)
        if out_dim is None:
            was = body.training
            body.eval()
            with torch.no_grad():
                out = body(torch.zeros(2, in_features))
            body.train(was)
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"network({in_features}) must map [B, {in_features}] observations to "
                    f"[B, features]; it returned {shape} for B=2"
                )
            out_dim = out.shape[1]
        self.out_dim = int(out_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        learning = torch.is_grad_enabled()
        if self.body.training != learning:
            self.body.train(learning)
        return self.body(obs.reshape(obs.shape[0], -1).float())


def network_path(network) -> str:
    """The import path ``module:qualname`` recorded for a torso factory (a callable or a path);
    a callable is also remembered in this process, so a function defined in a notebook or a
    closure works for the rest of the session even though no other process can import it."""
    if isinstance(network, str):
        return network
    if not callable(network):
        raise TypeError(f"network must be a callable network(in_features) -> nn.Module or an "
                        f"import path 'module:function', got {type(network).__name__}")  # fmt: skip
    module = getattr(network, "__module__", None) or "__main__"
    name = getattr(network, "__qualname__", None) or type(network).__qualname__
    path = f"{module}:{name}"
    _LIVE_NETWORKS[path] = network
    return path


def check_network_path(path: str, algo: str) -> None:
    """A ValueError unless ``path`` looks like ``module:function`` and ``algo`` takes it."""
    if algo not in NETWORK_ALGOS:
        raise ValueError(
            f"--network (a custom torso) works with {', '.join(NETWORK_ALGOS)}, not {algo}"
        )
    module, _, name = str(path).partition(":")
    if not module or not name:
        raise ValueError(f"--network takes an import path module:function, got {path!r}")


def resolve_network(path: str):
    """The torso factory at ``path``: the callable given in this process, else imported."""
    if path in _LIVE_NETWORKS:
        return _LIVE_NETWORKS[path]
    import importlib

    module, _, name = path.partition(":")
    fix = (
        "; it was defined in a notebook or a script, or inside a function: pass it again "
        "with renshu.load_run(RUN, network=FUNCTION), or move it into an importable module"
    )
    if "<" in name:
        raise ValueError(f"this run's network {path} cannot be imported{fix}")
    try:
        value = importlib.import_module(module)
        for part in name.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"this run's network {path} cannot be imported ({e}){fix}") from None
    if not callable(value):
        raise ValueError(f"--network {path} is not callable")
    return value


def custom_torso(network, space: gym.Space) -> CustomTorso:
    """``network(in_features)`` wrapped for observations of ``space`` (flattened to floats)."""
    shape = getattr(space, "shape", None)
    if not shape:
        raise ValueError(f"a custom network needs a Box observation space, got {space}")
    in_features = int(np.prod(shape))
    return CustomTorso(network(in_features), in_features)


def adam(params, lr: float, eps: float = 1e-5) -> torch.optim.Adam:
    """Adam with the fused kernel: one op per step for all parameters, on CPU and CUDA."""
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)


def guarded_step(
    optimizer: torch.optim.Optimizer,
    params: list[torch.Tensor],
    max_grad_norm: float,
    loss: torch.Tensor | None = None,
) -> torch.Tensor:
    """Clip the gradient norm and take the optimizer step unless the loss or a gradient is NaN
    or inf (a Huber loss can be inf while its gradient stays finite).

    Returns 1.0 where the step was skipped, else 0.0, as a tensor: the fused Adam kernel reads
    the flag itself (``found_inf``), so a bad step leaves weights and moments untouched without
    a host sync. Algorithms add the flags up and report them; the runner stops on any.

    With the fused kernel the clipping happens inside it too: it divides the gradients by
    ``grad_scale`` as it reads them, so ``grad_scale = 1 / clip coefficient`` is
    ``clip_grad_norm_``'s rescaling without its extra pass over every gradient.
    """
    if not optimizer.defaults.get("fused"):
        norm = nn.utils.clip_grad_norm_(params, max_grad_norm)
        bad = ~torch.isfinite(norm)
        if loss is not None:
            bad = bad | ~torch.isfinite(loss.detach())
        if not bool(bad):  # other optimizers do not read the flag: decide on the host
            optimizer.step()
        return bad.float()
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:  # nothing to step (the kernel skips parameters without a gradient)
        return torch.zeros((), device=params[0].device if params else None)
    if len(grads) == 1:  # one flat parameter (TwinMLPActorCritic)
        norm = torch.linalg.vector_norm(grads[0])
    else:
        norm = nn.utils.get_total_norm(grads)
    bad = ~torch.isfinite(norm)
    if loss is not None:
        bad = bad | ~torch.isfinite(loss.detach())
    found_inf = bad.float()
    # clip_grad_norm_ multiplies by min(max_norm / (norm + 1e-6), 1); the kernel divides.
    optimizer.grad_scale = ((norm + 1e-6) / max_grad_norm).clamp(min=1.0)
    optimizer.found_inf = found_inf
    optimizer.step()
    return found_inf


def make_torso(
    space: gym.Space,
    hidden: tuple[int, ...] = (64, 64),
    activation: str = "tanh",
    feature_dim: int = 0,
    network=None,
) -> nn.Module:
    """Pick a torso for one env's observation space (the module has ``out_dim``).

    ``feature_dim > 0``: the torso is wrapped in a :class:`FeatureTorso` that also takes encoder
    features of that size (call it as ``torso(obs, features)``). ``network``: a user's torso
    factory ``network(in_features) -> nn.Module`` (:class:`CustomTorso`) instead of renshu's.
    """
    if feature_dim:
        inner = make_torso(space, hidden, activation, network=network)
        return FeatureTorso(inner, feature_dim, hidden, activation)
    if network is not None:
        return custom_torso(network, space)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"unsupported observation space {space}; renshu nets take Box spaces")
    shape = space.shape
    if shape == (4, 4) and space.dtype == np.uint8:
        return Board2048Torso(hidden, activation=activation)
    if len(shape) == 3 and space.dtype == np.uint8 and shape[1:] == (84, 84):
        return NatureCNN(shape[0])
    return MLPTorso(int(np.prod(shape)), hidden, activation)


def use_bf16_autocast(setting: str, device: torch.device, torso: nn.Module) -> bool:
    """Whether to run a network's forward passes under bfloat16 autocast.

    ``"on"``/``"off"`` decide; ``"auto"`` turns it on where it pays: on hardware with native
    bfloat16 matrix units (CUDA devices that support it; CPUs with AMX tiles or AVX-512 BF16),
    for torsos with real matrix work (the Nature CNN, the 2048 board embedding, encoder
    features). Small MLPs on vectors gain nothing from it and keep float32.
    """
    if setting in ("on", "off"):
        return setting == "on"
    if isinstance(torso, MLPTorso):
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_native_bf16()
    return False


@functools.cache
def _cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (Linux /proc/cpuinfo flags: ``amx_tile``
    or ``avx512_bf16``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_tile" in flags or "avx512_bf16" in flags
