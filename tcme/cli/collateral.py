"""``tcme collateral``: the TDX collateral cache (fetch when online, import, show).

Only ``fetch`` uses the network. Verification (``tcme evidence verify --collateral``)
reads a cache folder or a dcap-qvl JSON file and never fetches.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from attestation.errors import UsageError
from tcme.cli.exitcodes import EXIT_OK, mark_contacted

if TYPE_CHECKING:
    from attestation.tdx.collateral import TdxCollateral

# `--ca` is checked by the collateral library (platform or processor), not by argparse
# `choices`, so that `tcme --help` does not load the TDX stack.
CA_HELP = "PCK CA: platform (default) or processor"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tcme collateral fetch|import|show``."""
    group = subparsers.add_parser(
        "collateral",
        help="TDX collateral cache: fetch from Intel PCS/PCCS, import, show",
        description=(
            "TDX quotes verify against Intel collateral (TCB Info, QE Identity, CRLs). "
            "`fetch` downloads it into a cache when there is a network; everything else "
            "reads only the cache, so verification works offline."
        ),
    )
    sub = group.add_subparsers(dest="collateral_command", metavar="COMMAND", required=True)

    fetch = sub.add_parser(
        "fetch",
        help="download collateral for one platform into the cache",
        description="Fetch TCB Info, QE Identity, PCK CRL and Root CA CRL for one FMSPC.",
    )
    which = fetch.add_mutually_exclusive_group(required=True)
    which.add_argument("--fmspc", metavar="HEX", help="platform FMSPC (12 hex digits)")
    which.add_argument(
        "--quote", type=Path, metavar="FILE", help="take FMSPC and PCK CA from this TDX quote"
    )
    fetch.add_argument(
        "--ca",
        default="platform",
        metavar="CA",
        help=f"{CA_HELP}, whose CRL to fetch with --fmspc (--quote knows it)",
    )
    service = fetch.add_mutually_exclusive_group()
    service.add_argument(
        "--pcs-url", metavar="URL", help="Intel PCS base URL (default: Intel's public PCS)"
    )
    service.add_argument("--pccs-url", metavar="URL", help="a PCCS base URL instead of Intel PCS")
    fetch.add_argument(
        "--root-ca-crl-url", metavar="URL", help="where to get the Intel SGX Root CA CRL"
    )
    fetch.add_argument(
        "--insecure-tls",
        action="store_true",
        help="PCCS only: skip TLS certificate checks (collateral is still Intel-signed)",
    )
    fetch.add_argument("--timeout", type=float, default=30.0, metavar="S", help="per request")
    fetch.add_argument("--cache", type=Path, required=True, metavar="DIR", help="cache folder")
    fetch.add_argument("--json", action="store_true", help="print the result as JSON")
    fetch.set_defaults(handler=_fetch)

    imp = sub.add_parser(
        "import",
        help="put a dcap-qvl collateral JSON (or a PCS-response folder) into the cache",
        description=(
            "Import a dcap-qvl QuoteCollateralV3 JSON file, or a folder of PCS responses "
            "(then --fmspc is required)."
        ),
    )
    imp.add_argument("source", type=Path, metavar="FILE_OR_DIR")
    imp.add_argument("--fmspc", metavar="HEX", help="platform to import from a folder")
    imp.add_argument("--ca", default="platform", metavar="CA", help=f"{CA_HELP}; folders only")
    imp.add_argument("--cache", type=Path, required=True, metavar="DIR", help="cache folder")
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    imp.set_defaults(handler=_import)

    show = sub.add_parser(
        "show",
        help="list cached collateral and its validity window",
        description="Show a cache, a collateral folder (with --fmspc) or a dcap-qvl JSON file.",
    )
    show.add_argument("source", type=Path, nargs="?", metavar="FILE_OR_DIR")
    show.add_argument("--cache", type=Path, metavar="DIR", help="cache folder")
    show.add_argument("--fmspc", metavar="HEX", help="only this platform")
    show.add_argument("--ca", default="platform", metavar="CA", help=f"{CA_HELP}; folders only")
    show.add_argument("--at", metavar="RFC3339", help="judge freshness at this time (default: now)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)


def _fetch(args: argparse.Namespace) -> int:
    from attestation.tdx.abi import parse_quote
    from attestation.tdx.collateral import quote_platform, write_cache
    from attestation.tdx.pcs import INTEL_PCS_URL, CollateralService, fetch_collateral

    if args.quote is not None:
        quote = parse_quote(_read(args.quote))
        fmspc, ca = quote_platform(quote)
    else:
        fmspc, ca = args.fmspc, _check_ca(args.ca)
    if args.pccs_url:
        service = CollateralService.pccs(
            args.pccs_url,
            root_ca_crl_url=args.root_ca_crl_url,
            timeout=args.timeout,
            insecure_tls=args.insecure_tls,
        )
    else:
        if args.insecure_tls:
            raise UsageError("collateral.fetch", "--insecure-tls applies to --pccs-url only")
        kwargs = {"root_ca_crl_url": args.root_ca_crl_url} if args.root_ca_crl_url else {}
        service = CollateralService.pcs(
            args.pcs_url or INTEL_PCS_URL, timeout=args.timeout, **kwargs
        )
    # From here the bytes are the service's: a malformed answer is a rejection (1), not bad
    # input (a bad --fmspc or --ca is still a UsageError, exit 2, raised before any request).
    mark_contacted()
    collateral = fetch_collateral(fmspc, ca=ca, service=service)
    folder = write_cache(args.cache, collateral)
    _report("fetched", collateral, folder, as_json=args.json)
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from attestation.tdx.collateral import TdxCollateral, load_collateral, write_cache

    if args.source.is_dir():
        if not args.fmspc:
            raise UsageError("collateral.import", "--fmspc is required to import a folder")
        collateral = load_collateral(args.source, fmspc=args.fmspc, ca=_check_ca(args.ca))
    elif args.source.is_file():
        collateral = TdxCollateral.from_json(_read(args.source), source=str(args.source))
    else:
        raise UsageError("collateral.import", f"{args.source}: no such file or directory")
    folder = write_cache(args.cache, collateral)
    _report("imported", collateral, folder, as_json=args.json)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from attestation.tdx.collateral import (
        CACHE_SUBDIR,
        TdxCollateral,
        list_cache,
        load_collateral,
    )
    from attestation.text import parse_time

    source = args.cache or args.source
    if source is None:
        raise UsageError("collateral.show", "name a cache (--cache DIR) or a FILE_OR_DIR")
    at = parse_time(args.at, "--at") if args.at else datetime.now(UTC)
    if source.is_dir() and (source / CACHE_SUBDIR).is_dir():
        entries = list_cache(source)
        if args.fmspc:
            entries = [e for e in entries if e.fmspc == args.fmspc.lower()]
    elif source.is_file():
        entries = [TdxCollateral.from_json(_read(source), source=str(source))]
    elif source.is_dir():
        if not args.fmspc:
            raise UsageError(
                "collateral.show", f"{source} is not a cache; name the platform with --fmspc"
            )
        entries = [load_collateral(source, fmspc=args.fmspc, ca=_check_ca(args.ca))]
    else:
        raise UsageError("collateral.show", f"{source}: no such file or directory")

    rows = []
    for entry in entries:
        row = entry.summary()
        start, end = entry.validity()
        row["state"] = (
            "fresh" if start <= at <= end else ("expired" if at > end else "not yet valid")
        )
        rows.append(row)
    if args.json:
        print(json.dumps({"at": _rfc3339(at), "tdx": rows}, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no TDX collateral in {source}")
        return EXIT_OK
    print(f"TDX collateral (freshness at {_rfc3339(at)}):")
    header = ("fmspc", "pck_ca", "tcb_eval", "valid_from", "valid_until", "state")
    table = [header] + [
        (
            r["fmspc"],
            r["pck_ca"],
            str(r["tcb_evaluation_data_number"]),
            r["valid_from"],
            r["valid_until"],
            r["state"],
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())
    return EXIT_OK


def _report(verb: str, collateral: TdxCollateral, folder: Path, *, as_json: bool) -> None:
    summary = collateral.summary()
    if as_json:
        print(json.dumps({"result": verb, "cache_folder": str(folder), **summary}, indent=2))
        return
    print(
        f"{verb} TDX collateral for fmspc {summary['fmspc']} (PCK CA {summary['pck_ca']}, "
        f"TCB evaluation #{summary['tcb_evaluation_data_number']}) into {folder}; "
        f"usable {summary['valid_from']} .. {summary['valid_until']}"
    )


def _check_ca(ca: str) -> str:
    from attestation.tdx.collateral import PCK_CAS

    if ca not in PCK_CAS:
        raise UsageError("collateral.ca", "unknown PCK CA", expected=", ".join(PCK_CAS), actual=ca)
    return ca


def _read(path: Path) -> bytes:
    from attestation.inputs import read_input

    return read_input(path, "collateral")


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
