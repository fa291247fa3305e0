"""The party checks every limit it can before sealing and before any network call.

An input over the enclave's plaintext limit used to be sealed, sent, and
refused with its exact size shown to every party. Now the library refuses it
before sealing (``check_input``, the same size the enclave computes) and the
CLI exits 2 before it dials anyone.
"""

from __future__ import annotations

import pytest

from attestation.errors import TcmeError
from tcme.base.encoding import lp_join
from tcme.cli import EXIT_USAGE, main
from tcme.wire import InputError, PartyKeys, canonical_contract, parse_contract, seal_input
from tcme.wire.envelope import MAX_INPUT_PLAINTEXT, check_input, input_plaintext_size

FIELDS = 5  # five 16 KiB JSON inputs: each within its own bound, together over 64 KiB


@pytest.fixture(scope="module")
def keys():
    return {name: PartyKeys.generate() for name in ("alice", "bob")}


@pytest.fixture(scope="module")
def raw(keys):
    return canonical_contract(
        {
            "type": "tcme/v1/contract",
            "kind": "general",
            "parties": [keys[n].public_entry(n) for n in ("alice", "bob")],
            "inputs": [
                {
                    "party": "alice",
                    "name": f"part{i}",
                    "type": "json",
                    "max_bytes": 16384,
                    "schema": {"type": "string"},
                }
                for i in range(FIELDS)
            ],
            "decoding": {"temperature": 0, "seed": 1, "max_tokens": 8},
            "outputs": [
                {
                    "name": "verdict",
                    "type": "enum",
                    "values": ["yes", "no"],
                    "prompt": " ".join(f"{{part{i}}}" for i in range(FIELDS)),
                    "recipients": ["alice"],
                }
            ],
        }
    )


def _values(each: int) -> dict[str, str]:
    return {f"part{i}": "x" * each for i in range(FIELDS)}


def test_oversized_input_refused_before_sealing_fail(raw):
    contract = parse_contract(raw)
    with pytest.raises(InputError) as err:
        check_input(contract, "alice", _values(16000))
    assert err.value.check == "input.size"
    assert err.value.expected == f"<= {MAX_INPUT_PLAINTEXT} bytes"
    assert "xxxx" not in err.value.message()


def test_computed_size_is_the_sealed_size(raw, keys):
    from tcme.base.keys import ed25519_public_bytes
    from tcme.wire import parse_claims
    from tcme.wire.claims import build_claims

    enclave = PartyKeys.generate()  # only its public halves are used, as claims
    claims = parse_claims(
        build_claims(
            runtime="tcme test",
            tee="sev-snp",
            model_root_digest="00" * 32,
            model_hash_algorithm="sha256",
            model_signer="test",
            model_issuer=None,
            model_method="key",
            hpke_public_key=enclave.hpke_key.public.raw,
            signing_public_key=ed25519_public_bytes(enclave.signing_key),
        )
    )
    contract = parse_contract(raw)
    values = _values(12000)
    sealed = seal_input(
        claims=claims,
        contract=contract,
        session_id=b"\x07" * 16,
        party="alice",
        values=values,
        signing_key=keys["alice"],
    )
    assert input_plaintext_size(contract, "alice", values) == len(
        lp_join(sealed.payload, sealed.signature)
    )
    # ...and seal_input itself refuses what check_input refuses, before sealing.
    with pytest.raises(TcmeError, match=r"input\.size"):
        seal_input(
            claims=claims,
            contract=contract,
            session_id=b"\x07" * 16,
            party="alice",
            values=_values(16000),
            signing_key=keys["alice"],
        )


def test_cli_exits_2_before_any_network_call_fail(raw, keys, tmp_path, capsys):
    contract = tmp_path / "contract.json"
    contract.write_bytes(raw)
    key = tmp_path / "alice.key"
    keys["alice"].save(key)
    # Nothing listens on port 9 of this host: any dial would end in exit 3, not 2.
    args = ["session", "submit", "127.0.0.1:9", "--session", "ab" * 16, "--party", "alice",
            "--key", key, "--policy", tmp_path / "absent.toml", "--contract", contract]  # fmt: skip
    for name, value in _values(16000).items():
        args += ["--value", f'{name}="{value}"']
    code = main([str(a) for a in args])
    _out, err = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "input.size" in err and "xxxx" not in err
