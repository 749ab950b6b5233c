"""What every test must leave as it found it, and how long it may take (a pytest plugin).

- No asyncio task still pending when an async test and its fixtures are done: pytest-asyncio
  cancels what is left when it closes the loop, silently, so a task a test forgot (a server's,
  a source's) would hide a shutdown that does not stop everything it started.
- No thread started by the test still alive, no child process still running (or left unreaped)
  once its fixtures are torn down: a leaked daemon thread or child keeps working (and using the
  two shared cores) under the tests that follow, and a leak in a test often is one in the code.
  Threads and children of session- and module-scoped fixtures (the control plane, a real node)
  are set up before the check looks and are not counted, nor are a control plane's servers
  that a test restarted (an outage).
- A garbage collection after each test, so that an object it left unclosed (a socket, a
  transport) warns, and fails, in that test rather than in whichever test the collector next
  happens to run in.
- A per-test timeout (pytest-timeout, `timeout` in pyproject.toml) for the tests that need no
  cluster; the tests against a control plane get `SLOW_TIMEOUT`, since their first test also
  starts the servers, and those that build an image or start a real node `BUILD_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.controlplane import ControlPlane

#: Seconds a test against a control plane may take, its fixtures' start included.
SLOW_TIMEOUT = 900
#: Seconds for a test whose fixture builds an image or starts a real node (`image`, `cluster`):
#: the first one waits for the build (at most 20 min uncached, see tests/test_image.py).
BUILD_TIMEOUT = 1800
_BUILDING_FIXTURES = frozenset({"image", "cluster"})
#: Seconds a thread or a child process may take to end after the test's teardown: a thread told
#: to stop (a `WorkerThread` closed, a server shut down) ends on its next wake-up, not at once.
_GRACE = 5.0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give the slow tests their longer timeout (last: the conftests mark them first)."""
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if _BUILDING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT))
        elif item.get_closest_marker("controlplane") or item.get_closest_marker("faults"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


def _children() -> dict[int, str]:
    """This process's child processes (zombies included), by pid, with their command name."""
    me = str(os.getpid())
    found: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        command, _, rest = text.rpartition(")")
        fields = rest.split()
        if len(fields) > 1 and fields[1] == me:
            found[int(stat.parent.name)] = command.partition("(")[2]
    return found


def _servers(request: pytest.FixtureRequest) -> set[int]:
    """The processes of the control planes the test uses (a fixture's, or a cluster's `cp`): a
    test that restarts one of their servers (an outage) leaves the new process to the fixture
    that owns the control plane."""
    # None when the test was interrupted before its fixtures were set up (Ctrl-C).
    values = (getattr(request.node, "funcargs", None) or {}).values()
    planes = [value for value in values if isinstance(value, ControlPlane)]
    planes += [v.cp for v in values if isinstance(getattr(v, "cp", None), ControlPlane)]
    return {pid for plane in planes for pid in plane.pids.values()}


@pytest.fixture(autouse=True)
def no_thread_or_process_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a thread or a child process behind."""
    threads = set(threading.enumerate())
    children = set(_children())
    yield
    gc.collect()
    end = time.monotonic() + _GRACE
    left = [thread for thread in threading.enumerate() if thread not in threads]
    for thread in left:
        thread.join(max(0.0, end - time.monotonic()))
    alive = [thread.name for thread in left if thread.is_alive()]
    children |= _servers(request)
    running = {pid: name for pid, name in _children().items() if pid not in children}
    while running and time.monotonic() < end:
        time.sleep(0.05)
        running = {pid: name for pid, name in _children().items() if pid in running}
    problems = []
    if alive:
        problems.append(f"threads still running: {sorted(alive)}")
    if running:
        problems.append(f"child processes not ended or not reaped: {running}")
    if problems:
        pytest.fail("the test left " + "; ".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def no_task_left(request: pytest.FixtureRequest, no_thread_or_process_left: None) -> None:
    """For an async test, the check below; after the one above, so that the event loop (and its
    default executor's threads) is closed before the threads are counted."""
    if request.node.get_closest_marker("asyncio") is not None:
        request.getfixturevalue("_no_pending_tasks")


@pytest.fixture
async def _no_pending_tasks() -> AsyncIterator[None]:
    """Fail an async test whose tasks are still pending after its other fixtures' teardown."""
    yield
    me = asyncio.current_task()
    for _ in range(10):  # a cancelled task needs a few loop turns to finish
        pending = [task for task in asyncio.all_tasks() if task is not me and not task.done()]
        if not pending:
            return
        await asyncio.sleep(0)
    names = sorted(task.get_name() for task in pending)
    for task in pending:
        task.cancel()
    pytest.fail(f"the test left asyncio tasks pending: {names}", pytrace=False)
