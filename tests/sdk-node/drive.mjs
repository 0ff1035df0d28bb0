// Drive OpenAI's npm SDK against the gateway and print one JSON line of what came back.
//
//   OPENAI_API_KEY=<gateway key> node drive.mjs SCENARIO --base-url http://127.0.0.1:PORT/v1 [options] [FILE ...]
//
// Scenarios: generate, edit (FILEs are the images, --mask a mask), stream (generate with
// stream: true), models (list, then retrieve --model). Only the base URL and the key differ from
// calling OpenAI. An API error is a result too ({"error": {...}}, exit 0); anything else exits 1.
// tests/test_openai_sdk_node.py runs it; it is not part of the gateway.
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

import OpenAI, { toFile } from 'openai';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    'base-url': { type: 'string' },
    model: { type: 'string', default: 'gpt-image-1' },
    prompt: { type: 'string', default: 'a lighthouse at dusk' },
    size: { type: 'string' },
    n: { type: 'string' },
    'response-format': { type: 'string' },
    'partial-images': { type: 'string', default: '2' },
    mask: { type: 'string' },
  },
});
const [scenario, ...files] = positionals;

// The key comes from OPENAI_API_KEY, where the SDK itself looks; the timeout bounds a stuck test.
const client = new OpenAI({ baseURL: values['base-url'], timeout: 20_000 });

function imageRequest() {
  const body = { model: values.model, prompt: values.prompt };
  if (values.size) body.size = values.size;
  if (values.n) body.n = Number(values.n);
  if (values['response-format']) body.response_format = values['response-format'];
  return body;
}

function upload(path) {
  return toFile(createReadStream(path), basename(path), { type: 'image/png' });
}

function describeImages(result, requestId) {
  return {
    requestId,
    images: result.data.length,
    b64: result.data.map((image) => typeof image.b64_json === 'string' && image.b64_json.length > 0),
    pngs: result.data.map((image) => (image.b64_json ?? '').startsWith('iVBORw0KGgo')),
    urls: result.data.map((image) => image.url ?? null),
    revisedPrompts: result.data.map((image) => image.revised_prompt ?? null),
    usage: result.usage ?? null,
    meta: result._meta ?? null, // the gateway's addition, passed through by the SDK
  };
}

const scenarios = {
  async generate() {
    const { data, request_id } = await client.images.generate(imageRequest()).withResponse();
    return describeImages(data, request_id);
  },

  async edit() {
    const images = await Promise.all(files.map(upload));
    const body = { ...imageRequest(), image: images.length === 1 ? images[0] : images };
    if (values.mask) body.mask = await upload(values.mask);
    const { data, request_id } = await client.images.edit(body).withResponse();
    return describeImages(data, request_id);
  },

  async stream() {
    const body = { ...imageRequest(), stream: true, partial_images: Number(values['partial-images']) };
    const { data: events, request_id } = await client.images.generate(body).withResponse();
    const seen = [];
    for await (const event of events) {
      seen.push({
        type: event.type,
        partialImageIndex: event.partial_image_index ?? null,
        b64: typeof event.b64_json === 'string' && event.b64_json.length > 0,
        usage: event.usage ?? null,
      });
    }
    return { requestId: request_id, types: seen.map((event) => event.type), events: seen };
  },

  async models() {
    const listed = [];
    for await (const model of client.models.list()) {
      listed.push({ id: model.id, object: model.object, ownedBy: model.owned_by });
    }
    const one = await client.models.retrieve(values.model);
    return { models: listed, retrieved: { id: one.id, object: one.object, ownedBy: one.owned_by } };
  },
};

function describeError(error) {
  return {
    error: {
      class: error.constructor.name,
      status: error.status ?? null,
      code: error.code ?? null,
      type: error.type ?? null,
      param: error.param ?? null,
      message: error.message,
      requestId: error.requestID ?? null,
      shouldRetry: error.headers?.get('x-should-retry') ?? null,
    },
  };
}

if (!Object.hasOwn(scenarios, scenario ?? '')) {
  console.error(`usage: node drive.mjs {${Object.keys(scenarios).join('|')}} --base-url URL [options] [FILE ...]`);
  process.exit(2);
}
try {
  console.log(JSON.stringify(await scenarios[scenario]()));
} catch (error) {
  if (!(error instanceof OpenAI.APIError) || error instanceof OpenAI.APIConnectionError) throw error;
  console.log(JSON.stringify(describeError(error)));
}
