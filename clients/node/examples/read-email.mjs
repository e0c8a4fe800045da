// Prints the email destination's calls as they come, acknowledging each.
//
//   node clients/node/examples/read-email.mjs [COUNT]
//
// Connects to JOURNEYS_SERVER (default localhost:50051) with JOURNEYS_TOKEN, as the
// consumer "node-program": it resumes after its last acknowledged call, and follows
// the stream through server restarts. Stops after COUNT calls (default: runs until
// Ctrl-C).

import { JourneysClient } from "../src/index.js";

const count = process.argv[2] ? Number(process.argv[2]) : Infinity;
const client = new JourneysClient(process.env.JOURNEYS_SERVER ?? "localhost:50051", {
  token: process.env.JOURNEYS_TOKEN,
});
const follower = client.follow("email", "node-program");
let seen = 0;
try {
  for await (const item of follower) {
    if (item.kind !== "call") continue; // a gap: calls dropped by retention before anyone read them
    const call = item.data; // the payload, parsed
    const step = call.context.personas.computation_id;
    console.log(`${item.sequence} ${call.userId} ${call.event} (${step})`);
    await client.ack("email", "node-program", item.sequence);
    if (++seen >= count) break;
  }
} finally {
  follower.close();
  client.close();
}
