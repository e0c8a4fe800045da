// The conversions, without a server.

import assert from "node:assert/strict";
import { test } from "node:test";

import grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";

import {
  JourneysError,
  fromDuration,
  fromGrpcError,
  fromStruct,
  fromTimestamp,
  parseDuration,
  segmentMessage,
  toDuration,
  toStruct,
  toTimestamp,
} from "../src/index.js";
import { journeysPackage } from "../src/protos.js";

test("durations as journey files write them", () => {
  assert.equal(parseDuration("1d12h"), 36 * 3_600_000);
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("2 weeks"), 14 * 86_400_000);
  assert.equal(parseDuration("30 minutes"), 1_800_000);
  assert.equal(parseDuration(1500), 1500);
  assert.throws(() => parseDuration("1 fortnight"), /not a unit/);
  assert.throws(() => parseDuration("soon"), /not a duration/);
  assert.throws(() => parseDuration(1.5), RangeError);
  assert.deepEqual(toDuration("1500ms"), { seconds: 1, nanos: 500_000_000 });
  assert.equal(fromDuration(toDuration("1d")), 86_400_000);
});

test("timestamps keep milliseconds", () => {
  const stamp = toTimestamp("2024-02-29T12:00:00.123Z");
  assert.deepEqual(stamp, { seconds: 1_709_208_000, nanos: 123_000_000 });
  assert.equal(fromTimestamp(stamp).toISOString(), "2024-02-29T12:00:00.123Z");
  assert.deepEqual(toTimestamp(new Date(-1)), { seconds: -1, nanos: 999_000_000 });
  assert.throws(() => toTimestamp("yesterday"), /not a time/);
});

test("a Segment message becomes a SegmentMessage that encodes and decodes", () => {
  const properties = { total: 12.5, items: ["a", 2, true, null], nested: { ok: false }, none: null };
  const message = segmentMessage({
    type: "track",
    userId: 42,
    event: "Order Completed",
    properties,
    context: { ip: "10.0.0.1" },
    sentAt: "2024-01-01T00:00:01Z",
  });
  assert.equal(message.type, "MESSAGE_TYPE_TRACK");
  assert.equal(message.userId, "42");
  assert.match(message.messageId, /^[0-9a-f-]{36}$/);
  assert.deepEqual(fromStruct(message.properties), properties);
  // Through the real wire encoding, as grpc-js sends it.
  const method = journeysPackage().IngestService.service.Ingest;
  const request = { spaceId: "default", messages: [message] };
  const decoded = method.requestDeserialize(method.requestSerialize(request));
  assert.equal(decoded.messages[0].event, "Order Completed");
  assert.deepEqual(fromStruct(decoded.messages[0].properties), properties);
  assert.equal(fromTimestamp(decoded.messages[0].sentAt).toISOString(), "2024-01-01T00:00:01.000Z");
  assert.equal(segmentMessage({ type: "shout" }).type, "MESSAGE_TYPE_UNSPECIFIED", "the server names it");
  assert.throws(() => segmentMessage({ type: "track", properties: [1] }), /properties must be a JSON object/);
  assert.throws(() => toStruct("text"), TypeError);
});

test("a status's BadRequest and RetryInfo details are decoded", () => {
  const root = protobuf.parse(`
    syntax = "proto3";
    message Any { string type_url = 1; bytes value = 2; }
    message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
    message FieldViolation { string field = 1; string description = 2; }
    message BadRequest { repeated FieldViolation field_violations = 1; }
    message Duration { int64 seconds = 1; int32 nanos = 2; }
    message RetryInfo { Duration retry_delay = 1; }
  `, { keepCase: true }).root;
  const encode = (name, value) => root.lookupType(name).encode(value).finish();
  const status = encode("Status", {
    code: 3,
    message: "bad",
    details: [
      {
        type_url: "type.googleapis.com/google.rpc.BadRequest",
        value: encode("BadRequest", { field_violations: [{ field: "messages[0].userId", description: "is required" }] }),
      },
      { type_url: "type.googleapis.com/google.rpc.RetryInfo", value: encode("RetryInfo", { retry_delay: { seconds: 1, nanos: 500_000_000 } }) },
    ],
  });
  const metadata = new grpc.Metadata();
  metadata.set("grpc-status-details-bin", Buffer.from(status));
  const err = fromGrpcError({ code: grpc.status.INVALID_ARGUMENT, details: "bad", metadata });
  assert.ok(err instanceof JourneysError);
  assert.equal(err.codeName, "INVALID_ARGUMENT");
  assert.deepEqual(err.fieldViolations, [{ field: "messages[0].userId", description: "is required" }]);
  assert.equal(err.retryDelayMs, 1500);
  assert.match(err.message, /^INVALID_ARGUMENT: bad\n {2}messages\[0\]\.userId: is required$/);
  assert.equal(fromGrpcError(err), err);
  const bare = fromGrpcError(new Error("boom"));
  assert.deepEqual([bare.codeName, bare.fieldViolations, bare.retryDelayMs], ["UNKNOWN", [], null]);
});
