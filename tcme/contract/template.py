"""Prompt templates: ``{name}`` is an input or an earlier output; ``{{`` and ``}}`` are braces."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tcme.contract.errors import ContractError
from tcme.contract.fields import INPUT_NAME

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def prompt_placeholders(template: str) -> set[str]:
    """Names referenced as ``{name}``; ``{{``/``}}`` are literal braces. Bad braces raise."""
    names: set[str] = set()
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None or INPUT_NAME.fullmatch(name) is None:
            raise ContractError(
                "contract.prompt",
                f"bad placeholder {token!r} at offset {match.start()} "
                "(use {input_name}; {{ and }} for literal braces)",
            )
        names.add(name)
    return names


def render_prompt(template: str, values: Mapping[str, Any]) -> str:
    """Substitute every ``{name}`` with ``str(values[name])`` (integers in decimal)."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return str(values[match.group(1)])

    return _TOKEN.sub(substitute, template)
