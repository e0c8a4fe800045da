// Segment's own Node.js library (@segment/analytics-node) sends to `journeys serve --http-port`.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Analytics } from "@segment/analytics-node";

import { JourneysClient } from "../src/index.js";
import { Server, createToken, scratchDir } from "./helpers/server.js";

let scratch;
let server;
let client;
let writeKey;

before(async () => {
  scratch = scratchDir();
  const root = await createToken(scratch.db, "--all-spaces", "--role", "admin", "--name", "node-tests");
  writeKey = await createToken(scratch.db, "--role", "ingest", "--name", "collector");
  server = await Server.start(scratch.db, { args: ["--http-port", "0"] });
  client = new JourneysClient(server.target, { token: root });
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

/** Sends a collector's calls through the library's queue; resolves to the errors it reported. */
async function send(key) {
  const errors = [];
  const analytics = new Analytics({ writeKey: key, host: server.httpUrl, flushAt: 10, maxRetries: 1 });
  analytics.on("error", (err) => errors.push(err));
  analytics.identify({ userId: "n1", traits: { email: "n1@example.com" } });
  analytics.page({ userId: "n1", name: "Pricing", properties: { path: "/pricing" } });
  analytics.alias({ userId: "n1", previousId: "visitor-9" });
  analytics.track({ userId: "n1", event: "Signed Up", properties: { source: "node-sdk" } });
  await analytics.closeAndFlush({ timeout: 10_000 });
  return errors;
}

test("@segment/analytics-node moves a published journey", { timeout: 60_000 }, async () => {
  assert.ok(server.httpUrl, "the server printed no HTTP ingestion address");
  // The library stamps wall-clock times: the manual clock goes there first.
  await client.setTime(new Date());
  await client.createDestination({
    id: "email",
    name: "Email",
    kind: "DESTINATION_KIND_EVENT",
    eventMode: "EVENT_MODE_TRACK",
  });
  await client.createJourney(
    {
      name: "Welcome",
      steps: [
        { id: "entry", name: "Signed up", entry: { condition: { text: "event('Signed Up').count() >= 1" }, nextStepId: "send" } },
        { id: "send", name: "Say hi", sendToDestinations: { destinationIds: ["email"] } },
      ],
    },
    { journeyId: "j" },
  );
  await client.publishJourney("j");
  // The server corrects each timestamp by the batch's sentAt (stamped at upload, just
  // after the calls): on a clock that stood still they would fall just before the
  // publish. A minute later, they do not.
  await client.advanceTime("1m");

  assert.deepEqual(await send(writeKey), []);
  const refused = await send("jt_wrong");
  assert.ok(refused.length > 0, "a wrong write key was not refused");
  assert.match(String(refused[0].reason ?? refused[0].message ?? refused[0]), /401|write key/);

  const calls = client.subscribe("email", "node-sdk");
  await calls.ready;
  const iterator = calls[Symbol.asyncIterator]();
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("no destination call within 20 s")), 20_000);
  });
  try {
    const { value } = await Promise.race([iterator.next(), late]);
    assert.equal(value.journeyId, "j");
    assert.equal(value.data.userId, "n1");
  } finally {
    clearTimeout(timer);
    calls.close();
  }
  const { profile } = await client.getProfile({ userId: "n1" });
  assert.match(JSON.stringify(profile.traits), /n1@example\.com/);
});
