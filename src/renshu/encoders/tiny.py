"""Tiny random Hugging Face models, written to a folder with ``save_pretrained``.

For offline tests and benchmarks only: each is built from a config (random weights, a few
thousand parameters, a word-level tokenizer of a dozen words) so that it runs in milliseconds on
a CPU, and is then loaded through the same ``from_pretrained(folder)`` path a user's model takes.
Their features carry no knowledge; never train on them for real.

* :func:`save_tiny_llava_next`: LLaVA-NeXT (CLIP vision tower, Llama text model), 28x28 images,
  with a chat template — for ``hf-vlm``; ``scale=K`` makes both towers K times wider and deeper
  (``benchmarks/encoder_cost.py --scale``).
* :func:`save_tiny_clip`: CLIP with 28x28 images and a 12-number projection — for ``hf-image``.
* :func:`save_tiny_llama`: a text-only Llama (no vision tower) — for the errors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from renshu.encoders.base import require_transformers

WORDS = "<unk> <pad> <s> </s> <image> USER: ASSISTANT: what should i do first in this image?"
CHAT_TEMPLATE = (
    "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %} ASSISTANT:"
)
IMAGE_SIZE = 28


def _pil(tf, name: str):
    """transformers >= 5 names its PIL image processors ``...Pil`` (no torchvision needed)."""
    return getattr(tf, name + "Pil", None) or getattr(tf, name)


def tiny_tokenizer():
    """A word-level tokenizer over :data:`WORDS` (pad ``<pad>``, image token ``<image>``)."""
    tf = require_transformers("tiny test model")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(WORDS.split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
        eos_token="</s>", extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip


def tiny_vision_config(image_size: int = IMAGE_SIZE, scale: int = 1) -> dict:
    """A CLIP vision tower: width 16 and 2 layers, both times ``scale``."""
    return dict(hidden_size=16 * scale, intermediate_size=32 * scale,
                num_hidden_layers=2 * scale, num_attention_heads=2, image_size=image_size,
                patch_size=14)  # fmt: skip


def tiny_text_config(vocab_size: int = len(WORDS.split()), scale: int = 1):
    """A Llama text model: width 32 and 2 layers, both times ``scale``."""
    tf = require_transformers("tiny test model")
    return tf.LlamaConfig(
        vocab_size=vocab_size, hidden_size=32 * scale, intermediate_size=64 * scale,
        num_hidden_layers=2 * scale, num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=256, pad_token_id=1, bos_token_id=2, eos_token_id=3,
    )  # fmt: skip


def save_tiny_llava_next(folder: str | Path, seed: int = 0, scale: int = 1) -> str:
    """A tiny random LLaVA-NeXT (model, processor, chat template) in ``folder``; returns it.

    ``scale`` multiplies the width and depth of both towers (``scale=8``: 12.8 million
    parameters, still random), for benchmarks that need a model whose forward pass costs more
    than the agent's own network."""
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    tf = require_transformers("tiny test model")
    folder = Path(folder)
    tokenizer = tiny_tokenizer()
    crop = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    image_processor = _pil(tf, "LlavaNextImageProcessor")(
        size={"shortest_edge": IMAGE_SIZE}, crop_size=crop,
        image_grid_pinpoints=[[IMAGE_SIZE, IMAGE_SIZE]],
    )  # fmt: skip
    processor = tf.LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )  # fmt: skip
    config = tf.LlavaNextConfig(
        vision_config=tf.CLIPVisionConfig(**tiny_vision_config(scale=scale)),
        text_config=tiny_text_config(scale=scale),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=[[IMAGE_SIZE, IMAGE_SIZE]], vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )  # fmt: skip
    torch.manual_seed(seed)
    tf.LlavaNextForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def save_tiny_clip(folder: str | Path, seed: int = 0) -> str:
    """A tiny random CLIP (model and image processor) in ``folder``; returns it."""
    tf = require_transformers("tiny test model")
    folder = Path(folder)
    text = dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                pad_token_id=1)  # fmt: skip
    config = tf.CLIPConfig(text_config=text, vision_config=tiny_vision_config(),
                           projection_dim=12)  # fmt: skip
    torch.manual_seed(seed)
    tf.CLIPModel(config).save_pretrained(folder)
    _pil(tf, "CLIPImageProcessor")(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(folder)
    return str(folder)


def save_tiny_llama(folder: str | Path, seed: int = 0) -> str:
    """A tiny random text-only Llama (no vision tower) and its tokenizer in ``folder``."""
    tf = require_transformers("tiny test model")
    folder = Path(folder)
    torch.manual_seed(seed)
    tf.LlamaForCausalLM(tiny_text_config()).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)
