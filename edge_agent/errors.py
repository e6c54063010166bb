"""The exception types of edge-agent, one per failure kind.

Every error carries a message a technician can act on (what failed, where, what to do) and the
exit code the CLI returns for it. Only the CLI turns them into exit codes; library code raises.

:class:`ExitCode` is the one table of exit codes for both packages (``firmware_bridge`` cannot
import this module, so its classes carry the plain numbers 40-45 listed here); each code means
one thing, and ``docs/operations.md`` (section Exit codes) shows the same table.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every exit code of ``edge-agent``; one failure kind each (tests/unit/test_exit_codes.py
    fails on a code declared twice or missing here or in the docs)."""

    OK = 0
    FAILED = 1  # a check or a command reported failure (doctor FAIL, error reply, BAD digest)
    CONFIG = 2  # the configuration or the command line is invalid (click's usage errors are 2)
    MODEL = 3
    MODEL_IO = 4
    DELEGATE = 5
    BACKEND = 6
    IMAGE = 7
    SOURCE = 8
    PIPELINE = 9
    COMPONENT = 10
    MANIFEST_REJECTED = 11
    DOWNLOAD = 12
    MODEL_REJECTED = 13
    STORE = 14
    UPDATE = 15
    UPDATE_BUSY = 16
    PUBLISH_REFUSED = 17
    MODEL_NOT_FOUND = 20
    MODEL_EMPTY = 21
    MODEL_FORMAT = 22
    MODEL_TRUNCATED = 23
    UNSUPPORTED_OP = 24
    DESCRIPTION = 25
    DECODER = 26
    AGENT_NOT_RUNNING = 30
    CONTROL = 31
    BRIDGE = 40  # firmware_bridge.errors (plain numbers there)
    BRIDGE_PORT = 41
    BRIDGE_TIMEOUT = 42
    BRIDGE_NACK = 43
    BRIDGE_PROTOCOL = 44
    BRIDGE_CLOSED = 45
    MQTT = 50
    BROKER = 51
    CREDENTIALS = 52
    OUTBOX = 53
    COMMAND = 54
    COMMAND_TIMEOUT = 55
    QUANTIZE = 60
    UNQUANTIZABLE_OP = 61
    NOT_COMPARABLE = 62
    TRUTH = 63
    FLEET = 70  # edge_agent.fleet.errors
    FLEET_STORE = 71
    ROLLOUT = 72
    FLEET_SERVER = 73
    INTERRUPTED = 130  # Ctrl-C / a second SIGINT (128 + 2, the shell's convention)


class EdgeAgentError(Exception):
    """Base of every error edge-agent raises on purpose."""

    exit_code: int = ExitCode.FAILED


class ConfigError(EdgeAgentError):
    """The configuration is invalid: names the key and the file."""

    exit_code = ExitCode.CONFIG


class ModelError(EdgeAgentError):
    """A model file cannot be used (missing, not TFLite, truncated, unsupported op...)."""

    exit_code = ExitCode.MODEL


class ModelIOError(ModelError):
    """The model's inputs/outputs do not fit what was asked of it (e.g. two inputs, one image)."""

    exit_code = ExitCode.MODEL_IO


class ModelNotFoundError(ModelError):
    """The model file does not exist (or is not a file)."""

    exit_code = ExitCode.MODEL_NOT_FOUND


class ModelEmptyError(ModelError):
    """The model file is empty (0 bytes): an interrupted copy or download."""

    exit_code = ExitCode.MODEL_EMPTY


class ModelFormatError(ModelError):
    """The file is not a TFLite flatbuffer at all (no ``TFL3`` identifier)."""

    exit_code = ExitCode.MODEL_FORMAT


class ModelTruncatedError(ModelError):
    """The file starts like a TFLite flatbuffer but is truncated or corrupt."""

    exit_code = ExitCode.MODEL_TRUNCATED


class UnsupportedOpError(ModelError):
    """The model uses an operator the installed runtime does not have (names the op)."""

    exit_code = ExitCode.UNSUPPORTED_OP


class DescriptionError(ModelError):
    """The model description (JSON beside the model, or from a manifest) is invalid."""

    exit_code = ExitCode.DESCRIPTION


class DecoderError(ModelError):
    """The decoder does not fit the model's outputs (or is unknown)."""

    exit_code = ExitCode.DECODER


class DelegateError(EdgeAgentError):
    """A delegate failed to load or apply (callers fall back, never crash)."""

    exit_code = ExitCode.DELEGATE


class BackendError(EdgeAgentError):
    """No usable inference backend (LiteRT, tflite-runtime, TensorFlow Lite) is installed."""

    exit_code = ExitCode.BACKEND


class ImageError(EdgeAgentError):
    """An input image cannot be read or decoded."""

    exit_code = ExitCode.IMAGE


class SourceError(EdgeAgentError):
    """A camera / frame source cannot be opened or read."""

    exit_code = ExitCode.SOURCE


class FrameError(SourceError):
    """One frame of a source cannot be used (a non-image in a folder...); it is skipped."""


class PipelineError(EdgeAgentError):
    """The pipeline cannot be built or used as asked (e.g. a swap to an incompatible runner)."""

    exit_code = ExitCode.PIPELINE


class ComponentError(EdgeAgentError):
    """A part of the agent (MQTT, updates, bridge, control socket...) failed to start."""

    exit_code = ExitCode.COMPONENT


class AgentNotRunning(EdgeAgentError):
    """No agent answers on the control socket (not started, crashed, or another socket path)."""

    exit_code = ExitCode.AGENT_NOT_RUNNING


class ControlError(EdgeAgentError):
    """The control socket cannot be served or answered garbage (another agent owns it?)."""

    exit_code = ExitCode.CONTROL


class QuantizeError(EdgeAgentError):
    """``models quantize`` failed (the quantizer is missing, refused the model, or its result
    does not load)."""

    exit_code = ExitCode.QUANTIZE


class UnquantizableOpError(QuantizeError):
    """An operator cannot be quantised in the chosen mode (the message names it and a mode
    that keeps it in float)."""

    exit_code = ExitCode.UNQUANTIZABLE_OP


class NotComparableError(EdgeAgentError):
    """``models compare`` refuses two models that do not take the same input or do not read
    their outputs with the same decoder."""

    exit_code = ExitCode.NOT_COMPARABLE


class TruthError(EdgeAgentError):
    """Ground truth (a folder per class, COCO JSON) cannot be read or does not fit the data."""

    exit_code = ExitCode.TRUTH
