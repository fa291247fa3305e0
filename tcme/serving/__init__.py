"""What the enclave's and the host proxy's gRPC listeners share: limits, errors, reflection.

Both listeners face callers they cannot trust (the proxy: anyone on its port;
the enclave: the untrusted proxy). This package holds the pieces both use to
stay up under load and to answer bad requests the same way.
"""
