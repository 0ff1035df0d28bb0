// What the client sends and the one error it throws, against loopback servers of the test's own:
// no gateway needed. The gateway itself is in gateway.test.js.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";
import { inspect } from "node:util";

import { UserSDK, ZiriError } from "@ziri/sdk";

const KEY = "ziri-alice-0123456789abcdef0123456789abcdef";
const PNG_HEADER = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Serve on a free loopback port; record each request, then let `answer(response, request)` reply (or not). */
async function serve(answer) {
  const received = [];
  const server = createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const seen = { method: request.method, url: request.url, headers: request.headers, body: Buffer.concat(chunks) };
      received.push(seen);
      answer(response, seen);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(resolve);
  });
  return { url: `http://127.0.0.1:${server.address().port}`, received, close };
}

function json(status, body, headers = {}) {
  return (response) => {
    response.writeHead(status, { "Content-Type": "application/json", ...headers });
    response.end(JSON.stringify(body));
  };
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

async function formOf(seen) {
  return new Response(seen.body, { headers: { "Content-Type": seen.headers["content-type"] } }).formData();
}

for (const [name, apiKey] of [["empty", ""], ["openai-key", "sk-openai-key"], ["secret-not-hex", "ziri-alice-xyz"],
  ["trailing-newline", "ziri-alice-0123456789abcdef\n"], ["missing", undefined]]) {
  test(`a malformed key is refused at construction: ${name}`, () => {
    assert.throws(() => new UserSDK({ apiKey }), { name: "TypeError", message: /ziri-\{userId\}/ });
  });
}

for (const proxyUrl of ["localhost:3100", "ftp://gateway", "", "not a url"]) {
  test(`a proxyUrl that is not http(s) is refused: ${JSON.stringify(proxyUrl)}`, () => {
    assert.throws(() => new UserSDK({ apiKey: KEY, proxyUrl }), { name: "TypeError", message: /proxyUrl/ });
  });
}

test("timeoutMs must be a usable number of milliseconds", () => {
  for (const timeoutMs of [0, -1, Number.NaN, "100", 2 ** 31]) {
    assert.throws(() => new UserSDK({ apiKey: KEY, timeoutMs }), { name: "TypeError", message: /timeoutMs/ });
  }
});

test("the key shows nowhere but in the header", () => {
  const sdk = new UserSDK({ apiKey: KEY, proxyUrl: "http://gateway.test:3100/" });
  assert.equal(sdk.proxyUrl, "http://gateway.test:3100");
  for (const shown of [inspect(sdk, { showHidden: true }), JSON.stringify(sdk), String(sdk), Object.keys(sdk).join()]) {
    assert.ok(!shown.includes(KEY), shown);
  }
});

test("images posts the body as JSON with the key and the Idempotency-Key; any provider passes through", async () => {
  const answer = { created: 1, data: [{ url: "http://img/1.png" }], _meta: { requestId: "req_1", cost: { actual: 0.07 } } };
  const server = await serve(json(200, answer));
  try {
    const sdk = new UserSDK({ apiKey: KEY, proxyUrl: `${server.url}/` });
    const body = { provider: "xai", model: "grok-2-image-1212", prompt: "a cat", n: 1, size: null, quality: undefined };

    assert.deepEqual(await sdk.images(body, { idempotencyKey: "order-42-image-1" }), answer);

    const [seen] = server.received;
    assert.equal(`${seen.method} ${seen.url}`, "POST /api/images/generations");
    assert.equal(seen.headers["x-api-key"], KEY);
    assert.equal(seen.headers["idempotency-key"], "order-42-image-1");
    assert.equal(seen.headers["content-type"], "application/json");
    assert.equal(seen.headers.accept, "application/json");
    assert.equal(seen.headers.authorization, undefined);
    // null and undefined fields are left out, so the model's defaults apply.
    assert.deepEqual(JSON.parse(seen.body), { provider: "xai", model: "grok-2-image-1212", prompt: "a cat", n: 1 });
  } finally {
    await server.close();
  }
});

test("without idempotencyKey no Idempotency-Key is sent", async () => {
  const server = await serve(json(200, { data: [] }));
  try {
    await new UserSDK({ apiKey: KEY, proxyUrl: server.url }).images({ provider: "openai", model: "m", prompt: "p" });
    assert.equal(server.received[0].headers["idempotency-key"], undefined);
  } finally {
    await server.close();
  }
});

test("edits sends one upload as image, the mask and the fields as text", async () => {
  const server = await serve(json(200, { data: [{ b64_json: "x" }] }));
  try {
    const sdk = new UserSDK({ apiKey: KEY, proxyUrl: server.url });
    await sdk.edits({ image: Buffer.from(PNG_HEADER), mask: PNG_HEADER.buffer, provider: "openai", model: "gpt-image-2",
      prompt: "add a hat", n: 2, input_fidelity: "high", user: undefined }, { idempotencyKey: "edit-1" });

    const [seen] = server.received;
    assert.equal(`${seen.method} ${seen.url}`, "POST /api/images/edits");
    assert.equal(seen.headers["x-api-key"], KEY);
    assert.equal(seen.headers["idempotency-key"], "edit-1");
    const form = await formOf(seen);
    assert.deepEqual([...form.keys()], ["image", "mask", "provider", "model", "prompt", "n", "input_fidelity"]);
    assert.deepEqual(new Uint8Array(await form.get("image").arrayBuffer()), PNG_HEADER);
    assert.deepEqual(new Uint8Array(await form.get("mask").arrayBuffer()), PNG_HEADER);
    assert.equal(form.get("n"), "2");
    assert.equal(form.get("provider"), "openai");
  } finally {
    await server.close();
  }
});

test("edits sends several uploads as image[]: Blob, File, Buffer, Uint8Array view, ArrayBuffer", async () => {
  const server = await serve(json(200, { data: [] }));
  try {
    const sdk = new UserSDK({ apiKey: KEY, proxyUrl: server.url });
    const framed = new Uint8Array([0, 0, ...PNG_HEADER, 0]).subarray(2, 10); // a view: only its own bytes go
    const uploads = [new Blob([PNG_HEADER]), new File([PNG_HEADER], "cat.png", { type: "image/png" }),
      Buffer.from(PNG_HEADER), framed];
    await sdk.edits({ image: uploads.slice(0, 2), images: [...uploads.slice(2), PNG_HEADER.slice().buffer],
      provider: "openai", model: "gpt-image-2", prompt: "merge them" });

    const form = await formOf(server.received[0]);
    const sent = form.getAll("image[]");
    assert.equal(sent.length, 5);
    assert.equal(form.get("image"), null);
    assert.equal(sent[1].name, "cat.png");
    for (const file of sent) assert.deepEqual(new Uint8Array(await file.arrayBuffer()), PNG_HEADER);
  } finally {
    await server.close();
  }
});

test("what cannot be sent is refused before anything is sent", async () => {
  const server = await serve(json(200, { data: [] }));
  try {
    const sdk = new UserSDK({ apiKey: KEY, proxyUrl: server.url });
    const edit = { provider: "openai", model: "gpt-image-2", prompt: "p" };
    await assert.rejects(sdk.edits({ ...edit, image: "/tmp/cat.png" }), { name: "TypeError", message: /read a file/ });
    await assert.rejects(sdk.edits({ ...edit, image: PNG_HEADER, metadata: { a: 1 } }), { name: "TypeError" });
    await assert.rejects(sdk.images({ ...edit, stream: true }), { name: "TypeError", message: /stream/ });
    await assert.rejects(sdk.edits({ ...edit, image: PNG_HEADER, stream: "true" }), { name: "TypeError" });
    await assert.rejects(sdk.images(edit, { idempotencyKey: "two\nlines" }), { name: "TypeError" });
    assert.equal(server.received.length, 0);
  } finally {
    await server.close();
  }
});

test("usage gets /api/me/usage with the key", async () => {
  const server = await serve(json(200, { keyId: "key_alice" }));
  try {
    assert.deepEqual(await new UserSDK({ apiKey: KEY, proxyUrl: server.url }).usage(), { keyId: "key_alice" });
    const [seen] = server.received;
    assert.equal(`${seen.method} ${seen.url} ${seen.headers["x-api-key"]}`, `GET /api/me/usage ${KEY}`);
  } finally {
    await server.close();
  }
});

test("the gateway's error body becomes a ZiriError with its details as fields", async () => {
  const body = { error: "The daily spend limit of $0.01 would be exceeded.", code: "SPEND_LIMIT_EXCEEDED",
    requestId: "req_9", period: "daily", limit: 0.01, spent: 0, reserved: 0, requested: 0.04,
    resetsAt: "2026-12-03T00:00:00Z", message: "not the message", name: "not the name" };
  const server = await serve(json(402, body, { "x-should-retry": "false", "X-Request-Id": "req_9" }));
  try {
    const error = await rejection(new UserSDK({ apiKey: KEY, proxyUrl: server.url }).images({ prompt: "p" }));
    assert.ok(error instanceof ZiriError && error instanceof Error);
    assert.deepEqual([error.name, error.status, error.code, error.message, error.requestId, error.retryable,
      error.mayHaveBilled], ["ZiriError", 402, "SPEND_LIMIT_EXCEEDED", body.error, "req_9", false, false]);
    assert.deepEqual([error.period, error.limit, error.spent, error.requested, error.resetsAt],
      ["daily", 0.01, 0, 0.04, "2026-12-03T00:00:00Z"]);
    assert.deepEqual(error.body, body);
    assert.equal(server.received.length, 1);
  } finally {
    await server.close();
  }
});

test("x-should-retry: true makes it retryable, and it is still sent once", async () => {
  const body = { error: "The provider failed.", code: "LLM_PROVIDER_ERROR", requestId: "req_5" };
  const server = await serve(json(502, body, { "x-should-retry": "true" }));
  try {
    const error = await rejection(new UserSDK({ apiKey: KEY, proxyUrl: server.url }).images({ prompt: "p" }));
    assert.deepEqual([error.status, error.code, error.retryable, error.mayHaveBilled],
      [502, "LLM_PROVIDER_ERROR", true, false]);
    assert.equal(server.received.length, 1);
  } finally {
    await server.close();
  }
});

for (const [name, status, text, mayHaveBilled] of [["a proxy's error page", 502, "<html><h1>Bad Gateway</h1></html>", false],
  ["a 200 that is not JSON", 200, "Service ready", true], ["a JSON array", 200, "[1]", true]]) {
  test(`an answer that is not the gateway's JSON is HTTP_ERROR: ${name}`, async () => {
    const server = await serve((response) => {
      response.writeHead(status, { "Content-Type": "text/html", "X-Request-Id": "req_7" });
      response.end(text);
    });
    try {
      const error = await rejection(new UserSDK({ apiKey: KEY, proxyUrl: server.url }).images({ prompt: "p" }));
      assert.deepEqual([error.status, error.code, error.requestId, error.retryable, error.mayHaveBilled],
        [status, "HTTP_ERROR", "req_7", false, mayHaveBilled]);
      assert.match(error.message, /unexpected answer from the gateway/);
    } finally {
      await server.close();
    }
  });
}

test("a gateway that never answers is a TIMEOUT within timeoutMs, sent once", async () => {
  const server = await serve(() => {}); // reads the request, never answers
  try {
    const sdk = new UserSDK({ apiKey: KEY, proxyUrl: server.url, timeoutMs: 300 });
    const started = performance.now();
    const error = await rejection(sdk.images({ provider: "openai", model: "dall-e-3", prompt: "p" }));
    const elapsed = performance.now() - started;
    assert.ok(error instanceof ZiriError, String(error));
    assert.deepEqual([error.code, error.status, error.retryable, error.mayHaveBilled], ["TIMEOUT", null, false, true]);
    assert.ok(elapsed >= 290 && elapsed < 5000, `${elapsed} ms`); // not the default 240 s
    assert.equal(server.received.length, 1); // never retried

    // A read cannot bill; a call's own timeoutMs wins over the client's.
    const usage = await rejection(sdk.usage({ timeoutMs: 50 }));
    assert.deepEqual([usage.code, usage.mayHaveBilled], ["TIMEOUT", false]);
  } finally {
    await server.close();
  }
});

test("a refused connection is CONNECTION_ERROR, retryable: nothing was sent", async () => {
  const server = await serve(() => {});
  await server.close(); // its port is free again: nothing listens there
  const error = await rejection(new UserSDK({ apiKey: KEY, proxyUrl: server.url }).images({ prompt: "p" }));
  assert.deepEqual([error.code, error.status, error.retryable, error.mayHaveBilled],
    ["CONNECTION_ERROR", null, true, false]);
  assert.match(error.message, /could not connect \(ECONNREFUSED\)/);
});

test("a connection lost after sending may have billed, and is not retried", async () => {
  const server = await serve((response) => response.socket.destroy());
  try {
    const error = await rejection(new UserSDK({ apiKey: KEY, proxyUrl: server.url }).images({ prompt: "p" }));
    assert.deepEqual([error.code, error.retryable, error.mayHaveBilled], ["CONNECTION_ERROR", false, true]);
    assert.match(error.message, /connection lost/);
    assert.equal(server.received.length, 1);
  } finally {
    await server.close();
  }
});

test("a fetch of one's own is used, called without a `this` (as browsers require)", async () => {
  const calls = [];
  function ownFetch(url, init) {
    "use strict";
    calls.push({ self: this, url, method: init.method, key: init.headers.get("X-API-Key") });
    return Promise.resolve(new Response('{"keyId": "key_alice"}', { status: 200 }));
  }
  const sdk = new UserSDK({ apiKey: KEY, proxyUrl: "https://gateway.test/ziri/", fetch: ownFetch });
  assert.deepEqual(await sdk.usage(), { keyId: "key_alice" });
  assert.deepEqual(calls, [{ self: undefined, url: "https://gateway.test/ziri/api/me/usage", method: "GET", key: KEY }]);
});
