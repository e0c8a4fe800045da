// Loading the journeys.v1 protos at run time with @grpc/proto-loader.
//
// The .proto files are read from the repository's protos/ folder (resolved
// from this file: clients/node/src -> ../../../protos), or from the folder
// named by the JOURNEYS_PROTO_DIR environment variable. The google.protobuf
// well-known types they import (struct, timestamp, duration, field_mask) come
// bundled with protobufjs, so no other include folder is needed.
//
// Options: field names are camelCase (keepCase: false), as is usual in
// JavaScript and as Segment's JSON spells them; enums are their names
// (strings); int64 fields are Numbers (sequences and positions stay far below
// 2^53); unset scalar fields take their defaults; a oneof's set member is
// named by a virtual field (e.g. SubscribeResponse.item = "call" | "gap").

import path from "node:path";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The folder holding journeys/v1/*.proto. */
export const PROTO_DIR =
  process.env.JOURNEYS_PROTO_DIR ?? path.resolve(HERE, "..", "..", "..", "protos");

const FILES = [
  "clock",
  "common",
  "definition",
  "ingest",
  "journey",
  "operation",
  "privacy",
  "reporting",
  "simulation",
  "space",
  "subscription",
  "token",
  "backup",
].map((name) => `journeys/v1/${name}.proto`);

/** proto-loader options used for every service (documented above). */
export const LOADER_OPTIONS = Object.freeze({
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
});

let cached;

/**
 * The `journeys.v1` package as grpc-js service client constructors, loaded once.
 *
 * @returns {Record<string, typeof grpc.Client>}
 */
export function journeysPackage() {
  if (cached === undefined) {
    const definition = protoLoader.loadSync(FILES, LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(definition).journeys.v1;
  }
  return cached;
}
