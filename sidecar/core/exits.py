"""The process exit codes, defined once for the command line and the daemon.

Two failure codes, so that CI and a pod's restart reason tell "your input is wrong" from
"something broke".
"""

from __future__ import annotations

from typing import Final

#: Success (and a clean SIGTERM of the daemon).
EXIT_OK: Final = 0
#: A runtime failure: a file unreadable, the cluster unreachable, a port in use.
EXIT_FAILURE: Final = 1
#: Bad usage or invalid input: a flag, an environment variable, a rules file, a manifest.
EXIT_USAGE: Final = 2
