"""What `/metrics` shows: no `_created` series unless asked (the daemon's and the webhook's).

prometheus_client adds a `_created` series (the time it was created) beside every counter and
histogram label set: one more series each, which nothing we ship queries. The daemon and the
webhook call `show_created_series` once at start-up: `False` (the default) turns them off,
`True` (`run --metrics-created`) keeps them. Importing this module changes nothing: the switch
is process-wide and read at scrape time, so it is set by the command that owns the process, not
by whichever module happens to be imported first.
"""

from __future__ import annotations

from prometheus_client import disable_created_metrics, enable_created_metrics


def show_created_series(enabled: bool) -> None:
    """Whether counters and histograms also expose `_created`."""
    if enabled:
        enable_created_metrics()  # type: ignore[no-untyped-call]
    else:
        disable_created_metrics()  # type: ignore[no-untyped-call]
