"""The exception types of edge-agent, one per failure kind.

Every error carries a message a technician can act on (what failed, where, what to do) and the
exit code the CLI returns for it. Only the CLI turns them into exit codes; library code raises.
"""

from __future__ import annotations


class EdgeAgentError(Exception):
    """Base of every error edge-agent raises on purpose."""

    exit_code: int = 1


class ConfigError(EdgeAgentError):
    """The configuration is invalid: names the key and the file."""

    exit_code = 2


class ModelError(EdgeAgentError):
    """A model file cannot be used (missing, not TFLite, truncated, unsupported op...)."""

    exit_code = 3


class ModelIOError(ModelError):
    """The model's inputs/outputs do not fit what was asked of it (e.g. two inputs, one image)."""

    exit_code = 4


class ModelNotFoundError(ModelError):
    """The model file does not exist (or is not a file)."""

    exit_code = 20


class ModelEmptyError(ModelError):
    """The model file is empty (0 bytes): an interrupted copy or download."""

    exit_code = 21


class ModelFormatError(ModelError):
    """The file is not a TFLite flatbuffer at all (no ``TFL3`` identifier)."""

    exit_code = 22


class ModelTruncatedError(ModelError):
    """The file starts like a TFLite flatbuffer but is truncated or corrupt."""

    exit_code = 23


class UnsupportedOpError(ModelError):
    """The model uses an operator the installed runtime does not have (names the op)."""

    exit_code = 24


class DescriptionError(ModelError):
    """The model description (JSON beside the model, or from a manifest) is invalid."""

    exit_code = 25


class DecoderError(ModelError):
    """The decoder does not fit the model's outputs (or is unknown)."""

    exit_code = 26


class DelegateError(EdgeAgentError):
    """A delegate failed to load or apply (callers fall back, never crash)."""

    exit_code = 5


class BackendError(EdgeAgentError):
    """No usable inference backend (LiteRT, tflite-runtime, TensorFlow Lite) is installed."""

    exit_code = 6


class ImageError(EdgeAgentError):
    """An input image cannot be read or decoded."""

    exit_code = 7


class SourceError(EdgeAgentError):
    """A camera / frame source cannot be opened or read."""

    exit_code = 8


class FrameError(SourceError):
    """One frame of a source cannot be used (a non-image in a folder...); it is skipped."""


class PipelineError(EdgeAgentError):
    """The pipeline cannot be built or used as asked (e.g. a swap to an incompatible runner)."""

    exit_code = 9


class ComponentError(EdgeAgentError):
    """A part of the agent (MQTT, updates, bridge, control socket...) failed to start."""

    exit_code = 10


class AgentNotRunning(EdgeAgentError):
    """No agent answers on the control socket (not started, crashed, or another socket path)."""

    exit_code = 30


class ControlError(EdgeAgentError):
    """The control socket cannot be served or answered garbage (another agent owns it?)."""

    exit_code = 31
