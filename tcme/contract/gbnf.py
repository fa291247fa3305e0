"""A syntax and sanity check for GBNF grammars, run before llama.cpp ever sees one.

llama.cpp returns a null sampler for a grammar it cannot parse (bad syntax, an
undefined rule, no ``root``, left recursion), and a null sampler in the chain
crashes the process. Contracts are checked by every party and by the enclave
long before a model call, so this module implements the same grammar rules in
Python (llama.cpp ``src/llama-grammar.cpp``, ``llama_grammar_parser``):

- rules ``name ::= alternatives``, names of ``[a-zA-Z0-9-]``, ``#`` comments;
- elements: ``"literal"``, ``[class]`` / ``[^class]``, rule references,
  ``( ... )`` groups, ``.`` (any character), token references ``<[id]>`` /
  ``!<[id]>``;
- postfix ``*``, ``+``, ``?``, ``{m}``, ``{m,}``, ``{m,n}`` (llama.cpp has no ``{,n}``);
- escapes ``\\x..``, ``\\u....``, ``\\U........``, ``\\t \\r \\n \\\\ \\" \\[ \\]``;
- a rule ends at a newline unless inside parentheses or after ``|``.

``check_grammar`` returns the rule names and raises ``GrammarError`` naming
the line and the problem; it also refuses undefined rules, a missing ``root``,
left recursion, and repetition bounds that are reversed (``{3,1}``) or above
``MAX_REPEAT``: llama.cpp 0.3.36 accepts ``"a"{3,1}`` and then exhausts memory
expanding it, so an unchecked contract could take the enclave down. The enclave checks
once more with llama.cpp's own parser before decoding (enclave.inference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_GRAMMAR_CHARS = 16384
# llama.cpp expands {m,n} into n copies; an unbounded n would exhaust memory.
MAX_REPEAT = 4096


class GrammarError(ValueError):
    """The GBNF text is not a grammar llama.cpp would accept."""


@dataclass
class _Node:
    kind: str  # lit | class | any | token | ref | group | rep
    text: str = ""
    alternatives: list[list[_Node]] = field(default_factory=list)
    child: _Node | None = None
    low: int = 0
    high: int | None = None


def _word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "-")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.rules: dict[str, list[list[_Node]]] = {}

    # -- helpers -------------------------------------------------------------------------

    def fail(self, message: str) -> GrammarError:
        line = self.text.count("\n", 0, self.pos) + 1
        return GrammarError(f"line {line}: {message}")

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def space(self, newline_ok: bool) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t" or (newline_ok and c in "\r\n"):
                self.pos += 1
            elif c == "#":
                while self.pos < len(self.text) and self.text[self.pos] not in "\r\n":
                    self.pos += 1
            else:
                return

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and _word_char(self.text[self.pos]):
            self.pos += 1
        if start == self.pos:
            raise self.fail(f"expected a rule name at {self.text[start : start + 10]!r}")
        return self.text[start : self.pos]

    def integer(self) -> int:
        start = self.pos
        while self.peek().isdigit() and self.peek().isascii():
            self.pos += 1
        if start == self.pos:
            raise self.fail("expected a number in a {m,n} repetition")
        return int(self.text[start : self.pos])

    def char(self) -> str:
        c = self.peek()
        if not c:
            raise self.fail("unexpected end of grammar")
        if c != "\\":
            self.pos += 1
            return c
        escape = self.peek(1)
        self.pos += 2
        simple = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]"}
        if escape in simple:
            return simple[escape]
        sizes = {"x": 2, "u": 4, "U": 8}
        if escape in sizes:
            digits = self.text[self.pos : self.pos + sizes[escape]]
            if len(digits) != sizes[escape] or any(
                d not in "0123456789abcdefABCDEF" for d in digits
            ):
                raise self.fail(f"bad \\{escape} escape")
            self.pos += sizes[escape]
            value = int(digits, 16)
            if value > 0x10FFFF:
                raise self.fail("code point out of range")
            return chr(value)
        raise self.fail(f"unknown escape \\{escape}")

    # -- grammar ---------------------------------------------------------------------------

    def grammar(self) -> None:
        self.space(True)
        while self.pos < len(self.text):
            self.rule()
            self.space(True)

    def rule(self) -> None:
        name = self.name()
        self.space(False)
        if self.text[self.pos : self.pos + 3] != "::=":
            raise self.fail(f"expected ::= after rule name {name!r}")
        self.pos += 3
        self.space(True)
        alternatives = self.alternates(nested=False)
        if name in self.rules:
            raise self.fail(f"rule {name!r} defined twice")
        self.rules[name] = alternatives
        c = self.peek()
        if c == "\r":
            self.pos += 2 if self.peek(1) == "\n" else 1
        elif c == "\n":
            self.pos += 1
        elif c:
            raise self.fail(f"expected a newline or end after rule {name!r}, got {c!r}")

    def alternates(self, *, nested: bool) -> list[list[_Node]]:
        alternatives = [self.sequence(nested=nested)]
        while self.peek() == "|":
            self.pos += 1
            self.space(True)
            alternatives.append(self.sequence(nested=nested))
        return alternatives

    def sequence(self, *, nested: bool) -> list[_Node]:
        items: list[_Node] = []
        while True:
            c = self.peek()
            if c == '"':
                self.pos += 1
                text = []
                while self.peek() != '"':
                    if not self.peek():
                        raise self.fail("unterminated string literal")
                    text.append(self.char())
                self.pos += 1
                items.append(_Node("lit", "".join(text)))
            elif c == "[":
                self.pos += 1
                if self.peek() == "^":
                    self.pos += 1
                count = 0
                while self.peek() != "]":
                    if not self.peek():
                        raise self.fail("unterminated character class")
                    self.char()
                    count += 1
                    if self.peek() == "-" and self.peek(1) not in ("]", ""):
                        self.pos += 1
                        self.char()
                if count == 0:
                    raise self.fail("empty character class")
                self.pos += 1
                items.append(_Node("class"))
            elif c == ".":
                self.pos += 1
                items.append(_Node("any"))
            elif c == "!" or c == "<":
                if c == "!":
                    self.pos += 1
                if self.peek() != "<":
                    raise self.fail("expected < after ! in a token reference")
                end = self.text.find(">", self.pos)
                if end < 0:
                    raise self.fail("unterminated token reference")
                self.pos = end + 1
                items.append(_Node("token"))
            elif c and _word_char(c):
                items.append(_Node("ref", self.name()))
            elif c == "(":
                self.pos += 1
                self.space(True)
                alternatives = self.alternates(nested=True)
                if self.peek() != ")":
                    raise self.fail("expected ) to close a group")
                self.pos += 1
                items.append(_Node("group", alternatives=alternatives))
            elif c in ("*", "+", "?"):
                if not items:
                    raise self.fail(f"{c} with nothing before it")
                self.pos += 1
                low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
                items[-1] = _Node("rep", child=items[-1], low=low, high=high)
            elif c == "{":
                if not items:
                    raise self.fail("{m,n} with nothing before it")
                self.pos += 1
                self.space(False)
                low = self.integer()
                high = low
                self.space(False)
                if self.peek() == ",":
                    self.pos += 1
                    self.space(False)
                    high = None if self.peek() == "}" else self.integer()
                    self.space(False)
                if self.peek() != "}":
                    raise self.fail("expected } to close a {m,n} repetition")
                self.pos += 1
                if (high is not None and high < low) or max(low, high or 0) > MAX_REPEAT:
                    raise self.fail(f"repetition bounds out of range (0 <= m <= n <= {MAX_REPEAT})")
                items[-1] = _Node("rep", child=items[-1], low=low, high=high)
            else:
                return items
            self.space(nested)


def _references(alternatives: list[list[_Node]]) -> set[str]:
    out: set[str] = set()
    for sequence in alternatives:
        for node in sequence:
            out |= _node_references(node)
    return out


def _node_references(node: _Node) -> set[str]:
    if node.kind == "ref":
        return {node.text}
    if node.kind == "group":
        return _references(node.alternatives)
    if node.kind == "rep" and node.child is not None:
        return _node_references(node.child)
    return set()


def _nullable_rules(rules: dict[str, list[list[_Node]]]) -> set[str]:
    nullable: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, alternatives in rules.items():
            if name not in nullable and _alts_nullable(alternatives, nullable):
                nullable.add(name)
                changed = True
    return nullable


def _alts_nullable(alternatives: list[list[_Node]], nullable: set[str]) -> bool:
    return any(all(_nullable(n, nullable) for n in seq) for seq in alternatives)


def _nullable(node: _Node, nullable: set[str]) -> bool:
    if node.kind == "lit":
        return node.text == ""
    if node.kind == "ref":
        return node.text in nullable
    if node.kind == "group":
        return _alts_nullable(node.alternatives, nullable)
    if node.kind == "rep":
        assert node.child is not None
        return node.low == 0 or _nullable(node.child, nullable)
    return False


def _left_refs(alternatives: list[list[_Node]], nullable: set[str]) -> set[str]:
    """Rules that can start a match of ``alternatives`` (through nullable prefixes)."""
    out: set[str] = set()
    for sequence in alternatives:
        for node in sequence:
            out |= _node_left_refs(node, nullable)
            if not _nullable(node, nullable):
                break
    return out


def _node_left_refs(node: _Node, nullable: set[str]) -> set[str]:
    if node.kind == "ref":
        return {node.text}
    if node.kind == "group":
        return _left_refs(node.alternatives, nullable)
    if node.kind == "rep":
        assert node.child is not None
        return _node_left_refs(node.child, nullable)
    return set()


def check_grammar(text: str) -> tuple[str, ...]:
    """Parse ``text`` as GBNF; return its rule names. Raises ``GrammarError``."""
    if not isinstance(text, str) or not text.strip():
        raise GrammarError("empty grammar")
    if len(text) > MAX_GRAMMAR_CHARS:
        raise GrammarError(f"grammar longer than {MAX_GRAMMAR_CHARS} characters")
    if "\x00" in text:
        raise GrammarError("NUL character in grammar")
    parser = _Parser(text)
    parser.grammar()
    rules = parser.rules
    if "root" not in rules:
        raise GrammarError("no root rule (the grammar starts at 'root ::= ...')")
    for name, alternatives in rules.items():
        undefined = sorted(_references(alternatives) - rules.keys())
        if undefined:
            raise GrammarError(f"rule {name!r} uses undefined rule(s) {', '.join(undefined)}")
    nullable = _nullable_rules(rules)
    edges = {name: _left_refs(alts, nullable) for name, alts in rules.items()}
    for start in rules:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            current = stack.pop()
            if current == start:
                raise GrammarError(f"rule {start!r} is left-recursive")
            if current not in seen:
                seen.add(current)
                stack.extend(edges[current])
    return tuple(rules)
