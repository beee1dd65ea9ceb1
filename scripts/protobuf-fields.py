#!/usr/bin/env python3
"""Writes crates/server/src/protobuf/fields.rs: the protobuf field numbers of the kinds
`kubectl create` sends as protobuf (Job, CronJob, Namespace, ConfigMap, Secret) and of every
message inside them, for the reader in crates/server/src/protobuf.rs.

The field numbers and types come from k8s-pb's generated prost code (k8s.io/api's
generated.proto), the JSON names from k8s-openapi (the same fields as the wire types).
Run it again when either moves to a new Kubernetes version:

    scripts/protobuf-fields.py K8S_PB_SRC K8S_OPENAPI_VERSION_SRC > crates/server/src/protobuf/fields.rs

e.g. ~/.cargo/registry/src/*/k8s-pb-0.8.0/src and ~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_34
(k8s-pb is fetched with `cargo download` or from https://static.crates.io/crates/k8s-pb/).
"""

import os
import re
import sys

ROOTS = [
    ("api.batch.v1", "Job"),
    ("api.batch.v1", "CronJob"),
    ("api.core.v1", "Namespace"),
    ("api.core.v1", "ConfigMap"),
    ("api.core.v1", "Secret"),
]

# Messages read as the JSON scalar they stand for.
SPECIAL = {
    "apimachinery.pkg.api.resource.Quantity": "Kind::Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "Kind::IntOrString",
    "apimachinery.pkg.apis.meta.v1.Time": "Kind::Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "Kind::Time",
}

SCALARS = {
    "string": "Kind::String",
    "int32": "Kind::Int",
    "int64": "Kind::Int",
    "bool": "Kind::Bool",
}

# A field: its attribute, then its declaration, which rustfmt may wrap over lines; it ends
# at the next doc comment, attribute or the struct's end.
FIELD = re.compile(
    r'#\[prost\((?P<attr>[^\]]*?)tag = "(?P<tag>\d+)"[^\]]*\)\]\s*pub (?P<name>(?:r#)?\w+):(?P<ty>.*?),?\s*(?=///|#\[|$)',
    re.S,
)


def read_messages(src):
    """module path -> {message name -> [(tag, name, attr, type)]}"""
    messages = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if f != "mod.rs":
                continue
            module = os.path.relpath(dirpath, src).replace(os.sep, ".")
            text = open(os.path.join(dirpath, f)).read()
            for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
                fields = [
                    (int(x["tag"]), x["name"].removeprefix("r#"), x["attr"].strip().rstrip(","),
                     re.sub(r"\s+", "", x["ty"]).rstrip(",").replace(",>", ">"))
                    for x in FIELD.finditer(m.group(2) + "\n")
                ]
                messages.setdefault(module, {})[m.group(1)] = fields
    return messages


def read_json_names(src):
    """struct name -> [json names], from k8s-openapi's deserializers."""
    names = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            text = open(os.path.join(dirpath, f)).read()
            for m in re.finditer(r"pub struct (\w+) \{", text):
                names.setdefault(m.group(1).lower(), []).extend(
                    re.findall(r'"(\w+)" => Field::Key_', text)
                )
    return names


def resolve(module, ty):
    """The full name of a message a field's Rust type names."""
    inner = re.sub(r"^(::core::option::Option|::prost::alloc::vec::Vec|::prost::alloc::boxed::Box)<", "", ty)
    inner = re.sub(r">+$", "", inner)
    inner = re.sub(r"^::prost::alloc::boxed::Box<", "", inner)
    parts = inner.split("::")
    base = module.split(".")
    while parts and parts[0] == "super":
        parts.pop(0)
        base.pop()
    return ".".join(base + parts)


def main():
    pb, openapi = sys.argv[1], sys.argv[2]
    messages = read_messages(pb)
    json_names = read_json_names(openapi)
    done, order = {}, []
    queue = [(f"{m}.{n}", n) for m, n in ROOTS]
    while queue:
        full, json_struct = queue.pop(0)
        if full in done or full in SPECIAL:
            continue
        module, name = full.rsplit(".", 1)
        fields = messages[module][name]
        known = {j.lower(): j for j in json_names.get(json_struct.lower(), [])}
        rows = []
        for tag, field, attr, ty in fields:
            json = known.get(field.replace("_", "").lower())
            if json is None and attr.startswith("message"):
                # A Go struct embedded inline (a Volume's VolumeSource, a Probe's handler):
                # a message of its own here, its fields the parent's in JSON.
                target = resolve(module, ty)
                rows.append((tag, "", f"Kind::Inline({const(target)})", False))
                # Its JSON names are its own type's, or, when JSON knows no such type
                # (VolumeSource, ProbeHandler), the parent's.
                inline = target.rsplit(".", 1)[1]
                queue.append((target, inline if inline.lower() in json_names else json_struct))
                continue
            if json is None:
                print(f"// {name}.{field}: no JSON name found, left out", file=sys.stderr)
                continue
            repeated = "repeated" in attr
            if attr.startswith("btree_map"):
                value = attr.split(",")[1].strip().strip('"')
                if value == "message":
                    target = resolve(module, ty.split(",")[-1].strip())
                    kind = f"Kind::Map(&{SPECIAL.get(target) or const(target)})"
                    if target not in SPECIAL:
                        queue.append((target, target.rsplit(".", 1)[1]))
                else:
                    scalar = "Kind::Bytes" if value == "bytes" else SCALARS[value]
                    kind = f"Kind::Map(&{scalar})"
                repeated = False
            elif attr.startswith("message"):
                target = resolve(module, ty)
                if target in SPECIAL:
                    kind = SPECIAL[target]
                else:
                    kind = f"Kind::Message({const(target)})"
                    queue.append((target, target.rsplit(".", 1)[1]))
            else:
                scalar = attr.split(",")[0].strip()
                if scalar.startswith("bytes"):
                    kind = "Kind::Bytes"
                elif scalar in SCALARS:
                    kind = SCALARS[scalar]
                else:
                    print(f"// {name}.{field}: {scalar} not read, left out", file=sys.stderr)
                    continue
            rows.append((tag, json, kind, repeated))
        done[full] = rows
        order.append(full)
    print("// Generated by scripts/protobuf-fields.py from k8s-pb 0.8 (k8s.io/api's generated.proto)")
    print("// and k8s-openapi's JSON names. Do not edit by hand.")
    print()
    print("use super::{Field, Kind};")
    for full in order:
        print()
        print(f"pub(super) const {const(full)}: &[Field] = &[")
        for tag, json, kind, repeated in done[full]:
            print(f'    ({tag}, "{json}", {kind}, {str(repeated).lower()}),')
        print("];")


def const(full):
    module, name = full.rsplit(".", 1)
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).upper()
    prefix = {"api.batch.v1": "", "api.core.v1": "", "apimachinery.pkg.apis.meta.v1": ""}.get(module)
    if prefix is None:
        prefix = module.split(".")[-2].upper() + "_"
    return prefix + snake


if __name__ == "__main__":
    main()
