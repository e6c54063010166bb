"""Decoders: a small registry; ``register_decoder(name)`` adds one. Built in: classification,
ssd, yolo, blazeface, segmentation, raw."""

from __future__ import annotations

from . import blazeface, classification, raw, segmentation, ssd, yolo
from .base import Decoder, decoder_names, detections_from_boxes, get_decoder, register_decoder

__all__ = [
    "Decoder",
    "blazeface",
    "classification",
    "decoder_names",
    "detections_from_boxes",
    "get_decoder",
    "raw",
    "register_decoder",
    "segmentation",
    "ssd",
    "yolo",
]
