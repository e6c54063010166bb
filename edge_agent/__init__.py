"""edge-agent: run quantized LiteRT models on camera frames on edge devices."""

__version__ = "0.1.0"

__all__ = ["__version__"]
