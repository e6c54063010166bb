"""MQTT pure logic: topics, rate limit, event size cap, command parsing, replies cache."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.mqtt import commands as cmds
from edge_agent.mqtt.errors import CommandError
from edge_agent.mqtt.events import TokenBucket, cap_event
from edge_agent.mqtt.topics import Topics, device_of


class TestTopics:
    def test_device_and_group_topics(self) -> None:
        t = Topics("edge/dev1", "edge/group", ("lab", "north"))
        assert t.stream("metrics") == "edge/dev1/metrics"
        assert t.cmd("ping") == "edge/dev1/cmd/ping"
        assert t.reply("ping") == "edge/dev1/cmd/ping/reply"
        assert t.command_filters() == [
            "edge/dev1/cmd/+", "edge/group/lab/cmd/+", "edge/group/north/cmd/+"]
        assert t.command_name("edge/dev1/cmd/ping") == "ping"
        assert t.command_name("edge/group/north/cmd/update") == "update"
        assert t.command_name("edge/group/south/cmd/update") is None
        assert t.command_name("edge/dev1/cmd/ping/reply") is None
        assert t.command_name("edge/dev2/cmd/ping") is None

    @pytest.mark.parametrize("bad", ["", "edge/+", "edge/#", "/edge", "edge/"])
    def test_bad_prefix(self, bad: str) -> None:
        with pytest.raises(ValueError, match="prefix"):
            Topics(bad)

    def test_bad_stream_and_group(self) -> None:
        with pytest.raises(ValueError, match="unknown stream"):
            Topics("edge/d").stream("logs")
        with pytest.raises(ValueError, match="group name"):
            Topics("edge/d", groups=("a/b",))

    def test_device_of(self) -> None:
        assert device_of("edge/dev1/metrics") == ("dev1", "metrics")
        assert device_of("site/edge/dev1/status", "site/edge") == ("dev1", "status")
        assert device_of("edge/dev1/cmd/ping") is None
        assert device_of("edge/group/lab") is None
        assert device_of("edge/dev1/snapshot") is None


class TestTokenBucket:
    def test_rate_and_burst(self) -> None:
        b = TokenBucket(rate=2.0, burst=2)
        assert [b.allow(0.0) for _ in range(3)] == [True, True, False]
        assert b.allow(0.25) is False
        assert b.allow(0.5) is True  # 0.5 s at 2/s = one token
        allowed = sum(b.allow(1.0 + i * 0.01) for i in range(100))  # one second later
        assert allowed == 2  # one token at t=1.0, one more half a second later

    def test_retry_after(self) -> None:
        b = TokenBucket(rate=0.5, burst=1)
        assert b.allow(10.0) and b.retry_after() == pytest.approx(2.0)
        assert not b.allow(11.0) and b.retry_after() == pytest.approx(1.0)
        assert b.allow(12.0)


class TestCapEvent:
    def test_small_unchanged(self) -> None:
        body = {"detections": [{"label": "a"}]}
        assert cap_event(body, 1024) is body

    def test_lists_cut_and_counted(self) -> None:
        body = {"detections": [{"label": "x" * 20, "score": 0.5}] * 200, "frame": 7}
        out = cap_event(body, 1024)
        assert out is not None and out["truncated"] is True
        assert out["detections_total"] == 200 and 0 < len(out["detections"]) < 200
        assert len(json.dumps(out, separators=(",", ":"))) <= 1024 - 96
        assert out["frame"] == 7

    def test_unfittable(self) -> None:
        assert cap_event({"blob": "x" * 5000}, 1024) is None


class TestParseRequest:
    def test_valid(self) -> None:
        req = cmds.parse_request(b'{"id": "a-1", "params": {"v": 2}}', 1024)
        assert req.id == "a-1" and req.params == {"v": 2}

    @pytest.mark.parametrize(
        ("payload", "code", "words"),
        [
            (b"\xff\xfe", "invalid_payload", "UTF-8"),
            (b"{nope", "invalid_payload", "not JSON"),
            (b"[1, 2]", "invalid_payload", "JSON object"),
            (b'{"params": {}}', "invalid_payload", "id"),
            (b'{"id": 5}', "invalid_payload", "id"),
            (b'{"id": "a b"}', "invalid_payload", "id"),
            (b'{"id": "a", "params": []}', "invalid_payload", "params"),
            (b'{"id": "a", "extra": 1}', "invalid_payload", "extra"),
            (b'{"id": "a", "expires_at": 10}', "expired", "expired at 10, 90 s before"),
            (b'{"id": "a", "expires_at": 1e12}', "invalid_payload", "days ahead"),
            (b'{"id": "a", "expires_at": NaN}', "invalid_payload", "NaN"),
            (b'{"id": "a", "expires_at": 1e400}', "invalid_payload", "out of range"),
            (b'{"id": "a", "expires_at": "soon"}', "invalid_payload", "expires_at"),
            (b'{"id": "a", "id": "b"}', "invalid_payload", "duplicate key 'id'"),
            (b"[" * 1000, "invalid_payload", "nested deeper than 32 levels"),
            (b'{"id": "a", "params": {"n": ' + b"7" * 900 + b"}}", "invalid_payload", "digits"),
            (b"x" * 2000, "too_large", "limit is 1024"),
        ],
        ids=lambda v: repr(v)[:40] if isinstance(v, bytes) else None,
    )
    def test_invalid(self, payload: bytes, code: str, words: str) -> None:
        with pytest.raises(CommandError) as ei:
            cmds.parse_request(payload, 1024, now=100.0)
        assert ei.value.code == code
        assert words in ei.value.message

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_random_bytes_never_crash(self, payload: bytes) -> None:
        try:
            req = cmds.parse_request(payload, 256, now=0.0)
        except CommandError as err:
            assert err.code in {"invalid_payload", "too_large", "expired"}
        else:
            assert isinstance(req.id, str)

    @settings(max_examples=200, deadline=None)
    @given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                        lambda c: st.lists(c, max_size=4) | st.dictionaries(
                            st.text(max_size=6), c, max_size=4), max_leaves=12))
    def test_wrong_shapes(self, value: object) -> None:
        payload = json.dumps(value).encode()
        with pytest.raises(CommandError):
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                raise CommandError("skip", "possibly valid")  # not a wrong shape
            cmds.parse_request(payload, 1 << 20)

    def test_valid_expiry_within_bounds(self) -> None:
        req = cmds.parse_request(b'{"id": "a", "expires_at": 160.5}', 1024, now=100.0)
        assert req.expires_at == 160.5

    def test_request_id_of(self) -> None:
        assert cmds.request_id_of(b'{"id": "x", "params": 3}', 100) == "x"
        assert cmds.request_id_of(b'{"id": "a b"}', 100) is None
        assert cmds.request_id_of(b'{"id": "x", "p": ' + b"[" * 60_000, 1 << 20) is None
        assert cmds.request_id_of(b'{"id": 3}', 100) is None
        assert cmds.request_id_of(b"junk", 100) is None


class TestRegistry:
    def test_run_validate_and_errors(self) -> None:
        r = cmds.Registry()
        r.add("ping", lambda p: {"pong": True}, cmds.NoParams)
        r.add("boom", lambda p: 1 / 0)  # type: ignore[arg-type,return-value]
        r.add("bad", lambda p: [])  # type: ignore[arg-type,return-value]
        assert r.run("ping", {}) == {"pong": True}
        for name, params, code in [("ping", {"x": 1}, "invalid_params"),
                                   ("nope", {}, "unknown_command"),
                                   ("boom", {}, "failed"), ("bad", {}, "failed")]:
            with pytest.raises(CommandError) as ei:
                r.run(name, params)
            assert ei.value.code == code
        with pytest.raises(ValueError):
            r.add("Bad Name", lambda p: {})


class TestRecentReplies:
    def test_bounded_by_count_and_age(self) -> None:
        rr = cmds.RecentReplies(max_items=2, max_age_s=10)
        assert rr.put("a", {"n": 1}, 0.0) == []
        rr.put("b", {"n": 2}, 1.0)
        assert rr.put("c", {"n": 3}, 2.0) == ["a"]
        assert rr.get("a", 2.0) is None and rr.get("b", 2.0) == {"n": 2}
        assert rr.get("b", 20.0) is None  # too old
        assert rr.put("d", {}, 30.0) == ["b", "c"] and len(rr) == 1


class TestExpiresAtFor:
    def test_default_seconds_and_never(self) -> None:
        assert cmds.expires_at_for(None, 10.0, now=1000.0) == 1010.0
        assert cmds.expires_at_for("2.5", 10.0, now=1000.0) == 1002.5
        assert cmds.expires_at_for("never", 10.0, now=1000.0) is None
        assert cmds.expires_at_for(" NEVER ", 10.0, now=1000.0) is None

    @pytest.mark.parametrize("spec", ["0", "-5", "soon", "nan", "inf", "1e9"])
    def test_refused(self, spec: str) -> None:
        with pytest.raises(ValueError, match=r"expected seconds .* or never"):
            cmds.expires_at_for(spec, 10.0, now=1000.0)

    def test_what_a_sender_sets_the_device_accepts_until_then(self) -> None:
        exp = cmds.expires_at_for(None, 10.0, now=1000.0)
        payload = json.dumps({"id": "a", "expires_at": exp}).encode()
        assert cmds.parse_request(payload, 1024, now=1009.0).expires_at == 1010.0
        with pytest.raises(CommandError, match="not run"):
            cmds.parse_request(payload, 1024, now=1011.0)
