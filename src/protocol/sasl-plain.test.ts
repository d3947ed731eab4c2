import { expect, test } from "bun:test";
import { parseSaslPasswords, plainAuthenticates } from "./sasl-plain.ts";

const plain = (authzid: string, user: string, password: string) =>
  new TextEncoder().encode(`${authzid}\0${user}\0${password}`);

test("memcached's password file: first line of a user decides, a password ends at ':' or CR", () => {
  const passwords = parseSaslPasswords(
    "alice:secret\nbob:hunter2:extra fields\r\ncarol:dos\r\nalice:second\nno colon here\n:anonymous\nclé:ключ\n",
  );
  expect([...passwords]).toEqual([
    ["alice", "secret"],
    ["bob", "hunter2"],
    ["carol", "dos"],
    ["", "anonymous"],
    ["clé", "ключ"],
  ]);
});

test("PLAIN: the right password authenticates, anything else does not", () => {
  const passwords = parseSaslPasswords("alice:secret\nbob:\nclé:ключ\n");
  expect(plainAuthenticates(passwords, plain("", "alice", "secret"))).toBe(true);
  expect(plainAuthenticates(passwords, plain("alice", "alice", "secret"))).toBe(true);
  expect(plainAuthenticates(passwords, plain("", "clé", "ключ"))).toBe(true);
  expect(plainAuthenticates(passwords, plain("", "bob", ""))).toBe(true);
  expect(plainAuthenticates(passwords, plain("", "alice", "wrong"))).toBe(false);
  expect(plainAuthenticates(passwords, plain("", "alice", "secret\0"))).toBe(false);
  expect(plainAuthenticates(passwords, plain("bob", "alice", "secret"))).toBe(false); // acting as bob
  expect(plainAuthenticates(passwords, plain("", "mallory", "secret"))).toBe(false);
  expect(plainAuthenticates(passwords, plain("", "", ""))).toBe(false);
  expect(plainAuthenticates(passwords, new TextEncoder().encode("alice\0secret"))).toBe(false);
  expect(plainAuthenticates(passwords, Uint8Array.of(0, 0x61, 0, 0xff))).toBe(false); // not UTF-8
});
