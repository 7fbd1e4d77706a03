"""Encoders: frozen pretrained models that turn observations into features (see base.py)."""

from renshu.encoders.base import (
    CachedEncoder,
    Encoder,
    EveryK,
    encoder_names,
    make_encoder,
    stateless,
)

__all__ = ["CachedEncoder", "Encoder", "EveryK", "encoder_names", "make_encoder", "stateless"]
