"""tcme: party-side client library and the ``tcme`` command line."""

__version__ = "0.1.0"
