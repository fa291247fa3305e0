"""Optional TOML config files for the long-running commands (``host serve``, ``enclave serve``).

A config file holds the command's long options as keys, spelled with ``_`` or
``-`` (``max_message_bytes = 4194304``, ``tls-cert = "server.pem"``). A flag given
on the command line wins over the file; the file wins over the built-in
default. Relative paths in the file are relative to the file's own folder.
Unknown keys, wrong types and values outside an option's choices are usage
errors (exit 2), named with the file and key: a typo never silently falls
back to a default.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attestation.errors import UsageError

CONFIG_HELP = (
    "TOML file of options: keys are the long option names (max_message_bytes = 4194304); "
    "a flag on the command line wins over the file"
)


def add_config_option(parser: argparse.ArgumentParser, *, required: Sequence[str] = ()) -> None:
    """Give ``parser`` ``--config FILE``; ``required`` dests must come from a flag or the file.

    Call it after every other option of ``parser`` is added. Options listed in
    ``required`` must be added with ``required=False`` (the file may supply them).
    """
    parser.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    parser.set_defaults(config_parser=parser, config_required=tuple(required))


def apply_config(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Fill ``args`` from ``args.config`` where no flag in ``argv`` set the option."""
    parser: argparse.ArgumentParser = args.config_parser
    actions = {
        action.dest: action
        # argparse has no public accessor for a parser's options.
        for action in parser._actions  # noqa: SLF001
        if action.option_strings and action.dest not in ("help", "config")
    }
    if args.config is not None:
        table = _read(args.config)
        for key, value in table.items():
            dest = key.replace("-", "_")
            action = actions.get(dest)
            if action is None:
                raise UsageError(
                    "config.key",
                    f"{args.config}: unknown option {key!r}",
                    expected=", ".join(sorted(actions)),
                    actual=key,
                )
            if _given(action, argv):
                continue  # the command line wins
            setattr(args, dest, _convert(action, value, args.config, key))
    missing = [dest for dest in args.config_required if getattr(args, dest, None) in (None, [])]
    if missing:
        flags = ", ".join(actions[dest].option_strings[0] for dest in missing)
        raise UsageError(
            "config.required", f"give {flags} on the command line or in --config", actual=flags
        )


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError("config.file", f"cannot read {path}: {err.strerror}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError("config.file", f"{path} is not TOML: {err}") from err


def _given(action: argparse.Action, argv: Sequence[str]) -> bool:
    """Whether one of the action's flags appears in ``argv`` (``--opt V`` or ``--opt=V``)."""
    return any(token.split("=", 1)[0] in action.option_strings for token in argv)


def _convert(action: argparse.Action, value: Any, path: Path, key: str) -> Any:
    where = f"{path}: {key}"
    if action.nargs == 0:  # store_true / store_false
        if not isinstance(value, bool):
            raise UsageError("config.type", f"{where} must be true or false", actual=value)
        return value if action.const is True else not value
    many = action.nargs in ("+", "*") or isinstance(action.default, list)
    if many:
        items = value if isinstance(value, list) else [value]
        return [_one(action, item, path, where) for item in items]
    if isinstance(value, list | dict):
        raise UsageError("config.type", f"{where} takes one value", actual=type(value).__name__)
    return _one(action, value, path, where)


def _one(action: argparse.Action, value: Any, path: Path, where: str) -> Any:
    if isinstance(value, bool | list | dict):
        raise UsageError("config.type", f"{where}: not a single value", actual=value)
    kind = action.type
    try:
        if kind is Path:
            result: Any = Path(str(value)).expanduser()
            if not result.is_absolute():
                result = path.parent / result
        elif kind in (int, float):
            if isinstance(value, str) or (kind is int and isinstance(value, float)):
                raise ValueError(value)
            result = kind(value)
        elif callable(kind):
            result = kind(str(value))
        else:
            result = str(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
        expected = getattr(kind, "__name__", "a value")
        raise UsageError("config.type", f"{where}: wrong type", expected=expected) from err
    if action.choices is not None and result not in action.choices:
        raise UsageError(
            "config.choice",
            f"{where}: not one of the choices",
            expected=", ".join(map(str, action.choices)),
            actual=result,
        )
    return result
