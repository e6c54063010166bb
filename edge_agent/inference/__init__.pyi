"""Type stub of the lazily loaded package (see ``__init__.py``): what it exports."""

from .backend import BACKEND_NAMES, Backend, select_backend
from .decoders import Decoder, decoder_names, get_decoder, register_decoder
from .description import DecoderSpec, ModelDescription, infer_description, load_description
from .images import read_image
from .model import CPU, Delegate, Model
from .preprocess import Preprocessor
from .result import ClassScore, Detection, Result
from .runner import Runner, StageTimes
from .tensors import Quantization, TensorSpec
from .transform import Transform, plan_resize

__all__ = [
    "BACKEND_NAMES",
    "CPU",
    "Backend",
    "ClassScore",
    "Decoder",
    "DecoderSpec",
    "Delegate",
    "Detection",
    "Model",
    "ModelDescription",
    "Preprocessor",
    "Quantization",
    "Result",
    "Runner",
    "StageTimes",
    "TensorSpec",
    "Transform",
    "decoder_names",
    "get_decoder",
    "infer_description",
    "load_description",
    "plan_resize",
    "read_image",
    "register_decoder",
    "select_backend",
]
