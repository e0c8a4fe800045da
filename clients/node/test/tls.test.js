// TLS and mutual TLS against the real server, with certificates made by openssl.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { JourneysClient, JourneysError } from "../src/index.js";
import { Server, createToken, scratchDir } from "./helpers/server.js";

/** A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`. */
function makeCertificates(dir) {
  const file = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
    "-keyout", file("ca.key"), "-out", file("ca.pem"));
  for (const [name, extension] of [
    ["server", "subjectAltName=IP:127.0.0.1"],
    ["client", "extendedKeyUsage=clientAuth"],
  ]) {
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`,
      "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`));
    const ext = file(`${name}.ext`);
    execFileSync("sh", ["-c", `printf '%s\\n' '${extension}' > '${ext}'`]);
    openssl("x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.pem"), "-CAkey", file("ca.key"),
      "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", file(`${name}.pem`));
  }
  return file;
}

test("TLS with a client certificate (mutual TLS), and a token", { timeout: 60_000 }, async () => {
  const scratch = scratchDir();
  const file = makeCertificates(scratch.dir);
  const token = await createToken(scratch.db, "--all-spaces", "--role", "admin");
  const server = await Server.start(scratch.db, {
    args: ["--tls-cert", file("server.pem"), "--tls-key", file("server.key"), "--tls-client-ca", file("ca.pem")],
  });
  const clients = [];
  const connect = (options) => {
    const client = new JourneysClient(server.target, { token, timeoutMs: 10_000, ...options });
    clients.push(client);
    return client;
  };
  try {
    // Paths for the CA, Buffers for the client's pair: both forms are taken.
    const mutual = connect({
      tlsCa: file("ca.pem"),
      tlsCert: readFileSync(file("client.pem")),
      tlsKey: readFileSync(file("client.key")),
    });
    assert.ok((await mutual.getTime()) instanceof Date);
    assert.deepEqual((await mutual.listSpaces()).map((s) => s.id), ["default"]);

    const withoutCertificate = connect({ tlsCa: file("ca.pem") });
    const refused = await withoutCertificate.getTime().catch((err) => err);
    assert.ok(refused instanceof JourneysError);
    assert.equal(refused.codeName, "UNAVAILABLE");

    const plaintext = connect({});
    assert.equal((await plaintext.getTime().catch((err) => err)).codeName, "UNAVAILABLE");

    assert.throws(() => connect({ tlsCa: file("ca.pem"), tlsCert: file("client.pem") }), /both tlsCert and tlsKey/);
    assert.throws(() => connect({ tlsCa: file("missing.pem") }), /cannot read tlsCa/);
  } finally {
    for (const client of clients) {
      client.close();
    }
    await server.stop();
    await server.kill();
    scratch.remove();
  }
});
