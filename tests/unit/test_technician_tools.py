"""Technician tools of issue 12: doctor's systemd unit check (judged from `systemctl show`
properties; SKIP where systemd does not run, as here) and `camera list` (V4L2 ioctls; no camera
on this machine: the parsing is checked on crafted kernel structs, the probing on nodes that are
not cameras)."""

from __future__ import annotations

import struct
from pathlib import Path

from edge_agent.camera.v4l2 import CAP_DEVICE_CAPS, fourcc, list_cameras, parse_cap
from edge_agent.tools import doctor, service


def _props(**kw: str) -> dict[str, str]:
    base = {"LoadState": "loaded", "ActiveState": "active", "SubState": "running",
            "UnitFileState": "enabled", "NRestarts": "0", "Result": "success",
            "ExecMainStatus": "0"}
    return {**base, **kw}


def test_service_judgement() -> None:
    assert service.judge(_props())[0] == "PASS"
    status, detail, fix = service.judge(_props(LoadState="not-found"))
    assert status == "WARN" and "not installed" in detail and "install-on-device" in fix
    status, detail, fix = service.judge(_props(ActiveState="failed", SubState="failed",
                                               Result="watchdog", ExecMainStatus="6"))
    assert status == "FAIL" and "watchdog" in detail and "journalctl -u edge-agent" in fix
    assert "systemctl restart" in fix
    assert service.judge(_props(NRestarts="3"))[0] == "WARN"
    status, _, fix = service.judge(_props(UnitFileState="disabled"))
    assert status == "WARN" and "systemctl enable edge-agent" in fix
    status, _, fix = service.judge(_props(ActiveState="inactive", SubState="dead"))
    assert status == "WARN" and "enable --now" in fix
    assert service.judge(_props(ActiveState="activating", SubState="auto-restart"))[0] == "WARN"


def test_doctor_skips_the_unit_without_systemd() -> None:
    from edge_agent.config import parse_config

    if service.systemd_running():  # pragma: no cover - a machine booted with systemd
        return
    c = doctor.check_service(parse_config({}))
    assert c.status == doctor.SKIP and "systemd is not running" in c.detail


def test_v4l2_structs() -> None:
    assert fourcc(0x47504A4D) == "MJPG" and fourcc(0x56595559) == "YUYV"
    buf = struct.pack("16s32s32sIII12x", b"uvcvideo", b"HD Pro Webcam C920", b"usb-0000:01.0",
                      0x50A00, CAP_DEVICE_CAPS | 0x05200001, 0x04200001)
    assert parse_cap(buf) == ("uvcvideo", "HD Pro Webcam C920", "usb-0000:01.0", 0x04200001)


def test_camera_list_on_nodes_that_are_not_cameras(tmp_path: Path) -> None:
    (tmp_path / "video0").write_bytes(b"")  # a plain file: the ioctl says it is no device
    (tmp_path / "video10").symlink_to("/dev/null")
    (tmp_path / "video2").symlink_to(tmp_path / "gone")
    cams = list_cameras(tmp_path)
    assert [c.path for c in cams] == [str(tmp_path / n) for n in ("video0", "video2", "video10")]
    assert cams[0].error is not None and "not a V4L2 device" in cams[0].error
    assert cams[1].error is not None and "cannot open" in cams[1].error
    assert not cams[2].capture and cams[2].formats == []
