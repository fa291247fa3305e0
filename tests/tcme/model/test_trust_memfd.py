"""Offline Sigstore trust configs, and sealed memfds."""

from __future__ import annotations

import errno
import json
import os

import pytest

from attestation.errors import ParseError
from tcme.model.memfd import SealedMemfd, sealed_bytes_path
from tcme.model.trust import (
    CLIENT_TRUST_CONFIG_MEDIA_TYPE,
    embedded_public_good_trust_config,
    load_trust_config,
)


def test_bare_trusted_root_is_wrapped_verify_only(trust_roots):
    config = json.loads(load_trust_config(trust_roots / "public_good_trusted_root.json"))
    assert config["mediaType"] == CLIENT_TRUST_CONFIG_MEDIA_TYPE
    assert config["trustedRoot"] == json.loads(
        (trust_roots / "public_good_trusted_root.json").read_text()
    )
    signing = config["signingConfig"]
    assert not any(signing[key] for key in ("caUrls", "oidcUrls", "rekorTlogUrls", "tsaUrls"))


def test_embedded_root_matches_public_good(trust_roots):
    """The package's embedded root is the same public-good root as the vectors'."""
    embedded = json.loads(embedded_public_good_trust_config())["trustedRoot"]
    vector = json.loads((trust_roots / "public_good_trusted_root.json").read_text())
    assert {ca["uri"] for ca in embedded["certificateAuthorities"]} == {
        ca["uri"] for ca in vector["certificateAuthorities"]
    }


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1]", b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
     b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1", "tlogs": 5}'],
)  # fmt: skip
def test_bad_trust_config_fail(tmp_path, content):
    path = tmp_path / "trust.json"
    path.write_bytes(content)
    with pytest.raises(ParseError, match=r"model\.trust_config"):
        load_trust_config(path)


def test_sealed_memfd_refuses_writes_and_resizes():
    memfd = SealedMemfd("test", 4096)
    try:
        memfd.reserve(0, 4096)
        memfd.write_at(b"x" * 4096, 0)
        memfd.seal()
        with pytest.raises(PermissionError):
            os.pwrite(memfd.fd, b"y", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(memfd.fd, 8192)
        with pytest.raises(PermissionError):
            os.ftruncate(memfd.fd, 0)
        # A second opener (as llama.cpp opens /proc/self/fd/N) cannot write either.
        second = os.open(memfd.path, os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.write(second, b"y")
        finally:
            os.close(second)
        with open(memfd.path, "rb") as reader:
            assert reader.read() == b"x" * 4096
    finally:
        memfd.close()
    assert memfd.fd == -1


def test_sealed_bytes_path_round_trip():
    with sealed_bytes_path(b"trust me") as path:
        assert path.read_bytes() == b"trust me"
        writer = os.open(path, os.O_WRONLY)
        try:
            with pytest.raises(OSError) as caught:
                os.write(writer, b"forged")
            assert caught.value.errno == errno.EPERM
        finally:
            os.close(writer)
        assert path.read_bytes() == b"trust me"
    assert not path.exists()
