"""Method handlers for OrchestratorService built from its descriptor: tolerant request
parsing, malformed-request rejection and error mapping, once for every RPC.

grpc's generated registration parses requests with `FromString`; bytes that are not a
valid message then fail inside grpc and reach the client as a bare INTERNAL. Here a
request that does not parse becomes a `MalformedRequest` marker instead, and the wrapper
of every method turns it into INVALID_ARGUMENT with reason MALFORMED_REQUEST, like any
other bad input. The same wrappers map every exception a servicer raises to a rich status
(`error_mapping.abort`), so servicer methods only parse, call the core and convert.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import grpc
from google.protobuf import message as pb_message
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from ..core.errors import InvalidArgumentError, Reason, ResourceExhaustedError
from ..tracing import OtelTracer
from .access_gate import AccessGate, CallAborted
from .error_mapping import abort
from .rpc_tracing import Context, StreamBehaviour, UnaryBehaviour, traced_stream, traced_unary


class MalformedRequest:
    """Stands in for a request message whose bytes did not parse."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def checked(request: Any) -> Any:
    """The request, or MALFORMED_REQUEST if its bytes did not parse."""
    if isinstance(request, MalformedRequest):
        raise InvalidArgumentError(
            f"the request is not a valid {request.type_name} message",
            reason=Reason.MALFORMED_REQUEST,
            metadata={"message_type": request.type_name},
        )
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    async for request in requests:
        yield checked(request)


def _tolerant_parser(cls: type[pb_message.Message]) -> Callable[[bytes], Any]:
    name = cls.DESCRIPTOR.full_name

    def parse(data: bytes) -> pb_message.Message | MalformedRequest:
        try:
            return cls.FromString(data)
        except pb_message.DecodeError:
            return MalformedRequest(name)

    return parse


def unary_response(
    behaviour: UnaryBehaviour, method: str, client_streaming: bool, gate: AccessGate, max_bytes: int
) -> UnaryBehaviour:
    """A unary-response method behind the access gate, whose errors become rich statuses,
    and whose response is measured before it is sent: over the transport's limit it would
    leave as a bare RESOURCE_EXHAUSTED (and an ERROR in the log), so it becomes
    RESPONSE_TOO_LARGE."""

    async def handle(request: Any, context: Context) -> Any:
        admitted = False
        try:
            request = _checked_stream(request) if client_streaming else checked(request)
            await gate.admit(method, request, context)
            admitted = True
            response = await behaviour(request, context)
            size = response.ByteSize()
            if size > max_bytes:
                raise ResourceExhaustedError(
                    f"the response would be {size} bytes; the server sends at most {max_bytes}",
                    reason=Reason.RESPONSE_TOO_LARGE,
                    metadata={"size": str(size), "limit": str(max_bytes)},
                )
        except grpc.aio.AbortError:
            # context.abort() raises this on purpose; it carries the status.
            if admitted:
                await gate.audit(method, request, CallAborted(context.code()))
            raise
        except Exception as error:
            if admitted:
                await gate.audit(method, request, error)
            await abort(context, error)
        await gate.audit(method, request, None)
        return response

    return handle


def stream_response(
    behaviour: StreamBehaviour, method: str, client_streaming: bool, gate: AccessGate
) -> StreamBehaviour:
    """A server-streaming method behind the access gate, whose errors become rich
    statuses, also after some responses were sent."""

    async def handle(request: Any, context: Context) -> AsyncGenerator[Any, None]:
        admitted = False
        try:
            request = _checked_stream(request) if client_streaming else checked(request)
            await gate.admit(method, request, context)
            admitted = True
            async with aclosing(behaviour(request, context)) as items:
                async for response in items:
                    yield response
        except grpc.aio.AbortError:
            if admitted:
                await gate.audit(method, request, CallAborted(context.code()))
            raise
        except asyncio.CancelledError as cancelled:
            if admitted:
                await asyncio.shield(gate.audit(method, request, cancelled))
            raise
        except Exception as error:
            if admitted:
                await gate.audit(method, request, error)
            await abort(context, error)
        await gate.audit(method, request, None)

    return handle


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _method_handler(
    method: MethodDescriptor,
    servicer: object,
    gate: AccessGate,
    max_bytes: int,
    tracer: OtelTracer | None,
) -> grpc.RpcMethodHandler[Any, Any]:
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    behaviour = getattr(servicer, method.name)
    streaming = (method.client_streaming, method.server_streaming)
    full_method = f"{method.containing_service.full_name}/{method.name}"
    handle: UnaryBehaviour | StreamBehaviour
    if method.server_streaming:
        handle = stream_response(behaviour, method.name, method.client_streaming, gate)
        if tracer is not None:
            handle = traced_stream(handle, full_method, tracer)
    else:
        handle = unary_response(behaviour, method.name, method.client_streaming, gate, max_bytes)
        if tracer is not None:
            handle = traced_unary(handle, full_method, tracer)
    factory: Callable[..., grpc.RpcMethodHandler[Any, Any]] = _FACTORIES[streaming]
    return factory(
        handle,
        request_deserializer=_tolerant_parser(request_cls),
        response_serializer=response_cls.SerializeToString,
    )


def generic_handler(
    service: ServiceDescriptor,
    servicer: object,
    gate: AccessGate,
    max_response_bytes: int,
    tracer: OtelTracer | None = None,
) -> grpc.GenericRpcHandler:
    """A handler for every method of `service`, served by the same-named servicer method
    once the access gate admits the call (inside a server span when tracing is on)."""
    handlers = {
        method.name: _method_handler(method, servicer, gate, max_response_bytes, tracer)
        for method in service.methods
    }
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
