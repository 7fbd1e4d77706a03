"""Checkpoints: tensors and plain data in one file, written atomically, read with
``torch.load(weights_only=True)`` so a file from elsewhere can never run code."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from renshu.fileio import atomic_open

FORMAT = "renshu-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not renshu's."""


_PLAIN = (type(None), bool, int, float, str, torch.Tensor)


def _check_plain(value: Any, where: str) -> None:
    """Refuse anything ``torch.load(weights_only=True)`` would refuse (so every file loads)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint key {where}[{key!r}] must be a str or int")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise TypeError(
            f"checkpoint value {where} is a {type(value).__name__}; checkpoints hold only "
            "tensors, numbers, strings, None, lists and dicts"
        )


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    path = Path(path)
    _check_plain(payload, "payload")
    data = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_open(path, "wb") as f:
        torch.save(data, f)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a renshu checkpoint safely; raise :class:`CheckpointError` with the reason otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # e.g. torch's note on a foreign pickle protocol
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    except Exception as e:  # corrupt bytes raise almost anything from inside the unpickler
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
        if "Weights only load failed" in text:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            what = f" ({found.group(1)})" if found else ""
            reason = (
                f"it holds objects other than tensors and plain data{what}, which renshu "
                "refuses to load because loading them could run code"
            )
        else:
            first = text.splitlines()[0].split(". ")[0] if text else type(e).__name__
            reason = f"it cannot be read as plain tensors and data: {first[:200]}"
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a renshu checkpoint ({reason})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a renshu checkpoint (no '{FORMAT}' marker)")
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {data.get('version')}; "
            f"this renshu reads version {VERSION}"
        )
    return data
