// The gate against what memcached 1.6.18 -Y answered to the same bytes (tried by hand), each input
// fed whole and one byte at a time.
import { describe, expect, test } from "bun:test";
import { type AuthStep, TextAuthGate } from "./text-auth.ts";

const check = (user: string, password: string) => user === "alice" && password === "wonder";
const bytes = (text: string) => new TextEncoder().encode(text);
const show = (step: AuthStep) =>
  step.kind === "more"
    ? "more"
    : step.kind === "refused"
      ? `refused ${new TextDecoder().decode(step.reply)}`
      : `authenticated ${new TextDecoder().decode(step.reply)}rest ${JSON.stringify(new TextDecoder().decode(step.rest))}`;

/** The gate's answer to `input` fed whole, after checking a byte-by-byte feed ends the same way. */
function answer(input: string): string {
  const whole = show(new TextAuthGate(check).feed(bytes(input)));
  const gate = new TextAuthGate(check);
  let last: AuthStep = { kind: "more" };
  for (const byte of bytes(input)) {
    last = gate.feed(Uint8Array.of(byte));
    if (last.kind !== "more") break;
  }
  // Fed a byte at a time, the rest arrives later: only what is decided must agree.
  expect(show(last).replace(/rest .*$/, "")).toBe(whole.replace(/rest .*$/, ""));
  return whole;
}

describe("memcached -Y's text authentication", () => {
  test("the right credentials in a set are STORED, even with noreply; later bytes are the connection's", () => {
    expect(answer("set x 0 0 12\r\nalice wonder\r\nget a\r\n")).toBe(
      'authenticated STORED\r\nrest "get a\\r\\n"',
    );
    expect(answer("set x 0 0 12 noreply\r\nalice wonder\r\n")).toBe('authenticated STORED\r\nrest ""');
    expect(answer("set x 0 0 13\r\nalice  wonder\r\n")).toBe('authenticated STORED\r\nrest ""');
    expect(answer("set x 0 0 13\r\nalice wonder \r\n")).toBe('authenticated STORED\r\nrest ""');
  });
  test("wrong credentials, any other command or a malformed set: unauthenticated", () => {
    for (const input of [
      "get a\r\n",
      "version\r\n",
      "quit\r\n",
      "mg a v\r\n",
      "gets a\r\n",
      "add x 0 0 12\r\nalice wonder\r\n",
      "set x\r\n",
      "set x 0 0 11\r\nalice wrong\r\n",
      "set x 0 0 12\r\nalice wonderX\r\n",
      "set x 0 0 99999999\r\n",
      "set x 0 0 12\r\nalice wonder!!\r\n",
    ]) {
      expect(answer(input)).toBe("refused CLIENT_ERROR unauthenticated\r\n");
    }
  });
  test("data without a space is a bad token", () => {
    expect(answer("set x 0 0 5\r\nalice\r\n")).toBe(
      "refused CLIENT_ERROR bad authentication token format\r\n",
    );
  });
  test("an incomplete command waits; a line past 2048 bytes without LF is refused", () => {
    expect(new TextAuthGate(check).feed(bytes("set x 0 0 12\r\nalice"))).toEqual({ kind: "more" });
    expect(show(new TextAuthGate(check).feed(new Uint8Array(2049).fill(0x61)))).toBe(
      "refused CLIENT_ERROR unauthenticated\r\n",
    );
  });
});
