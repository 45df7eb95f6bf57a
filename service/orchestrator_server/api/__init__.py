"""The gRPC surface: servicers, protobuf <-> domain conversion and error mapping."""
