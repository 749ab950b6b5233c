"""The socket source: TCP and Unix stream sockets on which the controller writes log lines.

Lines are newline-framed, in any format the decoders know. Safe defaults, because whoever can
connect can make Events: TCP listens on loopback unless another address is explicitly allowed, the
number of connections is capped (extra ones are closed at once and counted), a silent connection
is closed after `idle_timeout`, and a line longer than the limit is skipped and counted.

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
from pathlib import Path

from sidecar.addresses import AddressError, is_loopback, parse_host_port
from sidecar.metrics import Metrics
from sidecar.scan import LineFramer
from sidecar.settings import SocketSettings
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
        self._connections: set[asyncio.Task[None]] = set()
        #: Every address listened on, as bound (`host:port` with the real port; socket paths).
        self.addresses: list[str] = []
        self._addresses = [
            parse_address(address, allow_remote=settings.allow_remote) for address in settings.tcp
        ]
        for result in ("accepted", "refused", "idle_timeout"):
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
        """One connection: refused over the limit, else served until EOF, idle or cancelled."""
        if len(self._connections) >= self.settings.max_connections:
            self.metrics.connections.labels(self.name, "refused").inc()
            log.warning("too many connections; refusing one", extra={"source": self.name})
            writer.close()
            return
        self.metrics.connections.labels(self.name, "accepted").inc()
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader)
        except (ConnectionError, OSError) as error:
            log.info("connection lost: %s", error, extra={"source": self.name})
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        """Frame the stream into lines and hand blocks over, waiting while the queue is full."""
        framer = LineFramer(self.settings.max_line_bytes)
        while True:
            try:
                data = await asyncio.wait_for(
                    reader.read(self.settings.read_size), self.settings.idle_timeout
                )
            except TimeoutError:
                self.metrics.connections.labels(self.name, "idle_timeout").inc()
                return
            read_at = time.monotonic()
            if not data:
                # The writer closed: its last line is complete even without a newline.
                block = framer.flush()
                if block:
                    await self.blocks.put(Block(block, 0, read_at))
                return
            block = framer.feed(data)
            too_long = framer.take_too_long()
            if block or too_long:
                # Waiting here is the backpressure: this connection is not read meanwhile.
                await self.blocks.put(Block(block, too_long, read_at))


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
