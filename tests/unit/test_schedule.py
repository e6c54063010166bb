"""The pipeline's schedule choice (pure) and the usable-CPU count it is made from."""

from __future__ import annotations

import pytest

from edge_agent.agent.schedule import choose_schedule
from edge_agent.telemetry.cgroup import usable_cores


class TestChooseSchedule:
    @pytest.mark.parametrize(
        ("threads", "cpus", "expected"),
        [
            (1, 2, "overlap"),  # a core left for decode/preprocess beside the invoke
            (2, 2, "serial"),  # the interpreter takes every core: do not fight it
            (3, 2, "serial"),  # more threads than cores
            (1, 1, "serial"),  # one core
            (2, 4, "overlap"),
            (4, 4, "serial"),
            (1, 1.5, "overlap"),  # a CPU quota of 1.5 cores leaves half a core
            (1, 1.4, "serial"),
            (2, 2.5, "overlap"),
        ],
    )
    def test_auto_from_threads_and_cpus(self, threads: int, cpus: float, expected: str) -> None:
        choice = choose_schedule(threads, cpus)
        assert choice.schedule == expected
        assert choice.setting == "auto"
        assert f"{threads} interpreter thread" in choice.reason

    @pytest.mark.parametrize("forced", ["overlap", "serial"])
    def test_setting_forces_it(self, forced: str) -> None:
        for threads, cpus in ((1, 8), (8, 1)):
            choice = choose_schedule(threads, cpus, forced)
            assert choice.schedule == forced and choice.setting == forced
            assert "forced" in choice.reason

    def test_a_cpu_count_below_one_counts_as_one(self) -> None:
        choice = choose_schedule(1, 0.2)
        assert choice.schedule == "serial" and choice.cpus == 1.0

    def test_to_json_says_which_and_why(self) -> None:
        j = choose_schedule(2, 2).to_json()
        assert j == {
            "schedule": "serial", "setting": "auto", "threads": 2, "cpus": 2.0,
            "decode_threads": 1, "reason": "2 interpreter thread(s) take all 2.0 CPUs",
        }

    @pytest.mark.parametrize(
        ("threads", "cpus", "setting", "expected"),
        [
            (1, 2, "auto", 1),  # overlap: the core left beside the interpreter
            (1, 4, "auto", 3),
            (2, 4.5, "auto", 2),  # whole cores only
            (1, 1.5, "auto", 1),  # at least one
            (2, 2, "auto", 1),  # serial: decodes between invokes, one thread
            (1, 8, "serial", 1),
            (8, 2, "overlap", 1),
        ],
    )
    def test_decoder_threads_follow_the_budget(
        self, threads: int, cpus: float, setting: str, expected: int
    ) -> None:
        assert choose_schedule(threads, cpus, setting).decode_threads == expected

    @pytest.mark.parametrize(("threads", "setting"), [(0, "auto"), (1, "fast"), (1, "")])
    def test_bad_input_is_refused(self, threads: int, setting: str) -> None:
        with pytest.raises(ValueError, match=r"threads|schedule"):
            choose_schedule(threads, 2, setting)


class TestUsableCores:
    def test_affinity_capped_by_quota(self) -> None:
        assert usable_cores(4, 8, None) == 4.0
        assert usable_cores(4, 8, 1.5) == 1.5
        assert usable_cores(2, 8, 3.0) == 2.0

    def test_unknown_affinity_falls_back_to_the_machine(self) -> None:
        assert usable_cores(0, 8, None) == 8.0
        assert usable_cores(0, 0, None) == 1.0
