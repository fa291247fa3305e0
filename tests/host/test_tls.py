"""Optional TLS on the proxy's listener, with a self-signed certificate."""

from __future__ import annotations

import datetime
import ipaddress

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from host.server import TlsConfig

SERVICE = "tcmetest.Echo"


def _self_signed(common_name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_tls_listener_forwards(backend, make_proxy, tmp_path):
    cert, key = _self_signed("tcme-host-test")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    tls = TlsConfig.from_files(tmp_path / "cert.pem", tmp_path / "key.pem")
    _, port = make_proxy(f"127.0.0.1:{backend.port}", tls=tls)
    creds = grpc.ssl_channel_credentials(root_certificates=cert)
    with grpc.secure_channel(f"localhost:{port}", creds) as channel:
        assert channel.unary_unary(f"/{SERVICE}/Unary")(b"t", timeout=5) == b"echo:t"


def test_tls_listener_rejects_untrusted_certificate_fail(backend, make_proxy):
    cert, key = _self_signed("tcme-host-test")
    other_cert, _ = _self_signed("someone-else")
    _, port = make_proxy(f"127.0.0.1:{backend.port}", tls=TlsConfig(cert, key))
    creds = grpc.ssl_channel_credentials(root_certificates=other_cert)
    with (
        grpc.secure_channel(f"localhost:{port}", creds) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        channel.unary_unary(f"/{SERVICE}/Unary")(b"t", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert backend.received == []


def test_tls_listener_refuses_plaintext_fail(backend, make_proxy):
    cert, key = _self_signed("tcme-host-test")
    _, port = make_proxy(f"127.0.0.1:{backend.port}", tls=TlsConfig(cert, key))
    with (
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        channel.unary_unary(f"/{SERVICE}/Unary")(b"t", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert backend.received == []


def test_health_command_across_a_tls_mismatch_exits_3(backend, make_proxy, tmp_path, capsys):
    """Plaintext against a TLS listener, and TLS with a root that did not sign it: exit 3."""
    from tcme.cli import EXIT_OK, EXIT_UNREACHABLE, main

    cert, key = _self_signed("tcme-host-test")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    other, _ = _self_signed("someone-else")
    (tmp_path / "other.pem").write_bytes(other)
    tls = TlsConfig.from_files(tmp_path / "cert.pem", tmp_path / "key.pem")
    _, port = make_proxy(f"127.0.0.1:{backend.port}", tls=tls)
    target = f"localhost:{port}"
    assert main(["host", "health", target, "--tls-root", str(tmp_path / "cert.pem")]) == EXIT_OK
    assert main(["host", "health", target]) == EXIT_UNREACHABLE
    assert main(["host", "health", target, "--tls-root", str(tmp_path / "other.pem")]) == (
        EXIT_UNREACHABLE
    )
    err = capsys.readouterr().err
    assert "unreachable:" in err and "Traceback" not in err
