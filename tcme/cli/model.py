"""``tcme model``: sign and verify models (OpenSSF model signing), make keys, fetch the default.

    tcme model keygen --out DIR
    tcme model sign MODEL --key PEM [--signature model.sig]
    tcme model sign MODEL --certificate CERT --key PEM [--certificate-chain PEM ...]
    tcme model sign MODEL --sigstore
    tcme model verify MODEL --signature SIG --public-key PEM
    tcme model verify MODEL --signature SIG --certificate-chain PEM [--certificate-chain PEM ...]
    tcme model verify MODEL --signature SIG --identity ID --issuer URL [--trust-config FILE]
    tcme model fetch [--out models]

MODEL is a file (e.g. a .gguf) or a directory. ``--ignore-paths`` (repeatable)
are relative to the model directory, or absolute inside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attestation.errors import UsageError
from tcme.cli.exitcodes import EXIT_OK

if TYPE_CHECKING:
    from tcme.model import ModelIdentity, ModelVerifier


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme model ...`` to the top-level parser."""
    group = subparsers.add_parser(
        "model",
        help="sign and verify models (OpenSSF model signing / Sigstore)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = group.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    _register_keygen(commands)
    _register_sign(commands)
    _register_verify(commands)
    _register_fetch(commands)


def _print_json(body: dict[str, Any]) -> None:
    print(json.dumps(body, indent=2, sort_keys=True))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL", help="model file or directory")
    parser.add_argument(
        "--ignore-paths",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="leave PATH out (relative to the model directory, or absolute); repeatable",
    )
    parser.add_argument(
        "--allow-symlinks", action="store_true", help="follow symbolic links instead of refusing"
    )
    parser.add_argument(
        "--no-ignore-git-paths",
        dest="ignore_git_paths",
        action="store_false",
        help="include .git, .gitattributes, .github, .gitignore (left out by default)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _register_keygen(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "keygen", help="write a fresh EC P-256 signing key pair (for tests and demos)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--force", action="store_true", help="replace existing key files")
    parser.add_argument("--json", action="store_true", help="print the key paths as JSON")
    parser.set_defaults(handler=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from tcme.model import generate_signing_key
    from tcme.model.keys import load_public_key, spki_fingerprint

    private_path, public_path = generate_signing_key(args.out, force=args.force)
    fingerprint = spki_fingerprint(load_public_key(public_path.read_bytes()))
    if args.json:
        _print_json(
            {
                "private_key": str(private_path),
                "public_key": str(public_path),
                "fingerprint": fingerprint,
            }
        )
        return EXIT_OK
    print(f"private key: {private_path}")
    print(f"public key:  {public_path}")
    print(f"fingerprint: {fingerprint}")
    return EXIT_OK


def _register_sign(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("sign", help="sign a model (writes a Sigstore bundle)")
    _common(parser)
    parser.add_argument(
        "--signature",
        type=Path,
        default=Path("model.sig"),
        metavar="PATH",
        help="where to write the signature (default: model.sig)",
    )
    parser.add_argument("--key", type=Path, metavar="PEM", help="EC private key (PEM)")
    parser.add_argument(
        "--certificate",
        type=Path,
        metavar="PEM",
        help="signing certificate for --key (certificate method)",
    )
    parser.add_argument(
        "--certificate-chain",
        type=Path,
        action="append",
        default=[],
        metavar="PEM",
        help="intermediate/root certificates to embed (certificate method); repeatable",
    )
    parser.add_argument(
        "--sigstore", action="store_true", help="keyless Sigstore signing (needs network + OIDC)"
    )
    parser.add_argument(
        "--identity-token", metavar="TOKEN", help="OIDC token for --sigstore (else ambient/browser)"
    )
    parser.add_argument(
        "--trust-config",
        type=Path,
        metavar="FILE",
        help="Sigstore ClientTrustConfig for --sigstore",
    )
    parser.add_argument("--staging", action="store_true", help="Sigstore staging (tests only)")
    parser.add_argument(
        "--shard-size",
        type=int,
        metavar="BYTES",
        help="shard serialization (parallel hashing); the official CLI verifies only files",
    )
    parser.add_argument("--json", action="store_true", help="print what was signed as JSON")
    parser.set_defaults(handler=_sign)


def _sign(args: argparse.Namespace) -> int:
    from tcme.model import sign_model

    if args.key is None and not args.sigstore:
        raise UsageError(
            "model.sign", "choose --key PEM, --certificate CERT --key PEM, or --sigstore"
        )
    sign_model(
        args.model,
        args.signature,
        private_key=args.key,
        signing_certificate=args.certificate,
        certificate_chain=args.certificate_chain,
        sigstore=args.sigstore,
        ignore_paths=args.ignore_paths,
        allow_symlinks=args.allow_symlinks,
        shard_size=args.shard_size,
        identity_token=args.identity_token,
        trust_config=args.trust_config,
        use_staging=args.staging,
        quiet=args.quiet,
        ignore_git_paths=args.ignore_git_paths,
    )
    if args.json:
        _print_json({"signed": True, "model": str(args.model), "signature": str(args.signature)})
    else:
        print(f"signed {args.model} -> {args.signature}")
    return EXIT_OK


def _register_verify(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "verify",
        help="verify a model against its signature (offline)",
        description="Exit 0: verified; 1: rejected (the reason names the check); 2: bad input.",
    )
    _common(parser)
    parser.add_argument("--signature", type=Path, required=True, metavar="SIG")
    trust = parser.add_argument_group("whom to trust (exactly one)")
    trust.add_argument("--public-key", type=Path, metavar="PEM", help="signer's EC public key")
    trust.add_argument(
        "--certificate-chain",
        type=Path,
        action="append",
        default=[],
        metavar="PEM",
        help="trusted CA certificate(s); repeatable",
    )
    trust.add_argument("--identity", metavar="ID", help="Sigstore signer identity (SAN)")
    trust.add_argument("--issuer", metavar="URL", help="Sigstore OIDC issuer of --identity")
    trust.add_argument(
        "--trust-config",
        type=Path,
        metavar="FILE",
        help="Sigstore ClientTrustConfig or trusted_root.json (default: the public-good root "
        "shipped in the sigstore package); never fetched online",
    )
    parser.add_argument("--json", action="store_true", help="print the identity as JSON")
    parser.set_defaults(handler=_verify)


def _verifier_from(args: argparse.Namespace) -> ModelVerifier:
    from tcme.model import ModelVerifier

    chosen = [
        name
        for name, given in (
            ("--public-key", args.public_key is not None),
            ("--certificate-chain", bool(args.certificate_chain)),
            ("--identity/--issuer", args.identity is not None or args.issuer is not None),
        )
        if given
    ]
    if len(chosen) != 1:
        raise UsageError(
            "model.verify",
            "name exactly one trust: --public-key, --certificate-chain, "
            "or --identity with --issuer",
            actual=", ".join(chosen) or "none",
        )
    if args.trust_config is not None and args.identity is None:
        raise UsageError("model.verify", "--trust-config applies to --identity/--issuer only")
    if args.public_key is not None:
        return ModelVerifier.public_key(args.public_key)
    if args.certificate_chain:
        return ModelVerifier.certificate_chain(args.certificate_chain)
    if not args.identity or not args.issuer:
        raise UsageError("model.verify", "Sigstore verification needs both --identity and --issuer")
    return ModelVerifier.sigstore(args.identity, args.issuer, args.trust_config)


def _verify(args: argparse.Namespace) -> int:
    from tcme.model import verify_model
    from tcme.model.verify import read_signature_path

    verifier = _verifier_from(args)
    identity = verify_model(
        args.model,
        read_signature_path(args.signature),
        verifier,
        ignore_paths=args.ignore_paths,
        allow_symlinks=args.allow_symlinks,
        quiet=args.quiet,
        ignore_git_paths=args.ignore_git_paths,
    )
    if args.json:
        print(json.dumps(identity.to_dict(), indent=2, sort_keys=True))
    else:
        _print_identity(args.model, identity)
    return EXIT_OK


def _print_identity(model: Path, identity: ModelIdentity) -> None:
    serialization = identity.serialization + (
        f" ({identity.shard_size} B shards)" if identity.shard_size else ""
    )
    print(f"verified: {model}")
    print(f"  root digest    sha256:{identity.root_digest}")
    print(f"  signer         {identity.signer}")
    if identity.issuer:
        print(f"  issuer         {identity.issuer}")
    print(f"  method         {identity.method}")
    print(f"  serialization  {serialization}, {identity.hash_algorithm}")
    print(f"  resources      {len(identity.files)}")
    for path, why in identity.accepted_ignore_paths.items():
        print(f"  also ignored   {path}: recorded by the signer; {why}")


def _register_fetch(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fetch", help="download the default model (SmolLM2-135M-Instruct Q4_1) and check it"
    )
    parser.add_argument("--out", type=Path, default=Path("models"), metavar="DIR")
    parser.add_argument("--json", action="store_true", help="print the model path as JSON")
    parser.set_defaults(handler=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    from tcme.model.fetch import fetch_default_model

    path = fetch_default_model(args.out, quiet=True)
    if args.json:
        _print_json({"model": str(path)})
    else:
        print(path)
    return EXIT_OK
