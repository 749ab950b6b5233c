"""Loading the client configuration: a kubeconfig given explicitly, else the pod's service
account, else `$KUBECONFIG` or `~/.kube/config`, as kubectl.

No global client state is touched: each load fills a fresh `Configuration`. In a pod (in-cluster
service account) nothing is written to disk, which suits a read-only root filesystem; only a
kubeconfig with embedded `*-data` certificates makes the client library write temporary files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

_DEFAULT_KUBECONFIG: Final = "~/.kube/config"


class KubeConfigError(Exception):
    """No usable Kubernetes client configuration; the message says what was tried and why each
    attempt failed."""


def load_configuration(
    *, kubeconfig: str | None, context: str | None = None
) -> k8s_client.Configuration:
    """Return a fresh `kubernetes.client.Configuration`, never touching the global default."""
    tried: list[str] = []
    if kubeconfig is not None:
        configuration = _try_kubeconfig(kubeconfig, "given explicitly", context, tried)
        if configuration is not None:
            return configuration
        raise KubeConfigError(_no_configuration(tried))

    configuration = k8s_client.Configuration()
    try:
        # kubernetes.config's loaders carry no annotations (the client package itself does).
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException as error:
        tried.append(f"in-cluster service account: {_in_cluster_problem(error)}")
    else:
        return configuration

    from_env = os.environ.get("KUBECONFIG", "")
    if from_env:
        paths, origin = from_env, "from $KUBECONFIG"
    else:
        paths, origin = _DEFAULT_KUBECONFIG, "the default; $KUBECONFIG is not set"
    configuration = _try_kubeconfig(paths, origin, context, tried)
    if configuration is not None:
        return configuration
    raise KubeConfigError(_no_configuration(tried))


def _try_kubeconfig(
    paths: str, origin: str, context: str | None, tried: list[str]
) -> k8s_client.Configuration | None:
    """Load a kubeconfig (a `:`-separated list, as kubectl) or note in `tried` why not."""
    label = f"kubeconfig {paths} ({origin})"
    if context is not None:
        label += f" with context {context!r}"
    parts = [part for part in paths.split(os.pathsep) if part]
    missing = [part for part in parts if not Path(part).expanduser().is_file()]
    if len(missing) == len(parts):
        what = "file does not exist" if len(parts) <= 1 else "none of these files exists"
        tried.append(f"{label}: {what}")
        return None
    configuration = k8s_client.Configuration()
    try:
        # persist_config=False: never write refreshed credentials back (read-only filesystem).
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=paths,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except Exception as error:  # YAML, OS, exec-plugin and schema errors alike: say which
        tried.append(f"{label}: not usable: {type(error).__name__}: {error}")
        return None
    return configuration


def _in_cluster_problem(error: Exception) -> str:
    text = str(error)
    if "host/port" in text:
        return f"{text} (KUBERNETES_SERVICE_HOST/PORT; not running in a pod?)"
    return text


def _no_configuration(tried: list[str]) -> str:
    lines = "\n".join(f"  - {attempt}" for attempt in tried)
    return f"no usable Kubernetes configuration; tried:\n{lines}"
