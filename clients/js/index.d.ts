// Types of @ziri/sdk, the JavaScript client for the ziri-images gateway (src/index.js).

/** The gateway's answer to a generation or an edit: the provider's body plus `_meta`. */
export interface ImagesResponse {
  created: number;
  data: Array<{ url?: string; b64_json?: string; revised_prompt?: string; [field: string]: unknown }>;
  /** The provider's token counts (GPT image models), or absent. */
  usage?: Record<string, unknown> | null;
  _meta: ResponseMeta;
  [field: string]: unknown;
}

export interface ResponseMeta {
  requestId: string;
  provider: string;
  model: string;
  providerRequestId?: string | null;
  cost: Cost;
  [field: string]: unknown;
}

/** What the request was estimated, reserved and charged, in US dollars. */
export interface Cost {
  estimated: number;
  reserved: number;
  actual: number;
  currency: "USD";
  chargedBy: "per_image" | "tokens" | "reservation" | string;
  imagesRequested?: number;
  imagesCharged?: number;
  pricePerImage?: number;
  quality?: string;
  size?: string;
  usage?: Record<string, unknown> | null;
  [field: string]: unknown;
}

/** A generation's JSON body (`provider`, `model` and `prompt` are required by the gateway). */
export interface ImagesRequest {
  provider: string;
  model: string;
  prompt: string;
  n?: number;
  size?: string;
  quality?: string;
  response_format?: "url" | "b64_json";
  /** Streams are not supported by this client (it throws a TypeError). */
  stream?: false;
  /** Any other parameter the model accepts (background, output_format, ...). */
  [parameter: string]: unknown;
}

/** An upload: a Blob or File (browsers, Node.js), a Buffer, a Uint8Array or an ArrayBuffer. */
export type Upload = Blob | ArrayBuffer | ArrayBufferView;

/** An edit's fields: one or more images (`image`, `images`), an optional mask, and a generation's fields. */
export interface EditsRequest {
  image?: Upload | Upload[];
  images?: Upload[];
  mask?: Upload;
  provider: string;
  model: string;
  prompt: string;
  n?: number;
  size?: string;
  quality?: string;
  stream?: false;
  [parameter: string]: string | number | boolean | Upload | Upload[] | null | undefined;
}

export interface BudgetPeriod {
  period: string;
  spent: number;
  reserved: number;
  limit: number | null;
  remaining: number | null;
  requests: number;
  resetsAt: string;
}

/** GET /api/me/usage: the key's spend, limits and counts. */
export interface Usage {
  keyId: string;
  user: string;
  currency: "USD";
  daily: BudgetPeriod;
  monthly: BudgetPeriod;
  inFlight: number;
  requestsLastMinute: number;
  limits: Record<string, number | null>;
  expiresAt: string | null;
  [field: string]: unknown;
}

export interface UserSDKOptions {
  /** A gateway key, `ziri-{userId}-{hex secret}`. */
  apiKey: string;
  /** The gateway's URL; default `http://localhost:3100`. */
  proxyUrl?: string;
  /** Milliseconds for the whole request, answer included; default 240000 (above the gateway's 180 s wait). */
  timeoutMs?: number;
  /** A fetch implementation; default the global `fetch`. */
  fetch?: typeof globalThis.fetch;
}

/** Options of one call. */
export interface RequestOptions {
  /** Sent as the `Idempotency-Key` header: unique per image you intend to generate. */
  idempotencyKey?: string;
  /** This call's timeout in milliseconds, instead of the client's. */
  timeoutMs?: number;
}

export declare const DEFAULT_PROXY_URL: string;
export declare const DEFAULT_TIMEOUT_MS: number;

export declare class UserSDK {
  constructor(options: UserSDKOptions);
  readonly proxyUrl: string;
  readonly timeoutMs: number;
  /** POST /api/images/generations. */
  images(body: ImagesRequest, options?: RequestOptions): Promise<ImagesResponse>;
  /** POST /api/images/edits (multipart: one image as `image`, several as `image[]`, and `mask`). */
  edits(body: EditsRequest, options?: RequestOptions): Promise<ImagesResponse>;
  /** GET /api/me/usage. */
  usage(options?: RequestOptions): Promise<Usage>;
  toJSON(): { proxyUrl: string; timeoutMs: number };
}

/** Every failure: a refusal of the gateway, an answer that is not its JSON, a timeout, no connection. */
export declare class ZiriError extends Error {
  name: "ZiriError";
  /** The HTTP status, or null when no answer came. */
  status: number | null;
  /** The gateway's code (SPEND_LIMIT_EXCEEDED, API_KEY_INVALID, ...), or HTTP_ERROR, TIMEOUT, CONNECTION_ERROR. */
  code: string;
  /** The gateway's request id (body or X-Request-Id header), or null. */
  requestId: string | null;
  /** The decoded error body. */
  body: Record<string, unknown>;
  /** The gateway's `x-should-retry: true`: sending the same request again cannot double-bill. */
  retryable: boolean;
  /** No answer came, but the request may have been carried out and charged. */
  mayHaveBilled: boolean;
  /** The error body's details as fields: limit, spent, reserved, requested, period, resetsAt, retryAfter, ... */
  [detail: string]: unknown;
}
