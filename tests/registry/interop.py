"""Interoperability of wasmpipe's schema-registry formats with Confluent's own client.

What it proves: records that confluent-kafka's serializers wrote (AvroSerializer,
ProtobufSerializer, JSONSerializer: the Confluent wire format, magic byte 0 and a
4-byte schema id, schemas auto-registered under subject TOPIC-value) can be read
by wasmpipe, and what wasmpipe writes back can be read by confluent-kafka's own
deserializers, field for field, with nobody on the project having written either
end. The Protobuf message is the second of its file (message indexes [1]) and
has a map, a oneof, nested and repeated messages and a google.protobuf.Timestamp;
the Avro record has a decimal, bytes, a map, an enum and unions.

How a test drives it, with the Python that `tests/registry/registry python`
prints, a broker (tests/kafka/broker) and the registry (tests/registry/registry):

    interop.py produce  --bootstrap B --registry URL --topic in --format avro --first 1 --count 100 --version 1
    interop.py register --registry URL --subject out-value --format avro --version 1
    ... wasmpipe reads `in`, redacts `email`, writes `out` ...
    interop.py check --bootstrap B --registry URL --topic out --format avro --first 1 --count 100 --mask email

Records id = I .. I+N-1 come from one generator (record()); ids from --v2-from on
(or all, with --version 2) were produced with schema version 2, which adds
`tier` = "gold". Every command prints one JSON line; `check` exits 0 iff exactly
the expected ids came back once each, all equal to what was produced, the
masked field (none: `--mask none` or '') being "***".

Apicurio 2.4.2 (tests/registry/registry), unlike Confluent's registry, keeps a
Protobuf schema in the form it was given: ProtobufSerializer registers a base64
FileDescriptorProto, `register` the .proto text. Its compatibility check parses
only text (so no BACKWARD on a subject the serializer registers Protobuf under),
and it ignores ?format=serialized, so `check` compiles a text schema into the
base64 descriptor ProtobufDeserializer needs (class Registry).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer
from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

EPOCH = 1764842400  # 2025-12-04T10:00:00Z, the Protobuf `at` of record 0
STATUS = ["NEW", "PAID", "SHIPPED"]
FORMATS = ["avro", "protobuf", "json-schema"]
# Confluent's clients default to an "associated" subject lookup (a Confluent-only
# API) before TopicNameStrategy: name the latter, which every registry serves.
SERDE_CONF: dict[str, Any] = {"subject.name.strategy": topic_subject_name_strategy}


def record(i: int, v: int) -> dict[str, Any]:
    """The record with id i in schema version v, as far as all formats share it."""
    rec: dict[str, Any] = {
        "id": i, "name": f"user-{i}", "email": f"u{i}@example.com",
        "amount": Decimal(i * 125).scaleb(-2),  # i * 1.25, scale 2
        "tags": {"a": str(i), **({"even": "yes"} if i % 2 == 0 else {})},
        "status": STATUS[i % 3],
        "address": None if i % 4 == 0 else {"city": f"city-{i}", "zip": f"{10000 + i}"},
    }
    if v == 2:
        rec["tier"] = "gold"
    return rec


# --- Avro -------------------------------------------------------------------

def avro_schema(v: int) -> str:
    address = {"type": "record", "name": "Address",
               "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]}
    fields: list[dict[str, Any]] = [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "tags", "type": {"type": "map", "values": "string"}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": STATUS}},
        {"name": "address", "type": ["null", address], "default": None},
        {"name": "blob", "type": "bytes"},
        {"name": "maybe", "type": ["null", "string", "long"], "default": None},
    ]
    if v == 2:
        fields.append({"name": "tier", "type": "string", "default": "free"})
    return json.dumps({"type": "record", "name": "User", "namespace": "interop", "fields": fields})


def avro_value(i: int, v: int) -> dict[str, Any]:
    return {**record(i, v), "blob": bytes([i % 256, 0, 255]), "maybe": [None, f"s{i}", i][i % 3]}


# --- Protobuf ---------------------------------------------------------------

def proto_source(v: int) -> str:
    tier = "  string tier = 12;\n" if v == 2 else ""
    return f"""syntax = "proto3";
package interop;

import "google/protobuf/timestamp.proto";

message Address {{
  string city = 1;
  string zip = 2;
}}

enum Status {{
  NEW = 0;
  PAID = 1;
  SHIPPED = 2;
}}

message User {{
  message Line {{
    string sku = 1;
    int32 qty = 2;
  }}
  int64 id = 1;
  string name = 2;
  string email = 3;
  string amount = 4;
  map<string, string> tags = 5;
  Status status = 6;
  Address address = 7;
  repeated Line lines = 8;
  oneof payment {{
    string card = 9;
    string iban = 10;
  }}
  google.protobuf.Timestamp at = 11;
{tier}}}
"""


def compile_proto(source: str) -> list[descriptor_pb2.FileDescriptorProto]:
    """The .proto source compiled by grpcio-tools' protoc: its imports first, itself last."""
    from grpc_tools import protoc  # late: only Protobuf needs it
    wkt = protoc._get_resource_file_name("grpc_tools", "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "interop.proto"), "w") as f:
            f.write(source)
        out = os.path.join(tmp, "set.pb")
        if protoc.main(["protoc", f"-I{tmp}", f"-I{wkt}", f"--descriptor_set_out={out}",
                        "--include_imports", "interop.proto"]) != 0:
            raise SystemExit("protoc failed on:\n" + source)
        with open(out, "rb") as f:
            return list(descriptor_pb2.FileDescriptorSet.FromString(f.read()).file)


@cache
def proto_class(v: int) -> type[Message]:
    """interop.User of version v, in a descriptor pool of its own."""
    pool = descriptor_pool.DescriptorPool()
    for file in compile_proto(proto_source(v)):
        pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("interop.User"))


class Registry(SchemaRegistryClient):
    """Confluent's client, plus what Confluent's registry does and Apicurio does not:
    GET /schemas/ids/N?format=serialized answers a Protobuf schema registered as .proto
    text with the base64 FileDescriptorProto, the only form ProtobufDeserializer reads.
    Apicurio ignores the parameter, so the text is compiled here instead."""

    def get_schema(self, schema_id: int, subject_name: str | None = None,
                   fmt: str | None = None, reference_format: str | None = None) -> Schema:
        schema = super().get_schema(schema_id, subject_name, fmt, reference_format)
        text = schema.schema_str or ""
        if schema.schema_type != "PROTOBUF" or fmt != "serialized" or not any(c.isspace() for c in text):
            return schema
        serialized = base64.standard_b64encode(compile_proto(text)[-1].SerializeToString()).decode()
        return Schema(serialized, "PROTOBUF", schema.references)


def proto_value(i: int, v: int) -> Message:
    rec, msg = record(i, v), proto_class(v)()
    msg.id, msg.name, msg.email, msg.amount = i, rec["name"], rec["email"], str(rec["amount"])
    msg.tags.update(rec["tags"])
    msg.status = STATUS.index(rec["status"])
    if rec["address"] is not None:
        msg.address.city, msg.address.zip = rec["address"]["city"], rec["address"]["zip"]
    for j in (1, 2):
        msg.lines.add(sku=f"s{i}-{j}", qty=j)
    if i % 2:
        msg.card = f"c{i}"
    else:
        msg.iban = f"DE{i}"
    msg.at.seconds = EPOCH + i
    if v == 2:
        msg.tier = rec["tier"]
    return msg


def proto_dict(msg: Message) -> dict[str, Any]:
    """Proto3 JSON (int64 as strings, defaults left out), read with the newest class."""
    newest = proto_class(2).FromString(msg.SerializeToString())
    return json_format.MessageToDict(newest, preserving_proto_field_name=True)


# --- JSON Schema ------------------------------------------------------------

def json_schema(v: int) -> str:
    props: dict[str, Any] = {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "email": {"type": "string"},
        "amount": {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$"},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "status": {"type": "string", "enum": STATUS},
        "address": {"oneOf": [{"type": "null"}, {"$ref": "#/definitions/Address"}]},
    }
    if v == 2:
        props["tier"] = {"type": "string", "default": "free"}
    return json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#", "title": "interop.User", "type": "object",
        "properties": props, "required": ["id", "name", "email", "amount", "tags", "status", "address"],
        "additionalProperties": False,
        "definitions": {"Address": {
            "type": "object", "additionalProperties": False, "required": ["city", "zip"],
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}},
    })


def json_value(i: int, v: int) -> dict[str, Any]:
    return {**record(i, v), "amount": str(record(i, v)["amount"])}


# --- per format -------------------------------------------------------------

def schema_of(fmt: str, v: int) -> Schema:
    """What `register` registers: Avro and JSON as their serializers do; Protobuf as .proto text."""
    if fmt == "avro":
        return Schema(avro_schema(v), "AVRO")
    if fmt == "protobuf":
        return Schema(proto_source(v), "PROTOBUF")
    return Schema(json_schema(v), "JSON")


def serializer(fmt: str, client: SchemaRegistryClient, v: int) -> Callable[..., bytes | None]:
    if fmt == "avro":
        return AvroSerializer(client, avro_schema(v), conf=SERDE_CONF)
    if fmt == "protobuf":
        return ProtobufSerializer(proto_class(v), client, SERDE_CONF)
    return JSONSerializer(json_schema(v), client, conf=SERDE_CONF)


def value_of(fmt: str, i: int, v: int) -> Any:
    return {"avro": avro_value, "protobuf": proto_value, "json-schema": json_value}[fmt](i, v)


def deserializer(fmt: str, client: SchemaRegistryClient) -> Callable[..., Any]:
    if fmt == "avro":
        return AvroDeserializer(client, conf=SERDE_CONF)
    if fmt == "protobuf":
        return ProtobufDeserializer(proto_class(2), SERDE_CONF, client)
    return JSONDeserializer(None, schema_registry_client=client, conf=SERDE_CONF)


def comparable(fmt: str, value: Any) -> dict[str, Any]:
    return proto_dict(value) if fmt == "protobuf" else dict(value)


# --- commands ---------------------------------------------------------------

def produce(a: argparse.Namespace) -> int:
    client = SchemaRegistryClient({"url": a.registry})
    ser, keys = serializer(a.format, client, a.version), StringSerializer("utf_8")
    producer = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 5})
    failed: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for i in range(a.first, a.first + a.count):
        key = None if i % 10 == 0 else keys(f"k{i}", SerializationContext(a.topic, MessageField.KEY))
        value = ser(value_of(a.format, i, a.version), SerializationContext(a.topic, MessageField.VALUE))
        producer.produce(a.topic, key=key, value=value, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(60)
    print(json.dumps({"produced": a.count - left - len(failed), **({"errors": failed[:5]} if failed else {})}))
    return 0 if not failed and left == 0 else 1


def register(a: argparse.Namespace) -> int:
    client = SchemaRegistryClient({"url": a.registry})
    print(json.dumps({"id": client.register_schema(a.subject, schema_of(a.format, a.version))}))
    return 0


def set_compat(a: argparse.Namespace) -> int:
    client = SchemaRegistryClient({"url": a.registry})
    print(json.dumps({"compatibility": client.set_compatibility(a.subject, a.level)}))
    return 0


def jsonable(x: Any) -> Any:  # bytes as hex, Decimal as text
    return json.loads(json.dumps(x, default=lambda o: o.hex() if isinstance(o, bytes) else str(o)))


def expected(fmt: str, i: int, v: int, mask: list[str]) -> dict[str, Any]:
    exp = comparable(fmt, value_of(fmt, i, v))
    node: Any = exp
    for step in mask[:-1]:  # a dotted path reaches into nested records
        node = node.get(step) if isinstance(node, dict) else None
    if mask and isinstance(node, dict) and mask[-1] in node:
        node[mask[-1]] = "***"
    return exp


def check(a: argparse.Namespace) -> int:
    client = Registry({"url": a.registry})
    de = deserializer(a.format, client)
    mask = [] if a.mask in ("", "none") else a.mask.split(".")
    wanted = range(a.first, a.first + a.count)
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": f"interop-check-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    deadline = time.monotonic() + a.timeout_s
    partitions: list[int] = []
    while not partitions and time.monotonic() < deadline:
        meta = consumer.list_topics(a.topic, timeout=5).topics.get(a.topic)
        partitions = sorted(meta.partitions) if meta is not None and meta.error is None else []
        if not partitions:
            time.sleep(0.5)
    consumer.assign([TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in partitions])
    seen: dict[int, int] = {}
    unexpected: list[Any] = []
    errors: list[str] = []  # records that did not deserialize
    warnings: list[str] = []  # the consumer's own errors: only missing records fail the check
    mismatches: list[dict[str, Any]] = []
    at_end: set[int] = set()
    while time.monotonic() < deadline:
        if partitions and at_end == set(partitions) and all(i in seen for i in wanted):
            break  # everything the topic holds was read, duplicates included
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
            else:
                warnings.append(str(msg.error()))
            continue
        at_end.discard(msg.partition())
        try:
            ctx = SerializationContext(a.topic, MessageField.VALUE, msg.headers())
            got = comparable(a.format, de(msg.value(), ctx))
            i = int(got["id"])
        except Exception as e:  # noqa: BLE001 - reported, not raised
            errors.append(f"partition {msg.partition()} offset {msg.offset()}: {type(e).__name__}: {e}")
            continue
        seen[i] = seen.get(i, 0) + 1
        if i not in wanted:
            unexpected.append(i)
            continue
        v = 2 if a.version == 2 or (a.v2_from is not None and i >= a.v2_from) else 1
        exp = expected(a.format, i, v, mask)
        if v == 1 and got.get("tier") == "free":
            del got["tier"]  # re-encoded with version 2, whose default is "free"
        key = msg.key().decode() if msg.key() is not None else None
        exp["_key"], got["_key"] = (None if i % 10 == 0 else f"k{i}"), key
        for field in sorted(set(exp) | set(got)):
            if exp.get(field, "<absent>") != got.get(field, "<absent>"):
                mismatches.append({"id": i, "field": field, "expected": jsonable(exp.get(field, "<absent>")),
                                   "got": jsonable(got.get(field, "<absent>"))})
    consumer.close()
    duplicates = sorted(i for i, n in seen.items() if n > 1)
    missing = [i for i in wanted if i not in seen]
    count = sum(1 for i in seen if i in wanted)
    ok = not (missing or duplicates or mismatches or unexpected or errors) and count == a.count
    print(json.dumps({"count": count, "duplicates": duplicates, "missing": missing,
                      "mismatches": mismatches[:5], "mismatch_count": len(mismatches),
                      "unexpected": sorted(set(unexpected)), "errors": errors[:5],
                      **({"warnings": warnings[:5]} if warnings else {}), "ok": ok}))
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    version = {"type": int, "choices": [1, 2], "default": 1}

    pr = sub.add_parser("produce", help="produce records FIRST .. FIRST+COUNT-1 with Confluent's serializer")
    ck = sub.add_parser("check", help="read TOPIC from the start with Confluent's deserializer and compare")
    for s in (pr, ck):
        s.add_argument("--bootstrap", required=True)
        s.add_argument("--topic", required=True)
        s.add_argument("--first", type=int, default=1)
        s.add_argument("--count", type=int, required=True)
    pr.add_argument("--version", **version)
    ck.add_argument("--version", help="the version every record was produced with", **version)
    ck.add_argument("--v2-from", type=int, help="ids from this one on were produced with version 2")
    ck.add_argument("--mask", required=True, help="the field expected as \"***\" (a.b for nested; none or '')")
    ck.add_argument("--timeout-s", type=float, default=60)
    rg = sub.add_parser("register", help="register the format's schema of VERSION under SUBJECT")
    rg.add_argument("--subject", required=True)
    rg.add_argument("--version", **version)
    sc = sub.add_parser("set-compat", help="set SUBJECT's compatibility level")
    sc.add_argument("--subject", required=True)
    sc.add_argument("--level", default="BACKWARD")
    for s in (pr, ck, rg, sc):
        s.add_argument("--registry", required=True, help="the Confluent-compatible API's base URL")
    for s in (pr, ck, rg):
        s.add_argument("--format", required=True, choices=FORMATS)
    a = p.parse_args()
    return {"produce": produce, "check": check, "register": register, "set-compat": set_compat}[a.command](a)


if __name__ == "__main__":
    sys.exit(main())
