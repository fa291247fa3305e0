"""Generated protobuf and gRPC code of tcme.v1 (scripts/gen_proto.py writes it; never edit)."""
