"""Run one container of a stored Pod as a local process, as the kubelet would run it.

Its `command` and `args` (with `$(VAR)` expanded), its `env` with the downward API and ConfigMap
references resolved, and its volume mounts at their paths: ConfigMaps as files, `emptyDir`s as
folders that outlive the process (as they outlive a container restart), and the projected
ServiceAccount volume with a token from the TokenRequest API bound to the pod, plus the
cluster's CA. The process runs in its own mount namespace (`unshare -m`, root needed), where
each mount is a bind mount at the container's path (over an overlay of the nearest existing
folder, so nothing is created on the host). `KUBERNETES_SERVICE_HOST`/`PORT` point at the
test apiserver, which is what the in-cluster configuration reads.

What it does not do: images (the command must exist on this machine: the repository's .venv is
first in PATH), users and securityContext, resource limits, probes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubernetes import client

from tests.controlplane import ControlPlane

_MOUNT_SCRIPT = r"""
set -eu
root=$1; shift
i=0
while [ "$1" != "--" ]; do
  src=$1; dst=$2; shift 2
  if [ ! -d "$dst" ]; then
    base=$dst
    while [ ! -d "$base" ]; do base=$(dirname "$base"); done
    i=$((i + 1))
    mkdir -p "$root/overlay$i/upper" "$root/overlay$i/work"
    mount -t overlay overlay \
      -o "lowerdir=$base,upperdir=$root/overlay$i/upper,workdir=$root/overlay$i/work" "$base"
    mkdir -p "$dst"
  fi
  mount --bind "$src" "$dst"
done
shift
exec env -i "$@"
"""


@dataclass
class LocalContainer:
    """What the kubelet would start; `start()` may be called again after the process died."""

    argv: list[str]
    env: dict[str, str]
    mounts: list[tuple[Path, str]]
    root: Path

    def start(self, log: Path) -> subprocess.Popen[bytes]:
        pairs = [part for source, path in self.mounts for part in (str(source), path)]
        environment = [f"{name}={value}" for name, value in self.env.items()]
        with log.open("ab") as out:
            return subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", _MOUNT_SCRIPT, "sh",
                 str(self.root), *pairs, "--", *environment, *self.argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip


def prepare(
    cp: ControlPlane, api: client.ApiClient, pod: dict[str, Any], name: str, root: Path
) -> LocalContainer:
    """Resolve container `name` of the stored `pod` into a `LocalContainer` under `root`."""
    spec = pod["spec"]
    [container] = [
        c
        for key in ("initContainers", "containers")
        for c in spec.get(key) or ()
        if c["name"] == name
    ]
    core = client.CoreV1Api(api)
    server = urlparse(cp.server)
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "KUBERNETES_SERVICE_HOST": str(server.hostname),
        "KUBERNETES_SERVICE_PORT": str(server.port),
    }
    for item in container.get("env") or ():
        env[item["name"]] = _env_value(core, pod, item)
    argv = [_expand(word, env) for word in [*container["command"], *container.get("args", ())]]
    volumes = {v["name"]: v for v in spec.get("volumes") or ()}
    mounts = []
    for mount in container.get("volumeMounts") or ():
        if "subPath" in mount or "subPathExpr" in mount:
            raise NotImplementedError("subPath mounts")
        source = root / "volumes" / mount["name"]
        source.mkdir(parents=True, exist_ok=True)
        _fill(core, pod, volumes[mount["name"]], source)
        mounts.append((source, mount["mountPath"]))
    return LocalContainer(argv, env, mounts, root)


def _expand(word: str, env: dict[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion; `$$(VAR)` stays literal."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        word,
    )


def _field(pod: dict[str, Any], path: str) -> str:
    """A downward API `fieldPath` of the stored pod."""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str(pod["metadata"].get(match.group(1), {}).get(match.group(2), ""))
    value: Any = pod
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return str(value)


def _env_value(core: client.CoreV1Api, pod: dict[str, Any], item: dict[str, Any]) -> str:
    if "value" in item:
        return str(item["value"])
    source = item["valueFrom"]
    if "fieldRef" in source:
        return _field(pod, source["fieldRef"]["fieldPath"])
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        data = core.read_namespaced_config_map(ref["name"], pod["metadata"]["namespace"]).data
        return str((data or {})[ref["key"]])
    raise NotImplementedError(f"env source {sorted(source)}")


def _fill(core: client.CoreV1Api, pod: dict[str, Any], volume: dict[str, Any], dest: Path) -> None:
    """Write the volume's files into `dest` (an emptyDir keeps what is there)."""
    namespace = pod["metadata"]["namespace"]
    if "emptyDir" in volume:
        return
    if "configMap" in volume:
        data = core.read_namespaced_config_map(volume["configMap"]["name"], namespace).data or {}
        for key, text in data.items():
            (dest / key).write_text(text)
        return
    if "projected" not in volume:
        raise NotImplementedError(f"volume {sorted(volume)}")
    for source in volume["projected"]["sources"]:
        if "serviceAccountToken" in source:
            request = source["serviceAccountToken"]
            token = core.create_namespaced_service_account_token(
                pod["spec"]["serviceAccountName"],
                namespace,
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(
                        audiences=[request["audience"]] if request.get("audience") else [],
                        expiration_seconds=request.get("expirationSeconds", 3600),
                        bound_object_ref=client.V1BoundObjectReference(
                            api_version="v1",
                            kind="Pod",
                            name=pod["metadata"]["name"],
                            uid=pod["metadata"]["uid"],
                        ),
                    )
                ),
            )
            assert token.status is not None
            (dest / request["path"]).write_text(token.status.token)
        elif "configMap" in source:
            name = source["configMap"]["name"]
            data = core.read_namespaced_config_map(name, namespace).data or {}
            for entry in source["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                (dest / entry["path"]).write_text(data[entry["key"]])
        elif "downwardAPI" in source:
            for entry in source["downwardAPI"]["items"]:
                (dest / entry["path"]).write_text(_field(pod, entry["fieldRef"]["fieldPath"]))
        else:
            raise NotImplementedError(f"projected source {sorted(source)}")
    os.chmod(dest, 0o755)  # noqa: PTH101
