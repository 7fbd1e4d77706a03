"""``hf-image``: CLIP / SigLIP image embeddings of the frame.

The cheap option: a frozen contrastive image encoder (``get_image_features``, the embedding
CLIP and SigLIP match against text) from a local folder or a hub id, loaded with
``AutoImageProcessor`` and ``AutoModel``. One forward pass of the vision tower per batch of
frames; no language model runs. ``normalize=True`` scales each embedding to unit length (what
CLIP compares); by default the raw projection is returned.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from renshu.encoders.base import (
    Encoder,
    dtype_kwargs,
    freeze,
    load_pretrained,
    pick_device_dtype,
    require_transformers,
    to_images,
)

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


class HFImageEncoder(Encoder):
    """Image embeddings from a CLIP or SigLIP model (see the module docstring).

    ``to_image`` (optional) maps an observation batch to a list of ``uint8 [H, W, 3]`` frames.
    """

    name = "hf-image"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str | torch.device | None = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        normalize: bool = False,
        to_image: Callable[[torch.Tensor], list[np.ndarray]] | None = None,
    ):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        tf = require_transformers(self.name)
        self.model_name = str(model)
        self.batch_size = batch_size
        self.normalize = bool(normalize)
        self.to_image = to_image or to_images
        self.device, self.dtype = pick_device_dtype(device, dtype)
        self.calls = 0
        self.rows = 0
        loaded = load_pretrained(
            lambda src: tf.AutoModel.from_pretrained(src, **dtype_kwargs(self.dtype)), model
        )
        if not callable(getattr(loaded, "get_image_features", None)):
            raise ValueError(
                f"model {model!r} ({loaded.config.model_type}) has no get_image_features: "
                "hf-image needs a CLIP or SigLIP model (e.g. openai/clip-vit-base-patch32)"
            )
        self.model = freeze(loaded.to(self.device))
        self.processor = load_pretrained(
            tf.AutoImageProcessor.from_pretrained, model, "image processor"
        )
        config = self.model.config
        size = getattr(config, "projection_dim", None) or config.vision_config.hidden_size
        self.out_dim = int(size)

    def __repr__(self) -> str:
        return (
            f"HFImageEncoder(model={self.model_name!r}, out_dim={self.out_dim}, "
            f"device={self.device}, dtype={self.dtype})"
        )

    @torch.no_grad()
    def encode(self, obs: torch.Tensor, done: torch.Tensor | None = None) -> torch.Tensor:
        """float32 ``[B, out_dim]`` on ``obs.device`` (``done`` is ignored: no state)."""
        frames = self.to_image(obs)
        chunks = []
        for start in range(0, len(frames), self.batch_size):
            batch = self.processor(images=frames[start : start + self.batch_size],
                                   return_tensors="pt")  # fmt: skip
            pixels = batch["pixel_values"].to(self.device, self.dtype)
            out = self.model.get_image_features(pixel_values=pixels)
            self.calls += 1
            self.rows += pixels.shape[0]
            # transformers >= 5 returns a model output whose pooler_output is the embedding.
            features = out if isinstance(out, torch.Tensor) else out.pooler_output
            chunks.append(features.float())
        features = torch.cat(chunks)
        if self.normalize:
            features = torch.nn.functional.normalize(features, dim=1)
        return features.to(obs.device)
