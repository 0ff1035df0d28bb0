// The client against a real gateway (gunicorn) with the bundled stub as OpenAI, both on loopback.
// tests/test_js_client.py starts them and runs `node --test` with:
//   ZIRI_TEST_GATEWAY_URL  the gateway           ZIRI_TEST_LEDGER     its ledger file
//   ZIRI_TEST_USER_KEY     a key without limits  ZIRI_TEST_POOR_KEY   a key with a daily limit of $0.01
// Without them these tests are skipped.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { inflateSync } from "node:zlib";

import { UserSDK, ZiriError } from "@ziri/sdk";

const { ZIRI_TEST_GATEWAY_URL: GATEWAY, ZIRI_TEST_LEDGER: LEDGER } = process.env;
const { ZIRI_TEST_USER_KEY: USER_KEY, ZIRI_TEST_POOR_KEY: POOR_KEY } = process.env;
const skip = GATEWAY && LEDGER && USER_KEY && POOR_KEY ? false
  : "no gateway: run it through tests/test_js_client.py (or set ZIRI_TEST_GATEWAY_URL, ZIRI_TEST_LEDGER and the keys)";
const IMAGE_TOKENS = 85 + 170; // the stub's count for an upload of one 512-pixel tile, as OpenAI's

/** Return the SDK for `apiKey` and the URLs its fetch was called with (to show nothing is retried). */
function counted(apiKey) {
  const calls = [];
  const sdk = new UserSDK({ apiKey, proxyUrl: GATEWAY, timeoutMs: 20_000, fetch: (url, init) => {
    calls.push(url);
    return fetch(url, init);
  } });
  return { sdk, calls };
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ZiriError, String(error));
    return error;
  }
  assert.fail("expected a ZiriError");
}

function ledger() {
  return readFileSync(LEDGER, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

/** Wait (charges are written as the request ends) for `count` records that `match`; return them. */
async function records(match, count = 1, seconds = 5) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const found = ledger().filter(match);
    if (found.length >= count || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function chargesOf(requestId) {
  return records((record) => record.type === "charge" && record.requestId === requestId);
}

// --- a small valid PNG, built with a stored (uncompressed) deflate block: no zlib needed -----------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function adler32(bytes) {
  let a = 1;
  let b = 0;
  for (const byte of bytes) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

function be32(value) {
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}

function chunk(kind, data) {
  const typed = [...kind].map((character) => character.charCodeAt(0));
  return [...be32(data.length), ...typed, ...data, ...be32(crc32([...typed, ...data]))];
}

/** Return a `size`x`size` PNG of one RGB colour. */
function png(size, [red, green, blue]) {
  const raw = [];
  for (let y = 0; y < size; y += 1) raw.push(0, ...Array.from({ length: size }, () => [red, green, blue]).flat());
  const stored = [0x78, 0x01, 0x01, raw.length & 0xff, raw.length >>> 8, ~raw.length & 0xff, (~raw.length >>> 8) & 0xff,
    ...raw, ...be32(adler32(raw))];
  return Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a,
    ...chunk("IHDR", [...be32(size), ...be32(size), 8, 2, 0, 0, 0]), ...chunk("IDAT", stored), ...chunk("IEND", [])]);
}

test("the PNG the edits send is valid: its pixels inflate with zlib", () => {
  const image = png(16, [200, 10, 10]);
  const idat = image.subarray(8 + 25 + 8, image.length - 12 - 4);
  const pixels = inflateSync(idat);
  assert.equal(pixels.length, 16 * (1 + 16 * 3));
  assert.deepEqual([...pixels.subarray(0, 4)], [0, 200, 10, 10]);
});

// --- the gateway --------------------------------------------------------------------------------

test("images answers the provider's body and _meta with the cost, charged once", { skip }, async () => {
  const { sdk, calls } = counted(USER_KEY);

  const response = await sdk.images({ provider: "openai", model: "dall-e-2", prompt: "a red kite", size: "256x256", n: 2 });

  assert.equal(response.data.length, 2);
  assert.ok(response.data.every((image) => image.url.startsWith("http://127.0.0.1:")), JSON.stringify(response.data));
  const { requestId, provider, model, cost } = response._meta;
  assert.deepEqual([provider, model, cost.actual, cost.currency], ["openai", "dall-e-2", 0.032, "USD"]);
  const [charge] = await chargesOf(requestId);
  assert.deepEqual([charge.endpoint, charge.status, charge.cost], ["generations", "succeeded", 0.032]);
  assert.equal(calls.length, 1);
});

test("idempotencyKey goes as Idempotency-Key: the same key again is refused, not billed", { skip }, async () => {
  const { sdk } = counted(USER_KEY);
  const body = { provider: "openai", model: "dall-e-2", prompt: "a blue kite", size: "256x256" };
  const idempotencyKey = crypto.randomUUID();

  const first = await sdk.images(body, { idempotencyKey });
  const error = await rejection(sdk.images(body, { idempotencyKey }));

  assert.deepEqual([error.status, error.code, error.retryable], [409, "IDEMPOTENCY_KEY_REUSED", false]);
  assert.equal(error.originalRequestId, first._meta.requestId);
  assert.equal((await chargesOf(first._meta.requestId)).length, 1);
  assert.deepEqual(ledger().filter((record) => record.requestId === error.requestId), []);
});

test("edits sends generated PNGs (Buffer, Blob) and a mask (File) as multipart", { skip }, async () => {
  const { sdk } = counted(USER_KEY);
  const mask = new File([png(16, [0, 0, 0])], "mask.png", { type: "image/png" });

  const response = await sdk.edits({ image: [Buffer.from(png(16, [200, 10, 10])), new Blob([png(16, [10, 200, 10])])],
    mask, provider: "openai", model: "gpt-image-2", prompt: "add a red hat", quality: "low" });

  assert.ok(response.data[0].b64_json.startsWith("iVBORw0KGgo")); // a PNG, in base64
  // The stub counts every upload it received, the mask included.
  assert.equal(response.usage.input_tokens_details.image_tokens, 3 * IMAGE_TOKENS);
  const [charge] = await chargesOf(response._meta.requestId);
  assert.deepEqual([charge.endpoint, charge.status, charge.cost], ["edits", "succeeded", response._meta.cost.actual]);
});

test("usage is the key's spend, limits and counts", { skip }, async () => {
  const { sdk } = counted(USER_KEY);
  await sdk.images({ provider: "openai", model: "dall-e-2", prompt: "a kite", size: "256x256" });

  const usage = await sdk.usage();

  assert.deepEqual([usage.keyId, usage.currency, usage.daily.limit], ["key_js_user", "USD", null]);
  assert.ok(usage.daily.spent >= 0.016 && usage.daily.requests >= 1, JSON.stringify(usage));
});

test("over budget: ZiriError SPEND_LIMIT_EXCEEDED with the request id and the details, sent once", { skip }, async () => {
  const { sdk, calls } = counted(POOR_KEY);

  const error = await rejection(sdk.images({ provider: "openai", model: "dall-e-3", prompt: "an expensive cat" }));

  assert.deepEqual([error.status, error.code, error.retryable, error.mayHaveBilled],
    [402, "SPEND_LIMIT_EXCEEDED", false, false]);
  assert.match(error.requestId, /^req_/);
  assert.match(error.message, /daily spend limit/);
  assert.deepEqual([error.period, error.limit, error.spent, error.requested], ["daily", 0.01, 0, 0.04]);
  assert.match(error.resetsAt, /^\d{4}-\d\d-\d\dT/);
  assert.equal(calls.length, 1); // never retried
  assert.deepEqual(ledger().filter((record) => record.keyId === "key_js_poor"), []); // nothing reserved, nothing sent
});

test("an unknown key: ZiriError API_KEY_INVALID", { skip }, async () => {
  const { sdk } = counted("ziri-nobody-0123456789abcdef0123456789abcdef");

  const error = await rejection(sdk.usage());

  assert.deepEqual([error.status, error.code, error.retryable], [403, "API_KEY_INVALID", false]);
  assert.match(error.requestId, /^req_/);
});

test("the provider routes as in the HTTP API: an unknown one lists those available", { skip }, async () => {
  const { sdk } = counted(USER_KEY);

  const error = await rejection(sdk.images({ provider: "acme", model: "dall-e-3", prompt: "a cat" }));

  assert.deepEqual([error.status, error.code], [404, "PROVIDER_NOT_FOUND"]);
  assert.ok(["openai", "azure", "xai"].every((name) => error.availableProviders.includes(name)), error.message);
});

test("a provider failure the gateway marks retryable is not retried by the client", { skip }, async () => {
  const { sdk, calls } = counted(USER_KEY);

  const error = await rejection(sdk.images({ provider: "openai", model: "dall-e-2", prompt: "[stub:status=500] a dog" }));

  assert.deepEqual([error.status, error.code, error.retryable], [502, "LLM_PROVIDER_ERROR", true]);
  assert.equal(calls.length, 1);
  const charges = await chargesOf(error.requestId);
  assert.deepEqual(charges.map((charge) => charge.cost), [0]);
});
