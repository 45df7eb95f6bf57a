"""Conformance runner for the Python client (generated stubs in client/python, sync grpcio).

    python -m conformance.run_python --address 127.0.0.1:50051 [--prefix py] [--step NAME]

Prints `PASS step` / `FAIL step: why` per step of scenario.json; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import queue
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from conformance.scenario import SCENARIO, Runner, Status, StepFailed, Unary, emit, load
from orchestrator.v1 import orchestrator_service_pb2 as pb
from orchestrator.v1 import orchestrator_service_pb2_grpc as pb_grpc
from orchestrator.v1 import run_pb2

_CLOSE = object()


def status_of(error: grpc.RpcError) -> Status:
    """The canonical code name and ErrorInfo reason of a failed call."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    reason = ""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
    return Status(code.name, reason, message)


def to_json(message: Message) -> dict[str, Any]:
    """proto3 JSON (lowerCamelCase names, as every runner compares)."""
    return json_format.MessageToDict(message)


class GrpcStream:
    """A `Run` stream: requests from a queue, responses read by a thread into a queue."""

    def __init__(
        self, stub: pb_grpc.OrchestratorServiceStub, metadata: Mapping[str, str], timeout: float
    ) -> None:
        self._requests: queue.Queue[object] = queue.Queue()
        self._events: queue.Queue[dict[str, Any] | Status] = queue.Queue()
        self._call = stub.Run(
            self._request_iter(), metadata=tuple(metadata.items()), timeout=timeout * 3
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _request_iter(self) -> Iterator[run_pb2.RunRequest]:
        while True:
            item = self._requests.get()
            if item is _CLOSE:
                return
            assert isinstance(item, run_pb2.RunRequest)
            yield item

    def _read(self) -> None:
        try:
            for event in self._call:
                self._events.put(to_json(event))
        except grpc.RpcError as error:
            self._events.put(status_of(error))
        else:
            self._events.put(Status("OK"))

    def send(self, message: dict[str, Any]) -> None:
        self._requests.put(json_format.ParseDict(message, run_pb2.RunRequest()))

    def half_close(self) -> None:
        self._requests.put(_CLOSE)

    def next(self, timeout: float) -> dict[str, Any] | Status:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            raise StepFailed(f"no event within {timeout:g} s") from None

    def close(self) -> None:
        self._requests.put(_CLOSE)
        self._call.cancel()


class PythonTransport:
    """Calls the server through the generated Python stubs."""

    interactive = True

    def __init__(self, address: str) -> None:
        # Several replicas (a comma-separated list): the calls go to each in turn.
        if "," in address:
            options = [("grpc.lb_policy_name", "round_robin")]
            self.channel = grpc.insecure_channel(f"ipv4:{address}", options=options)
        else:
            self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.OrchestratorServiceStub(self.channel)

    def unary(
        self, rpc: str, request: dict[str, Any], metadata: Mapping[str, str], timeout: float
    ) -> Unary:
        request_type = pb.DESCRIPTOR.services_by_name["OrchestratorService"]
        method = request_type.methods_by_name[rpc]
        message_class: type[Message] = getattr(pb, method.input_type.name)
        call = getattr(self.stub, rpc)
        try:
            response = call(
                json_format.ParseDict(request, message_class()),
                metadata=tuple(metadata.items()),
                timeout=timeout,
            )
        except grpc.RpcError as error:
            return Unary(status_of(error))
        return Unary(Status("OK"), to_json(response))

    def stream(self, rpc: str, metadata: Mapping[str, str], timeout: float) -> GrpcStream:
        assert rpc == "Run", rpc
        return GrpcStream(self.stub, metadata, timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True, help="host:port, or several, comma-separated")
    parser.add_argument("--prefix", default="py")
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    parser.add_argument("--step", action="append", help="run only these steps")
    args = parser.parse_args()
    transport = PythonTransport(args.address)
    try:
        ok = Runner(load(args.scenario), transport, args.prefix, emit).run(
            set(args.step) if args.step else None
        )
    finally:
        transport.channel.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
