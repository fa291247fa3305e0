"""tcme.base.encoding: canonical JSON (sorted, compact, UTF-8); non-canonical input refused."""

from __future__ import annotations

import pytest

from attestation.errors import ParseError
from tcme.wire import (
    canonical_json,
    parse_canonical_json,
)


def test_canonical_json_sorted_compact_utf8():
    assert (
        canonical_json({"b": 1, "a": ["é", True, None]}) == '{"a":["é",true,null],"b":1}'.encode()
    )


@pytest.mark.parametrize(
    "text",
    [
        b'{"b":1,"a":2}',  # key order
        b'{"a": 1}',  # whitespace
        b'{"a":1,"a":1}',  # duplicate key
        b'{"a":1.5}',  # float
        b'{"a":"\\u00e9"}',  # escaped non-ASCII
        b'{"a":NaN}',
        b'{"a":9007199254740993}',  # beyond 2^53
        b"\xff",
    ],
)
def test_parse_canonical_json_rejects_non_canonical_fail(text):
    with pytest.raises(ParseError):
        parse_canonical_json(text, "thing")


def test_canonical_json_refuses_floats_fail():
    with pytest.raises(ValueError, match=r"float"):
        canonical_json({"temperature": 0.0})
