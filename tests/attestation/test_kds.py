"""AMD KDS client: URLs, caching, pacing, backoff and offline mode.

A local HTTP server (``collateral_server``) stands in for KDS and serves the
real certificates from the vectors folder; time is a fake clock so pacing and
backoff are observed without waiting.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.kds import KdsClient, KdsError, kds_hwid, tcb_query
from attestation.snp import _x509
from attestation.snp.abi import TcbVersion, parse_report


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _client(tmp_path, server, fake_time, **kwargs) -> KdsClient:
    return KdsClient(
        tmp_path / "kds",
        base_url=server.url,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        **kwargs,
    )


def _der(pem_or_der: bytes) -> bytes:
    return _x509.split_certificates(pem_or_der)[0]


@pytest.fixture
def milan(vector):
    """The go-sev-guest Milan report's chip and TCB, its VCEK (DER) and the KDS URL path."""
    report = parse_report(vector("snp/gosevguest_milan_v2/report.bin").read_bytes())
    vcek = vector("snp/gosevguest_milan_v2/vcek.der").read_bytes()
    path = f"/vcek/v1/Milan/{report.chip_id.hex()}?{tcb_query('Milan', report.reported_tcb)}"
    return report, vcek, path


def test_vcek_url_matches_the_one_go_sev_guest_documents(milan):
    _, _, path = milan
    assert path.startswith("/vcek/v1/Milan/3ac3fe21e13fb099")
    assert path.endswith("?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68")


def test_vcek_fetched_checked_and_cached(tmp_path, collateral_server, milan):
    report, vcek, path = milan
    collateral_server.serve(path, vcek)
    client = _client(tmp_path, collateral_server, FakeTime())

    assert client.vcek("milan", report.chip_id, report.reported_tcb) == vcek
    cached = client.vcek_path("Milan", report.chip_id, report.reported_tcb)
    assert cached.read_bytes() == vcek
    assert cached.name == "bl2-tee0-snp5-ucode68.der"
    # A second call is served from disk: no new request.
    assert client.vcek("Milan", report.chip_id, report.reported_tcb) == vcek
    assert collateral_server.requests == [path]


def test_turin_uses_8_byte_hwid_and_fmc_spl(tmp_path, collateral_server, vector):
    report = parse_report(vector("snp/ms_turin_v5/report.bin").read_bytes())
    vcek = _der(vector("snp/ms_turin_v5/vcek.pem").read_bytes())
    path = (
        f"/vcek/v1/Turin/{report.chip_id[:8].hex()}?fmcSPL=1&blSPL=1&teeSPL=1&snpSPL=4&ucodeSPL=81"
    )
    collateral_server.serve(path, vcek)
    client = _client(tmp_path, collateral_server, FakeTime())

    assert client.vcek("Turin", report.chip_id, report.reported_tcb) == vcek
    assert collateral_server.requests == [path]
    assert kds_hwid("Turin", report.chip_id) == report.chip_id[:8]


def test_cert_chains_per_product_and_key(tmp_path, collateral_server, vector):
    fake_time = FakeTime()
    client = _client(tmp_path, collateral_server, fake_time)
    for product in ("Milan", "Genoa", "Turin"):
        for key in ("vcek", "vlek"):
            body = vector(f"snp/amd_chains/{product.lower()}_{key}_cert_chain.pem").read_bytes()
            collateral_server.serve(f"/{key}/v1/{product}/cert_chain", body)
            assert client.cert_chain(product, key=key) == body
            assert client.chain_path(product, key=key).read_bytes() == body
    assert len(collateral_server.requests) == 6
    # Requests are paced: every one after the first waited for the interval.
    assert fake_time.sleeps == [pytest.approx(2.0)] * 5


def test_429_then_200_honours_retry_after(tmp_path, collateral_server, milan):
    report, vcek, path = milan
    collateral_server.script(path, [(429, {"Retry-After": "7"}, b"slow down")])
    collateral_server.serve(path, vcek)
    fake_time = FakeTime()
    client = _client(tmp_path, collateral_server, fake_time)

    assert client.vcek("Milan", report.chip_id, report.reported_tcb) == vcek
    assert collateral_server.requests == [path, path]
    assert 7.0 in fake_time.sleeps


def test_503_without_retry_after_backs_off_exponentially(tmp_path, collateral_server, milan):
    report, vcek, path = milan
    collateral_server.script(path, [(503, {}, b""), (503, {}, b""), (429, {}, b"")])
    collateral_server.serve(path, vcek)
    fake_time = FakeTime()
    client = _client(tmp_path, collateral_server, fake_time, min_interval_s=0.0)

    assert client.vcek("Milan", report.chip_id, report.reported_tcb) == vcek
    assert fake_time.sleeps == [2.0, 4.0, 8.0]
    assert client.requests_made == 4


def test_retry_after_past_the_budget_fails_clearly(tmp_path, collateral_server, milan):
    report, _, path = milan
    collateral_server.script(path, [(429, {"Retry-After": "3600"}, b"")])
    client = _client(tmp_path, collateral_server, FakeTime(), max_wait_s=60)
    with pytest.raises(KdsError, match="wait 3600s") as info:
        client.vcek("Milan", report.chip_id, report.reported_tcb)
    assert info.value.check == "kds.rate_limited"


def test_persistent_429_gives_up_after_max_attempts(tmp_path, collateral_server, milan):
    report, _, path = milan
    collateral_server.script(path, [(429, {"Retry-After": "1"}, b"")] * 10)
    client = _client(tmp_path, collateral_server, FakeTime(), max_attempts=3, min_interval_s=0)
    with pytest.raises(KdsError, match="after 3 attempts") as info:
        client.vcek("Milan", report.chip_id, report.reported_tcb)
    assert info.value.check == "kds.unavailable"
    assert len(collateral_server.requests) == 3
    assert not client.vcek_path("Milan", report.chip_id, report.reported_tcb).exists()


def test_not_found_is_not_retried(tmp_path, collateral_server, milan):
    report, _, _ = milan
    client = _client(tmp_path, collateral_server, FakeTime())
    with pytest.raises(KdsError, match="404") as info:
        client.vcek("Genoa", report.chip_id, report.reported_tcb)
    assert info.value.check == "kds.http"
    assert len(collateral_server.requests) == 1


def test_vcek_for_another_chip_is_rejected_and_not_cached_fail(
    tmp_path, collateral_server, milan, vector
):
    report, _, path = milan
    # KDS (or something in between) answers with a different chip's VCEK.
    collateral_server.serve(path, vector("snp/virtee_milan_v2/vcek.der").read_bytes())
    client = _client(tmp_path, collateral_server, FakeTime())
    with pytest.raises(KdsError, match="hwID") as info:
        client.vcek("Milan", report.chip_id, report.reported_tcb)
    assert info.value.check == "kds.response"
    assert not client.vcek_path("Milan", report.chip_id, report.reported_tcb).exists()


def test_vcek_with_other_tcb_is_rejected_fail(tmp_path, collateral_server, milan):
    report, vcek, _ = milan
    newer = TcbVersion.from_components(bootloader=3, tee=0, snp=8, microcode=115)
    path = f"/vcek/v1/Milan/{report.chip_id.hex()}?{tcb_query('Milan', newer)}"
    collateral_server.serve(path, vcek)  # the bl2/snp5 certificate under the bl3/snp8 URL
    client = _client(tmp_path, collateral_server, FakeTime())
    with pytest.raises(KdsError, match="SPL"):
        client.vcek("Milan", report.chip_id, newer)


def test_truncated_chain_is_rejected_fail(tmp_path, collateral_server, vector):
    chain = vector("snp/amd_chains/milan_vcek_cert_chain.pem").read_bytes()
    first_only = chain[: chain.index(b"-----END CERTIFICATE-----") + 26]
    collateral_server.serve("/vcek/v1/Milan/cert_chain", first_only)
    client = _client(tmp_path, collateral_server, FakeTime())
    with pytest.raises(KdsError, match="1 certificates"):
        client.cert_chain("Milan")


def test_crl_fetched_and_cached(tmp_path, collateral_server):
    # No AMD CRL is among the vectors; this one is made here and only tests transport.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test CRL issuer")])
    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    collateral_server.serve("/vcek/v1/Genoa/crl", crl)
    client = _client(tmp_path, collateral_server, FakeTime())
    assert client.crl("Genoa") == crl
    assert client.crl_path("Genoa").read_bytes() == crl
    collateral_server.serve("/vcek/v1/Milan/crl", b"<html>maintenance</html>")
    with pytest.raises(KdsError, match="not usable"):
        client.crl("Milan")


def test_offline_runs_from_prefilled_cache_with_server_stopped(
    tmp_path, collateral_server, milan, vector
):
    report, vcek, path = milan
    chain = vector("snp/amd_chains/milan_vcek_cert_chain.pem").read_bytes()
    collateral_server.serve(path, vcek)
    collateral_server.serve("/vcek/v1/Milan/cert_chain", chain)
    online = _client(tmp_path, collateral_server, FakeTime())
    online.vcek("Milan", report.chip_id, report.reported_tcb)
    online.cert_chain("Milan")
    collateral_server.stop()

    offline = KdsClient(tmp_path / "kds", base_url=collateral_server.url, offline=True)
    assert offline.vcek("Milan", report.chip_id, report.reported_tcb) == vcek
    assert offline.cert_chain("Milan") == chain
    assert offline.requests_made == 0


def test_offline_miss_names_the_missing_cache_file_fail(tmp_path, milan):
    report, _, _ = milan
    client = KdsClient(tmp_path / "kds", offline=True)
    expected = client.vcek_path("Milan", report.chip_id, report.reported_tcb)
    with pytest.raises(KdsError) as info:
        client.vcek("Milan", report.chip_id, report.reported_tcb)
    assert info.value.check == "kds.cache"
    assert str(expected) in info.value.message()
    assert client.requests_made == 0


def test_vlek_is_never_fetched_only_read_from_cache(tmp_path, vector):
    report = parse_report(vector("snp/trustee_milan_v3_vlek/report.bin").read_bytes())
    vlek = vector("snp/trustee_milan_v3_vlek/vlek.der").read_bytes()
    client = KdsClient(tmp_path / "kds", base_url="http://127.0.0.1:9")
    with pytest.raises(KdsError, match="hashstick"):
        client.vlek("Milan", report.reported_tcb)
    assert client.requests_made == 0
    path = client.vlek_path("Milan", report.reported_tcb)
    path.parent.mkdir(parents=True)
    path.write_bytes(vlek)
    assert client.vlek("Milan", report.reported_tcb) == vlek


def test_unknown_product_and_bad_hwid_fail():
    client = KdsClient(__import__("pathlib").Path("/nonexistent"), offline=True)
    tcb = TcbVersion.from_components(bootloader=1, tee=0, snp=1, microcode=1)
    with pytest.raises(KdsError, match="unknown SEV-SNP product"):
        client.vcek("Rome", bytes(64), tcb)
    with pytest.raises(KdsError, match="64-byte"):
        client.vcek("Milan", bytes(8), tcb)
    with pytest.raises(KdsError, match="FMC"):
        client.vcek("Turin", bytes(64), tcb)
