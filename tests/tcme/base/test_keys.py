"""tcme.base.keys: party key files saved 0600, loaded, garbage refused."""

from __future__ import annotations

import stat

import pytest

from attestation.errors import ParseError, UsageError
from tcme.wire import (
    PartyKeys,
)
from tests.tcme.wire.support import ALICE


def test_party_keys_save_load(tmp_path):
    path = tmp_path / "alice.key"
    ALICE.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = PartyKeys.load(path)
    assert loaded.public_entry("alice") == ALICE.public_entry("alice")


def test_party_keys_load_garbage_fail(tmp_path):
    path = tmp_path / "bad.key"
    path.write_text('{"type": "something-else"}')
    with pytest.raises(ParseError, match=r"party_keys.type"):
        PartyKeys.load(path)
    with pytest.raises(UsageError):
        PartyKeys.load(tmp_path / "missing.key")
