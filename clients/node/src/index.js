// @journeys/client: a Node.js client for the journeys engine (gRPC journeys.v1).
//
//   import { JourneysClient } from "@journeys/client";
//   const client = new JourneysClient("localhost:50051", { token: process.env.JOURNEYS_TOKEN });
//
// See README.md.

export { Follower, JourneysClient, Subscription } from "./client.js";
export { JourneysError, Status, fromGrpcError } from "./errors.js";
export {
  fromDuration,
  fromStruct,
  fromTimestamp,
  fromValue,
  parseDuration,
  segmentMessage,
  toDuration,
  toStruct,
  toTimestamp,
  toValue,
} from "./messages.js";
export { LOADER_OPTIONS, PROTO_DIR, journeysPackage } from "./protos.js";
