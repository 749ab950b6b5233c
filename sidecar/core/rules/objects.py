"""A rule's `object` (and `related`) compiled into a resolver of the line's object."""

from __future__ import annotations

from collections.abc import Callable

from sidecar.core.lines.records import ObjectRef, Record, ref_of
from sidecar.core.rules.objectspec import API_VERSION, KIND, ObjectSpec
from sidecar.core.rules.paths import Path, format_path, is_plain, lookup_path
from sidecar.core.rules.paths import field_path as path_of
from sidecar.core.rules.rendering import render
from sidecar.core.rules.templates import MissingField, Template
from sidecar.model import ObjectTarget

TemplateCompiler = Callable[[str], Template]


def compile_object(
    spec: ObjectSpec | None, compile_template: TemplateCompiler
) -> Callable[[Record], ObjectTarget]:
    """Return a resolver that raises `MissingField` when the line lacks what the rule names."""
    if spec is None:
        return _resolve_auto
    kind = spec.kind or ""
    api_version = spec.api_version or ""
    api_group: str | None = None
    if spec.api_version is not None:
        api_group = spec.api_version.rpartition("/")[0]
    field_path = compile_template(spec.field_path) if spec.field_path else None

    def named(record: Record, ref: ObjectRef) -> ObjectTarget:
        if not ref.name:
            raise MissingField("name")
        path = render(field_path, record) if field_path is not None else ""
        return ObjectTarget(kind, ref.name, ref.namespace, api_version, api_group, path)

    finish: Callable[[Record, ObjectRef], ObjectTarget] = named
    if (
        spec.kind is None
        or "{" in spec.kind
        or (spec.api_version is not None and "{" in spec.api_version)
        or spec.uid is not None
    ):
        finish = _compile_identity(spec, compile_template, field_path)

    if spec.name is not None:
        name = compile_template(spec.name)
        namespace = compile_template(spec.namespace) if spec.namespace is not None else None
        return lambda record: finish(
            record,
            ObjectRef(render(name, record), render(namespace, record) if namespace else ""),
        )
    if spec.ref is not None:
        ref_path = path_of(spec.ref)
        if len(ref_path) > 1 or not is_plain(ref_path):
            # A path into the line; `a.b` is first the key `a.b`, as it always was.
            return _compile_ref_path(ref_path, spec, finish, compile_template)
    if spec.ref is not None:
        keys: tuple[str, ...] = (spec.ref,)
    elif "{" in kind:
        keys = ("",)  # a kind from the line names no field to look in
    else:
        keys = (kind, "")
    if spec.ref is not None and spec.namespace is not None:
        bare_namespace = compile_template(spec.namespace)
        return lambda record: finish(
            record, _find_ref(record, keys, lambda: render(bare_namespace, record))
        )
    return lambda record: finish(record, _find_ref(record, keys))


def _compile_identity(
    spec: ObjectSpec, compile_template: TemplateCompiler, field_path: Template | None
) -> Callable[[Record, ObjectRef], ObjectTarget]:
    """`finish` for an object whose kind, apiVersion or uid come from the line: templates, or
    (without `kind`) the reference itself. A rendered kind or apiVersion that is not one is a
    miss of that field, never an Event about a made-up object."""
    own = spec.kind is None
    kind = compile_template(spec.kind) if spec.kind is not None else None
    version = compile_template(spec.api_version) if spec.api_version is not None else None
    uid = compile_template(spec.uid) if spec.uid is not None else None

    def finish(record: Record, ref: ObjectRef) -> ObjectTarget:
        if not ref.name:
            raise MissingField("name")
        the_kind = ref.kind if kind is None else render(kind, record)
        if not KIND.fullmatch(the_kind):
            raise MissingField("kind")
        the_version = render(version, record) if version is not None else ""
        if own and version is None:
            the_version = ref.api_version
        if the_version and not API_VERSION.fullmatch(the_version):
            raise MissingField("apiVersion")
        the_uid = render(uid, record) if uid is not None else ref.uid if own else ""
        return ObjectTarget(
            the_kind,
            ref.name,
            ref.namespace,
            the_version,
            the_version.rpartition("/")[0] if the_version else None,
            render(field_path, record) if field_path is not None else "",
            the_uid,
        )

    return finish


def _compile_ref_path(
    path: Path,
    spec: ObjectSpec,
    finish: Callable[[Record, ObjectRef], ObjectTarget],
    compile_template: TemplateCompiler,
) -> Callable[[Record], ObjectTarget]:
    """`ref` as a path into the line (`status.owner`, `refs[kind=Pod]`): the value there, read
    as a field named by `ref` is (`{name, namespace}`, `ns/name`, or a bare name)."""
    bare = compile_template(spec.namespace) if spec.namespace is not None else None
    name = format_path(path)

    def resolve(record: Record) -> ObjectTarget:
        value = lookup_path(record.fields, path)
        ref = ref_of(value)
        if ref is None:
            if type(value) is not str or not value:
                raise MissingField(name)
            ref = ObjectRef(value, render(bare, record) if bare is not None else "")
        return finish(record, ref)

    return resolve


def _find_ref(
    record: Record, keys: tuple[str, ...], bare_namespace: Callable[[], str] | None = None
) -> ObjectRef:
    for key in keys:
        ref = record.ref(key)
        if ref is not None:
            return ref
    # A bare string is a name in the rule's `namespace`, else a cluster-scoped name (klog's KObj
    # of a cluster-scoped object).
    value = record.fields.get(keys[0])
    if type(value) is str and value:
        return ObjectRef(value, bare_namespace() if bare_namespace is not None else "")
    raise MissingField(keys[0] or "name")


def _resolve_auto(record: Record) -> ObjectTarget:
    """controller-runtime logs controllerGroup, controllerKind and `Kind: {name, namespace}`."""
    kind = record.fields.get("controllerKind")
    group = record.fields.get("controllerGroup")
    if type(kind) is not str or not kind:
        raise MissingField("controllerKind")
    if type(group) is not str:
        raise MissingField("controllerGroup")
    ref = _find_ref(record, (kind, ""))
    if not ref.name:
        raise MissingField("name")
    # The core group has one version; other groups are resolved through discovery.
    return ObjectTarget(kind, ref.name, ref.namespace, "v1" if group == "" else "", group)
