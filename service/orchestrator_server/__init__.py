"""The agent orchestration service: a grpc.aio server around a gRPC-free orchestrator core.

Layout: `core/` (agents, runs, memory; no gRPC), `store/` (storage interface and SQLite),
`models/` (model providers and the development model server), `api/` (servicers,
protobuf <-> domain conversion, error mapping), `server.py` (composition root),
`config.py` (settings) and `cli.py` (the `orchestrator` console script).
"""
