"""Rules hot reload: the rules file changes, the daemon runs the new rules within seconds.

Kubernetes updates a mounted ConfigMap by writing the new files into a fresh timestamped folder
and renaming a `..data_tmp` symlink over `..data` (the kubelet's atomic writer); the visible
`rules.yaml` is a symlink through `..data` and never sees a write of its own. So the folder that
holds the visible name is watched (the file source's `ChangeWatcher`: inotify on the folder, which
reports the rename, with a check every `poll_interval` seconds as the fallback), and what decides
is the SHA-256 of the content read through the visible name: any event only says "look again".
SIGHUP and `POST /-/reload` (with `--enable-reload-endpoint`) ask for the same check.

An invalid or unreadable file keeps the running rules: its problems are logged as `check` prints
them (file, line, rule) and counted (`rules_reloads_total{result="failure"}`), once per content.
Loading and swapping run synchronously on the event loop, between two blocks: a block is always
processed with one rule set. Transition state carries over for the trackers whose tracking did
not change (`sidecar.core.rules.tracking`); the others' is dropped and logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from sidecar.core.pipeline import Processor
from sidecar.core.rules import RulesError, RuleSet, RulesProblem, compile_rules, parse_rules
from sidecar.core.rules.load import read_rules_file
from sidecar.core.rules.tracking import changed_trackers, meanings
from sidecar.core.settings import FileSettings, ReloadSettings, WatchMode
from sidecar.model import ReloadResult
from sidecar.runtime.metrics import Metrics
from sidecar.sources.watch import Changes, ChangeWatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What one reload did, as `POST /-/reload` answers it."""

    result: ReloadResult
    #: The SHA-256 of the rules that run after it.
    digest: str
    problems: tuple[str, ...] = ()
    #: Trackers whose state was dropped.
    dropped: tuple[str, ...] = field(default=())


def read_rules(path: str) -> tuple[str, RuleSet]:
    """The SHA-256 of `path`'s content and the rules it holds, from one read.

    Raises:
        RulesError: unreadable, larger than a ConfigMap holds, not UTF-8, or invalid (its
            problems with their lines and rules).
    """
    data = read_rules_file(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RulesError([RulesProblem(path, 1, None, f"cannot read: {error}")]) from error
    return hashlib.sha256(data).hexdigest(), compile_rules(parse_rules(text, path), os.environ)


class RulesReloader:
    """Keeps `processor.rules` equal to the valid content of the rules file at `path`."""

    def __init__(
        self,
        path: str,
        processor: Processor,
        metrics: Metrics,
        settings: ReloadSettings,
        *,
        watch: WatchMode = "auto",
    ) -> None:
        self.path = path
        self.processor = processor
        self.metrics = metrics
        self.settings = settings
        self.watch = watch
        #: The SHA-256 of the rules that run; "" until `start`.
        self.digest = ""
        #: The digest of the last content refused, so that an invalid file is reported once, not
        #: at every check, until it changes again.
        self._refused = ""

    def start(self) -> None:
        """Take the rules (and their digest) from one read of the file, so that `rules_info`
        names exactly what runs; when that read fails the rules given at start keep running."""
        try:
            digest, rules = read_rules(self.path)
        except RulesError as error:
            log.warning("rules changed while starting; keeping the first ones: %s", error)
            digest, rules = "", self.processor.rules
        self._swap(digest, rules)

    def reload(self, asked: bool) -> ReloadOutcome:
        """Check the file now; run its rules if they changed and are valid.

        `asked` (SIGHUP, `POST /-/reload`) always counts a result; a watcher's check counts only
        a change, and reports a refused content once.
        """
        if self._unchanged():
            self._refused = ""  # back to what runs: a later refusal is news again
            if asked:
                self.metrics.rules_reloads.labels("unchanged").inc()
            return ReloadOutcome("unchanged", self.digest)
        try:
            digest, rules = read_rules(self.path)
        except RulesError as error:
            failed = hashlib.sha256(str(error).encode()).hexdigest()
            if not asked and failed == self._refused:
                return ReloadOutcome("failure", self.digest, tuple(map(str, error.problems)))
            self._refused = failed
            return self._refuse(error)
        if digest == self.digest:
            self._refused = ""  # back to what runs: a later refusal is news again
            if asked:
                self.metrics.rules_reloads.labels("unchanged").inc()
            return ReloadOutcome("unchanged", digest)
        self._refused = ""
        dropped = self._swap(digest, rules)
        self.metrics.rules_reloads.labels("success").inc()
        log.info(
            "rules reloaded",
            extra={
                "file": self.path,
                "hash": digest[:16],
                "rules": len(rules.rules),
                "state_dropped_for": list(dropped),
            },
        )
        return ReloadOutcome("success", digest, dropped=dropped)

    def _unchanged(self) -> bool:
        """Whether the file holds the rules that run, by its hash alone: the check every
        `poll_interval` (and at each change in the rules' folder) then costs a read and a hash,
        not a YAML parse and a validation (about 1 ms of an otherwise idle daemon's CPU)."""
        try:
            return hashlib.sha256(read_rules_file(self.path)).hexdigest() == self.digest
        except RulesError:
            return False  # reported by the full read that follows

    def _refuse(self, error: RulesError) -> ReloadOutcome:
        """Keep the running rules; say why, as `check` does."""
        self.metrics.rules_reloads.labels("failure").inc()
        for problem in error.problems:
            log.error(
                "rules not reloaded: %s",
                problem,
                extra={"file": problem.file, "line": problem.line, "rule": problem.rule},
            )
        problems = tuple(str(problem) for problem in error.problems)
        return ReloadOutcome("failure", self.digest, problems)

    def _swap(self, digest: str, rules: RuleSet) -> tuple[str, ...]:
        """Run `rules` from the next block on; drop the state they no longer track the same way."""
        processor = self.processor
        changed = sorted(changed_trackers(processor.rules, rules))
        objects = processor.tracker.drop(changed)
        processor.tracker.meanings = meanings(rules)
        self.metrics.forget_states(changed)
        processor.rules = rules
        self.digest = digest
        self.metrics.show_rules(digest, len(rules.rules))
        if changed:
            log.info(
                "transition state dropped: the trackers' rules changed",
                extra={"trackers": changed, "objects": objects},
            )
        return tuple(changed)

    async def run(self) -> None:
        """Check the file whenever its folder changes, and every `poll_interval` seconds."""
        interval = self.settings.poll_interval
        watcher = ChangeWatcher(
            FileSettings(
                paths=(self.path,),
                watch=self.watch,
                poll_interval=interval,
                inotify_rescan_interval=interval,
            ),
            _look_again,
        )
        try:
            watcher.start()
        except RuntimeError as error:
            log.warning("rules are checked every %s s: %s", interval, error)
            poll = FileSettings(paths=(self.path,), watch="poll", poll_interval=interval)
            watcher = ChangeWatcher(poll, _look_again)
            watcher.start()
        try:
            while True:
                await watcher.wait()
                try:
                    self.reload(False)
                except Exception:
                    # A bug in loading must cost this reload, not the daemon and its rules.
                    log.exception("cannot reload the rules from %s", self.path)
                    self.metrics.rules_reloads.labels("failure").inc()
        finally:
            watcher.stop()

    def answer(self) -> tuple[int, dict[str, Any]]:
        """`POST /-/reload` (on the event loop): check now; 200 with the digest that runs, 422
        with the problems."""
        outcome = self.reload(True)
        body = {
            "result": outcome.result,
            "hash": outcome.digest,
            "problems": list(outcome.problems),
            "state_dropped_for": list(outcome.dropped),
        }
        return (422 if outcome.result == "failure" else 200), body


def _look_again(_: Changes) -> None:
    """What changed does not matter: any change in the folder means "hash the file again"."""
