"""RunnerLoader: the one loader of boot, swap and rollback applies the [model] overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.agent.runner_loader import RunnerLoader
from edge_agent.config import parse_config
from edge_agent.errors import ConfigError
from tests.support.helpers import MODELS

DIGITS = MODELS / "digits_int8.tflite"


def test_overrides_apply_over_the_models_own_description(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"L{i}\n" for i in range(10)))
    cfg = parse_config({"model": {"threshold": 0.25, "top_k": 1, "labels": str(labels)}})
    load = RunnerLoader(cfg)
    for runner in (load(DIGITS), load.factory(DIGITS)()):  # each call: a new interpreter
        d = runner.description.decoder
        assert (d.name, d.threshold, d.top_k) == ("classification", 0.25, 1)
        assert d.labels == [f"L{i}" for i in range(10)]
    plain = RunnerLoader(parse_config({})).__call__(DIGITS).description.decoder
    assert (plain.threshold, plain.top_k, plain.labels[0]) == (0.0, 3, "0")  # digits_int8.json


def test_an_unreadable_labels_file_is_a_config_error_at_once(tmp_path: Path) -> None:
    cfg = parse_config({"model": {"labels": str(tmp_path / "missing.txt")}})
    with pytest.raises(ConfigError, match=r"model\.labels: .*missing\.txt"):
        RunnerLoader(cfg)
