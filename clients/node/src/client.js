// JourneysClient: the journeys.v1 API over one gRPC channel, promise-based.
//
// Requests and responses are the protos' messages as plain objects with
// camelCase fields, enums as their names and int64 as Numbers (see
// protos.js). The client fills in `spaceId`, converts Segment JSON messages,
// times and durations, and turns every failure into a JourneysError.

import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

import grpc from "@grpc/grpc-js";

import { JourneysError, fromGrpcError } from "./errors.js";
import { fromTimestamp, segmentMessage, toDuration, toTimestamp } from "./messages.js";
import { journeysPackage } from "./protos.js";

/**
 * @typedef {object} ClientOptions
 * @property {string} [space] The space calls go to unless one names another ("default").
 * @property {string} [token] The access token, sent as `authorization: Bearer <token>`.
 * @property {boolean} [tls] Use TLS, trusting the system's CAs (implied by any tls* file).
 * @property {string | Buffer} [tlsCa] PEM path or contents: the CA that signed the server's certificate.
 * @property {string | Buffer} [tlsCert] PEM path or contents: a client certificate (mutual TLS).
 * @property {string | Buffer} [tlsKey] PEM path or contents: its private key.
 * @property {number} [timeoutMs] Deadline of each unary call (30 s); streams have none.
 * @property {boolean} [waitForReady] Unary calls wait (up to their deadline) for a
 *   connection instead of failing at once with UNAVAILABLE while the server is unreachable.
 * @property {Record<string, unknown>} [channelOptions] grpc-js channel options, over the defaults.
 */

/**
 * A destination call, as `subscribe` yields it.
 *
 * @typedef {object} Call
 * @property {"call"} kind
 * @property {number} sequence Dense per destination: 1, 2, 3...
 * @property {string} messageId Stable: the same call always has the same id.
 * @property {string} payload The call as compact JSON.
 * @property {any} data The payload parsed.
 * @property {Date | null} timestamp
 * @property {string} journeyId
 * @property {string} stepId
 * @property {string} profileKey
 * @property {number} run
 * @property {string} change "entered" or "exited".
 */

/**
 * Calls no longer kept (dropped by the outbox retention before an ack).
 *
 * @typedef {{ kind: "gap", firstSequence: number, lastSequence: number, reason: string }} Gap
 */

const DEFAULT_CHANNEL_OPTIONS = {
  // Reconnect soon after a server restart: follow() resubscribes within seconds.
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 5000,
  // A connection of its own: grpc-js otherwise shares one per address across
  // clients, and a new client then inherits another's reconnect backoff.
  "grpc.use_local_subchannel_pool": 1,
};

// Each definition kind's methods, generated alike: [singular, plural, id field].
const DEFINITIONS = [
  ["Audience", "Audiences", "audience"],
  ["ComputedTrait", "ComputedTraits", "computedTrait"],
  ["Destination", "Destinations", "destination"],
];

const TOKEN_ROLES = { ingest: "TOKEN_ROLE_INGEST", subscribe: "TOKEN_ROLE_SUBSCRIBE", admin: "TOKEN_ROLE_ADMIN" };

function readPem(value, what) {
  if (value === undefined || value === null) {
    return null;
  }
  if (Buffer.isBuffer(value)) {
    return value;
  }
  try {
    return readFileSync(value);
  } catch (err) {
    throw new Error(`cannot read ${what} ${JSON.stringify(value)}: ${err.message}`, { cause: err });
  }
}

function credentialsFor({ tls, tlsCa, tlsCert, tlsKey }) {
  if (!(tls || tlsCa || tlsCert || tlsKey)) {
    return grpc.credentials.createInsecure();
  }
  if (!tlsCert !== !tlsKey) {
    throw new Error("a client certificate needs both tlsCert and tlsKey");
  }
  return grpc.credentials.createSsl(
    readPem(tlsCa, "tlsCa"),
    readPem(tlsKey, "tlsKey"),
    readPem(tlsCert, "tlsCert"),
  );
}

// segmentMessage's output: its type is already the enum's name.
function isConverted(message) {
  return typeof message?.type === "string" && message.type.startsWith("MESSAGE_TYPE_");
}

function toCall(call) {
  let data;
  try {
    data = JSON.parse(call.payload);
  } catch {
    data = null;
  }
  return {
    kind: "call",
    sequence: call.sequence,
    messageId: call.messageId,
    payload: call.payload,
    data,
    timestamp: fromTimestamp(call.timestamp),
    journeyId: call.journeyId,
    stepId: call.stepId,
    profileKey: call.profileKey,
    run: call.run,
    change: call.change,
  };
}

/** A client of one journeys server. Call `close()` when done. */
export class JourneysClient {
  /**
   * @param {string} [target] host:port of the server.
   * @param {ClientOptions} [options]
   */
  constructor(
    target = "localhost:50051",
    {
      space = "default",
      token,
      tls,
      tlsCa,
      tlsCert,
      tlsKey,
      timeoutMs = 30_000,
      waitForReady = false,
      channelOptions = {},
    } = {},
  ) {
    this.target = target;
    this.space = space;
    this.timeoutMs = timeoutMs;
    this.waitForReady = waitForReady;
    this._token = token;
    const credentials = credentialsFor({ tls, tlsCa, tlsCert, tlsKey });
    this._channel = new grpc.Channel(target, credentials, { ...DEFAULT_CHANNEL_OPTIONS, ...channelOptions });
    const pkg = journeysPackage();
    const stub = (name) => new pkg[name](target, credentials, { channelOverride: this._channel });
    this._spaces = stub("SpaceService");
    this._journeys = stub("JourneyService");
    this._definitions = stub("DefinitionService");
    this._ingest = stub("IngestService");
    this._subscriptions = stub("SubscriptionService");
    this._reporting = stub("ReportingService");
    this._clock = stub("ClockService");
    this._operations = stub("OperationService");
    this._tokens = stub("TokenService");
    this._privacy = stub("PrivacyService");
    this._closed = false;
  }

  /** Closes the channel; open streams end. Safe to call twice. */
  close() {
    if (!this._closed) {
      this._closed = true;
      this._channel.close();
    }
  }

  _metadata() {
    const metadata = new grpc.Metadata();
    if (this._token) {
      metadata.set("authorization", `Bearer ${this._token}`);
    }
    return metadata;
  }

  _space(space) {
    return space ?? this.space;
  }

  /** One unary call, with the token and the deadline; rejects with a JourneysError. */
  _call(stub, method, request) {
    return new Promise((resolve, reject) => {
      stub[method](
        request,
        this._metadata(),
        { deadline: Date.now() + this.timeoutMs, waitForReady: this.waitForReady },
        (err, response) => (err ? reject(fromGrpcError(err)) : resolve(response)),
      );
    });
  }

  /** Every item of a paged List call, following next_page_token. */
  async _all(stub, method, request, field) {
    const items = [];
    let pageToken = "";
    do {
      const response = await this._call(stub, method, { ...request, pageSize: 1000, pageToken });
      items.push(...response[field]);
      pageToken = response.nextPageToken;
    } while (pageToken);
    return items;
  }

  // Spaces

  /** Creates a space (an admin token of every space). */
  async createSpace(spaceId, { displayName = "" } = {}) {
    return (await this._call(this._spaces, "CreateSpace", { space: { id: spaceId, displayName } })).space;
  }

  /** Reads a space (this client's by default). */
  async getSpace(spaceId) {
    return (await this._call(this._spaces, "GetSpace", { spaceId: this._space(spaceId) })).space;
  }

  /** Every space the token may see, in creation order. */
  listSpaces() {
    return this._all(this._spaces, "ListSpaces", {}, "spaces");
  }

  // Journeys

  /**
   * Creates a draft journey. `journey` is a journeys.v1.Journey as a plain
   * object (`{ name, steps: [{ id, name, entry: { condition: { text }, nextStepId } }, ...] }`;
   * durations via `toDuration("1h")`).
   *
   * @returns {Promise<{ journey: object, warnings: object[] }>}
   */
  createJourney(journey, { journeyId = "", validateOnly = false, space } = {}) {
    return this._call(this._journeys, "CreateJourney", {
      spaceId: this._space(space),
      journey,
      journeyId,
      validateOnly,
    });
  }

  async getJourney(journeyId, { space } = {}) {
    return (await this._call(this._journeys, "GetJourney", { spaceId: this._space(space), journeyId })).journey;
  }

  /** Every journey of the space (or those of one status, e.g. "JOURNEY_STATUS_PUBLISHED"). */
  listJourneys({ status, space } = {}) {
    return this._all(this._journeys, "ListJourneys", { spaceId: this._space(space), status }, "journeys");
  }

  /**
   * Changes a journey (named by `journey.id`); `updateMask` lists the fields
   * replaced ("name", "description", "settings", "steps"; empty: all).
   *
   * @returns {Promise<{ journey: object, warnings: object[] }>}
   */
  updateJourney(journey, { updateMask = [], validateOnly = false, space } = {}) {
    return this._call(this._journeys, "UpdateJourney", {
      spaceId: this._space(space),
      journey,
      updateMask: { paths: updateMask },
      validateOnly,
    });
  }

  async deleteJourney(journeyId, { space } = {}) {
    await this._call(this._journeys, "DeleteJourney", { spaceId: this._space(space), journeyId });
  }

  /** draft -> published; `operationId` names a historical entry, when the entry uses one. */
  publishJourney(journeyId, { space } = {}) {
    return this._call(this._journeys, "PublishJourney", { spaceId: this._space(space), journeyId });
  }

  async pauseJourney(journeyId, { space } = {}) {
    return (await this._call(this._journeys, "PauseJourney", { spaceId: this._space(space), journeyId })).journey;
  }

  async resumeJourney(journeyId, { space } = {}) {
    return (await this._call(this._journeys, "ResumeJourney", { spaceId: this._space(space), journeyId })).journey;
  }

  async archiveJourney(journeyId, { space } = {}) {
    return (await this._call(this._journeys, "ArchiveJourney", { spaceId: this._space(space), journeyId })).journey;
  }

  async cloneJourney(journeyId, { newJourneyId = "", space } = {}) {
    return (
      await this._call(this._journeys, "CloneJourney", { spaceId: this._space(space), journeyId, newJourneyId })
    ).journey;
  }

  /** How many stored profiles match the entry condition now, and the first `limit` of them. */
  previewEntry(journeyId, { limit = 0, space } = {}) {
    return this._call(this._journeys, "PreviewEntry", { spaceId: this._space(space), journeyId, limit });
  }

  // Definitions: checkCondition here; create/get/list/update/delete for
  // audiences, computed traits and destinations are added below the class.

  /**
   * The canonical text and tree of a condition (or, with `computedTrait`, an expression).
   *
   * @returns {Promise<object>} the Condition
   */
  async checkCondition(text, { computedTrait = false, space } = {}) {
    const response = await this._call(this._definitions, "CheckCondition", {
      spaceId: this._space(space),
      condition: { text },
      kind: computedTrait ? "CONDITION_KIND_COMPUTED_TRAIT" : "CONDITION_KIND_UNSPECIFIED",
    });
    return response.condition;
  }

  // Ingestion

  /**
   * Sends Segment-spec JSON messages (one, or an array of at most 2,500) as
   * one batch; resolves once they are durable. A message without `messageId`
   * gets a fresh one: to resend a batch safely after a failure (the server
   * drops repeats by id), give ids, or convert once with `segmentMessage` and
   * pass the converted messages, which go through as they are.
   *
   * @param {object | object[]} messages
   * @returns {Promise<{ batchId: string, accepted: number, duplicates: number[],
   *   errors: { index: number, problems: { field: string, message: string }[] }[], positions: number[] }>}
   */
  ingest(messages, { batchId = "", space } = {}) {
    const list = Array.isArray(messages) ? messages : [messages];
    return this._call(this._ingest, "Ingest", {
      spaceId: this._space(space),
      batchId,
      messages: list.map((m) => (isConverted(m) ? m : segmentMessage(m))),
    });
  }

  // Subscriptions

  /**
   * The destination's calls after `after` (default: after the consumer's last
   * ack), then new ones as they are committed. Iterate it with `for await`;
   * `close()` (or leaving the loop) ends it.
   *
   * The server sends the calls that are ready up to `maxBatch` per response
   * (far more calls per second than one per response); they are yielded one
   * at a time all the same. `maxBatch: 1` asks for one call per response.
   *
   * @param {string} destinationId
   * @param {string} consumer
   * @param {{ after?: number, space?: string, maxBatch?: number }} [options]
   * @returns {Subscription}
   */
  subscribe(destinationId, consumer, { after, space, maxBatch = 100 } = {}) {
    const request = { spaceId: this._space(space), destinationId, consumer, maxBatch };
    if (after !== undefined && after !== null) {
      request.afterSequence = after;
    }
    return new Subscription(() => this._subscriptions.Subscribe(request, this._metadata()));
  }

  /**
   * Like `subscribe`, but when the stream drops (UNAVAILABLE: a server
   * restart, a stall) it subscribes again after the last call or gap it
   * yielded, with backoff, up to `retries` times in a row.
   *
   * @param {string} destinationId
   * @param {string} consumer
   * @param {{ after?: number, retries?: number, space?: string, maxBatch?: number }} [options]
   * @returns {Follower}
   */
  follow(destinationId, consumer, { after, retries = 10, space, maxBatch = 100 } = {}) {
    return new Follower((from) => this.subscribe(destinationId, consumer, { after: from, space, maxBatch }), after, retries);
  }

  /** Acknowledges every call up to `sequence`; resolves to the consumer's cursor. */
  async ack(destinationId, consumer, sequence, { space } = {}) {
    const response = await this._call(this._subscriptions, "Ack", {
      spaceId: this._space(space),
      destinationId,
      consumer,
      sequence,
    });
    return response.ackedSequence;
  }

  /** Every current member of a send step, in joining order. */
  listMembers(journeyId, stepId, { space } = {}) {
    return this._all(this._subscriptions, "ListMembers", { spaceId: this._space(space), journeyId, stepId }, "members");
  }

  // Reporting

  getJourneyStats(journeyId, { space } = {}) {
    return this._call(this._reporting, "GetJourneyStats", { spaceId: this._space(space), journeyId });
  }

  listStepUsers(journeyId, stepId, { waitingOnly = false, space } = {}) {
    return this._all(
      this._reporting,
      "ListStepUsers",
      { spaceId: this._space(space), journeyId, stepId, waitingOnly },
      "users",
    );
  }

  /** A profile by `{ userId }` or `{ anonymousId }`. */
  getProfile({ userId = "", anonymousId = "", space } = {}) {
    return this._call(this._reporting, "GetProfile", { spaceId: this._space(space), userId, anonymousId });
  }

  listTimeline({ userId = "", anonymousId = "", journeyId = "", space } = {}) {
    return this._all(
      this._reporting,
      "ListTimeline",
      { spaceId: this._space(space), userId, anonymousId, journeyId },
      "entries",
    );
  }

  // Operations

  async getOperation(operationId, { space } = {}) {
    return (await this._call(this._operations, "GetOperation", { spaceId: this._space(space), operationId }))
      .operation;
  }

  listOperations({ space } = {}) {
    return this._all(this._operations, "ListOperations", { spaceId: this._space(space) }, "operations");
  }

  // Tokens

  /**
   * Creates a token; the response's `secret` is shown only now.
   *
   * @param {"ingest" | "subscribe" | "admin"} role
   * @returns {Promise<{ token: object, secret: string }>}
   */
  createToken(role, { name = "", destinationIds = [], space } = {}) {
    return this._call(this._tokens, "CreateToken", {
      spaceId: this._space(space),
      role: TOKEN_ROLES[role] ?? role,
      name,
      destinationIds,
    });
  }

  listTokens({ space } = {}) {
    return this._all(this._tokens, "ListTokens", { spaceId: this._space(space) }, "tokens");
  }

  async revokeToken(tokenId, { space } = {}) {
    return (await this._call(this._tokens, "RevokeToken", { spaceId: this._space(space), tokenId })).token;
  }

  // Privacy

  /** Erases a profile (`{ userId }` or `{ anonymousId }`), optionally suppressing its ids. */
  deleteProfile({ userId = "", anonymousId = "", suppress = false, space } = {}) {
    return this._call(this._privacy, "DeleteProfile", { spaceId: this._space(space), userId, anonymousId, suppress });
  }

  getSuppression({ userId = "", anonymousId = "", space } = {}) {
    return this._call(this._privacy, "GetSuppression", { spaceId: this._space(space), userId, anonymousId });
  }

  deleteSuppression({ userId = "", anonymousId = "", space } = {}) {
    return this._call(this._privacy, "DeleteSuppression", { spaceId: this._space(space), userId, anonymousId });
  }

  // The clock (servers started with --manual-clock)

  /** The server's clock. */
  async getTime() {
    return fromTimestamp((await this._call(this._clock, "GetTime", {})).now);
  }

  /**
   * Moves the manual clock forward by milliseconds or a duration such as
   * "1h" or "1d12h"; resolves, to the new time, once every timer due on the
   * way has been applied.
   *
   * @param {number | string} by
   * @returns {Promise<Date>}
   */
  async advanceTime(by) {
    return fromTimestamp((await this._call(this._clock, "AdvanceTime", { by: toDuration(by) })).now);
  }

  /**
   * Moves the manual clock to an instant (never backwards).
   *
   * @param {Date | string | number} time
   * @returns {Promise<Date>}
   */
  async setTime(time) {
    return fromTimestamp((await this._call(this._clock, "SetTime", { time: toTimestamp(time) })).now);
  }
}

for (const [one, many, field] of DEFINITIONS) {
  const idField = `${field}Id`;
  const proto = JourneysClient.prototype;
  proto[`create${one}`] = async function create(definition, { validateOnly = false, space } = {}) {
    const request = { spaceId: this._space(space), [field]: definition, validateOnly };
    return (await this._call(this._definitions, `Create${one}`, request))[field];
  };
  proto[`get${one}`] = async function get(id, { space } = {}) {
    return (await this._call(this._definitions, `Get${one}`, { spaceId: this._space(space), [idField]: id }))[field];
  };
  proto[`list${many}`] = function list({ space } = {}) {
    return this._all(this._definitions, `List${many}`, { spaceId: this._space(space) }, `${field}s`);
  };
  proto[`update${one}`] = async function update(definition, { updateMask = [], validateOnly = false, space } = {}) {
    const request = {
      spaceId: this._space(space),
      [field]: definition,
      updateMask: { paths: updateMask },
      validateOnly,
    };
    return (await this._call(this._definitions, `Update${one}`, request))[field];
  };
  proto[`delete${one}`] = async function remove(id, { space } = {}) {
    await this._call(this._definitions, `Delete${one}`, { spaceId: this._space(space), [idField]: id });
  };
}

/** One Subscribe stream: async-iterable calls and gaps, closable. */
export class Subscription {
  constructor(open) {
    this._stream = open();
    this._closed = false;
    /** Resolves when the server has set the subscription up (its response headers). */
    this.ready = new Promise((resolve, reject) => {
      this._stream.once("metadata", () => resolve());
      this._stream.once("error", (err) => reject(fromGrpcError(err)));
    });
    this.ready.catch(() => {}); // the iterator reports the error too
  }

  /** Ends the stream; an iteration in progress finishes without error. */
  close() {
    if (!this._closed) {
      this._closed = true;
      this._stream.cancel();
    }
  }

  /** @returns {AsyncGenerator<Call | Gap>} */
  async *[Symbol.asyncIterator]() {
    try {
      for await (const item of this._stream) {
        if (item.item === "call") {
          yield toCall(item.call);
        } else if (item.item === "calls") {
          for (const call of item.calls.calls) {
            if (this._closed) {
              return; // closed in the middle of a batch: the rest is not yielded
            }
            yield toCall(call);
          }
        } else if (item.item === "gap") {
          yield { kind: "gap", ...item.gap };
        }
      }
    } catch (err) {
      if (this._closed && err?.code === grpc.status.CANCELLED) {
        return;
      }
      throw fromGrpcError(err);
    } finally {
      this.close();
    }
  }
}

/** Subscriptions one after the other, each resuming where the last stopped. */
export class Follower {
  constructor(subscribe, after, retries) {
    this._subscribe = subscribe;
    this._retries = retries;
    this._closed = false;
    this._current = null;
    this._abort = new AbortController();
    /** The sequence the next subscription starts after (undefined: the consumer's cursor). */
    this.after = after;
    /** How many times it has subscribed again after a drop. */
    this.reconnects = 0;
  }

  /** Ends it; an iteration in progress finishes without error. */
  close() {
    this._closed = true;
    this._abort.abort();
    this._current?.close();
  }

  /** @returns {AsyncGenerator<Call | Gap>} */
  async *[Symbol.asyncIterator]() {
    let attempt = 0;
    try {
      while (!this._closed) {
        this._current = this._subscribe(this.after);
        try {
          for await (const item of this._current) {
            attempt = 0;
            this.after = item.kind === "call" ? item.sequence : item.lastSequence;
            yield item;
          }
          return;
        } catch (err) {
          if (this._closed || !(err instanceof JourneysError) || err.code !== grpc.status.UNAVAILABLE) {
            if (this._closed) {
              return;
            }
            throw err;
          }
          if (attempt >= this._retries) {
            throw err;
          }
          attempt += 1;
          try {
            await sleep(Math.min(200 * 2 ** attempt, 5000), undefined, { signal: this._abort.signal });
          } catch {
            return; // closed while waiting
          }
          this.reconnects += 1;
        }
      }
    } finally {
      this._current?.close();
    }
  }
}
