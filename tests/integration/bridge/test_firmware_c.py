"""The C side: unit tests (-Wall -Wextra -Werror), ASan/UBSan run, fuzzing — via its Makefile."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from firmware_bridge.testing import FIRMWARE_DIR

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(*targets: str, timeout: float = 180) -> str:
    proc = subprocess.run(
        ["make", "-C", str(FIRMWARE_DIR), *targets],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_unit_tests_pass_with_warnings_as_errors() -> None:
    out = _make("-B", "test")  # -B: rebuild, so the compiler line (and its flags) is shown
    assert "-Wall -Wextra -Werror" in out
    m = re.search(r"(\d+) passed, (\d+) failed", out)
    assert m is not None, out
    assert int(m.group(1)) >= 13 and m.group(2) == "0"


def test_unit_tests_and_random_input_under_asan_ubsan() -> None:
    out = _make("asan")
    assert re.search(r"\d+ passed, 0 failed", out), out
    assert "random inputs, no crash" in out


def test_fuzz_receive_path() -> None:
    """libFuzzer (clang) for a few seconds, else the random-input loop under ASan."""
    out = _make("fuzz", "FUZZ_SECONDS=4", "FUZZ_RUNS=100000")
    assert "Done" in out or "no crash" in out, out
