"""Untrusted host proxy: the only listener parties reach.

It forwards every ``tcme.v1`` RPC byte for byte to the enclave, attaches
cached collateral to Attest responses, and serves health, reflection, TLS and
size limits. It never imports ``enclave`` and holds no key that opens party data.

    from host.server import create_server
    proxy, port = create_server("0.0.0.0:7100", "unix:/run/tcme/enclave.sock")
    proxy.start(); ...; proxy.stop(grace=5)
"""
