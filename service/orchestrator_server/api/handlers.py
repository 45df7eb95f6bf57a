"""Method handlers for OrchestratorService built from its descriptor, with tolerant
request parsing.

grpc's generated registration parses requests with `FromString`; bytes that are not a
valid message then fail inside grpc and reach the client as a bare INTERNAL. Here a
request that does not parse becomes a `MalformedRequest` marker instead, which the
handlers turn into INVALID_ARGUMENT with reason MALFORMED_REQUEST, like any other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message as pb_message
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from ..core.errors import InvalidArgumentError


class MalformedRequest:
    """Stands in for a request message whose bytes did not parse."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def malformed_error(request: MalformedRequest) -> InvalidArgumentError:
    """The error reported for a request that did not parse."""
    return InvalidArgumentError(
        f"the request is not a valid {request.type_name} message",
        reason="MALFORMED_REQUEST",
        metadata={"message_type": request.type_name},
    )


def _tolerant_parser(cls: type[pb_message.Message]) -> Callable[[bytes], Any]:
    name = cls.DESCRIPTOR.full_name

    def parse(data: bytes) -> pb_message.Message | MalformedRequest:
        try:
            return cls.FromString(data)
        except pb_message.DecodeError:
            return MalformedRequest(name)

    return parse


def generic_handler(service: ServiceDescriptor, servicer: object) -> grpc.GenericRpcHandler:
    """A handler for every method of `service`, served by the same-named servicer method."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        behaviour = getattr(servicer, method.name)
        kwargs: dict[str, Any] = {
            "request_deserializer": _tolerant_parser(request_cls),
            "response_serializer": response_cls.SerializeToString,
        }
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(behaviour, **kwargs)
        elif method.client_streaming:
            handlers[method.name] = grpc.stream_unary_rpc_method_handler(behaviour, **kwargs)
        elif method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(behaviour, **kwargs)
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(behaviour, **kwargs)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
