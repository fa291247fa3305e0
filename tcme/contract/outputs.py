"""Output constraints of the ``general`` kind: GBNF grammar and JSON Schema outputs.

Enum outputs need no object (``OutputSpec`` handles them). The two others:

- ``grammar``: the contract's own GBNF (checked by ``tcme.contract.gbnf``),
  ``max_chars``, and an optional ``pattern`` the released text must fully match;
- ``json``: a JSON Schema, turned into GBNF with llama.cpp's converter
  (``llama_cpp.llama_grammar.json_schema_to_gbnf``) for decoding and checked
  with ``jsonschema`` afterwards. The released value is the compact, key-sorted
  JSON text, so whitespace cannot carry extra bits to a recipient.

Decoding is constrained by the grammar; ``normalize`` is the final check before
anything is sealed, run again by each recipient on what it opens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from attestation.errors import ParseError
from tcme.base.encoding import check_nesting, json_type
from tcme.contract import gbnf, jsonschema_check, regex
from tcme.contract.errors import ContractError, OutputValueError
from tcme.contract.fields import int_in

MAX_OUTPUT_CHARS = 16384


def _check_text(name: str, text: Any, max_chars: int) -> str:
    if not isinstance(text, str):
        raise OutputValueError(f"output.{name}.value", "expected text", actual=json_type(text))
    if len(text) > max_chars:
        raise OutputValueError(
            f"output.{name}.value", f"longer than the contract's max_chars {max_chars}"
        )
    return text


@dataclass(frozen=True)
class GrammarOutput:
    """Free text shaped by a GBNF grammar, bounded by ``max_chars`` (and ``pattern``)."""

    name: str
    gbnf: str
    max_chars: int
    pattern: regex.Pattern | None

    def grammar(self) -> str:
        """The contract's GBNF."""
        return self.gbnf

    def normalize(self, text: str) -> str:
        """The text itself, once within ``max_chars`` and matching ``pattern``."""
        text = _check_text(self.name, text, self.max_chars)
        if self.pattern is not None and not self.pattern.fullmatch(text):
            raise OutputValueError(
                f"output.{self.name}.value", "does not match the contract's pattern"
            )
        return text


@dataclass(frozen=True)
class JsonOutput:
    """A JSON document that satisfies ``schema``; released as compact sorted JSON."""

    name: str
    schema: Mapping[str, Any]
    gbnf: str
    max_chars: int

    def grammar(self) -> str:
        """GBNF converted from the schema by llama.cpp's converter."""
        return self.gbnf

    def normalize(self, text: str) -> str:
        """Parse, check against the schema, re-encode compactly with sorted keys."""
        text = _check_text(self.name, text, self.max_chars)
        try:
            check_nesting(text, f"output.{self.name}")
        except ParseError:
            raise OutputValueError(f"output.{self.name}.value", "JSON nested too deeply") from None
        try:
            value = json.loads(text)
        except ValueError as err:
            raise OutputValueError(f"output.{self.name}.value", "not valid JSON") from err
        problem = jsonschema_check.violations(self.schema, value)
        if problem is not None:
            raise OutputValueError(
                f"output.{self.name}.value", f"does not satisfy the JSON Schema: {problem}"
            )
        compact = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if len(compact) > self.max_chars:
            raise OutputValueError(
                f"output.{self.name}.value",
                f"longer than the contract's max_chars {self.max_chars}",
            )
        return compact


def grammar_output(name: str, item: Mapping[str, Any], where: str) -> GrammarOutput:
    """Build a ``grammar`` output from its declaration; raises ``ContractError``."""
    text = item["grammar"]
    if not isinstance(text, str):
        raise ContractError(f"{where}.grammar", "expected GBNF text", actual=json_type(text))
    try:
        gbnf.check_grammar(text)
    except gbnf.GrammarError as err:
        raise ContractError(f"{where}.grammar", f"not a valid GBNF grammar: {err}") from err
    max_chars = int_in(item["max_chars"], f"{where}.max_chars", 1, MAX_OUTPUT_CHARS)
    pattern = item.get("pattern")
    compiled = None
    if pattern is not None:
        compiled = regex.compile_pattern(pattern, f"{where}.pattern")
    return GrammarOutput(name=name, gbnf=text, max_chars=max_chars, pattern=compiled)


def json_output(name: str, item: Mapping[str, Any], where: str) -> JsonOutput:
    """Build a ``json`` output: check the schema and convert it to GBNF."""
    schema = jsonschema_check.parse_schema(item["schema"], f"{where}.schema")
    max_chars = int_in(item["max_chars"], f"{where}.max_chars", 1, MAX_OUTPUT_CHARS)
    return JsonOutput(
        name=name, schema=schema, gbnf=schema_to_gbnf(schema, where), max_chars=max_chars
    )


def schema_to_gbnf(schema: Mapping[str, Any], where: str = "schema") -> str:
    """llama.cpp's JSON Schema → GBNF conversion, checked by our GBNF parser.

    Raises ``ContractError`` when the converter does not support the schema.
    """
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError as err:  # pragma: no cover - llama-cpp-python is a dependency
        raise ContractError(where, "llama-cpp-python is needed to convert JSON Schema") from err
    try:
        text = json_schema_to_gbnf(json.dumps(schema, sort_keys=True))
    except Exception as err:  # the converter raises bare exceptions for unsupported schema
        raise ContractError(
            where, f"llama.cpp cannot turn this JSON Schema into a grammar: {err}"
        ) from err
    try:
        gbnf.check_grammar(text)
    except gbnf.GrammarError as err:
        raise ContractError(where, f"converted grammar is invalid: {err}") from err
    return text
