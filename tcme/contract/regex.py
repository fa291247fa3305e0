"""Regular expressions a contract supplies: compiled and run by RE2 only (linear time).

A contract is written by whoever proposes a session, so its patterns are
attacker-chosen: ``(a|aa)+`` against ninety ``a`` and a ``b`` keeps Python's
backtracking ``re`` busy for hours while it holds the GIL. RE2 (the
``google-re2`` package) matches in time linear in the text, whatever the
pattern. Every pattern from a contract goes through here: string-input
``pattern``, grammar-output ``pattern``, and JSON Schema ``pattern`` /
``patternProperties`` (``tcme.contract.jsonschema_check`` routes the
``jsonschema`` keywords here). What RE2 cannot do in linear time (back-
references, lookahead, lookbehind) is refused when the contract is parsed.

Syntax is RE2's (https://github.com/google/re2/wiki/Syntax). ``\\d``, ``\\w``
and ``\\s`` are ASCII classes in RE2; spell out Unicode classes (``\\pL``) when
they are meant.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2

from tcme.base.encoding import json_type
from tcme.contract.errors import ContractError

MAX_PATTERN_CHARS = 256
# The compiled program and its DFA cache are bounded too (RE2 falls back to a slower,
# still linear, matcher when the DFA would need more).
_MAX_MEMORY = 8 << 20


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the reason comes back in the exception instead
    options.max_mem = _MAX_MEMORY
    return options


@dataclass(frozen=True)
class Pattern:
    """A compiled RE2 pattern and its source text."""

    source: str
    compiled: Any

    def fullmatch(self, text: str) -> bool:
        """True when the whole of ``text`` matches."""
        return self.compiled.fullmatch(text) is not None

    def search(self, text: str) -> bool:
        """True when some part of ``text`` matches (JSON Schema's rule)."""
        return self.compiled.search(text) is not None


class PatternError(ValueError):
    """RE2 refused a pattern; the message is RE2's reason."""


@lru_cache(maxsize=256)
def _compile(source: str) -> Pattern:
    try:
        return Pattern(source=source, compiled=re2.compile(source, _options()))
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(str(reason)) from None


def compile_pattern(source: Any, where: str) -> Pattern:
    """Compile a contract's pattern with RE2; raises ``ContractError`` naming ``where``."""
    if not isinstance(source, str):
        raise ContractError(where, "expected a pattern string", actual=json_type(source))
    if not source or len(source) > MAX_PATTERN_CHARS:
        raise ContractError(
            where,
            "pattern length out of range",
            expected=f"1..{MAX_PATTERN_CHARS} characters",
            actual=len(source),
        )
    try:
        return _compile(source)
    except PatternError as err:
        raise ContractError(
            where,
            f"not a pattern RE2 accepts ({err}); tcme runs contract patterns on RE2, "
            "which has no backreferences or lookaround",
        ) from None


def compiled(source: str) -> Pattern:
    """An already accepted pattern (cached); raises ``PatternError`` if RE2 refuses it."""
    return _compile(source)


def is_re2_pattern(source: object) -> bool:
    """JSON Schema ``format: regex`` under RE2: a string RE2 compiles."""
    if not isinstance(source, str):
        return True  # format applies to strings only
    try:
        _compile(source)
    except PatternError:
        return False
    return True
