"""The floors for following a log in Python: the least any asyncio reader of the source does.

    python -m bench.floors file LOG [--settle-time 0.1]
    python -m bench.floors pod-log URL [--settle-time 0.1]

`file` follows LOG from its start as `run` does by default: a quiet file is read at its first
write, and while writes keep coming they are read once per settle time (inotify's write events
are not listened to meanwhile). `pod-log` follows URL (a pod log API's
`.../log?follow=true&timestamps=true`) as `run --pod-log` does: after each chunk, the next read
waits the settle time, so that the chunks sent meanwhile are read together, and each line's
timestamp is taken off. Each complete line is decoded with orjson (a line that is not JSON too)
and counted. No rules, no transitions, no metrics, no checkpoint, no multi-line records, no
rotation, no reconnects: what any asyncio program that reads the source this way must at least
spend per wake-up (the event loop's turn, the inotify read and a pread, or aiohttp's read;
orjson per line). bench/wakeups.py runs them beside the daemon and its peers, so that the part of
the daemon's CPU and memory that Python, asyncio and aiohttp cost by themselves is measured, not
guessed. On SIGTERM a floor prints the lines it read and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

import aiohttp
import inotify_simple
import orjson

READ_SIZE = 256 * 1024


def decode(line: bytes) -> None:
    """What every reader does with a line at least: decode it (a text line is read all the same)."""
    with contextlib.suppress(orjson.JSONDecodeError):
        orjson.loads(line)


class Follower:
    """Reads what is appended to one file, a batch of writes per wake-up."""

    def __init__(self, path: str, settle: float) -> None:
        self.settle = settle
        self.fd = os.open(path, os.O_RDONLY)
        self.offset = 0
        self.partial = b""
        self.lines = 0
        self.inotify = inotify_simple.INotify()
        self.inotify.add_watch(path, inotify_simple.flags.MODIFY)
        self.written = asyncio.Event()

    def read(self) -> None:
        """Everything appended since the last read: complete lines decoded and counted."""
        while data := os.pread(self.fd, READ_SIZE, self.offset):
            self.offset += len(data)
            *complete, self.partial = (self.partial + data).split(b"\n")
            for line in complete:
                decode(line)
                self.lines += 1

    async def follow(self) -> None:
        loop = asyncio.get_running_loop()
        fileno = self.inotify.fileno()
        self.read()
        while True:
            loop.add_reader(fileno, self.written.set)
            await self.written.wait()
            loop.remove_reader(fileno)  # level-triggered: not while the writes settle
            self.written.clear()
            self.inotify.read(timeout=0)
            self.read()
            if self.settle > 0:
                await asyncio.sleep(self.settle)
                if self.inotify.read(timeout=0):
                    self.written.set()  # written meanwhile: read at once, then settle again


class Reader:
    """Reads one followed stream, a batch of chunks per wake-up."""

    def __init__(self, url: str, settle: float) -> None:
        self.url = url
        self.settle = settle
        self.partial = b""
        self.lines = 0

    def take(self, data: bytes) -> None:
        *complete, self.partial = (self.partial + data).split(b"\n")
        for line in complete:
            decode(line.partition(b" ")[2])  # after the kubelet's RFC 3339 timestamp
            self.lines += 1

    async def follow(self) -> None:
        async with aiohttp.ClientSession() as session, session.get(self.url) as response:
            response.raise_for_status()
            async for chunk in response.content.iter_any():
                self.take(chunk)
                if self.settle > 0:
                    await asyncio.sleep(self.settle)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", choices=("file", "pod-log"))
    parser.add_argument("where", help="the log file, or the pod log's URL")
    parser.add_argument("--settle-time", type=float, default=0.1)
    args = parser.parse_args()
    floor = (Follower if args.source == "file" else Reader)(args.where, args.settle_time)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    following = asyncio.create_task(floor.follow())
    await stopped.wait()
    following.cancel()
    print(floor.lines, file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
