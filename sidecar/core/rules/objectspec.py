"""The involved object as the rules file names it (`object:` and `related:`)."""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator, model_validator

from sidecar.core.rules.validators import Strict, valid_path, valid_template

API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?")
KIND = re.compile(r"[A-Z][A-Za-z0-9]*")


class ObjectSpec(Strict):
    """The involved object. `ref` names the field holding `{name, namespace}` or `ns/name`;
    otherwise `name` and `namespace` are templates. With neither, the field named after the kind
    is used, then controller-runtime's top-level `namespace` and `name`. A bare name in the ref
    field (no `ns/`) is in `namespace` when given, else a cluster-scoped object's name.

    `kind` and `apiVersion` are names or templates. Without `kind` (only with `ref`), the object
    is the reference's own: its kind, apiVersion and uid, as `Kind(ns/name)`, kube-rs's
    `Kind.version.group/name.ns` or `{apiVersion, kind, name, namespace, uid}` give them. `uid`
    (a template) is the object's uid from the line, which spares the sink its look-up."""

    api_version: str | None = Field(default=None, alias="apiVersion")
    kind: str | None = None
    uid: str | None = None
    ref: str | None = None
    name: str | None = None
    namespace: str | None = None
    field_path: str | None = Field(default=None, alias="fieldPath")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str | None) -> str | None:
        if value is not None and "{" in value:
            return valid_template(value)
        if value is not None and not API_VERSION.fullmatch(value):
            raise ValueError(f"{value!r} is not an apiVersion such as v1 or apps/v1")
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        if value is not None and "{" in value:
            return valid_template(value)
        if value is not None and not KIND.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kind (UpperCamelCase, such as Pod)")
        return value

    @model_validator(mode="after")
    def _kind_or_ref(self) -> ObjectSpec:
        if self.kind is None and self.ref is None:
            raise ValueError(
                "give kind, or a ref whose values carry their kind (`Kind(ns/name)`, kube-rs's "
                "`Kind.version.group/name.ns`, `{kind, name, ...}`)"
            )
        return self

    @field_validator("name", "namespace", "field_path", "uid")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return valid_template(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return None if value is None else valid_path(value)

    @model_validator(mode="after")
    def _ref_or_name(self) -> ObjectSpec:
        if self.ref is not None and self.name is not None:
            raise ValueError(
                "give either ref or name, not both (with ref, namespace is the namespace of "
                "the bare names the ref field may hold)"
            )
        return self
