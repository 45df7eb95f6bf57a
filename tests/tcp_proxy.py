"""A TCP proxy on loopback that a test controls: it forwards every connection to a
target and can cut all of them at once (both sides reset), as a balancer restart or a
flaky network would. Connections made after a cut are forwarded again."""

from __future__ import annotations

import asyncio
import contextlib
import socket


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target_host:target_port`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far
        self.cuts = 0
        # Per open connection, cleared by hold(): what the target sends on it waits in the
        # proxy (until a cut); connections made later flow.
        self._flowing: dict[asyncio.StreamWriter, asyncio.Event] = {}

    @property
    def address(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        flowing = self._flowing[writer] = asyncio.Event()
        flowing.set()
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer, flowing)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            self._pairs.discard(pair)
            self._flowing.pop(writer, None)
            for side in pair:
                side.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        flowing: asyncio.Event | None = None,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if flowing is not None:
                    await flowing.wait()
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.write_eof()

    def hold(self) -> None:
        """Stop passing on what the target sends on the open connections (their clients
        hear nothing more)."""
        for flowing in self._flowing.values():
            flowing.clear()

    def cut(self) -> None:
        """Reset every connection now (RST to both sides); what was held is dropped and
        new connections flow again."""
        self.cuts += 1
        for pair in list(self._pairs):
            for side in pair:
                sock = side.get_extra_info("socket")
                if sock is not None:
                    # SO_LINGER 0: close() sends RST instead of FIN.
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                side.transport.abort()
        self._pairs.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
