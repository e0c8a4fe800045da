// A real journeys server (the Python one) for the end-to-end tests.
//
// The `journeys` command is the repository's venv (../../../../.venv from
// here), or JOURNEYS_BIN when set.

import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The repository's root folder. */
export const REPO_ROOT = path.resolve(HERE, "..", "..", "..", "..");

/** The `journeys` command. */
export const JOURNEYS_BIN = process.env.JOURNEYS_BIN ?? path.join(REPO_ROOT, ".venv", "bin", "journeys");

const run = promisify(execFile);

/**
 * Runs `journeys ARGS...`; resolves to its stdout, trimmed.
 *
 * @param {string[]} args
 */
export async function journeys(...args) {
  const { stdout } = await run(JOURNEYS_BIN, args, { cwd: REPO_ROOT, timeout: 30_000 });
  return stdout.trim();
}

/** A fresh folder for a database; `remove()` deletes it (so does the process's exit). */
export function scratchDir() {
  const dir = mkdtempSync(path.join(tmpdir(), "journeys-node-"));
  const remove = () => {
    rmSync(dir, { recursive: true, force: true });
    scratch.delete(remove);
  };
  scratch.add(remove);
  return { dir, db: path.join(dir, "j.db"), remove };
}

/**
 * Creates a token offline, on the database file; resolves to its secret.
 *
 * @param {string} db
 * @param {string[]} args e.g. ["--all-spaces", "--role", "admin"]
 */
export function createToken(db, ...args) {
  return journeys("token", "create", "--db", db, ...args);
}

const LISTENING = /journeys server listening on ([\d.]+):(\d+) \(/;
const HTTP_INGEST = /HTTP ingestion \(Segment API\) at (http:\/\/\S+:\d+)\/v1\//;

// Servers still running when the test process exits (a test that timed out
// before its cleanup ran; `npm test` passes --test-force-exit so that the
// process does exit) are killed rather than left behind, and their folders go.
const running = new Set();
const scratch = new Set();
process.once("exit", () => {
  for (const child of running) {
    child.kill("SIGKILL");
  }
  for (const remove of [...scratch]) {
    remove();
  }
});

/** A `journeys serve` child process. */
export class Server {
  /**
   * Starts `journeys serve --manual-clock` on `db` and waits until it listens.
   *
   * @param {string} db
   * @param {{ port?: number, args?: string[] }} [options] port 0 (the default) picks a
   *   free one; args are more `journeys serve` options.
   * @returns {Promise<Server>}
   */
  static async start(db, { port = 0, args = [] } = {}) {
    const child = spawn(
      JOURNEYS_BIN,
      ["serve", "--db", db, "--host", "127.0.0.1", "--port", String(port), "--manual-clock", ...args],
      { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    const server = new Server(child);
    server.port = await new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => fail(new Error("the server did not listen within 20 s")), 20_000);
      function fail(err) {
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new Error(`${err.message}\nstdout: ${out}\nstderr: ${server.stderr}`));
      }
      child.stdout.on("data", (chunk) => {
        out += chunk;
        const match = LISTENING.exec(out);
        if (match) {
          clearTimeout(timer);
          server.httpUrl = HTTP_INGEST.exec(out)?.[1] ?? null;
          resolve(Number(match[2]));
        }
      });
      child.once("exit", (code, signal) => fail(new Error(`the server exited (${code ?? signal})`)));
      child.once("error", fail);
    });
    return server;
  }

  constructor(child) {
    this.child = child;
    this.port = 0;
    /** Where HTTP ingestion is served (`--http-port`), as http://host:port; null when off. */
    this.httpUrl = null;
    this.stderr = "";
    child.stderr.on("data", (chunk) => {
      this.stderr += chunk;
    });
    running.add(child);
    this.exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      }),
    );
  }

  /** host:port to connect to. */
  get target() {
    return `127.0.0.1:${this.port}`;
  }

  /** SIGTERM (a graceful stop); resolves to the exit status. */
  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
    }
    return this.exited;
  }

  /** SIGKILL, whatever state it is in (for `finally` blocks). */
  async kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
    }
    return this.exited;
  }
}
