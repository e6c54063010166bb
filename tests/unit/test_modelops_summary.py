"""The model owner's line (edge_agent.modelops.compare.summary_line) reads both ways."""

from __future__ import annotations

from edge_agent.modelops.compare import summary_line


def test_with_ground_truth_faster_and_smaller() -> None:
    acc = {"metric": "top-1", "delta_points": -0.44}
    line = summary_line("int8", acc, {}, {"speed_p50": 3.12, "size": 3.8})
    assert line == "int8: -0.4 points top-1, 3.1x faster, 3.8x smaller"


def test_slower_and_larger_are_said_as_such() -> None:
    agreement = {"kind": "detection", "recall": 0.981, "precision": 0.96}
    line = summary_line("b", None, agreement, {"speed_p50": 0.5, "size": 0.8})
    assert line == "b: recall 0.98 / precision 0.96 of A's detections, 2.0x slower, 1.2x larger"


def test_classification_agreement_and_missing_ratios() -> None:
    line = summary_line("b", None, {"kind": "classification", "top1_agreement": 0.995},
                        {"speed_p50": None, "size": 1.0})
    assert line == "b: top-1 agrees with A on 99.5 %, 1.0x smaller"
