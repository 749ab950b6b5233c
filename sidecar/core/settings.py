"""The daemon's settings: grouped, frozen, each field saying its unit and why it has its default.

`event-sidecar run` fills these from flags and environment variables: each row of
`sidecar.cli.table` names the fields it sets and takes its default from them, so a default and its
reason are written only here. Tests build them directly. Nothing here reads the environment or
touches the disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sidecar.core.correlate import CorrelatorSettings
from sidecar.core.events.series import FINISH_SECONDS
from sidecar.core.labels import DEFAULT_MAX_VALUES
from sidecar.core.lines.scan import DEFAULT_LINGER, DEFAULT_MAX_LINE_BYTES
from sidecar.core.transitions import DEFAULT_MAX_KEYS
from sidecar.model import EventsApiChoice, RetrySettings

StartPosition = Literal["checkpoint", "end", "beginning"]
WatchMode = Literal["auto", "inotify", "poll"]


@dataclass(frozen=True, slots=True)
class FileSettings:
    """The file source: log files on the volume shared with the controller."""

    #: Paths or globs (`*`, `?`, `[...]` in the file name part), re-scanned for new files.
    paths: tuple[str, ...] = ()
    #: Where files are read from at a first start, when there is no checkpoint yet. `checkpoint`
    #: (the default) and `beginning`: from their beginning (the controller and the sidecar start
    #: together, so what was logged before the sidecar came up is news). `end`: from their end.
    #: Once a checkpoint exists, every restart resumes from it whatever this says (files it does
    #: not know are read from their beginning): remove the checkpoint to start afresh.
    start: StartPosition = "checkpoint"
    #: How changes are noticed. `auto` uses inotify when the `inotify_simple` package and the
    #: kernel allow it, else polling; both run the same scan, so they give the same results.
    watch: WatchMode = "auto"
    #: Seconds between scans when polling (Promtail and mtail use 250 ms: a quarter second of
    #: latency is invisible next to the apiserver's round trip, and a stat per file is cheap).
    poll_interval: float = 0.25
    #: Seconds between safety scans when inotify is on: catches what inotify cannot see (a glob
    #: whose directory appears later, an overflowed event queue).
    inotify_rescan_interval: float = 2.0
    #: Seconds, with inotify: after the writes to a file are handled, further writes wait this
    #: long before they are read, all at once. A controller that does not buffer its log writes
    #: once per line, and waking for each write cost far more than its line (0.2-1 ms of Python
    #: per wake-up); so N writes within this time cost one wake-up. It bounds the latency it adds
    #: (well under the apiserver's round trip and polling's 250 ms; twice this for a read's
    #: last line, kept back for a stack until the next settled read: `linger`); a file quiet for
    #: longer is read at its first write, without the wait. New, renamed and removed files never
    #: wait, and no write waits while a rotation is under way or a file is shorter than its
    #: fingerprint (`FileSource._may_settle`). 0 reads every write at once: the lowest latency
    #: (about 10 ms instead of up to 100), for about 10x the CPU at 1,000 one-line writes/s
    #: (BENCHMARKS.md, cost).
    settle_time: float = 0.1
    #: Bytes read from a file at once. Bounds the memory of one step and the time the event loop
    #: spends on one file before the others get a turn.
    read_size: int = 256 * 1024
    #: Bytes at the start of a file that identify it with its device and inode (Vector uses the
    #: first line or 256 bytes): enough to include the first line's timestamp, so that a reused
    #: inode is not mistaken for the old file.
    fingerprint_bytes: int = 256
    #: Seconds a renamed (rotated) file is still watched after its last growth, because the
    #: writer may write a few more lines to its old handle before it reopens (Fluent Bit: 5 s).
    rotate_wait: float = 5.0
    #: Bytes; longer lines are skipped and counted (Vector's 100 KiB): a runaway line must not
    #: exhaust memory, and no controller's structured log line is legitimately that long.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    #: Seconds a line that ended a read waits for a stack after it (a Python traceback, a Java
    #: stack trace) once the file has stopped growing: the writer may have written the line and
    #: not yet its stack, so the two are read apart. More bytes within it join the line at once;
    #: a line without a stack is handed over after it (`sidecar.core.lines.scan.DEFAULT_LINGER`).
    #: While writes settle, it waits for the settled read too, and when polling for the next
    #: poll (`FileSource._release_lingering`): released in between, it would cost a wake-up and
    #: a read per read of a steadily written file. The last line of a burst then waits up to two
    #: settle times, or two poll intervals.
    linger: float = DEFAULT_LINGER


@dataclass(frozen=True, slots=True)
class CheckpointSettings:
    """Where and how often file offsets and transition state are saved."""

    #: The checkpoint file; None puts it next to the first file path on the shared volume, so it
    #: survives a restart of the sidecar container (an `emptyDir` lives as long as the pod).
    path: str | None = None
    #: Least seconds between writes (when something changed); a large checkpoint waits longer,
    #: so that at most 64 KiB/s are written on average
    #: (`sidecar.daemon.checkpoint_writer.WRITE_BUDGET`). A restart re-reads what came after the
    #: last write; Event names derived from the lines make those re-reads harmless. Each write is
    #: two fsyncs and a rename, about a fifth of the daemon's CPU at 10-100 lines/s (BENCHMARKS.md,
    #: cost); 1 s keeps what a `kill -9` makes the next start read again (and emit again, though
    #: nothing is stored twice) to a second's worth.
    interval: float = 1.0


@dataclass(frozen=True, slots=True)
class SocketSettings:
    """The socket source: the controller writes its log lines to a local stream socket."""

    #: `host:port` addresses to listen on (TCP).
    tcp: tuple[str, ...] = ()
    #: Paths of Unix stream sockets to listen on.
    unix: tuple[str, ...] = ()
    #: Allow TCP addresses other than loopback. Off, because the controller is in the same pod
    #: and anyone who can reach an open port could forge Events.
    allow_remote: bool = False
    #: Connections at once; more are closed at once and counted. A controller needs one or two.
    max_connections: int = 16
    #: Seconds a connection may stay silent before it is closed: frees slots held by writers that
    #: died without closing. Long, because a quiet controller may log nothing for minutes.
    idle_timeout: float = 600.0
    #: Seconds a started line may take to complete (its newline to arrive), counting only the
    #: time spent waiting for the writer, never the time a full queue holds the reader: a writer
    #: that trickles bytes (slowloris) is closed after it, not kept alive by every byte. A
    #: controller writes a line in one call, so a line in progress this long is no log line.
    line_timeout: float = 10.0
    #: Bytes; as for files.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    #: Bytes read from a connection at once.
    read_size: int = 64 * 1024
    #: Seconds a line that ended a read waits for a stack after it; as for files.
    linger: float = DEFAULT_LINGER


@dataclass(frozen=True, slots=True)
class PodLogSettings:
    """The pod log source: a sibling container's log, read through the pod log API."""

    #: The container whose log is followed; "" turns the source off.
    container: str = ""
    #: The pod and its namespace (`$POD_NAME`, `$POD_NAMESPACE` from the downward API).
    pod: str = ""
    namespace: str = ""
    #: Seconds before the first reconnect after a stream ended or failed, doubled up to
    #: `backoff_max` while nothing is read (the kubelet ends a stream when the container exits).
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    #: Bytes; as for files.
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    #: Seconds a line that ended a chunk waits for a stack after it; as for files. The kubelet
    #: streams the log line by line, so a line and its stack often come in two chunks.
    linger: float = DEFAULT_LINGER
    #: Seconds a followed stream may stay silent before the log is read once to see whether the
    #: stream stalled (a log truncated under a kubelet-like reader); one small request per
    #: interval while the controller is quiet.
    stall_check: float = 30.0
    #: Seconds, while a stream is followed: after a chunk is handed over, the next read waits
    #: this long, so that the chunks sent meanwhile (one per `write()` of an unbuffered
    #: controller) are read together, N chunks for one wake-up, as files' `settle_time` (the
    #: bytes wait in the socket's buffer). It adds at most this much latency; 0 reads each
    #: chunk at once.
    settle_time: float = 0.1


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The bounded queues between readers, decoders and the poster."""

    #: Events waiting for the poster. client-go's broadcaster queue holds 1000 and drops when
    #: full; so does ours, for sources that cannot wait (files pause reading instead).
    events: int = 1000
    #: Blocks of lines waiting to be decoded, per kind of source. Small: a block is up to
    #: `read_size` bytes, and a full queue is what makes a socket stop being read.
    blocks: int = 16
    #: Seconds SIGTERM leaves to write what is queued. Kubernetes kills the container 30 s after
    #: SIGTERM by default; 20 s leaves time for the final checkpoint and the exit.
    drain_deadline: float = 20.0
    #: Event writes in flight at once (each object's still one after another). client-go writes
    #: one at a time; 8 keeps up with a busy controller without crowding the apiserver.
    writes: int = 8


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The metrics and health server."""

    #: Address of `/metrics`, `/healthz` and `/readyz`. Loopback by default, like every socket
    #: we open; in a pod Prometheus and the kubelet's probes come in through the pod IP, so the
    #: injector passes `--listen 0.0.0.0:PORT` explicitly. Port 8090 because controller-runtime's
    #: defaults (8080 metrics, 8081 probes) are likely taken by the controller beside us.
    host: str = "127.0.0.1"
    port: int = 8090
    #: Seconds between API reachability checks for `/readyz`.
    ping_interval: float = 5.0
    #: Seconds a source may fail to read without a break before it is reported unreadable
    #: (`sidecar.daemon.sourcehealth`: a metric, `/readyz`, a Warning Event on the pod). A minute:
    #: more than an apiserver restart with its first refusals, or a log file rotated and re-created.
    unreadable_seconds: float = 60.0
    #: Also expose the `_created` series of counters and histograms. Off: nothing queries them,
    #: and they add a series per label set.
    created_series: bool = False


@dataclass(frozen=True, slots=True)
class TransitionSettings:
    """The state kept for `transition:` rules."""

    #: Objects whose last state is remembered; past it the least recently seen is forgotten and
    #: counted (`event_sidecar_transition_evictions_total`). About 200 bytes each, so the default
    #: costs about 12 MiB; raise it when a controller tracks more objects than that.
    max_keys: int = DEFAULT_MAX_KEYS
    #: Seconds after an object's last line when it leaves `event_sidecar_objects_in_state` (its
    #: state is still kept): deleted objects log nothing more and must not be counted forever.
    #: A day, because an object stuck in a state may log nothing either, and the "stuck" alert
    #: (an hour) must see it first.
    state_ttl: float = 86400.0
    #: Distinct state values per rule in metric labels; more are reported as `other` and counted
    #: (`event_sidecar_state_labels_dropped_total`). A state machine has a handful of states; a
    #: state rendered from a changing field (a time, a generation) would grow without bound.
    max_state_values: int = DEFAULT_MAX_VALUES


@dataclass(frozen=True, slots=True)
class ReloadSettings:
    """Rules hot reload (`sidecar.daemon.reload`)."""

    #: Seconds between checks of the rules file's content hash, beside inotify on its folder:
    #: the fallback where inotify is missing or misses a change. A hash of a small file costs
    #: microseconds; the kubelet takes up to a minute and more to project a ConfigMap update.
    poll_interval: float = 5.0
    #: Serve `POST /-/reload` on the metrics listener. Off: the listener may face the pod
    #: network (`--listen 0.0.0.0:PORT`), and SIGHUP or the file itself are enough in a pod.
    endpoint: bool = False


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """Everything `event-sidecar run` needs besides the rules and the sink."""

    #: source.component; None takes the rules file's.
    component: str | None = None
    #: source.host and reportingInstance: the pod's name (`$POD_NAME` from the downward API).
    host: str = ""
    files: FileSettings = field(default_factory=FileSettings)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    sockets: SocketSettings = field(default_factory=SocketSettings)
    pod_log: PodLogSettings = field(default_factory=PodLogSettings)
    queues: QueueSettings = field(default_factory=QueueSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    correlation: CorrelatorSettings = field(default_factory=CorrelatorSettings)
    transitions: TransitionSettings = field(default_factory=TransitionSettings)
    reload: ReloadSettings = field(default_factory=ReloadSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    #: Which API Events are written to. Both are exact across a `kill -9` (line-derived names,
    #: counted 409s, the correlator's and the series' state checkpointed); `v1` (core) by
    #: default, since an events.k8s.io/v1 series' later counts reach the API only at the
    #: heartbeat. `auto` picks events.k8s.io/v1 when allowed.
    events_api: EventsApiChoice = "v1"
    #: Seconds between series heartbeats in events.k8s.io/v1 mode (a series quiet that long
    #: gets its final count), and the gap between two occurrences, on the lines' clock, that
    #: ends a series: client-go's `finishTime` (6 min).
    #: Every live series is also re-written every 30 min (client-go's `refreshTime`).
    series_finish_seconds: float = FINISH_SECONDS
