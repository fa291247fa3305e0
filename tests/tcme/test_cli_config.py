"""``--config FILE`` of ``host serve`` and ``enclave serve``: flags override, errors exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcme.cli import EXIT_USAGE, build_parser, main
from tcme.cli.config import apply_config


def parsed(argv: list[str]):
    args = build_parser().parse_args(argv)
    apply_config(args, argv)
    return args


def test_file_fills_options_and_flags_win(tmp_path):
    config = tmp_path / "host.toml"
    config.write_text(
        'listen = "127.0.0.1:7100"\n'
        'enclave = "unix:/run/tcme/enclave.sock"\n'
        "max-message-bytes = 1048576\n"
        "workers = 8\n"
        'collateral_dir = "cache"\n'
    )
    args = parsed(["host", "serve", "--config", str(config), "--workers", "4"])
    # --enclave is repeatable (a fleet): one value in the file is a list of one.
    assert args.listen == "127.0.0.1:7100" and args.enclave == ["unix:/run/tcme/enclave.sock"]
    assert args.max_message_bytes == 1048576
    assert args.workers == 4  # the flag wins
    assert args.collateral_dir == tmp_path / "cache"  # relative to the file
    assert args.grace == 5.0  # neither: the default


def test_enclave_serve_file_with_a_switch_and_a_list(tmp_path):
    config = tmp_path / "enclave.toml"
    config.write_text(
        'listen = "127.0.0.1:0"\nmodel = "/m/model.gguf"\nsignature = "/m/model.sig"\n'
        'certificate_chain = ["root.pem", "/etc/ca.pem"]\nsimulated = true\nn_ctx = 4096\n'
    )
    args = parsed(["enclave", "serve", "--config", str(config)])
    assert args.simulated is True and args.n_ctx == 4096
    assert args.certificate_chain == [tmp_path / "root.pem", Path("/etc/ca.pem")]
    assert args.model == Path("/m/model.gguf")


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ('listen = "a:1"\nenclave = "b:2"\nworkerz = 3\n', "config.key"),
        ('listen = "a:1"\nenclave = "b:2"\nworkers = "many"\n', "config.type"),
        ('listen = "a:1"\nenclave = "b:2"\nworkers = 2.5\n', "config.type"),
        ('listen = "a:1"\nenclave = [["b:2"], "c:3"]\n', "config.type"),
        ('listen = "a:1"\n', "config.required"),
        ("listen = \n", "config.file"),
    ],
)
def test_bad_config_is_a_usage_error_fail(tmp_path, capsys, text, check):
    config = tmp_path / "host.toml"
    config.write_text(text)
    assert main(["host", "serve", "--config", str(config)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"error: {check}" in err and "Traceback" not in err


def test_missing_required_without_config_fail(capsys):
    assert main(["enclave", "serve", "--listen", "127.0.0.1:0"]) == EXIT_USAGE
    assert "--model" in capsys.readouterr().err


def test_enclave_needs_exactly_one_trust_fail(tmp_path, capsys):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x")
    argv = ["enclave", "serve", "--listen", "127.0.0.1:0", "--model", str(model)]
    argv += ["--signature", str(tmp_path / "m.sig"), "--simulated"]
    assert main(argv) == EXIT_USAGE
    assert "exactly one of --public-key" in capsys.readouterr().err


def test_host_file_lists_a_fleet(tmp_path):
    config = tmp_path / "host.toml"
    config.write_text(
        'listen = "0.0.0.0:7100"\nenclave = ["10.0.0.5:7000", "10.0.0.6:7000"]\n'
        'enclave_dns = "tcme-enclave:7000"\nprobe_seconds = 0.5\n'
    )
    args = parsed(["host", "serve", "--config", str(config)])
    assert args.enclave == ["10.0.0.5:7000", "10.0.0.6:7000"]
    assert args.enclave_dns == ["tcme-enclave:7000"] and args.probe_seconds == 0.5
