"""Shadow evaluation's pure parts: the per-frame gate (sampling, busy, CPU budget), the verdict,
the one agreement figure, the manifest's ``health.shadow`` and ``--shadow``; and a ShadowRun
fed real results of the shipped face detector and of versions of it."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edge_agent.errors import ConfigError
from edge_agent.inference import Runner
from edge_agent.inference.agreement import AgreementTally, compare_results
from edge_agent.inference.result import ClassScore, Detection, Result, SegmentationMask
from edge_agent.updates import errors as E
from edge_agent.updates import rollout as R
from edge_agent.updates.manifest import Shadow, parse_manifest
from edge_agent.updates.publish import parse_shadow_option
from edge_agent.updates.shadow import ShadowFigures, ShadowGate, ShadowRun, decided, judge
from edge_agent.updates.state import Deployment
from tests.support.crafted_models import zeroed_score_head
from tests.support.helpers import MODELS
from tests.support.updates import manifest_doc


def fig(frames: int, agreement: float | None, **kw: Any) -> ShadowFigures:
    return ShadowFigures(kind="detection", frames=frames, agreement=agreement,
                         latency_ratio=1.0, skipped=0, sampled=frames, **kw)


class TestGate:
    def test_sample_rate_spreads_evenly(self) -> None:
        g = ShadowGate(sample_rate=0.25, cpu_budget=1.0)
        taken = [g.offer(float(i), busy=False) for i in range(12)]
        assert [i for i, t in enumerate(taken) if t] == [3, 7, 11]
        assert (g.offered, g.sampled, g.taken, g.skipped) == (12, 3, 3, 0)

    def test_busy_shadow_skips_and_counts(self) -> None:
        g = ShadowGate(sample_rate=1.0, cpu_budget=1.0)
        assert g.offer(0.0, busy=False)
        assert not g.offer(0.1, busy=True) and not g.offer(0.2, busy=True)
        assert (g.sampled, g.taken, g.skipped) == (3, 1, 2)

    def test_cpu_budget_spaces_the_frames(self) -> None:
        g = ShadowGate(sample_rate=1.0, cpu_budget=0.25)
        assert g.offer(1.0, busy=False)
        g.spent(cpu_s=0.010, wall_s=0.012, now=1.012)  # may take the next at 1.012 + 0.028
        assert g.ready_at == pytest.approx(1.040)
        assert not g.offer(1.039, busy=False)
        assert g.offer(1.041, busy=False)
        assert g.skipped == 1
        # over any stretch the shadow's CPU share stays at the budget: 10 ms per 40 ms
        g.spent(cpu_s=0.010, wall_s=0.050, now=1.091)  # slow wall time (descheduled): no wait
        assert g.ready_at == pytest.approx(1.091)


class TestJudge:
    P = Shadow(min_frames=20, min_agreement=0.8, max_seconds=60)

    def test_undecided_until_enough_frames_or_time(self) -> None:
        assert not decided(self.P, fig(19, 0.1), 59.0)
        assert decided(self.P, fig(20, 0.1), 1.0) and decided(self.P, fig(3, 1.0), 60.0)

    def test_agreeing_candidate_passes(self) -> None:
        assert judge(self.P, fig(20, 0.8), 5.0) is None

    def test_disagreeing_candidate_is_rejected(self) -> None:
        err = judge(self.P, fig(25, 0.0), 5.0)
        assert isinstance(err, E.ShadowDisagreement) and err.reason == "shadow_disagreement"
        assert "agreement 0.000" in str(err) and "minimum 0.8" in str(err)

    def test_too_few_frames_in_time_is_incomplete(self) -> None:
        err = judge(self.P, ShadowFigures("detection", 4, 1.0, None, 40, 44), 60.0)
        assert isinstance(err, E.ShadowIncomplete) and "only 4 of 20 frames" in str(err)
        assert "40 skipped" in str(err)

    def test_raw_results_cannot_be_judged(self) -> None:
        err = judge(self.P, ShadowFigures("raw", 20, None, None, 0, 20), 5.0)
        assert isinstance(err, E.ShadowIncomplete) and "nothing to compare" in str(err)

    def test_failing_candidate_and_kind_mismatch(self) -> None:
        assert isinstance(judge(self.P, fig(2, 1.0, errors=3), 1.0), E.ShadowFailed)
        err = judge(self.P, fig(0, None), 1.0, mismatch="different kinds")
        assert isinstance(err, E.ShadowDisagreement)


class TestAgreementFigure:
    def test_detection_f1(self) -> None:
        a = Result("detection", [Detection((0, 0, 10, 10), 0.9, "face")])
        t = AgreementTally("detection")
        t.add(compare_results(a, a))
        t.add(compare_results(a, Result("detection", [])))
        assert t.agreement() == pytest.approx(2 * 1 / 3)  # 1 matched of 2 + 1 detections
        empty = AgreementTally("detection")
        empty.add(compare_results(Result("detection", []), Result("detection", [])))
        assert empty.agreement() == 1.0
        assert AgreementTally("detection").agreement() is None  # no frame yet

    def test_classification_top1(self) -> None:
        def c(i: int) -> Result:
            return Result("classification", classes=[ClassScore(str(i), 0.9, i)])
        t = AgreementTally("classification")
        for x, y in ((1, 1), (1, 2), (3, 3), (4, 4)):
            t.add(compare_results(c(x), c(y)))
        assert t.agreement() == 0.75

    def test_segmentation_pixels(self) -> None:
        def s(mask: np.ndarray) -> Result:
            return Result("segmentation", mask=SegmentationMask(mask, (0, 0, 4, 4), (4, 4)))
        a = np.zeros((4, 4), np.uint8)
        b = a.copy()
        b[0, :] = 1
        t = AgreementTally("segmentation")
        t.add(compare_results(s(a), s(b)))
        assert t.agreement() == 0.75 and t.summary()["pixel_agreement"] == 0.75

    def test_raw_has_no_figure(self) -> None:
        t = AgreementTally("raw")
        t.add(compare_results(Result("raw"), Result("raw")))
        assert t.agreement() is None


class TestManifestAndOption:
    def test_health_shadow_parses_with_defaults(self) -> None:
        doc = manifest_doc()
        doc["health"] = {"shadow": {"min_frames": 50}}
        m = parse_manifest(__import__("json").dumps(doc).encode(), "t")
        assert m.health.shadow == Shadow(min_frames=50)
        assert m.health.shadow.min_agreement == 0.8 and m.health.shadow.cpu_budget == 0.25

    @pytest.mark.parametrize("bad", [{"min_agreement": 1.5}, {"cpu_budget": 0},
                                     {"sample_rate": 2}, {"min_frames": 0}, {"typo": 1}])
    def test_bad_shadow_is_an_invalid_manifest(self, bad: dict[str, Any]) -> None:
        doc = manifest_doc()
        doc["health"] = {"shadow": bad}
        with pytest.raises(E.ManifestInvalid, match=r"health\.shadow\."):
            parse_manifest(__import__("json").dumps(doc).encode(), "t")

    def test_option(self) -> None:
        assert parse_shadow_option("on") == {}
        assert parse_shadow_option("min_frames=10, min_agreement=0.9") == {
            "min_frames": 10, "min_agreement": 0.9}
        with pytest.raises(ConfigError, match="key one of sample_rate"):
            parse_shadow_option("frames=10")
        with pytest.raises(ConfigError, match="min_agreement"):
            parse_shadow_option("min_agreement=2")
        with pytest.raises(ConfigError, match="not a number"):
            parse_shadow_option("cpu_budget=lots")


def test_rollout_goes_through_shadow() -> None:
    r = R.Rollout(Deployment("d", "m", "2", "http://r", state=R.PREFLIGHT))
    r.handle("shadowing")
    assert r.state == R.SHADOW and R.SHADOW in R.BEFORE_SWAP
    r.handle("passed")
    assert r.state == R.ACTIVATING
    r2 = R.Rollout(Deployment("d", "m", "2", "http://r", state=R.SHADOW))
    r2.handle("reject", reason="shadow_disagreement")
    assert r2.final and r2.state == R.REJECTED
    d = Deployment("d", "m", "2", "http://r", shadow={"frames": 3, "agreement": 1.0})
    assert R.record(d)["shadow"] == {"frames": 3, "agreement": 1.0}


def _demo_frames(n: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(MODELS / "demo_astronaut.mp4"))
    frames = []
    while len(frames) < n:
        ok, img = cap.read()
        assert ok
        frames.append(img)
    cap.release()
    return frames


@pytest.mark.parametrize(("candidate", "agrees"), [("int8", True), ("blind", False)])
def test_shadow_run_on_real_results(tmp_path: Path, candidate: str, agrees: bool) -> None:
    """The active float face detector's results, the candidate on its own interpreter."""
    active = Runner.open(MODELS / "blazeface_float32.tflite")
    if candidate == "int8":
        cand = Runner.open(MODELS / "blazeface_int8.tflite")
    else:
        path = zeroed_score_head(MODELS / "blazeface_float32.tflite", tmp_path / "blind.tflite")
        cand = Runner.open(path, description=MODELS / "blazeface_float32.json")
    run = ShadowRun(cand, Shadow(sample_rate=1.0, min_frames=8, cpu_budget=1.0)).start()
    try:
        for img in _demo_frames(8):
            result, _ = active.run(img)
            while run.busy:  # one at a time: none skipped
                time.sleep(0.005)
            run.on_result(SimpleNamespace(ok=True, image=img, result=result))
        out = run.wait()
    finally:
        run.close()
    assert out.decided and out.figures.frames == 8 and out.figures.skipped == 0
    if agrees:
        assert out.rejection is None and out.figures.agreement == 1.0
    else:
        assert isinstance(out.rejection, E.ShadowDisagreement)
        assert out.figures.agreement == 0.0 and out.figures.detail["detections_b"] == 0
