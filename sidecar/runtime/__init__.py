"""What every engine shares.

Metrics, the Sink protocol, checkpoints on disk, threads for blocking work, the probe servers and
the sidecar's own logs.
"""
