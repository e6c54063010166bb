"""Bounded JSON decoding of payloads from outside (edge_agent.common.strict_json)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.common import strict_json
from edge_agent.common.strict_json import JSONRefused, depth_exceeds


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 60_000, "nested deeper than 32"),
        ('{"a":' * 33 + "1" + "}" * 33, "nested deeper than 32"),
        ('{"id": NaN}', "NaN is not a number"),
        ("[Infinity]", "Infinity is not a number"),
        ("[-Infinity]", "-Infinity is not a number"),
        ("[1e999]", "out of range"),
        ("[" + "9" * 5000 + "]", "5000 digits; at most 40"),
        ("[-" + "1" * 41 + "]", "41 digits"),
        ("[0." + "1" * 60 + "]", "characters long"),
        ('{"id": "a", "id": "b"}', "duplicate key 'id'"),
        ('{"p": {"x": 1, "x": 2}}', "duplicate key 'x'"),
        ("{nope", "not JSON"),
    ],
)
def test_refused_with_the_reason(text: str, words: str) -> None:
    with pytest.raises(JSONRefused) as ei:
        strict_json.loads(text)
    assert words in str(ei.value)


def test_not_utf8_names_the_byte() -> None:
    with pytest.raises(JSONRefused, match="not UTF-8 text \\(byte 2\\)"):
        strict_json.loads(b'["\xff"]')


def test_accepted_within_bounds() -> None:
    deep = "[" * 32 + "]" * 32
    assert strict_json.loads(deep) == json.loads(deep)
    text = '{"s": "[[[[{{{{\\"]]]", "n": -12345678901234567890, "f": 1.5e300, "t": [true, null]}'
    assert strict_json.loads(text.encode()) == json.loads(text)


def test_brackets_and_escapes_inside_strings_do_not_count() -> None:
    inside = json.dumps(["[" * 100, "\\" * 7 + '"' + "{" * 50])
    assert not depth_exceeds(inside, 2)
    assert depth_exceeds('["\\\\", [[1]]]', 2)  # an escaped backslash ends its string


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab"\\[]{}\u00e9'), max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=30,
)


def _depth(v: object) -> int:
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=6))
def test_depth_scan_agrees_with_the_parsed_value(value: object, limit: int) -> None:
    text = json.dumps(value)
    assert depth_exceeds(text, limit) == (_depth(value) > limit)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet=st.sampled_from('[]{}",:\\1e-.NaI tu'),
                                         max_size=200).map(str.encode))
def test_anything_is_a_value_or_a_refusal(data: bytes) -> None:
    try:
        strict_json.loads(data, max_depth=3, max_digits=5)
    except JSONRefused as exc:
        assert str(exc)
