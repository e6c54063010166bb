"""Frame -> Result: preprocess into the input view, invoke, decode; with per-stage times."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelIOError
from .decoders import get_decoder
from .description import ModelDescription, apply_overrides, load_description
from .model import DelegateChain, Model
from .preprocess import Preprocessor
from .result import Result


@dataclass(frozen=True)
class StageTimes:
    """Seconds spent in each stage of one :meth:`Runner.run`."""

    preprocess: float
    invoke: float
    postprocess: float

    @property
    def total(self) -> float:
        return self.preprocess + self.invoke + self.postprocess


def check_single_image_input(model: Model) -> None:
    if len(model.inputs) != 1:
        names = ", ".join(f"{t.name} {list(t.shape)}" for t in model.inputs)
        raise ModelIOError(
            f"{model.path}: the model has {len(model.inputs)} inputs ({names}); edge-agent feeds "
            "one image, so it needs a model with exactly one image input"
        )


class Runner:
    """One model + its description, ready to turn frames into results. One thread at a time;
    :meth:`clone` gives another thread its own."""

    def __init__(self, model: Model, description: ModelDescription) -> None:
        check_single_image_input(model)
        self.model = model
        self.description = description
        try:
            self.preprocessor = Preprocessor(model.inputs[0], description)
        except ModelIOError as exc:
            raise ModelIOError(f"{model.path}: {exc}") from None
        self.decoder = get_decoder(description, model)

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        threads: int = 1,
        delegates: DelegateChain = (),
        backend: str = "auto",
        accelerators: Sequence[str] = (),
        description: Path | str | ModelDescription | None = None,
        decoder: str | None = None,
        threshold: float | None = None,
        top_k: int | None = None,
        labels: list[str] | Path | None = None,
        warmup: int = 1,
    ) -> Runner:
        """Load the model and its description (with overrides), warm it up."""
        model = Model(
            path, threads=threads, delegates=delegates, backend=backend, accelerators=accelerators
        )
        overrides = {"decoder": decoder, "threshold": threshold, "top_k": top_k, "labels": labels}
        if isinstance(description, ModelDescription):
            desc = apply_overrides(description, overrides)
        else:
            desc = load_description(path, overrides, path=description, model=model)
        runner = cls(model, desc)
        if warmup:
            model.warmup(warmup)
        return runner

    def run(self, frame_bgr: np.ndarray) -> tuple[Result, StageTimes]:
        t0 = time.perf_counter()
        view = self.model.input_view(0)
        transform = self.preprocessor.run(frame_bgr, view)
        del view  # the runtime refuses to invoke while a view of its memory is alive
        t1 = time.perf_counter()
        self.model.invoke()
        t2 = time.perf_counter()
        result = self.decoder.decode(self.model.outputs_all(), transform)
        t3 = time.perf_counter()
        return result, StageTimes(t1 - t0, t2 - t1, t3 - t2)

    def clone(self) -> Runner:
        return Runner(self.model.clone(), self.description)
