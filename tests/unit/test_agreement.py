"""The comparison core (edge_agent.inference.agreement): pure, results in, numbers out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.inference.agreement import (
    AgreementTally,
    TensorTally,
    box_iou,
    class_agreement,
    compare_results,
    detection_agreement,
    iou_matrix,
    mask_agreement,
    match_detections,
    tensor_agreement,
)
from edge_agent.inference.result import ClassScore, Detection, Result


def det(x1: float, y1: float, x2: float, y2: float, score: float = 0.9, label: str = "face"):
    return Detection(box=(x1, y1, x2, y2), score=score, label=label)


def cls(*ids: int) -> list[ClassScore]:
    return [ClassScore(str(i), 1.0 - n * 0.1, i) for n, i in enumerate(ids)]


class TestIoU:
    def test_known_values(self) -> None:
        assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
        assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
        assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching
        assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # empty boxes

    def test_matrix_matches_pairwise(self) -> None:
        a = [(0, 0, 10, 10), (20, 20, 30, 40)]
        b = [(5, 5, 15, 15), (0, 0, 10, 10), (21, 22, 30, 39)]
        m = iou_matrix(a, b)
        assert m.shape == (2, 3)
        for i in range(2):
            for j in range(3):
                assert m[i, j] == pytest.approx(box_iou(a[i], b[j]))
        assert iou_matrix([], b).shape == (0, 3)


class TestDetections:
    def test_greedy_one_to_one_best_first(self) -> None:
        a = [det(0, 0, 10, 10), det(1, 0, 11, 10)]
        b = [det(1, 0, 11, 10)]  # fits a[1] exactly, a[0] at 0.82
        assert match_detections(a, b) == [(1, 0, 1.0)]

    def test_labels_must_agree(self) -> None:
        a = [det(0, 0, 10, 10, label="face")]
        b = [det(0, 0, 10, 10, label="cat")]
        agr = detection_agreement(a, b)
        assert (agr.matched, agr.precision, agr.recall) == (0, 0.0, 0.0)

    def test_iou_threshold_is_inclusive_and_counts(self) -> None:
        a = [det(0, 0, 10, 10, 0.9), det(100, 100, 110, 110, 0.8), det(200, 0, 210, 10)]
        b = [det(0, 0, 10, 10, 0.7), det(103, 100, 113, 110, 0.85), det(50, 50, 60, 60)]
        # second pair: IoU 70/130 = 0.538 -> matched; a[2] and b[2] unmatched
        agr = detection_agreement(a, b)
        assert agr.matched == 2
        assert agr.precision == pytest.approx(2 / 3)
        assert agr.recall == pytest.approx(2 / 3)
        assert agr.score_shifts == pytest.approx((-0.2, 0.05))
        assert agr.ious[0] == 1.0 and agr.ious[1] == pytest.approx(70 / 130)
        assert detection_agreement(a, b, iou_min=0.6).matched == 1

    def test_empty_frames_agree(self) -> None:
        agr = detection_agreement([], [])
        assert (agr.precision, agr.recall, agr.disagreement()) == (1.0, 1.0, 0.0)
        missed = detection_agreement([det(0, 0, 1, 1)], [])
        assert (missed.recall, missed.precision, missed.disagreement()) == (0.0, 1.0, 1.0)

    @given(
        st.lists(
            st.tuples(
                st.floats(0, 100), st.floats(0, 100), st.floats(1, 50), st.floats(1, 50),
                st.sampled_from(["a", "b"]),
            ),
            max_size=8,
        ),
        st.lists(
            st.tuples(
                st.floats(0, 100), st.floats(0, 100), st.floats(1, 50), st.floats(1, 50),
                st.sampled_from(["a", "b"]),
            ),
            max_size=8,
        ),
    )
    def test_symmetry_and_self_agreement(self, xs: list, ys: list) -> None:
        a = [det(x, y, x + w, y + h, label=lab) for x, y, w, h, lab in xs]
        b = [det(x, y, x + w, y + h, label=lab) for x, y, w, h, lab in ys]
        ab, ba = detection_agreement(a, b), detection_agreement(b, a)
        assert ab.matched == ba.matched
        assert ab.precision == pytest.approx(ba.recall)
        assert 0.0 <= ab.disagreement() <= 1.0 + 1e-9
        same = detection_agreement(a, a)
        assert same.recall == 1.0 and same.precision == 1.0
        # duplicates in a can each match themselves: a perfect score
        assert same.disagreement() == pytest.approx(0.0, abs=1e-9)


class TestClasses:
    def test_top1_topk_and_shift(self) -> None:
        assert class_agreement(cls(3, 1, 2), cls(3, 2, 1)).top1
        c = class_agreement(cls(3, 1), cls(1, 4, 5, 6, 3))
        assert (c.top1, c.topk) == (False, True)
        assert c.score_shift == pytest.approx(0.6 - 1.0)
        far = class_agreement(cls(3), cls(1, 4, 5, 6, 7, 3))
        assert (far.top1, far.topk, far.score_shift) == (False, False, pytest.approx(0.5 - 1.0))
        assert class_agreement(cls(3), cls(1), k=1).topk is False
        assert class_agreement([], []).top1

    def test_tally_summary(self) -> None:
        t = AgreementTally("classification")
        for a, b in ((cls(1, 2), cls(1, 2)), (cls(1, 2), cls(2, 1)), (cls(3), cls(4))):
            t.add(compare_results(Result("classification", classes=a),
                                  Result("classification", classes=b)))
        s = t.summary()
        assert s["frames"] == 3
        assert s["top1_agreement"] == pytest.approx(1 / 3, abs=1e-4)
        assert s["top5_agreement"] == pytest.approx(2 / 3, abs=1e-4)

    def test_detection_tally_and_kind_checks(self) -> None:
        t = AgreementTally("detection")
        t.add(compare_results(Result("detection", [det(0, 0, 10, 10)]),
                              Result("detection", [det(0, 0, 10, 10, 0.8)])))
        t.add(compare_results(Result("detection", [det(0, 0, 10, 10)]), Result("detection")))
        s = t.summary()
        assert (s["detections_a"], s["detections_b"], s["matched"]) == (2, 1, 1)
        assert (s["recall"], s["precision"], s["mean_iou"]) == (0.5, 1.0, 1.0)
        assert s["score_shift_mean"] == pytest.approx(-0.1)
        with pytest.raises(ValueError, match="different kinds"):
            compare_results(Result("detection"), Result("classification"))
        with pytest.raises(ValueError, match="classification frame in a detection tally"):
            t.add(compare_results(Result("classification"), Result("classification")))


class TestMasksAndTensors:
    def test_mask_agreement(self) -> None:
        a = np.array([[0, 0, 1, 1]])
        b = np.array([[0, 1, 1, 1]])
        m = mask_agreement(a, b)
        assert m.pixel_agreement == 0.75
        assert m.mean_iou == pytest.approx((1 / 2 + 2 / 3) / 2)
        with pytest.raises(ValueError, match="shape"):
            mask_agreement(a, np.zeros((2, 2)))

    def test_tensor_agreement(self) -> None:
        x = np.array([1.0, 2.0, 3.0])
        assert tensor_agreement(x, x).cosine == pytest.approx(1.0)
        assert tensor_agreement(x, -x).cosine == pytest.approx(-1.0)
        assert tensor_agreement(x, x + 0.5).max_abs == pytest.approx(0.5)
        assert tensor_agreement(np.zeros(3), np.zeros(3)).cosine == 1.0
        assert tensor_agreement(np.zeros(3), x).cosine == 0.0

    def test_tensor_tally(self) -> None:
        t = TensorTally(["out"])
        t.add([np.array([1.0, 0.0])], [np.array([1.0, 0.0])])
        t.add([np.array([1.0, 0.0])], [np.array([0.0, 1.0])])
        (s,) = t.summary()
        assert (s["cosine_mean"], s["cosine_min"], s["max_abs_error"]) == (0.5, 0.0, 1.0)
        with pytest.raises(ValueError, match="expected 1 outputs"):
            t.add([], [])
