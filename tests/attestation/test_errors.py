"""attestation.errors: messages a person or a non-Python client reads."""

from __future__ import annotations

import pytest

from attestation.errors import ParseError, foreign_error_line


def test_a_library_error_is_cut_to_its_class_and_first_line() -> None:
    err = ValueError("bad bundle\n  field 1: {...a whole JSON document...}\n  field 2")
    assert foreign_error_line(err) == "ValueError: bad bundle"


@pytest.mark.parametrize("text", ["", "  \n "])
def test_a_library_error_without_text_is_its_class_alone(text: str) -> None:
    assert foreign_error_line(RuntimeError(text)) == "RuntimeError"


def test_a_message_never_shows_none_for_an_absent_side() -> None:
    assert ParseError("quote.size", "short", actual=3).message() == "quote.size: short (got 3)"
    assert "None" not in ParseError("quote.size", expected=None, actual="").message()
