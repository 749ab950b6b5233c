"""The socket source: TCP and Unix stream sockets on which the controller writes log lines.

Lines are newline-framed, in any format the decoders know. Safe defaults, because whoever can
connect can make Events: TCP listens on loopback unless another address is explicitly allowed, the
number of connections is capped, a silent connection is closed after `idle_timeout`, a line that
does not complete within `line_timeout` closes its connection (a writer trickling one byte at a
time cannot hold a slot), and a line longer than the limit is skipped and counted. When every slot
is taken, a new connection closes the connection that has gone longest without a complete line,
if one is stalled (in a line, or silent for `line_timeout`); otherwise it is refused. Each outcome
is counted in `event_sidecar_connections_total{result}`.

Backpressure: a connection hands blocks to a bounded queue and awaits room there; while it waits
it does not read, the kernel's buffers fill and TCP flow control slows the writer. asyncio's
stream reader buffers at most about twice `limit` bytes before it pauses the transport, so memory
stays bounded per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.core.addresses import AddressError, is_loopback, parse_host_port
from sidecar.core.lines.scan import LineFramer
from sidecar.core.settings import SocketSettings
from sidecar.runtime.metrics import Metrics
from sidecar.sources import Block

log = logging.getLogger(__name__)
#: Owner and group may connect; see README (run the controller with the pod's fsGroup).
UNIX_SOCKET_MODE = 0o660


def parse_address(address: str, *, allow_remote: bool) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`) -> (host, port), enforcing the loopback rule."""
    host, port = parse_host_port(address)
    if not allow_remote and not is_loopback(host):
        raise AddressError(
            f"refusing to listen on {address!r}: not a loopback address; anyone who can "
            "connect can forge Events (allow it explicitly with --socket-allow-remote)"
        )
    return host, port


@dataclass(slots=True)
class _Connection:
    """What the slot keeper needs to know about one served connection."""

    writer: asyncio.StreamWriter
    #: When the connection last delivered a complete line (or was accepted).
    last_line_at: float = field(default_factory=time.monotonic)
    #: Waiting for the writer (not for queue room): closing it now loses no complete line.
    reading: bool = False
    #: A line has started and its newline has not arrived.
    in_line: bool = False
    #: Closed by us to make room: its partial line is not a line.
    evicted: bool = False


#: Every value of `event_sidecar_connections_total{result}`.
CONNECTION_RESULTS = ("accepted", "refused", "idle_timeout", "line_timeout", "evicted")


class SocketSource:
    """Listens on the configured sockets and puts the lines it receives on `blocks`."""

    def __init__(
        self,
        settings: SocketSettings,
        blocks: asyncio.Queue[Block],
        metrics: Metrics,
        *,
        name: str = "socket",
    ) -> None:
        self.settings = settings
        self.blocks = blocks
        self.metrics = metrics
        self.name = name
        self._servers: list[asyncio.Server] = []
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        #: Every address listened on, as bound (`host:port` with the real port; socket paths).
        self.addresses: list[str] = []
        self._addresses = [
            parse_address(address, allow_remote=settings.allow_remote) for address in settings.tcp
        ]
        for result in CONNECTION_RESULTS:
            metrics.connections.labels(name, result)

    @property
    def ready(self) -> bool:
        """Every listener is serving (`/readyz`)."""
        return bool(self._servers) and all(server.is_serving() for server in self._servers)

    async def start(self) -> None:
        """Bind every address.

        Raises:
            OSError: an address cannot be bound; the message names it.
        """
        limit = self.settings.read_size
        for host, port in self._addresses:
            try:
                server = await asyncio.start_server(self._accept, host, port, limit=limit)
            except OSError as error:
                raise OSError(error.errno, f"cannot listen on {host}:{port}: {error}") from error
            self._servers.append(server)
            for sock in server.sockets:
                bound = sock.getsockname()
                self.addresses.append(f"{bound[0]}:{bound[1]}")
        for path in self.settings.unix:
            _remove_stale_socket(path)
            try:
                server = await asyncio.start_unix_server(self._accept, path, limit=limit)
            except OSError as error:
                raise OSError(error.errno, f"cannot listen on {path}: {error}") from error
            # Connecting needs write permission on the socket: the controller beside us may run
            # as another user of the pod's group (fsGroup), and nobody else may write.
            os.chmod(path, UNIX_SOCKET_MODE)  # noqa: PTH101
            self._servers.append(server)
            self.addresses.append(path)
        log.info("listening", extra={"addresses": self.addresses})

    async def run(self) -> None:
        """Serve until cancelled; then close the listeners and the connections."""
        if not self._servers:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            for server in self._servers:
                server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.gather(*self._connections, return_exceptions=True)
            for path in self.settings.unix:
                with contextlib.suppress(OSError):
                    Path(path).unlink()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: served until EOF, a timeout, eviction or cancellation."""
        live = sum(not connection.evicted for connection in self._connections.values())
        if live >= self.settings.max_connections and not self._evict_stalled():
            self.metrics.connections.labels(self.name, "refused").inc()
            log.warning("too many connections; refusing one", extra={"source": self.name})
            writer.close()
            return
        self.metrics.connections.labels(self.name, "accepted").inc()
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(writer)
        self._connections[task] = connection
        try:
            await self._serve(reader, connection)
        except (ConnectionError, OSError) as error:
            log.info("connection lost: %s", error, extra={"source": self.name})
        finally:
            del self._connections[task]
            writer.close()

    def _evict_stalled(self) -> bool:
        """Close the stalled connection that has gone longest without a complete line, if any.

        Only a connection waiting for its writer is a candidate, so no complete line is lost;
        it is stalled when a line is in progress or it has been silent for `line_timeout`, so a
        controller that just wrote keeps its slot while a trickling writer does not.
        """
        now = time.monotonic()
        stalled = [
            connection
            for connection in self._connections.values()
            if connection.reading
            and not connection.evicted
            and (connection.in_line or now - connection.last_line_at >= self.settings.line_timeout)
        ]
        if not stalled:
            return False
        victim = min(stalled, key=lambda connection: connection.last_line_at)
        victim.evicted = True
        # Aborting the transport ends the victim's pending read with EOF (see `_serve`).
        victim.writer.transport.abort()
        self.metrics.connections.labels(self.name, "evicted").inc()
        log.warning(
            "all connections taken; closed the one stalled longest", extra={"source": self.name}
        )
        return True

    async def _serve(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        """Frame the stream into lines and hand blocks over, waiting while the queue is full."""
        settings = self.settings
        framer = LineFramer(settings.max_line_bytes)
        #: Seconds spent waiting for the writer since the current line started.
        line_wait = 0.0
        while True:
            in_line = connection.in_line
            timeout = settings.line_timeout - line_wait if in_line else settings.idle_timeout
            # A line kept back for a stack that may follow it waits at most the linger time.
            lingering = framer.lingering and settings.linger < timeout
            started = time.monotonic()
            connection.reading = True
            try:
                # Not `asyncio.wait_for`, which in Python 3.11 can swallow a cancellation.
                async with asyncio.timeout(settings.linger if lingering else timeout):
                    data = await reader.read(settings.read_size)
            except TimeoutError:
                if lingering:
                    if in_line:
                        line_wait += time.monotonic() - started
                    block = framer.release()
                    if block:
                        await self.blocks.put(Block(block, 0, time.monotonic()))
                    continue
                result = "line_timeout" if in_line else "idle_timeout"
                self.metrics.connections.labels(self.name, result).inc()
                await self._hand_over_held(framer)
                return
            except asyncio.CancelledError:
                # Shutting down: the lines kept back are complete; the queue is drained next.
                block = framer.flush(partial=False)
                if block:
                    with contextlib.suppress(asyncio.QueueFull):
                        self.blocks.put_nowait(Block(block, 0, time.monotonic()))
                raise
            finally:
                connection.reading = False
            read_at = time.monotonic()
            if not data:
                if connection.evicted:
                    # Its partial line was never finished: no line; the lines before it are.
                    await self._hand_over_held(framer)
                    return
                # The writer closed: its last line is complete even without a newline.
                block = framer.flush()
                if block:
                    await self.blocks.put(Block(block, 0, read_at))
                return
            if b"\n" in data:
                connection.last_line_at = read_at
                line_wait = 0.0
            elif in_line:
                line_wait += read_at - started
            connection.in_line = not data.endswith(b"\n")
            block = framer.feed(data)
            too_long = framer.take_too_long()
            if block or too_long:
                # Waiting here is the backpressure: this connection is not read meanwhile.
                await self.blocks.put(Block(block, too_long, read_at))

    async def _hand_over_held(self, framer: LineFramer) -> None:
        """A connection closed in mid-line: the complete lines kept back still go."""
        block = framer.flush(partial=False)
        if block:
            await self.blocks.put(Block(block, 0, time.monotonic()))


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file left by an earlier run; refuse to remove anything else."""
    try:
        info = os.stat(path)  # noqa: PTH116
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(f"cannot listen on {path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        Path(path).unlink()
    else:
        raise OSError(f"cannot listen on {path}: another process is listening on it")
    finally:
        probe.close()
