// Conversions between JavaScript values and the protos' well-known types, and
// Segment-spec JSON messages as journeys.v1.SegmentMessage.

import { randomUUID } from "node:crypto";

const TYPES = {
  track: "MESSAGE_TYPE_TRACK",
  identify: "MESSAGE_TYPE_IDENTIFY",
  page: "MESSAGE_TYPE_PAGE",
  screen: "MESSAGE_TYPE_SCREEN",
  alias: "MESSAGE_TYPE_ALIAS",
  group: "MESSAGE_TYPE_GROUP",
};
const TEXT = ["messageId", "userId", "anonymousId", "event", "name", "previousId", "groupId"];

const UNITS = {
  ms: 1,
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
};

/**
 * Milliseconds in a duration: a number of milliseconds, or text such as
 * "7d", "1d12h", "90s", "2 weeks" (units ms, s, m, h, d, w and their words),
 * as journey files and the command line write them.
 *
 * @param {number | string} value
 * @returns {number}
 */
export function parseDuration(value) {
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`${value} is not a whole number of milliseconds`);
    }
    return value;
  }
  const rest = String(value).trim().toLowerCase();
  if (!rest) {
    throw new RangeError("empty duration");
  }
  const part = /\s*(\d+)\s*([a-z]+)\s*/y;
  let total = 0;
  while (part.lastIndex < rest.length) {
    const match = part.exec(rest);
    if (match === null) {
      throw new RangeError(`${JSON.stringify(value)} is not a duration such as 7d, 12h, 30m or 1d12h`);
    }
    const unit = match[2];
    const factor = UNITS[unit] ?? UNITS[unit.replace(/s$/, "")];
    if (factor === undefined) {
      throw new RangeError(`${JSON.stringify(unit)} is not a unit (use ms, s, m, h, d or w)`);
    }
    total += Number(match[1]) * factor;
  }
  return total;
}

/**
 * A google.protobuf.Duration from milliseconds or text ("1h", "30d").
 *
 * @param {number | string} value
 * @returns {{ seconds: number, nanos: number }}
 */
export function toDuration(value) {
  const ms = parseDuration(value);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/**
 * Milliseconds in a google.protobuf.Duration (null when unset).
 *
 * @param {{ seconds: number | string, nanos: number } | null | undefined} duration
 * @returns {number | null}
 */
export function fromDuration(duration) {
  if (!duration) {
    return null;
  }
  return Number(duration.seconds) * 1000 + Math.round((duration.nanos ?? 0) / 1e6);
}

/**
 * A google.protobuf.Timestamp from a Date, an ISO 8601 string or epoch milliseconds.
 *
 * @param {Date | string | number} value
 * @returns {{ seconds: number, nanos: number }}
 */
export function toTimestamp(value) {
  const date = value instanceof Date ? value : new Date(value);
  const ms = date.getTime();
  if (Number.isNaN(ms)) {
    throw new RangeError(`${JSON.stringify(value)} is not a time (use ISO 8601)`);
  }
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

/**
 * A Date from a google.protobuf.Timestamp (null when unset).
 *
 * @param {{ seconds: number | string, nanos: number } | null | undefined} stamp
 * @returns {Date | null}
 */
export function fromTimestamp(stamp) {
  if (!stamp) {
    return null;
  }
  return new Date(Number(stamp.seconds) * 1000 + Math.floor((stamp.nanos ?? 0) / 1e6));
}

/**
 * A google.protobuf.Value from a JSON value.
 *
 * @param {unknown} value
 * @returns {object}
 */
export function toValue(value) {
  if (value === null || value === undefined) {
    return { nullValue: "NULL_VALUE" };
  }
  switch (typeof value) {
    case "number":
      return { numberValue: value };
    case "string":
      return { stringValue: value };
    case "boolean":
      return { boolValue: value };
    case "bigint":
      return { numberValue: Number(value) };
    default:
      break;
  }
  if (value instanceof Date) {
    return { stringValue: value.toISOString() };
  }
  if (Array.isArray(value)) {
    return { listValue: { values: value.map(toValue) } };
  }
  if (typeof value === "object") {
    return { structValue: toStruct(value) };
  }
  throw new TypeError(`a ${typeof value} is not a JSON value`);
}

/**
 * A google.protobuf.Struct from a plain object.
 *
 * @param {Record<string, unknown>} object
 * @returns {{ fields: Record<string, object> }}
 */
export function toStruct(object) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) {
    throw new TypeError("a Struct is made from a plain JSON object");
  }
  const fields = {};
  for (const [key, value] of Object.entries(object)) {
    if (value !== undefined) {
      fields[key] = toValue(value);
    }
  }
  return { fields };
}

const KINDS = ["numberValue", "stringValue", "boolValue", "listValue", "structValue", "nullValue"];

/**
 * The JSON value of a google.protobuf.Value (as proto-loader decodes it).
 *
 * @param {any} value
 * @returns {unknown}
 */
export function fromValue(value) {
  if (!value) {
    return null;
  }
  // proto-loader names the set member in `kind`; values built here have none.
  const kind = value.kind ?? KINDS.find((name) => value[name] !== undefined && value[name] !== null);
  switch (kind) {
    case "numberValue":
      return value.numberValue;
    case "stringValue":
      return value.stringValue;
    case "boolValue":
      return value.boolValue;
    case "listValue":
      return (value.listValue?.values ?? []).map(fromValue);
    case "structValue":
      return fromStruct(value.structValue);
    default:
      return null;
  }
}

/**
 * The plain object of a google.protobuf.Struct (null when unset).
 *
 * @param {any} struct
 * @returns {Record<string, unknown> | null}
 */
export function fromStruct(struct) {
  if (!struct) {
    return null;
  }
  return Object.fromEntries(
    Object.entries(struct.fields ?? {}).map(([key, value]) => [key, fromValue(value)]),
  );
}

/**
 * The wire form (journeys.v1.SegmentMessage) of a Segment-spec JSON message,
 * e.g. `{ type: "track", userId: "u1", event: "Signed Up", properties: {...} }`.
 * A message without `messageId` gets a fresh UUID, so resending the same
 * converted batch is deduplicated by the server.
 *
 * Values the server checks (an unknown type, a missing id) are passed on for
 * the server to name; values that cannot go on the wire at all (a timestamp
 * that is not a time, properties that are not an object) throw here.
 *
 * @param {Record<string, any>} raw
 * @returns {object}
 */
export function segmentMessage(raw) {
  if (raw === null || typeof raw !== "object") {
    throw new TypeError("a Segment message is a JSON object");
  }
  const message = { type: TYPES[String(raw.type)] ?? "MESSAGE_TYPE_UNSPECIFIED" };
  for (const key of TEXT) {
    if (raw[key] !== undefined && raw[key] !== null) {
      message[key] = String(raw[key]);
    }
  }
  if (!message.messageId) {
    message.messageId = randomUUID();
  }
  for (const key of ["properties", "traits", "context"]) {
    if (raw[key] !== undefined && raw[key] !== null) {
      if (typeof raw[key] !== "object" || Array.isArray(raw[key])) {
        throw new TypeError(`${key} must be a JSON object`);
      }
      message[key] = toStruct(raw[key]);
    }
  }
  for (const key of ["timestamp", "sentAt"]) {
    if (raw[key] !== undefined && raw[key] !== null) {
      message[key] = toTimestamp(raw[key]);
    }
  }
  return message;
}
