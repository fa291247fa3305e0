"""attestation.tdx.pcs: fetching against a local stand-in for Intel PCS/PCCS (no network).

The stand-in (tests/attestation/tdx/fake_pcs.py) serves the real Intel-signed responses in the
vector folders byte for byte, with PCS's paths and URL-encoded issuer-chain headers.
"""

from __future__ import annotations

import socket
from datetime import datetime

import pytest

from attestation.errors import UsageError
from attestation.tdx.abi import parse_pem_chain, parse_quote
from attestation.tdx.collateral import collateral_for_quote, load_collateral, write_cache
from attestation.tdx.pcs import CollateralFetchError, CollateralService, fetch_collateral
from attestation.tdx.verify import VerifyOptions, verify_quote
from tests.attestation.tdx import fake_pcs

TINFOIL_FMSPC = "90c06f000000"


def _pcs(url: str) -> CollateralService:
    return CollateralService.pcs(url, root_ca_crl_url=url + fake_pcs.ROOT_CA_CRL_PATH, timeout=5)


def test_fetch_from_pcs_then_verify_offline_from_the_cache(vector, tmp_path):
    routes = fake_pcs.routes_from_folder(vector("tdx/tinfoil_v4_agpl/collateral"), TINFOIL_FMSPC)
    with fake_pcs.serve(routes) as url:
        fetched = fetch_collateral(TINFOIL_FMSPC, service=_pcs(url))
    assert routes.requests == [
        "/tdx/certification/v4/tcb?fmspc=90C06F000000",
        "/tdx/certification/v4/qe/identity",
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
        fake_pcs.ROOT_CA_CRL_PATH,
    ]
    write_cache(tmp_path, fetched)
    # The server is gone; verification reads only the cache.
    quote = parse_quote(vector("tdx/tinfoil_v4_agpl/quote.bin").read_bytes())
    collateral = collateral_for_quote(tmp_path, quote)
    now = datetime.fromisoformat("2026-02-01T00:00:00Z")
    verified = verify_quote(quote, VerifyOptions(collateral=collateral, now=now))
    assert verified.tcb_status == "UpToDate"


def test_fetch_from_a_pccs_with_hex_root_crl_and_old_header(vector):
    folder = vector("tdx/gotdxguest_v4_spr")
    routes = fake_pcs.routes_from_folder(
        folder, "50806f000000", pccs=True, tcb_info_chain_header="SGX-TCB-Info-Issuer-Chain"
    )
    with fake_pcs.serve(routes) as url:
        # A PCCS URL given with its API path is normalized to the base.
        fetched = fetch_collateral(
            "50806F000000", service=CollateralService.pccs(url + "/sgx/certification/v4")
        )
    assert routes.requests[-1] == "/sgx/certification/v4/rootcacrl"
    expected = load_collateral(folder, fmspc="50806f000000")
    for name in ("tcb_info", "tcb_info_signature", "qe_identity", "qe_identity_signature"):
        assert getattr(fetched, name) == getattr(expected, name)
    assert (fetched.pck_crl, fetched.root_ca_crl) == (expected.pck_crl, expected.root_ca_crl)
    for name in ("tcb_info_issuer_chain", "qe_identity_issuer_chain", "pck_crl_issuer_chain"):
        # A header value loses the PEM's final line break; the certificates are the same.
        ours = parse_pem_chain(getattr(fetched, name).encode(), check=name, count=2)
        assert ours == parse_pem_chain(getattr(expected, name).encode(), check=name, count=2)


def test_processor_ca_crl(vector):
    routes = fake_pcs.routes_from_folder(vector("tdx/tinfoil_v4_agpl/collateral"), TINFOIL_FMSPC)
    with fake_pcs.serve(routes) as url:
        fetched = fetch_collateral(TINFOIL_FMSPC, ca="processor", service=_pcs(url))
    assert fetched.pck_crl_ca == "processor"


def test_unknown_platform_is_an_http_error(vector):
    routes = fake_pcs.routes_from_folder(vector("tdx/tinfoil_v4_agpl/collateral"), TINFOIL_FMSPC)
    with fake_pcs.serve(routes) as url, pytest.raises(CollateralFetchError) as info:
        fetch_collateral("b0c06f000000", service=_pcs(url))
    assert info.value.check == "collateral.fetch"
    assert "HTTP 404" in info.value.message()


def test_missing_issuer_chain_header(vector):
    routes = fake_pcs.routes_from_folder(vector("tdx/tinfoil_v4_agpl/collateral"), TINFOIL_FMSPC)
    path = "/tdx/certification/v4/qe/identity"
    _, body, _ = routes.routes[path]
    routes.add(path, body, {})
    with fake_pcs.serve(routes) as url, pytest.raises(CollateralFetchError) as info:
        fetch_collateral(TINFOIL_FMSPC, service=_pcs(url))
    assert info.value.check == "collateral.fetch.header"
    assert info.value.expected == "SGX-Enclave-Identity-Issuer-Chain"


def test_answer_for_another_platform_is_refused(vector):
    folder = vector("tdx/tinfoil_v4_agpl/collateral")
    routes = fake_pcs.routes_from_folder(folder, TINFOIL_FMSPC)
    other = fake_pcs.routes_from_folder(folder, "00a06d080000")
    routes.routes["/tdx/certification/v4/tcb?fmspc=90C06F000000"] = other.routes[
        "/tdx/certification/v4/tcb?fmspc=00A06D080000"
    ]
    with fake_pcs.serve(routes) as url, pytest.raises(CollateralFetchError) as info:
        fetch_collateral(TINFOIL_FMSPC, service=_pcs(url))
    assert info.value.check == "collateral.fmspc"
    assert info.value.actual == "00a06d080000"


def test_unreachable_service():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens
    service = CollateralService.pcs(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(CollateralFetchError) as info:
        fetch_collateral(TINFOIL_FMSPC, service=service)
    assert f"127.0.0.1:{port}" in info.value.message()


@pytest.mark.parametrize("fmspc", ["90c06f", "90c06f00000g", ""])
def test_bad_fmspc(fmspc):
    with pytest.raises(UsageError):
        fetch_collateral(fmspc, service=CollateralService.pcs("http://127.0.0.1:9"))


def test_non_http_url_is_refused():
    with pytest.raises(UsageError):
        CollateralService.pccs("file:///etc")
