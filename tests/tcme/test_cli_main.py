"""The dispatcher's last line of defence: one line and an exit code, never a traceback."""

from __future__ import annotations

import argparse

import pytest

import tcme.cli as cli


def _parser_with(handler):
    parser = argparse.ArgumentParser(prog="tcme")
    parser.set_defaults(handler=handler)
    return parser


def test_unexpected_error_is_one_line_without_its_message(monkeypatch, capsys):
    def boom(_args):
        raise RuntimeError("secret-canary-42")

    monkeypatch.delenv("TCME_DEBUG", raising=False)
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(boom))
    assert cli.main([]) == cli.EXIT_REJECT  # nothing was accepted
    err = capsys.readouterr().err
    assert "internal error (RuntimeError)" in err
    assert "secret-canary-42" not in err and "Traceback" not in err


def test_debug_shows_the_real_exception(monkeypatch):
    def boom(_args):
        raise RuntimeError("details")

    monkeypatch.setenv("TCME_DEBUG", "1")
    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(boom))
    with pytest.raises(RuntimeError, match="details"):
        cli.main([])


def test_rejection_exits_1_and_names_the_check(monkeypatch, capsys):
    from attestation.errors import PolicyError

    def reject(_args):
        raise PolicyError("reported_tcb.snp", "5 < required 8", expected=">= 8", actual=5)

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_with(reject))
    assert cli.main([]) == cli.EXIT_REJECT
    assert "reported_tcb.snp" in capsys.readouterr().err
