// The client's errors: one class, carrying the gRPC status and its details.
//
//   JourneysError        code (number), codeName ("INVALID_ARGUMENT"...), details,
//                        fieldViolations, preconditionViolations, retryDelayMs
//
// Every failed call rejects with a JourneysError (`cause` is grpc-js's own
// error). Branch on `codeName` (or `code`, compared with `Status` below). The
// server puts a google.rpc.Status in the `grpc-status-details-bin` trailer;
// its BadRequest, PreconditionFailure and RetryInfo details are decoded here.

import grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";

/** gRPC status codes by name (grpc-js's `status`). */
export const Status = grpc.status;

const CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status).map(([name, code]) => [code, name]),
);

// The few google.rpc messages the server sends, declared here rather than
// shipped as .proto files: only these fields are read.
const RPC = protobuf.parse(`
syntax = "proto3";
package google.rpc;
message Any { string type_url = 1; bytes value = 2; }
message Duration { int64 seconds = 1; int32 nanos = 2; }
message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
message BadRequest {
  message FieldViolation { string field = 1; string description = 2; }
  repeated FieldViolation field_violations = 1;
}
message PreconditionFailure {
  message Violation { string type = 1; string subject = 2; string description = 3; }
  repeated Violation violations = 1;
}
message RetryInfo { Duration retry_delay = 1; }
`, { keepCase: true }).root;

const StatusProto = RPC.lookupType("google.rpc.Status");
const BadRequest = RPC.lookupType("google.rpc.BadRequest");
const PreconditionFailure = RPC.lookupType("google.rpc.PreconditionFailure");
const RetryInfo = RPC.lookupType("google.rpc.RetryInfo");

/**
 * @typedef {{ field: string, description: string }} FieldViolation
 * @typedef {{ type: string, subject: string, description: string }} PreconditionViolation
 */

/** A call the server (or the connection) refused. */
export class JourneysError extends Error {
  /**
   * @param {string} message
   * @param {{ code: number, details?: string, fieldViolations?: FieldViolation[],
   *   preconditionViolations?: PreconditionViolation[], retryDelayMs?: number | null,
   *   cause?: unknown }} fields
   */
  constructor(message, fields) {
    super(message, { cause: fields.cause });
    this.name = "JourneysError";
    /** The gRPC status code (a number; see `Status`). */
    this.code = fields.code;
    /** Its name, e.g. "PERMISSION_DENIED". */
    this.codeName = CODE_NAMES[fields.code] ?? `CODE_${fields.code}`;
    /** The server's message. */
    this.details = fields.details ?? "";
    /** INVALID_ARGUMENT: every offending field, by path. */
    this.fieldViolations = fields.fieldViolations ?? [];
    /** FAILED_PRECONDITION: why the current state refused it. */
    this.preconditionViolations = fields.preconditionViolations ?? [];
    /** RESOURCE_EXHAUSTED: how long to wait before retrying, when the server says. */
    this.retryDelayMs = fields.retryDelayMs ?? null;
  }
}

/**
 * The JourneysError for a grpc-js error (returned as is when it already is one).
 *
 * @param {any} err
 * @returns {JourneysError}
 */
export function fromGrpcError(err) {
  if (err instanceof JourneysError) {
    return err;
  }
  const code = typeof err?.code === "number" ? err.code : grpc.status.UNKNOWN;
  const details = typeof err?.details === "string" ? err.details : String(err?.message ?? err);
  const fields = { code, details, cause: err, ...decodeDetails(err?.metadata) };
  const codeName = CODE_NAMES[code] ?? `CODE_${code}`;
  // The server's message usually names the violations already; add the others.
  const lines = (fields.fieldViolations ?? [])
    .filter((v) => !details.includes(v.description))
    .map((v) => `\n  ${v.field}: ${v.description}`);
  return new JourneysError(`${codeName}: ${details}${lines.join("")}`, fields);
}

function decodeDetails(metadata) {
  const raw = metadata?.get?.("grpc-status-details-bin")?.[0];
  if (!raw) {
    return {};
  }
  const out = { fieldViolations: [], preconditionViolations: [], retryDelayMs: null };
  try {
    const status = StatusProto.decode(Buffer.isBuffer(raw) ? raw : Buffer.from(raw));
    for (const any of status.details) {
      const kind = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
      if (kind === "google.rpc.BadRequest") {
        for (const v of BadRequest.decode(any.value).field_violations) {
          out.fieldViolations.push({ field: v.field, description: v.description });
        }
      } else if (kind === "google.rpc.PreconditionFailure") {
        for (const v of PreconditionFailure.decode(any.value).violations) {
          out.preconditionViolations.push({
            type: v.type,
            subject: v.subject,
            description: v.description,
          });
        }
      } else if (kind === "google.rpc.RetryInfo") {
        const delay = RetryInfo.decode(any.value).retry_delay;
        if (delay) {
          out.retryDelayMs = Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1e6);
        }
      }
    }
  } catch {
    // Details that do not decode leave the code and message, which still say it.
  }
  return out;
}
