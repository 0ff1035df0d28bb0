// @ziri/sdk: the JavaScript client for the ziri-images gateway.
//
//   import { UserSDK, ZiriError } from "@ziri/sdk";
//   const sdk = new UserSDK({ apiKey: "ziri-alice-...", proxyUrl: "http://localhost:3100" });
//   const response = await sdk.images({ provider: "openai", model: "dall-e-3", prompt: "A white cat" });
//   console.log(response.data[0].url, response._meta.cost.actual);
//
// It mirrors the Python client (ziri_images/sdk.py): the key goes in X-API-Key, every failure is
// one ZiriError, and nothing is ever retried. An image request that timed out or lost its
// connection may still have been generated and billed, so sending it again is the caller's
// decision (error.retryable and error.mayHaveBilled say when that is safe).
//
// It imports nothing and uses only what browsers and Node.js 20+ both provide: fetch, Headers,
// FormData, Blob, AbortController, URL, setTimeout.

// The shape of a gateway key, as the gateway's key store checks it (a test holds the two together).
const KEY_PATTERN = /^ziri-([A-Za-z0-9][A-Za-z0-9_.-]*)-([0-9a-f]{16,128})$/;
export const DEFAULT_PROXY_URL = "http://localhost:3100";
// The gateway waits up to 180 s for the provider (ZIRI_UPSTREAM_READ_TIMEOUT): wait longer than
// that, or the client gives up on requests that are still being generated and billed.
export const DEFAULT_TIMEOUT_MS = 240_000;
// Failures to open a connection (Node.js names them; browsers say nothing): nothing was sent.
const NOT_CONNECTED = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT"]);

/** A request the gateway refused, or that did not complete: the one error this client throws. */
export class ZiriError extends Error {
  constructor(message, { status = null, code = "HTTP_ERROR", requestId = null, body = {}, retryable = false,
    mayHaveBilled = false } = {}) {
    super(message);
    // The body's details (limit, spent, resetsAt, retryAfter, details...) as fields of their own,
    // unless they would shadow what every Error has; the named fields below always win.
    for (const [name, value] of Object.entries(body)) {
      if (name !== "error" && !(name in this)) this[name] = value;
    }
    this.name = "ZiriError";
    this.status = status; // the HTTP status, null when no answer came
    this.code = code; // the gateway's code, or HTTP_ERROR, TIMEOUT, CONNECTION_ERROR
    this.requestId = requestId;
    this.body = body; // the decoded error body
    this.retryable = retryable; // the gateway's x-should-retry: sending it again cannot double-bill
    this.mayHaveBilled = mayHaveBilled; // no answer came, but the request may have been carried out
  }
}

/** Call the gateway with one API key. */
export class UserSDK {
  #apiKey;
  #fetch;

  constructor({ apiKey, proxyUrl = DEFAULT_PROXY_URL, timeoutMs = DEFAULT_TIMEOUT_MS, fetch } = {}) {
    if (typeof apiKey !== "string" || !KEY_PATTERN.test(apiKey)) {
      throw new TypeError("apiKey must look like ziri-{userId}-{hex secret}");
    }
    let url = null;
    try {
      url = new URL(proxyUrl);
    } catch {
      // reported below
    }
    if (url === null || !["http:", "https:"].includes(url.protocol)) {
      throw new TypeError(`proxyUrl must be an http(s) URL, got ${JSON.stringify(proxyUrl)}`);
    }
    checkTimeout(timeoutMs);
    this.proxyUrl = String(proxyUrl).replace(/\/+$/, "");
    this.timeoutMs = timeoutMs;
    this.#apiKey = apiKey; // a private field: never in console.log(sdk), JSON.stringify or an error
    this.#fetch = fetch;
  }

  /** Generate images: POST /api/images/generations; the provider's body plus _meta (request id, cost). */
  async images(body, options = {}) {
    refuseStream(body);
    const fields = Object.fromEntries(Object.entries(body ?? {}).filter(([, value]) => value != null));
    return this.#request("POST", "/api/images/generations", {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(fields),
    }, options);
  }

  /** Edit images: POST /api/images/edits as multipart, one upload as `image`, several as `image[]`. */
  async edits({ image, images, mask, ...fields } = {}, options = {}) {
    refuseStream(fields);
    const uploads = [image, images].flat(2).filter((upload) => upload != null);
    const form = new FormData();
    const field = uploads.length === 1 ? "image" : "image[]";
    for (const upload of uploads) appendUpload(form, field, upload);
    if (mask != null) appendUpload(form, "mask", mask);
    for (const [name, value] of Object.entries(fields)) {
      if (value == null) continue;
      if (!["string", "number", "boolean"].includes(typeof value)) {
        throw new TypeError(`${name} must be a string, a number or a boolean in an edit's form`);
      }
      form.append(name, String(value));
    }
    return this.#request("POST", "/api/images/edits", { body: form }, options);
  }

  /** Return the key's current spend, limits and counts: GET /api/me/usage. */
  async usage(options = {}) {
    return this.#request("GET", "/api/me/usage", {}, options);
  }

  toJSON() {
    return { proxyUrl: this.proxyUrl, timeoutMs: this.timeoutMs }; // never the key
  }

  async #request(method, path, { headers = {}, body }, { idempotencyKey, timeoutMs = this.timeoutMs } = {}) {
    checkTimeout(timeoutMs);
    // Built before anything is sent, so a header value that cannot be sent throws its own TypeError.
    const sent = new Headers({ ...headers, "X-API-Key": this.#apiKey, Accept: "application/json" });
    if (idempotencyKey != null) sent.set("Idempotency-Key", idempotencyKey);
    const fetchImpl = this.#fetch ?? globalThis.fetch; // called unbound: browsers refuse another `this`
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    let response = null;
    try {
      response = await fetchImpl(this.proxyUrl + path, { method, headers: sent, body, signal: controller.signal });
      return await decode(response); // the body is read within the same timeout
    } catch (error) {
      if (error instanceof ZiriError) throw error;
      throw this.#failure(error, method, response, controller.signal.aborted);
    } finally {
      clearTimeout(timer);
    }
  }

  #failure(error, method, response, timedOut) {
    const billable = method !== "GET" && (response === null || response.ok);
    const status = response?.status ?? null;
    const requestId = response?.headers.get("x-request-id") ?? null;
    if (timedOut) {
      return new ZiriError("the gateway did not answer in time; the request may still have been carried out and "
        + "billed", { status, code: "TIMEOUT", requestId, mayHaveBilled: billable });
    }
    // Not connected: nothing was sent. Lost: the gateway may have been working on it.
    const codes = causes(error).map((cause) => cause.code).filter((code) => typeof code === "string");
    const notConnected = response === null && codes.some((code) => NOT_CONNECTED.has(code));
    const why = `${notConnected ? "could not connect" : "connection lost"} (${codes[0] ?? error?.message ?? error})`;
    return new ZiriError(`could not reach the gateway at ${this.proxyUrl}: ${why}`, { status, code: "CONNECTION_ERROR",
      requestId, retryable: notConnected, mayHaveBilled: !notConnected && billable });
  }
}

async function decode(response) {
  const requestId = response.headers.get("x-request-id");
  const retryable = response.headers.get("x-should-retry") === "true";
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: reported below
  }
  const isObject = body !== null && typeof body === "object" && !Array.isArray(body);
  if (response.ok && isObject) return body;
  if (isObject && typeof body.error === "string") {
    throw new ZiriError(body.error, { status: response.status, code: body.code ?? "HTTP_ERROR",
      requestId: body.requestId ?? requestId, body, retryable });
  }
  // Not the gateway's JSON: a proxy's error page, a truncated answer...
  const words = text.split(/\s+/).join(" ").trim().slice(0, 200) || response.statusText || "no body";
  throw new ZiriError(`unexpected answer from the gateway: ${words}`, { status: response.status, code: "HTTP_ERROR",
    requestId, retryable, mayHaveBilled: response.ok });
}

function appendUpload(form, field, upload) {
  if (upload instanceof Blob) {
    form.append(field, upload, upload.name || field); // a File keeps its name; the gateway renames it anyway
  } else if (upload instanceof ArrayBuffer || ArrayBuffer.isView(upload)) { // Buffer is a Uint8Array
    form.append(field, new Blob([upload], { type: "application/octet-stream" }), field);
  } else {
    throw new TypeError(`${field} must be a Blob, File, Buffer, Uint8Array or ArrayBuffer (read a file's bytes first)`);
  }
}

function refuseStream(body) {
  if (body?.stream === true || body?.stream === "true") {
    // An event stream is not one JSON answer: it would be billed and then unreadable here.
    throw new TypeError("stream: true is not supported by @ziri/sdk; use OpenAI's SDK on /v1 for streams");
  }
}

function checkTimeout(timeoutMs) {
  // setTimeout fires at once for a delay above 2^31 - 1 ms (about 24.8 days).
  if (typeof timeoutMs !== "number" || !(timeoutMs > 0) || timeoutMs > 2 ** 31 - 1) {
    throw new TypeError(`timeoutMs must be a number of milliseconds from 1 to 2147483647, got ${timeoutMs}`);
  }
}

/** Return the error and everything it was caused by (fetch's TypeError wraps the socket's error). */
function causes(error) {
  const seen = new Set();
  const pending = [error];
  while (pending.length > 0) {
    const cause = pending.pop();
    if (cause === null || typeof cause !== "object" || seen.has(cause)) continue;
    seen.add(cause);
    pending.push(cause.cause, ...(Array.isArray(cause.errors) ? cause.errors : []));
  }
  return [...seen];
}
