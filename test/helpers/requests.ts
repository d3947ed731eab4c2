// Router requests built as the router's parser would build them, for tests that drive route
// handles directly (no client connection in between).
import { encodeGet, encodeStore } from "../../src/protocol/encoder.ts";
import { Op, Request } from "../../src/protocol/request.ts";

const utf8 = new TextEncoder();

/** `get <key>`. */
export function getRequest(key: string): Request {
  const request = new Request(Op.Get);
  request.keys = [utf8.encode(key)];
  request.raw = encodeGet([key]);
  return request;
}

/** `set <key> 0 0 <n>` with `value`. */
export function setRequest(key: string, value: string): Request {
  const request = new Request(Op.Set);
  request.keys = [utf8.encode(key)];
  request.value = utf8.encode(value);
  request.raw = encodeStore("set", key, value);
  return request;
}
