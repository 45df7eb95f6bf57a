"""The orchestrator core: agents, runs and memory in plain Python, with no gRPC import."""
