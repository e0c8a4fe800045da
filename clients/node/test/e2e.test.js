// End to end: the real Python server (`journeys serve --manual-clock`) and this client.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { JourneysClient, JourneysError, toDuration } from "../src/index.js";
import { Server, createToken, journeys, scratchDir } from "./helpers/server.js";

/** The next `count` items of a subscription (or follower) iterator, each within `withinMs`. */
async function take(iterator, count, withinMs = 10_000) {
  const items = [];
  while (items.length < count) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no item within ${withinMs} ms (${items.length} of ${count})`)), withinMs);
    });
    try {
      const { value, done } = await Promise.race([iterator.next(), late]);
      assert.ok(!done, `the stream ended after ${items.length} of ${count} items`);
      items.push(value);
    } finally {
      clearTimeout(timer);
    }
  }
  return items;
}

/** The rejection of `promise`, which must be a JourneysError. */
async function refusal(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof JourneysError, `not a JourneysError: ${err}`);
    return err;
  }
  assert.fail("the call succeeded");
}

/** A small journey as a plain object: entry on "Signed Up", wait a day, send to `destinationId`. */
function signupJourney(destinationId) {
  return {
    name: "Signup welcome",
    description: "A day after sign-up, welcome the user.",
    steps: [
      {
        id: "signed-up",
        name: "Signed up",
        entry: { condition: { text: "event('Signed Up').count() >= 1" }, nextStepId: "wait-1d" },
      },
      { id: "wait-1d", name: "Wait a day", waitDuration: { duration: toDuration("1d"), nextStepId: "welcome" } },
      { id: "welcome", name: "Welcome", sendToDestinations: { destinationIds: [destinationId] } },
    ],
  };
}

describe("against one server", { timeout: 60_000 }, () => {
  let scratch;
  let server;
  let token;
  let client;

  before(async () => {
    scratch = scratchDir();
    token = await createToken(scratch.db, "--all-spaces", "--role", "admin", "--name", "node-tests");
    server = await Server.start(scratch.db);
    client = new JourneysClient(server.target, { token });
  });

  after(async () => {
    client?.close();
    try {
      if (server) {
        const { code } = await server.stop();
        assert.equal(code, 0, `the server did not stop cleanly:\n${server.stderr}`);
      }
    } finally {
      await server?.kill();
      scratch?.remove();
    }
  });

  test("the onboarding example: publish, ingest, advance, read, ack, resume", async () => {
    // Applied by the Python CLI (the journey-file format lives there); the rest is this client.
    await journeys("--server", server.target, "--token", token, "apply", "-f", "examples/onboarding.yaml");
    assert.equal((await client.getJourney("onboarding")).status, "JOURNEY_STATUS_DRAFT");
    const published = await client.publishJourney("onboarding");
    assert.equal(published.journey.status, "JOURNEY_STATUS_PUBLISHED");
    assert.equal(published.operationId, "");

    const start = await client.getTime();
    const batch = [
      { type: "track", messageId: "m1", userId: "u1", event: "Account Created", properties: { plan: "trial" } },
      { type: "track", messageId: "m2", userId: "u2", event: "Account Created", properties: { plan: "pro" } },
      { type: "track", messageId: "m3", userId: "u2", event: "Tutorial Completed" },
      { type: "identify", messageId: "m4", userId: "u3", traits: { email: "u3@example.com", age: 31 } },
      // By the server's clock: a timestamp ahead of it would move this user's wait on.
      { type: "track", messageId: "m5", userId: "u3", event: "Account Created", timestamp: start.toISOString() },
    ];
    const ack = await client.ingest(batch, { batchId: "b1" });
    assert.deepEqual([ack.batchId, ack.accepted, ack.duplicates, ack.errors], ["b1", 5, [], []]);
    assert.equal(ack.positions.length, 5);
    const again = await client.ingest(batch);
    assert.deepEqual([again.accepted, again.duplicates], [0, [0, 1, 2, 3, 4]]);

    // Everyone waits an hour before anything is sent.
    const halfway = await client.advanceTime("30m");
    assert.equal(halfway.getTime() - start.getTime(), 30 * 60_000);
    const waiting = (await client.getJourneyStats("onboarding")).stats.steps.find((s) => s.stepId === "wait-1h");
    assert.equal(waiting.waiting, 3);
    await client.advanceTime(30 * 60_000);

    const first = client.subscribe("email", "node");
    await first.ready;
    const calls = await take(first[Symbol.asyncIterator](), 3);
    first.close();
    assert.deepEqual(
      calls.map((c) => c.sequence),
      [1, 2, 3],
    );
    const byUser = Object.fromEntries(calls.map((c) => [c.data.userId, c]));
    assert.deepEqual(Object.keys(byUser).sort(), ["u1", "u2", "u3"]);
    for (const call of calls) {
      assert.equal(call.kind, "call");
      assert.equal(call.data.type, "track");
      assert.equal(call.data.event, "Audience Entered");
      assert.equal(call.data.messageId, call.messageId);
      assert.deepEqual(call.data.integrations, { All: false, Email: true });
      assert.equal(call.journeyId, "onboarding");
      assert.equal(call.profileKey, call.data.userId);
      assert.equal(call.change, "entered");
      assert.equal(call.timestamp.getTime(), start.getTime() + 3_600_000);
      assert.equal(call.data.context.personas.computation_id, call.stepId);
    }
    assert.equal(byUser.u2.stepId, "engaged"); // completed the tutorial
    assert.equal(byUser.u1.stepId, "needs-help");
    assert.equal(byUser.u3.stepId, "needs-help");

    // Ack two of three, reconnect: it resumes after the ack, not from the start.
    assert.equal(await client.ack("email", "node", 2), 2);
    assert.equal(await client.ack("email", "node", 1), 2, "an ack never moves the cursor back");
    const second = client.subscribe("email", "node");
    const resumed = await take(second[Symbol.asyncIterator](), 1);
    second.close();
    assert.equal(resumed[0].sequence, 3);
    assert.equal(resumed[0].messageId, calls[2].messageId);
    assert.equal(resumed[0].payload, calls[2].payload);

    // after: 0 replays from the oldest kept call, batched or not; other consumers have their own cursor.
    const replay = client.subscribe("email", "node", { after: 0, maxBatch: 1 }); // one call a response
    assert.deepEqual(
      (await take(replay[Symbol.asyncIterator](), 3)).map((c) => c.messageId),
      calls.map((c) => c.messageId),
    );
    replay.close();
    const support = client.subscribe("support", "node");
    const identifies = await take(support[Symbol.asyncIterator](), 3);
    support.close();
    assert.deepEqual(
      identifies.map((c) => c.data.type),
      ["identify", "identify", "identify"],
    );

    // Acknowledging what was never sent is refused, naming the field.
    const refused = await refusal(client.ack("email", "node", 99));
    assert.equal(refused.codeName, "INVALID_ARGUMENT");
    assert.equal(refused.fieldViolations[0].field, "sequence");
  });

  test("definitions and the journey lifecycle", async () => {
    const destination = await client.createDestination({
      id: "webhook",
      name: "Webhook",
      kind: "DESTINATION_KIND_EVENT",
      eventMode: "EVENT_MODE_TRACK",
    });
    assert.equal(destination.spaceId, "default");
    assert.equal((await client.getDestination("webhook")).name, "Webhook");
    const renamed = await client.updateDestination({ id: "webhook", name: "Hook" }, { updateMask: ["name"] });
    assert.equal(renamed.name, "Hook");
    assert.ok((await client.listDestinations()).some((d) => d.id === "webhook" && d.name === "Hook"));
    const audience = await client.createAudience({
      id: "big-spenders",
      name: "Big spenders",
      condition: { text: "event('Order Completed').sum(property('total')) > 100" },
    });
    assert.ok(audience.condition.tree, "the server returns the condition's tree");
    await client.deleteAudience("big-spenders");
    assert.equal((await refusal(client.getAudience("big-spenders"))).codeName, "NOT_FOUND");

    const bad = await refusal(client.createJourney({ name: "Broken", steps: [{ id: "x", entry: {} }] }));
    assert.equal(bad.codeName, "INVALID_ARGUMENT");
    assert.ok(bad.fieldViolations.some((v) => v.field.startsWith("journey.steps[0]")), bad.message);

    const { journey } = await client.createJourney(signupJourney("webhook"), { journeyId: "signup" });
    assert.equal(journey.id, "signup");
    assert.equal(journey.status, "JOURNEY_STATUS_DRAFT");
    const key = journey.steps.find((s) => s.id === "welcome").sendToDestinations.key;
    assert.match(key, /^j_o_signup_welcome__welcome_/);
    const updated = await client.updateJourney({ id: "signup", name: "Welcome" }, { updateMask: ["name"] });
    assert.equal(updated.journey.name, "Welcome");
    assert.ok((await client.listJourneys()).some((j) => j.id === "signup"));

    assert.equal((await client.publishJourney("signup")).journey.status, "JOURNEY_STATUS_PUBLISHED");
    const live = await client.listJourneys({ status: "JOURNEY_STATUS_PUBLISHED" });
    assert.ok(live.every((j) => j.status === "JOURNEY_STATUS_PUBLISHED") && live.some((j) => j.id === "signup"));
    assert.equal((await client.pauseJourney("signup")).status, "JOURNEY_STATUS_PAUSED");
    assert.equal((await client.resumeJourney("signup")).status, "JOURNEY_STATUS_PUBLISHED");
    assert.equal((await client.archiveJourney("signup")).status, "JOURNEY_STATUS_ARCHIVED");
    const moved = await refusal(client.publishJourney("signup"));
    assert.equal(moved.codeName, "FAILED_PRECONDITION");
    assert.equal(moved.preconditionViolations[0].type, "JOURNEY_STATUS");

    const inUse = await refusal(client.deleteDestination("webhook"));
    assert.equal(inUse.codeName, "FAILED_PRECONDITION");
    assert.equal(inUse.preconditionViolations[0].type, "IN_USE");
    await client.deleteJourney("signup");
    assert.equal((await refusal(client.getJourney("signup"))).codeName, "NOT_FOUND");
    await client.deleteDestination("webhook");
  });

  test("tokens: none is UNAUTHENTICATED, another space's is PERMISSION_DENIED", async () => {
    const anonymous = new JourneysClient(server.target);
    const wrongSecret = new JourneysClient(server.target, { token: "jt_not-a-token" });
    try {
      assert.equal((await refusal(anonymous.listJourneys())).codeName, "UNAUTHENTICATED");
      assert.equal((await refusal(wrongSecret.getJourney("onboarding"))).codeName, "UNAUTHENTICATED");
    } finally {
      anonymous.close();
      wrongSecret.close();
    }

    await client.createSpace("other", { displayName: "Other" });
    assert.deepEqual(
      (await client.listSpaces()).map((s) => s.id),
      ["default", "other"],
    );
    // Made through the API: one made offline (`journeys token create --db`) may be
    // refused for up to a second after an unknown secret (the server reloads its
    // tokens at most once a second), which the call above just sent.
    const { token: made, secret } = await client.createToken("ingest", { name: "other-ingest", space: "other" });
    assert.deepEqual([made.spaceId, made.role], ["other", "TOKEN_ROLE_INGEST"]);
    assert.ok((await client.listTokens({ space: "other" })).some((t) => t.id === made.id));
    const other = new JourneysClient(server.target, { token: secret, space: "other" });
    try {
      const message = { type: "track", userId: "u9", event: "Account Created" };
      assert.equal((await other.ingest(message)).accepted, 1);
      const denied = await refusal(other.ingest(message, { space: "default" }));
      assert.equal(denied.codeName, "PERMISSION_DENIED");
      assert.equal((await refusal(other.listJourneys())).codeName, "PERMISSION_DENIED", "ingest may not read");
      assert.equal((await client.revokeToken(made.id, { space: "other" })).id, made.id);
      assert.equal((await refusal(other.ingest(message))).codeName, "UNAUTHENTICATED");
    } finally {
      other.close();
    }
  });
});

test("follow resumes across a server restart", { timeout: 60_000 }, async () => {
  const scratch = scratchDir();
  const token = await createToken(scratch.db, "--all-spaces", "--role", "admin");
  let server = await Server.start(scratch.db);
  const client = new JourneysClient(server.target, { token });
  let follower;
  try {
    await client.createDestination({ id: "crm", name: "CRM", kind: "DESTINATION_KIND_EVENT", eventMode: "EVENT_MODE_TRACK" });
    await client.createJourney(signupJourney("crm"), { journeyId: "signup" });
    await client.publishJourney("signup");
    const signUp = (userId) => ({ type: "track", messageId: `signup-${userId}`, userId, event: "Signed Up" });
    await client.ingest([signUp("a"), signUp("b")]);
    await client.advanceTime("1d");

    follower = client.follow("crm", "node");
    const items = follower[Symbol.asyncIterator]();
    const before = await take(items, 2);
    assert.deepEqual(
      before.map((c) => c.sequence),
      [1, 2],
    );
    await client.ack("crm", "node", 1);

    // Stop the server under the open stream, start it again on the same port and database.
    const next = items.next(); // pending across the restart
    const { code } = await server.stop();
    assert.equal(code, 0);
    server = await Server.start(scratch.db, { port: server.port });
    // A fresh client: the first one's channel may still be backing off from the stop.
    const fresh = new JourneysClient(server.target, { token, waitForReady: true });
    try {
      await fresh.ingest(signUp("c"));
      await fresh.advanceTime("1d");
    } finally {
      fresh.close();
    }
    const { value, done } = await next;
    assert.ok(!done);
    // Resumed after the last call seen (2), not the last ack (1), and not from the start.
    assert.equal(value.sequence, 3);
    assert.equal(value.data.userId, "c");
    assert.ok(follower.reconnects >= 1);
    assert.equal(follower.after, 3);

    // The acknowledged cursor survived the restart: a plain subscribe resumes after 1.
    const plain = client.subscribe("crm", "node");
    assert.deepEqual(
      (await take(plain[Symbol.asyncIterator](), 2)).map((c) => c.sequence),
      [2, 3],
    );
    plain.close();
  } finally {
    follower?.close();
    client.close();
    await server.stop();
    await server.kill();
    scratch.remove();
  }
});
