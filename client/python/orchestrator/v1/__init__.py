"""Generated protobuf and gRPC stubs for orchestrator.v1 (make gen; do not edit)."""
