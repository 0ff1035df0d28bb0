// The package: browser-safe source, and what `npm pack` (so `npm install`) delivers.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createContext, runInContext } from "node:vm";

const run = promisify(execFile);
const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));
const SOURCE = readFileSync(join(PACKAGE_DIR, "src", "index.js"), "utf8");
const MANIFEST = JSON.parse(readFileSync(join(PACKAGE_DIR, "package.json"), "utf8"));

test("the source imports nothing", () => {
  assert.doesNotMatch(SOURCE, /^\s*import\b|^\s*export\b[^;]*\bfrom\b|\bimport\s*\(|\brequire\s*\(/m);
});

test("it runs with nothing but the browser's globals: fetch, Headers, FormData, Blob, AbortController", async () => {
  // The source run as a script in a context of its own: JavaScript's built-ins and only these globals.
  const sent = [];
  const answers = { "/api/me/usage": [200, '{"keyId": "k"}'], "/api/images/generations": [200, '{"data": []}'],
    "/api/images/edits": [402, '{"error": "over", "code": "SPEND_LIMIT_EXCEEDED", "limit": 1}'] };
  const ownFetch = async (url, init) => {
    sent.push([init.method, url, init.headers.get("Idempotency-Key"), init.body instanceof FormData]);
    const [status, body] = answers[new URL(url).pathname];
    return new Response(body, { status, headers: { "x-should-retry": "false" } });
  };
  const context = createContext({ fetch: ownFetch, Headers, FormData, Blob, File, AbortController, URL, setTimeout,
    clearTimeout });
  runInContext(`${SOURCE.replace(/^export /gm, "")}\n;globalThis.exported = { UserSDK, ZiriError };`, context);
  const { UserSDK, ZiriError } = context.exported;
  const sdk = new UserSDK({ apiKey: "ziri-user-123-a1b2c3d4e5f67890", proxyUrl: "https://gateway.test" });

  assert.equal((await sdk.usage()).keyId, "k");
  await sdk.images({ provider: "openai", model: "dall-e-3", prompt: "p" }, { idempotencyKey: "k1" });
  const uploads = runInContext("[new Uint8Array([1]), new Blob(['2']), new ArrayBuffer(1)]", context);
  const failed = await sdk.edits({ images: uploads, provider: "openai", model: "gpt-image-2", prompt: "p" })
    .catch((error) => error);
  const stuck = new UserSDK({ apiKey: "ziri-user-123-a1b2c3d4e5f67890", timeoutMs: 20,
    fetch: (url, init) => new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(init.signal.reason))) });
  const timedOut = await stuck.usage().catch((error) => error);

  assert.ok(failed instanceof ZiriError && failed.limit === 1, String(failed));
  assert.ok(timedOut instanceof ZiriError && timedOut.code === "TIMEOUT", String(timedOut));
  assert.deepEqual(sent, [["GET", "https://gateway.test/api/me/usage", null, false],
    ["POST", "https://gateway.test/api/images/generations", "k1", false],
    ["POST", "https://gateway.test/api/images/edits", null, true]]);
});

test("npm pack holds what the exports name, and the packed package imports as @ziri/sdk", async () => {
  const scratch = mkdtempSync(join(tmpdir(), "ziri-sdk-pack-"));
  try {
    // Offline, no scripts, nothing of the developer's npm cache or settings.
    const env = { ...process.env, npm_config_cache: join(scratch, "cache"), npm_config_update_notifier: "false",
      npm_config_userconfig: join(scratch, "npmrc"), npm_config_loglevel: "error" };
    const { stdout } = await run("npm", ["pack", "--json", "--offline", "--ignore-scripts", "--pack-destination", scratch],
      { cwd: PACKAGE_DIR, env });
    const [packed] = JSON.parse(stdout);

    const files = packed.files.map((file) => file.path).sort();
    assert.deepEqual(files, ["README.md", "index.d.ts", "package.json", "src/index.js"]);
    const named = [MANIFEST.main, MANIFEST.types, ...Object.values(MANIFEST.exports).flatMap((entry) =>
      typeof entry === "string" ? [entry] : Object.values(entry))];
    for (const path of named) assert.ok(files.includes(path.replace(/^\.\//, "")), `${path} is not packed`);
    assert.equal(packed.name, "@ziri/sdk");

    // Unpacked where `npm install` would put it, it is what `import ... from "@ziri/sdk"` finds.
    const installed = join(scratch, "node_modules", "@ziri", "sdk");
    mkdirSync(installed, { recursive: true });
    await run("tar", ["-xzf", join(scratch, packed.filename), "-C", installed, "--strip-components=1"]);
    const { stdout: found } = await run(process.execPath, ["--input-type=module", "--eval",
      'import { UserSDK, ZiriError } from "@ziri/sdk"; console.log(typeof UserSDK, new ZiriError("x").name);'],
    { cwd: scratch });
    assert.equal(found.trim(), "function ZiriError");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
