"""The Encoder protocol, the encoder registry, and the cache / every-k wrappers.

An encoder is a frozen pretrained model that turns a batch of observations into feature vectors
an agent can use next to its own network::

    encoder = make_encoder("hf-text")                  # or "hf-image", "hf-vlm" (model=...)
    features = encoder.encode(obs, done=info["done"])  # float32 [num_envs, encoder.out_dim]

* ``encode(obs, done=None)`` takes a batch as the env returns it (``[B, ...]`` on any device) and
  returns float32 features ``[B, out_dim]`` on the same device as ``obs``. It never builds an
  autograd graph and never changes the model. ``done`` (bool ``[B]``, optional) marks rows whose
  episode just began (``info["done"]`` after an auto-reset step); stateless encoders ignore it,
  :class:`EveryK` recomputes those rows.
* ``out_dim``: the feature size; ``device``: where the model runs; ``calls``: model forward
  passes so far; ``rows``: observations run through the model so far (a cache hit adds none).

``make_encoder(name, cache=N, every_k=K, **options)`` builds one by name, with an LRU cache of
``N`` entries keyed on the observation bytes (:class:`CachedEncoder`) and features reused for
``K`` steps (:class:`EveryK`) when asked. Options given as strings (from the command line) are
converted to the type of the option's default.
"""

from __future__ import annotations

import collections
import difflib
import hashlib
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from renshu.config import import_object
from renshu.envs.base import resolve_device

ENCODERS: dict[str, str] = {
    "hf-vlm": "renshu.encoders.hf_vlm:HFVisionLanguageEncoder",
    "hf-image": "renshu.encoders.hf_image:HFImageEncoder",
    "hf-text": "renshu.encoders.hf_text:HFTextEncoder",
}

LLM_EXTRA = "pip install 'renshu[llm]'"


@runtime_checkable
class Encoder(Protocol):
    """Frozen observation -> features map (see the module docstring)."""

    name: str
    out_dim: int
    device: torch.device
    calls: int
    rows: int
    describes: ClassVar[bool] = False
    """whether :meth:`describe` answers in text (vision-language models)"""

    def encode(self, obs: torch.Tensor, done: torch.Tensor | None = None) -> torch.Tensor: ...

    def describe(
        self, obs: torch.Tensor, prompt: str | None = None, max_new_tokens: int = 24
    ) -> list[str]:
        """One text answer per observation (``record --explain``)."""
        raise ValueError(f"the {self.name} encoder gives features, not text answers")


def encoder_names() -> list[str]:
    return sorted(ENCODERS)


def encoder_class(name: str):
    """The class behind an encoder name, or a ValueError listing the valid names."""
    if name not in ENCODERS:
        close = difflib.get_close_matches(name, ENCODERS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown encoder {name!r}.{hint} Valid encoders: {', '.join(encoder_names())}"
        )
    return import_object(ENCODERS[name])


def make_encoder(name: str, cache: int = 0, every_k: int = 1, **options: Any) -> Encoder:
    """Build the encoder ``name`` with ``options`` (e.g. ``model``, ``prompt``, ``device``).

    ``cache > 0`` keeps that many features in an LRU cache keyed on the observation bytes;
    ``every_k > 1`` reuses each env's features for ``every_k`` calls. An unknown option raises a
    ValueError naming the valid ones.
    """
    cls = encoder_class(name)
    params = {
        k: p
        for k, p in inspect.signature(cls).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for encoder {name!r}; valid: "
            f"{', '.join(sorted([*params, 'cache', 'every_k']))}"
        )
    values = {k: coerce_option(k, v, params[k].default) for k, v in options.items()}
    cache = coerce_option("cache", cache, 0)
    every_k = coerce_option("every_k", every_k, 1)
    if not isinstance(cache, int) or isinstance(cache, bool) or cache < 0:
        raise ValueError(f"cache must be an int >= 0 (entries; 0 turns it off), got {cache!r}")
    if not isinstance(every_k, int) or isinstance(every_k, bool) or every_k < 1:
        raise ValueError(f"every_k must be an int >= 1 (1 turns it off), got {every_k!r}")
    encoder: Encoder = cls(**values)
    if cache:
        encoder = CachedEncoder(encoder, cache)
    if every_k != 1:
        encoder = EveryK(encoder, every_k)
    return encoder


def coerce_option(name: str, value: Any, default: Any) -> Any:
    """A command-line string turned into the type of ``default`` (int, float, bool or None)."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    text = value.strip()
    if text.lower() in ("none", "null") and not isinstance(default, (bool, int, float)):
        return None
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = type(default).__name__
        raise ValueError(f"encoder option {name} must be a {kind}, got {value!r}") from None
    return value


# ---------------------------------------------------------------------------------------------
# Wrappers.


class CachedEncoder:
    """An LRU cache of ``max_entries`` features in front of ``encoder``, keyed on the bytes of
    each observation row. A batch runs the model once, on its distinct uncached rows only.
    ``hits`` / ``misses`` count rows."""

    def __init__(self, encoder: Encoder, max_entries: int):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.inner = encoder
        self.max_entries = int(max_entries)
        self.hits = 0
        self.misses = 0
        self._store: collections.OrderedDict[bytes, torch.Tensor] = collections.OrderedDict()

    def __getattr__(self, name: str) -> Any:  # name, out_dim, device, calls, describe, ...
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    @torch.no_grad()
    def encode(self, obs: torch.Tensor, done: torch.Tensor | None = None) -> torch.Tensor:
        keys = observation_keys(obs)
        found: dict[bytes, torch.Tensor] = {}
        missing: dict[bytes, int] = {}  # key -> first row holding it
        for i, key in enumerate(keys):
            if key in found or key in missing:
                continue
            hit = self._store.get(key)
            if hit is None:
                missing[key] = i
            else:
                self._store.move_to_end(key)
                found[key] = hit
        if missing:
            rows = torch.tensor(list(missing.values()), device=obs.device)
            fresh = self.inner.encode(obs.index_select(0, rows))
            for key, feature in zip(missing, fresh.unbind(0)):
                found[key] = feature
                self._store[key] = feature
                if len(self._store) > self.max_entries:
                    self._store.popitem(last=False)
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        return torch.stack([found[key] for key in keys]).to(obs.device)


class EveryK:
    """Reuses the features of each env for ``k`` calls: the whole batch is encoded on every
    ``k``-th call, and in between only the rows that ``done`` marks (a new episode). Row ``i``
    must be the same env on every call (as a TensorEnv's batch is)."""

    def __init__(self, encoder: Encoder, k: int):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"every_k must be an int >= 1, got {k!r}")
        self.inner = encoder
        self.k = k
        self.reset()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def reset(self) -> None:
        """Forget the stored features: the next call encodes the whole batch."""
        self._features: torch.Tensor | None = None
        self._count = 0

    def state_dict(self) -> dict[str, Any]:
        """The stored features and the call count (for an exact resume)."""
        return {"features": self._features, "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._features = state["features"]
        self._count = int(state["count"])

    @torch.no_grad()
    def encode(self, obs: torch.Tensor, done: torch.Tensor | None = None) -> torch.Tensor:
        stored = self._features
        if stored is None or stored.shape[0] != obs.shape[0] or self._count % self.k == 0:
            self._features = self.inner.encode(obs)
            self._count = 0
        elif done is not None and bool(done.any()):
            rows = done.nonzero().squeeze(1).to(obs.device)
            fresh = self.inner.encode(obs.index_select(0, rows))
            self._features = stored.index_put((rows.to(stored.device),), fresh.to(stored.device))
        self._count += 1
        return self._features.to(obs.device)


def stateless(encoder: Encoder) -> Encoder:
    """``encoder`` without its :class:`EveryK` wrapper: for batches that are not the env batch
    (final observations, evaluation, recording), encoded afresh (through the cache, if any)."""
    while isinstance(encoder, EveryK):
        encoder = encoder.inner
    return encoder


def encoder_state(encoder: Encoder) -> dict[str, Any]:
    """What a checkpoint keeps of an encoder: the every-k wrapper's features (else nothing)."""
    return encoder.state_dict() if isinstance(encoder, EveryK) else {}


def load_encoder_state(encoder: Encoder, state: dict[str, Any]) -> None:
    if isinstance(encoder, EveryK) and state:
        encoder.load_state_dict(state)


def observation_keys(obs: torch.Tensor) -> list[bytes]:
    """One 16-byte digest of each row's dtype, shape and bytes (the cache key)."""
    array = obs.detach().cpu().contiguous().numpy()
    prefix = f"{array.dtype}{array.shape[1:]}".encode()
    rows = array.reshape(array.shape[0], -1)
    return [hashlib.blake2b(prefix + row.tobytes(), digest_size=16).digest() for row in rows]


# ---------------------------------------------------------------------------------------------
# Helpers the Hugging Face encoders share.


def require_transformers(encoder: str):
    """Import transformers, or say how to install it."""
    try:
        import transformers
    except ImportError:
        raise ImportError(f"the {encoder} encoder needs transformers: {LLM_EXTRA}") from None
    return transformers


def _offline() -> bool:
    flags = (
        os.environ.get(v, "").strip().lower() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return any(f in ("1", "true", "yes", "on") for f in flags)


def model_source(model: str) -> str:
    """``model`` as a local folder (checked) or a hub id (left to ``from_pretrained``)."""
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise ValueError(f"model must be a local folder or a Hugging Face id, got {model!r}")
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"model folder {path} has no config.json; give the folder that "
                "save_pretrained() (or `hf download ID --local-dir DIR`) wrote"
            )
        return str(path)
    text = str(model)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise FileNotFoundError(
            f"model folder {text} does not exist (a local folder needs config.json and weights)"
        )
    return text


def load_pretrained(load: Callable[[str], Any], model: str, what: str = "model") -> Any:
    """``load(source)`` with the errors a user can cause turned into one clear message."""
    source = model_source(model)
    try:
        return load(source)
    except OSError as e:
        if Path(source).is_dir():
            raise FileNotFoundError(f"cannot load the {what} from folder {source}: {e}") from None
        if _offline():
            raise FileNotFoundError(
                f"{what} {model!r} is not on this machine (not a folder, not in the Hugging Face "
                "cache) and downloads are off (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE). Download it "
                f"once with network access (`hf download {model} --local-dir DIR`) and pass the "
                "folder instead: --encoder-model DIR"
            ) from None
        raise FileNotFoundError(
            f"cannot load {what} {model!r} from the Hugging Face hub: {str(e).splitlines()[0]} "
            "(a local folder works too: --encoder-model DIR)"
        ) from None


def dtype_kwargs(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``from_pretrained``'s dtype argument (``torch_dtype`` before transformers 4.56)."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def pick_device_dtype(device: str | torch.device | None, dtype: str) -> tuple[torch.device, Any]:
    """``device="auto"``: CUDA when present; ``dtype="auto"``: float16 on CUDA, else float32."""
    device = resolve_device(device)
    names = {"auto": None, "float32": torch.float32, "float16": torch.float16}
    names["bfloat16"] = torch.bfloat16
    if dtype not in names:
        raise ValueError(f"dtype must be one of {sorted(names)}, got {dtype!r}")
    chosen = names[dtype]
    if chosen is None:
        chosen = torch.float16 if device.type == "cuda" else torch.float32
    return device, chosen


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Evaluation mode, no gradients: an encoder never trains."""
    model.eval()
    model.requires_grad_(False)
    return model


def to_images(obs: torch.Tensor) -> list[np.ndarray]:
    """A batch of image observations as RGB ``uint8 [H, W, 3]`` numpy frames.

    Accepts ``[B, 3, H, W]`` (channels first, e.g. ``gridworld`` with ``obs=rgb``),
    ``[B, H, W, 3]``, ``[B, H, W]`` grey, and ``[B, C, H, W]`` grey frame stacks (Atari, C != 3:
    the last frame is used). Float images are taken to lie in ``[0, 1]``.
    """
    x = obs.detach()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(
            "image encoders need image observations [B, 3, H, W], [B, H, W, 3] or grey "
            f"[B, C, H, W]; got shape {tuple(obs.shape)} (for vector observations use hf-text "
            "or pass to_image=your_function)"
        )
    if x.dtype.is_floating_point:
        x = (x.clamp(0, 1) * 255).round()
    x = x.to(torch.uint8)
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    elif x.shape[1] != 3:
        x = x[:, -1:].expand(-1, 3, -1, -1)
    return list(x.permute(0, 2, 3, 1).contiguous().cpu().numpy())
