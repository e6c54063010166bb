"""The trial watcher is woken by the watched model, not by polling."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge_agent.agent.runner_loader import RunnerLoader
from edge_agent.config import parse_config
from edge_agent.updates.activation import watch
from edge_agent.updates.trial import TrialMonitor, TrialPolicy
from tests.support.helpers import MODELS


def test_the_watched_model_signals_once_the_trial_can_be_decided() -> None:
    runner = RunnerLoader(parse_config({}))(MODELS / "digits_int8.tflite")
    watched = watch(runner)
    assert watch(runner) is watched  # wrapped once
    decided = threading.Event()
    watched.monitor = TrialMonitor(TrialPolicy(inferences=3, seconds=600), time.monotonic())
    watched.on_decided = decided.set
    frame = np.zeros((8, 8, 3), np.uint8)
    for _ in range(2):
        runner.run(frame)
    assert not decided.is_set()
    runner.run(frame)  # the third inference: enough for a verdict
    assert decided.is_set()
    assert watched.monitor.verdict(1.0) is not None and watched.monitor.count == 3
    assert len(watched.latencies_ms) == 3
