import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  watch as fsWatch,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withDeadline } from "../../test/helpers/wait.ts";
import { ConfigError } from "../errors.ts";
import type { RouterConfig } from "./config.ts";
import { type ConfigWatch, watchConfig } from "./config-watch.ts";

const DEADLINE_MS = 5000;

/** A config whose only pool is `name`. */
function configText(name: string): string {
  return `pools: {${name}: {servers: ["127.0.0.1:11311"]}}\nroute: ${name}\n`;
}

type Event = { config: RouterConfig } | { error: ConfigError };

/** Collects a watcher's callbacks; `next` awaits the next one with a deadline. */
class Events {
  readonly seen: Event[] = [];
  private queue: Event[] = [];
  private waiter: ((event: Event) => void) | undefined;

  readonly onChange = (config: RouterConfig) => this.push({ config });
  readonly onError = (error: ConfigError) => this.push({ error });

  private push(event: Event): void {
    this.seen.push(event);
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter !== undefined) waiter(event);
    else this.queue.push(event);
  }

  next(what: string): Promise<Event> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return withDeadline(
      new Promise<Event>((resolve) => {
        this.waiter = resolve;
      }),
      DEADLINE_MS,
      what,
    );
  }

  /** The pool names of the next event, which must be a change. */
  async nextPools(what: string): Promise<string[]> {
    const event = await this.next(what);
    if ("error" in event) throw new Error(`expected a config, got ${event.error.message}`);
    return [...event.config.pools.keys()];
  }

  async nextError(what: string): Promise<ConfigError> {
    const event = await this.next(what);
    if (!("error" in event))
      throw new Error(`expected an error, got pools ${[...event.config.pools.keys()]}`);
    return event.error;
  }
}

let dir: string;
let file: string;
const stops: (() => void)[] = [];

function watch(path: string, events: Events, debounceMs = 20): ConfigWatch {
  const watching = watchConfig(path, events.onChange, events.onError, { debounceMs });
  stops.push(() => watching.stop());
  return watching;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gravity-watch-"));
  file = join(dir, "router.yaml");
  writeFileSync(file, configText("first"));
});

afterEach(() => {
  for (const stop of stops.splice(0)) stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("watchConfig", () => {
  test("a change to the file delivers the new config", async () => {
    const events = new Events();
    watch(file, events);
    writeFileSync(file, configText("second"));
    expect(await events.nextPools("the change")).toEqual(["second"]);
    writeFileSync(file, configText("third"));
    expect(await events.nextPools("the second change")).toEqual(["third"]);
  });

  test("a bad config is reported, and a fixed one delivered after it", async () => {
    const events = new Events();
    watch(file, events);
    writeFileSync(file, "pools: {main: {}}\nroute: mian\n");
    const error = await events.nextError("the bad config");
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(`${file}: route: expected one of the pools "main", got "mian"`);
    writeFileSync(file, "pools: {main: {}}\nroute: [main\n");
    expect((await events.nextError("the syntax error")).field).toBe("line 2");
    writeFileSync(file, configText("fixed"));
    expect(await events.nextPools("the fixed config")).toEqual(["fixed"]);
  });

  test("an editor's save: a new file renamed over the old one", async () => {
    const events = new Events();
    watch(file, events);
    for (const name of ["renamed", "again"]) {
      const temporary = join(dir, `.router.yaml.${name}.swp`);
      writeFileSync(temporary, configText(name));
      renameSync(temporary, file);
      expect(await events.nextPools(`the rename of ${name}`)).toEqual([name]);
    }
  });

  test("a Kubernetes ConfigMap update: the ..data symlink swapped", async () => {
    // The kubelet's layout: router.yaml -> ..data/router.yaml, ..data -> a timestamped directory.
    const mount = join(dir, "mount");
    mkdirSync(join(mount, "v1"), { recursive: true });
    writeFileSync(join(mount, "v1", "router.yaml"), configText("v1"));
    symlinkSync("v1", join(mount, "..data"));
    symlinkSync(join("..data", "router.yaml"), join(mount, "router.yaml"));
    const events = new Events();
    watch(join(mount, "router.yaml"), events);

    mkdirSync(join(mount, "v2"));
    writeFileSync(join(mount, "v2", "router.yaml"), configText("v2"));
    symlinkSync("v2", join(mount, "..data_tmp"));
    renameSync(join(mount, "..data_tmp"), join(mount, "..data"));
    expect(await events.nextPools("the swapped ConfigMap")).toEqual(["v2"]);
  });

  test("a deleted file is reported once, and its return delivered", async () => {
    const events = new Events();
    watch(file, events);
    unlinkSync(file);
    const error = await events.nextError("the deletion");
    expect(error.message).toBe(`${file}: file: expected a readable file (ENOENT)`);
    writeFileSync(file, configText("first")); // the same text as before it went away
    expect(await events.nextPools("the file's return")).toEqual(["first"]);
    expect(events.seen).toHaveLength(2);
  });

  test("writing the same text, or touching other files, delivers nothing", async () => {
    // A witness watching another file in the same directory with a longer debounce: both hear
    // the same events, so by the time the witness reports, the watcher's shorter timer has fired.
    const events = new Events();
    watch(file, events, 20);
    const witnessFile = join(dir, "witness.yaml");
    writeFileSync(witnessFile, configText("before"));
    const witness = new Events();
    watch(witnessFile, witness, 300);

    writeFileSync(file, configText("first"));
    writeFileSync(join(dir, "unrelated.txt"), "hello");
    writeFileSync(witnessFile, configText("after"));
    expect(await witness.nextPools("the witness's change")).toEqual(["after"]);
    expect(events.seen).toEqual([]);
  });

  test("nothing is delivered after stop", async () => {
    const events = new Events();
    // A settle time far longer than the steps below take even on a loaded machine, so the watcher's
    // read is surely still pending when stop() comes.
    const watching = watch(file, events, 2000);
    const witnessFile = join(dir, "witness.yaml");
    writeFileSync(witnessFile, configText("before"));
    const witness = new Events();
    watch(witnessFile, witness, 300);

    // Stop once the change has been heard (a raw watch registered after the watcher's hears it
    // after the watcher does), so the watcher's read is pending: stop must cancel it.
    const heard = new Promise<void>((resolve) => {
      const raw = fsWatch(dir, () => {
        raw.close();
        resolve();
      });
    });
    writeFileSync(file, configText("unseen"));
    await withDeadline(heard, DEADLINE_MS, "the change event");
    watching.stop();
    expect(watching.check("SIGHUP")).toBe(false); // nor by check()
    writeFileSync(file, configText("also-unseen"));
    writeFileSync(witnessFile, configText("after"));
    expect(await witness.nextPools("the witness's change")).toEqual(["after"]);
    expect(events.seen).toEqual([]);
  });

  test("a burst of writes settles into one read", async () => {
    const events = new Events();
    watch(file, events, 200);
    for (let i = 0; i < 20; i++) writeFileSync(file, configText(`burst${i}`));
    expect(await events.nextPools("the burst")).toEqual(["burst19"]);
    expect(events.seen).toHaveLength(1);
  });

  test("a file in a directory that does not exist cannot be watched", () => {
    const missing = join(dir, "nope", "router.yaml");
    expect(() =>
      watchConfig(
        missing,
        () => {},
        () => {},
      ),
    ).toThrow(`${missing}: file: expected a file in a directory that can be watched (ENOENT)`);
    expect(() =>
      watchConfig(
        join(dir, "router.ini"),
        () => {},
        () => {},
      ),
    ).toThrow(ConfigError);
  });
});

describe("check (SIGHUP)", () => {
  test("reads the file at once; the same text again is not a change", async () => {
    const events = new Events();
    // A long debounce: only check() can deliver within the test.
    const watching = watch(file, events, 60_000);
    expect(watching.check("SIGHUP")).toBe(false); // the text the watch started from
    writeFileSync(file, configText("second"));
    expect(watching.check("SIGHUP")).toBe(true);
    expect(await events.nextPools("the change read by check")).toEqual(["second"]);
    expect(watching.check("SIGHUP")).toBe(false);
    expect(events.seen).toHaveLength(1);
  });

  test("a certificate renewed under the same path is a change; the same files again are not", async () => {
    const events = new Events();
    const caFile = join(dir, "ca.pem");
    const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
    writeFileSync(caFile, pem("first"));
    writeFileSync(
      file,
      `pools: {main: {servers: ["127.0.0.1:11311"], tls: {ca: ${JSON.stringify(caFile)}}}}\nroute: main\n`,
    );
    const watching = watch(file, events, 60_000);
    expect(watching.check("SIGHUP")).toBe(false);
    writeFileSync(caFile, pem("renewed"));
    expect(watching.check("SIGHUP")).toBe(true);
    const event = await events.next("the renewed certificate");
    if ("error" in event) throw event.error;
    expect(event.config.pools.get("main")?.tls?.ca).toBe(pem("renewed"));
    expect(watching.check("SIGHUP")).toBe(false);
    expect(events.seen).toHaveLength(1);
  });

  test("a bad file is reported, not thrown, and the same bad text is reported once", async () => {
    const events = new Events();
    const watching = watch(file, events, 60_000);
    writeFileSync(file, "pools: {main: {connections: 0}}\nroute: main\n");
    expect(watching.check("SIGHUP")).toBe(true);
    expect((await events.nextError("the bad file")).message).toBe(
      `${file}: pools.main.connections: expected an integer from 1 to 64, got 0`,
    );
    expect(watching.check("SIGHUP")).toBe(false);
  });
});
