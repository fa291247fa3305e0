"""The GBNF checker agrees with llama.cpp's own grammar parser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tcme.contract.gbnf import GrammarError, check_grammar
from tcme.contract.outputs import schema_to_gbnf

REPO = Path(__file__).resolve().parents[3]

VALID = [
    'root ::= "yes" | "no"',
    "root ::= [a-z ]{1,30}",
    'root ::= ("pass" | "fail") " " reason\nreason ::= [A-Za-z0-9 ,.]{1,120}  # a comment\n',
    'root ::= (\n  item |\n  item "," root\n)\nitem ::= [0-9]+',
    'root ::= "\\x41\\u00e9\\n\\"" [^"\\\\] .',
    'root ::= a? b* c+ d{2} e{1,} f{0,3}\na ::= "a"\nb ::= "b"\nc ::= "c"\nd ::= "d"\n'
    'e ::= "e"\nf ::= "f"',
    '# leading comment\n\nroot ::= x\nx ::= "" | "y" x',
]

INVALID = [
    ("", "empty grammar"),
    ('item ::= "a"', "no root rule"),
    ("root ::= missing", "undefined rule"),
    ('root ::= root "a"', "left-recursive"),
    ('root ::= a\na ::= b? root\nb ::= "b"', "left-recursive"),
    ('root ::= "unterminated', "unterminated string"),
    ("root ::= [a-z", "unterminated character class"),
    ('root ::= "a" \\q', "expected a newline"),
    ('root ::= "\\q"', "unknown escape"),
    ('root ::= ("a" | "b"', "expected )"),
    ('root ::= "a"{3,1}', "repetition bounds"),
    ('root ::= "a"{,3}', "expected a number"),
    ('root ::= "a"{99999}', "repetition bounds"),
    ('root "a"', "expected ::="),
    ('root ::= "a"\nroot ::= "b"', "defined twice"),
    ("root ::= []", "empty character class"),
    ('root ::= * "a"', "nothing before it"),
]


@pytest.mark.parametrize("text", VALID)
def test_valid_grammars_pass(text):
    assert "root" in check_grammar(text)


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_grammars_are_refused_fail(text, message):
    with pytest.raises(GrammarError, match=re.escape(message)):
        check_grammar(text)


def test_json_schema_grammars_pass():
    schema = {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "n": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
            "why": {"type": "string", "maxLength": 12},
        },
        "required": ["ok", "why"],
        "additionalProperties": False,
    }
    assert "root" in check_grammar(schema_to_gbnf(schema))


def _default_gguf() -> Path | None:
    found = sorted((REPO / "models").glob("*.gguf"))
    return found[0] if found else None


@pytest.mark.model
def test_checker_agrees_with_llama_cpp():
    """Every grammar here gets the same verdict from llama.cpp (a null sampler = refused)."""
    gguf = _default_gguf()
    if gguf is None:
        pytest.skip("default model not found: run `make model`")
    import llama_cpp

    llama = llama_cpp.Llama(str(gguf), n_ctx=64, verbose=False)
    try:
        vocab = llama._model.vocab
        # Left out of the comparison: what llama.cpp accepts but we refuse as a mistake
        # ("", an empty class, a rule defined twice: last wins), and what we refuse
        # because llama.cpp cannot survive it: {3,1} and {99999} exhaust its memory
        # (the process is killed), which is why contracts are checked before it sees them.
        skipped = ("empty grammar", "empty character class", "defined twice", "repetition bounds")
        cases = [(text, True) for text in VALID] + [
            (text, False) for text, message in INVALID if message not in skipped
        ]
        for text, expected in cases:
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, text.encode(), b"root")
            accepted = bool(sampler)
            if sampler:
                llama_cpp.llama_sampler_free(sampler)
            assert accepted == expected, (
                f"llama.cpp {'accepts' if accepted else 'refuses'}: {text!r}"
            )
    finally:
        llama.close()


def test_schema_converter_output_is_stable():
    """Canonical contracts sort keys, so the converted grammar must not depend on key order."""
    schema = {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "boolean"}}}
    reordered = json.loads(json.dumps(schema, sort_keys=True))
    assert schema_to_gbnf(schema) == schema_to_gbnf(reordered)
