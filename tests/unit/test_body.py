"""``too_deep``: the nesting limit on request bodies, checked before msgspec decodes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.problem_types import SHELL_PROBLEM_TYPES
from core.http.body import MAX_DEPTH, too_deep
from core.http.problems import MalformedBodyError
from tests.support import HOST_INDEPENDENT


def depth(value: Any) -> int:
    """How deep ``value`` nests arrays and objects: a scalar is 0, ``[]`` is 1."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def nest(value: Any, levels: int, kinds: list[bool], siblings: list[Any]) -> Any:
    for level in range(levels):
        sibling = siblings[level % len(siblings)] if siblings else None
        if kinds[level % len(kinds)]:
            value = [sibling, value] if sibling is not None else [value]
        else:
            value = {"k[{": value, "s": sibling}
    return value


# Strings full of what a scanner could mistake for structure: brackets, quotes, escapes.
tricky_text = st.text(alphabet='[]{}"\\/,:ab\n\u00e9\u20ac', max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), tricky_text)
shallow = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=8,
)


@HOST_INDEPENDENT
@given(
    leaf=shallow,
    levels=st.integers(min_value=0, max_value=MAX_DEPTH + 8),
    kinds=st.lists(st.booleans(), min_size=1, max_size=5),
    siblings=st.lists(shallow, max_size=3),
    ascii_only=st.booleans(),
)
def test_exact_on_well_formed_json(
    leaf: Any, levels: int, kinds: list[bool], siblings: list[Any], ascii_only: bool
) -> None:
    value = nest(leaf, levels, kinds, siblings)
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert too_deep(body) == (depth(value) > MAX_DEPTH)


@pytest.mark.parametrize("opener", [b"[", b"{"])
def test_the_limit_is_max_depth_levels(opener: bytes) -> None:
    def nested(levels: int) -> bytes:
        if opener == b"[":
            return b"[" * levels + b"]" * levels
        return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)

    assert not too_deep(nested(MAX_DEPTH))
    assert too_deep(nested(MAX_DEPTH + 1))
    assert too_deep(nested(1000))
    assert too_deep(b"[" * 100_000)  # never closed: the decoder would still recurse into it


def test_brackets_inside_strings_do_not_nest() -> None:
    description = "[" * 1000 + '\\"{' * 100 + "\\\\"
    body = json.dumps({"amount": "1.00", "description": description}).encode()
    assert not too_deep(body)
    assert too_deep(b'{"a": "\\\\", "b": ' + b"[" * 40 + b"]" * 40 + b"}")
    # an escaped quote does not end the string, so these brackets are still inside it
    assert not too_deep(b'["\\"' + b"[" * 40 + b'"]')


def test_many_shallow_values_are_not_too_deep() -> None:
    assert not too_deep(b"[" + b"[[]]," * 10_000 + b"[]]")


def lexed_depth(body: bytes) -> int:
    """The deepest a JSON decoder can get into ``body`` before its first error: brackets
    outside strings, up to the first backslash outside a string (always an error)."""
    deepest = level = 0
    in_string = escaped = False
    for byte in body:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "\\":
            break
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


@HOST_INDEPENDENT
@given(st.text(alphabet='[[[{{]]}}"\\ a,', max_size=400).map(str.encode) | st.binary(max_size=400))
def test_what_it_lets_through_never_nests_deeper_than_the_limit(body: bytes) -> None:
    if not too_deep(body):
        assert lexed_depth(body) <= MAX_DEPTH


def test_the_reference_lexer_reads_strings_and_escapes() -> None:
    assert lexed_depth(b'[["]\\\\"[') == 3  # an escaped backslash, then the closing quote
    assert lexed_depth(b'[["]\\"[') == 2  # an escaped quote: the last bracket is in the string
    assert lexed_depth(b"[\\[[[") == 1  # a backslash outside a string stops the decoder


def test_the_problem_type_states_the_limit() -> None:
    assert f" {MAX_DEPTH} levels" in SHELL_PROBLEM_TYPES[MalformedBodyError].description
