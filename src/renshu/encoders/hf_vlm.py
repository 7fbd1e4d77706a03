"""``hf-vlm``: a vision-language model's reading of the frame, as features.

Any Hugging Face image-text-to-text model (LLaVA-NeXT, LLaVA, Qwen2-VL, Idefics, PaliGemma, ...)
from a local folder or a hub id, loaded with ``AutoProcessor`` and
``AutoModelForImageTextToText``. Each frame goes in with the prompt (default *"What should I do
first in this image?"*, written with the processor's chat template when it has one) and one
forward pass — no generation — gives the features:

* ``features="hidden"`` (default): the final hidden state at the last prompt token, the
  model's summary of image and question right before it would answer (``hidden_size`` numbers;
  4,096 for LLaVA-NeXT-Mistral-7B).
* ``features="first_token_logits"``: the logits of the first answer token at the same position —
  what the original experiment used. They are the language-model head applied to that very
  hidden state, a fixed linear map, so they hold no more information and are about 8x larger
  (32,064 numbers for LLaVA-NeXT-Mistral-7B).

The model runs in float16 on a GPU and float32 on the CPU (``dtype`` overrides);
``quantize="4bit"`` loads it through ``BitsAndBytesConfig`` (needs CUDA, bitsandbytes and
accelerate). Envs are encoded in batches of ``batch_size`` frames. :meth:`describe` generates
the model's text answer for frames — for explaining recorded episodes, never during training.
"""

from __future__ import annotations

import importlib.util
import inspect
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

DEFAULT_PROMPT = "What should I do first in this image?"
FEATURES = ("hidden", "first_token_logits")


class HFVisionLanguageEncoder(Encoder):
    """Features of frames from a Hugging Face vision-language model (see the module docstring).

    ``to_image`` (optional) maps an observation batch to a list of ``uint8 [H, W, 3]`` frames,
    for observations that are not images themselves.
    """

    name = "hf-vlm"
    describes = True

    def __init__(
        self,
        model: str | None = None,
        prompt: str = DEFAULT_PROMPT,
        features: str = "hidden",
        quantize: str | None = None,
        device: str | torch.device | None = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        to_image: Callable[[torch.Tensor], list[np.ndarray]] | None = None,
    ):
        if not model:
            raise ValueError(
                "the hf-vlm encoder needs a model: --encoder-model FOLDER_OR_HUB_ID "
                "(e.g. llava-hf/llava-v1.6-mistral-7b-hf)"
            )
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        if quantize not in (None, "none", "4bit"):
            raise ValueError(f"quantize must be '4bit' or None, got {quantize!r}")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        tf = require_transformers(self.name)
        self.model_name = str(model)
        self.prompt = prompt
        self.features = features
        self.batch_size = batch_size
        self.to_image = to_image or to_images
        self.device, self.dtype = pick_device_dtype(device, dtype)
        self.calls = 0
        self.rows = 0

        config = load_pretrained(tf.AutoConfig.from_pretrained, model, "model")
        if getattr(config, "vision_config", None) is None:
            raise ValueError(
                f"model {model!r} ({config.model_type}) has no vision tower (no vision_config): "
                "hf-vlm needs an image-text-to-text model such as LLaVA-NeXT; "
                "for a text-only model use the hf-text encoder"
            )
        kwargs = dtype_kwargs(self.dtype)
        if quantize == "4bit":
            kwargs.update(self._four_bit(tf))
        try:
            loaded = load_pretrained(
                lambda src: tf.AutoModelForImageTextToText.from_pretrained(src, **kwargs), model
            )
        except ValueError as e:  # "Unrecognized configuration class ..."
            raise ValueError(
                f"model {model!r} ({config.model_type}) is not an image-text-to-text model "
                f"transformers can load with AutoModelForImageTextToText: {str(e).splitlines()[0]}"
            ) from None
        if quantize != "4bit":
            loaded = loaded.to(self.device)
        self.model = freeze(loaded)
        self.processor = load_pretrained(tf.AutoProcessor.from_pretrained, model, "processor")
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        self.text = self._prompt_text(prompt)
        self._keep_last = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self.out_dim = self._feature_size()

    def __repr__(self) -> str:
        return (
            f"HFVisionLanguageEncoder(model={self.model_name!r}, features={self.features!r}, "
            f"out_dim={self.out_dim}, device={self.device}, dtype={self.dtype})"
        )

    def _four_bit(self, tf) -> dict:
        if self.device.type != "cuda":
            raise ValueError(
                "quantize='4bit' needs a CUDA GPU (bitsandbytes kernels); on the CPU leave it unset"
            )
        missing = [p for p in ("bitsandbytes", "accelerate") if importlib.util.find_spec(p) is None]
        if missing:
            raise ImportError(f"quantize='4bit' needs {' and '.join(missing)}: "
                              f"pip install {' '.join(missing)}")  # fmt: skip
        config = tf.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16
        )
        self.dtype = torch.float16
        return {"quantization_config": config, "device_map": {"": self.device.index or 0}}

    def _prompt_text(self, prompt: str) -> str:
        """The prompt with one image, in the model's chat format when the processor has one."""
        if getattr(self.processor, "chat_template", None):
            messages = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
            ]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        token = getattr(self.processor, "image_token", None) or "<image>"
        return f"{token}\n{prompt}"

    def _feature_size(self) -> int:
        text_config = self.model.config.get_text_config()
        if self.features == "hidden":
            return int(text_config.hidden_size)
        head = self.model.get_output_embeddings()
        return int(head.out_features if head is not None else text_config.vocab_size)

    def _inputs(self, frames: list[np.ndarray], padding_side: str) -> dict[str, torch.Tensor]:
        if self.tokenizer is not None:
            self.tokenizer.padding_side = padding_side
        inputs = self.processor(
            images=frames, text=[self.text] * len(frames), return_tensors="pt", padding=True
        )
        return {
            k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in inputs.items()
        }

    @torch.no_grad()
    def encode(self, obs: torch.Tensor, done: torch.Tensor | None = None) -> torch.Tensor:
        """float32 ``[B, out_dim]`` on ``obs.device`` (``done`` is ignored: no state)."""
        frames = self.to_image(obs)
        chunks = []
        for start in range(0, len(frames), self.batch_size):
            chunks.append(self._forward(frames[start : start + self.batch_size]))
        return torch.cat(chunks).to(obs.device)

    def _forward(self, frames: list[np.ndarray]) -> torch.Tensor:
        inputs = self._inputs(frames, padding_side="right")
        mask = inputs.get("attention_mask")
        length = inputs["input_ids"].shape[1]
        if mask is None:
            last = torch.full((len(frames),), length - 1, device=self.device)
        else:  # the last attended position of each row
            positions = torch.arange(length, device=self.device)
            last = (mask.to(torch.int64) * positions).argmax(dim=1)
        extra = {}
        unpadded = bool((last == length - 1).all())
        if self.features == "hidden":
            extra["output_hidden_states"] = True
        if self._keep_last and unpadded:
            extra["logits_to_keep"] = 1  # no vocabulary-sized logits at every position
        # One forward pass, no generation: no key/value cache to build (for a 7B model that is
        # hundreds of MB per batch of prompts).
        out = self.model(**inputs, return_dict=True, use_cache=False, **extra)
        self.calls += 1
        self.rows += len(frames)
        rows = torch.arange(len(frames), device=self.device)
        if self.features == "hidden":
            return out.hidden_states[-1][rows, last].float()
        logits = out.logits
        index = last if logits.shape[1] == length else torch.full_like(last, logits.shape[1] - 1)
        return logits[rows, index].float()

    @torch.no_grad()
    def describe(
        self, obs: torch.Tensor, prompt: str | None = None, max_new_tokens: int = 32
    ) -> list[str]:
        """The model's text answer to the prompt for each frame (greedy decoding).

        For explaining recorded episodes; generation is far slower than :meth:`encode`.
        """
        frames = self.to_image(obs)
        saved = self.text
        if prompt is not None:
            self.text = self._prompt_text(prompt)
        try:
            answers = []
            for start in range(0, len(frames), self.batch_size):
                inputs = self._inputs(frames[start : start + self.batch_size], "left")
                pad = getattr(self.tokenizer, "pad_token_id", None)
                out = self.model.generate(
                    **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad
                )
                new = out[:, inputs["input_ids"].shape[1] :]
                texts = self.processor.batch_decode(new, skip_special_tokens=True)
                answers.extend(t.strip() for t in texts)
        finally:
            self.text = saved
        return answers
