// The snippet the product's documentation shows (issue 26), verbatim, as a program of its own
// against the test gateway (see gateway.test.js for the variables). Tests never take a fixed
// port, so the one thing changed is where "http://localhost:3100" leads: a preloaded module
// points fetch's localhost:3100 at ZIRI_TEST_GATEWAY_URL. "@ziri/sdk" resolves as it would once
// installed (the package's own name, through package.json's "exports").
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const SNIPPET = `import { UserSDK } from "@ziri/sdk";
const sdk = new UserSDK({ apiKey: "ziri-user-123-a1b2c3d4e5f67890", proxyUrl: "http://localhost:3100" });
const response = await sdk.images({ provider: "openai", model: "dall-e-3", prompt: "A white cat sitting on a windowsill", size: "1024x1024", quality: "standard", n: 1 });
console.log(response.data[0].url);`;
const DOCUMENTED_URL = "http://localhost:3100";
const REDIRECT = `const gateway = process.env.ZIRI_TEST_GATEWAY_URL, send = globalThis.fetch;
globalThis.fetch = (url, init) => send(String(url).startsWith("${DOCUMENTED_URL}/")
  ? gateway + String(url).slice(${DOCUMENTED_URL.length}) : url, init);`;
const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));
const PROJECT_DIR = fileURLToPath(new URL("../../..", import.meta.url));
const { ZIRI_TEST_GATEWAY_URL: GATEWAY, ZIRI_TEST_STUB_URL: STUB, ZIRI_TEST_LEDGER: LEDGER } = process.env;
const skip = GATEWAY && STUB && LEDGER ? false
  : "no gateway: run it through tests/test_js_client.py (or set ZIRI_TEST_GATEWAY_URL, ZIRI_TEST_STUB_URL, ZIRI_TEST_LEDGER)";

function demoCharges() {
  return readFileSync(LEDGER, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line))
    .filter((record) => record.type === "charge" && record.keyId === "key_demo");
}

test("the READMEs show the snippet verbatim", () => {
  for (const readme of ["README.md", "clients/js/README.md"]) {
    assert.ok(readFileSync(PROJECT_DIR + readme, "utf8").includes(SNIPPET), `${readme} lacks the snippet`);
  }
});

test("the snippet runs unchanged and prints the image's URL", { skip }, async () => {
  const before = demoCharges().length;

  const { stdout } = await promisify(execFile)(process.execPath, [
    "--import", `data:text/javascript,${encodeURIComponent(REDIRECT)}`, "--input-type=module", "--eval", SNIPPET,
  ], { cwd: PACKAGE_DIR, timeout: 30_000 });

  const [url, ...rest] = stdout.trim().split("\n");
  assert.deepEqual(rest, []);
  assert.ok(url.startsWith(`${STUB}/v1/files/`), stdout);
  const image = await fetch(url);
  assert.deepEqual([...new Uint8Array(await image.arrayBuffer()).subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
  // Charged once (the demo key's only request here): dall-e-3 standard 1024x1024 is $0.04.
  const deadline = Date.now() + 5000; // the charge is written as the request ends
  while (demoCharges().length === before && Date.now() < deadline) await new Promise((done) => setTimeout(done, 50));
  const charges = demoCharges().slice(before);
  assert.deepEqual(charges.map((charge) => [charge.model, charge.status, charge.cost]), [["dall-e-3", "succeeded", 0.04]]);
});
