// Reloading the router's configuration when its file changes, and on demand (SIGHUP).
//
//   fs.watch(the file's directory) ──any event──> debounce (100 ms after the last event) ──> read
//   check(why) (SIGHUP) ──────────────────────────────────────────────────────────────────> read
//     read ──parseConfig (which reads the PEM and secret files the config names)──>
//       the same config as last time (or the same error) ──> nothing
//       else ──> onChange(config) | onError(ConfigError)
//
// The directory is watched, not the file, and every event in it schedules a read: editors save by
// writing a new file and renaming it over the old one (a watch on the old inode hears nothing
// more), and Kubernetes updates a mounted ConfigMap by swapping a `..data` symlink beside the file,
// an event that names `..data`, not the file. Comparing the text filters out the noise. The
// debounce lets a burst (truncate, write, write, rename) settle into one read. The parsed config is
// compared, not only the text, so a certificate or password renewed under the same path is a change
// (picked up by SIGHUP, or by the watch when the file sits beside the config).
import { type FSWatcher, watch } from "node:fs";
import { dirname } from "node:path";
import { ConfigError } from "../errors.ts";
import {
  type ConfigFormat,
  parseConfig,
  type RouterConfig,
  readConfigText,
  requireConfigFormat,
} from "./config.ts";

/** The quiet time after the last change event before the file is read, ms. */
export const CONFIG_DEBOUNCE_MS = 100;

export interface WatchConfigOptions {
  /** Default CONFIG_DEBOUNCE_MS. */
  debounceMs?: number;
}

/** A running watch: `check` reads the file now (SIGHUP), `stop` ends it. */
export interface ConfigWatch {
  /**
   * Reads the file at once, as a change event would after its debounce, with `why` given to the
   * callbacks; false when it (and the files it names) gives the config last acted on (nothing is
   * called then), so a SIGHUP after an edit the watch already applied does not reload (and log)
   * the same file twice.
   */
  check(why: string): boolean;
  /** Stops watching; no callback runs after it. */
  stop(): void;
}

/** What a watch's callbacks are told caused a read: a change event, or check()'s `why`. */
export const FILE_CHANGED = "config file changed";

/**
 * Calls `onChange` with the new configuration each time the file's text changes, or `onError`
 * when the new text (or the file's absence) is not a valid configuration; the caller keeps its
 * current configuration then. Call it right after loading the file: the text at this call is the
 * baseline, so a change between the load and this call goes unseen until the next one. Throws
 * ConfigError if the file's name has no known extension or its directory cannot be watched.
 */
export function watchConfig(
  file: string,
  onChange: (config: RouterConfig, why: string) => void,
  onError: (error: ConfigError, why: string) => void,
  options: WatchConfigOptions = {},
): ConfigWatch {
  const format = requireConfigFormat(file);
  const debounceMs = options.debounceMs ?? CONFIG_DEBOUNCE_MS;
  let last = read(file, format); // the config last acted on, or the error
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const check = (why: string = FILE_CHANGED): boolean => {
    clearTimeout(timer);
    timer = undefined;
    if (stopped) return false;
    const now = read(file, format);
    if (now.key === last.key) return false;
    last = now;
    if (now.config === undefined) onError(now.error, why);
    else onChange(now.config, why);
    return true;
  };

  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(file), { persistent: true }, () => {
      if (stopped) return;
      clearTimeout(timer);
      timer = setTimeout(() => check(), debounceMs);
    });
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(file, "file", `a file in a directory that can be watched (${reason})`, {
      cause: error,
    });
  }
  watcher.on("error", (error: NodeJS.ErrnoException) => {
    if (stopped) return;
    const reason = error.code ?? error.message;
    onError(
      new ConfigError(file, "file", `a file in a directory that can be watched (${reason})`, {
        cause: error,
      }),
      FILE_CHANGED,
    );
  });

  return {
    check,
    stop() {
      stopped = true;
      clearTimeout(timer);
      watcher.close();
    },
  };
}

// The file read and parsed, with a `key` that is equal for equal outcomes: the config as JSON (the
// text of the PEM and secret files it names included), or the error's message.
function read(
  file: string,
  format: ConfigFormat,
): { key: string; config: RouterConfig } | { key: string; config?: undefined; error: ConfigError } {
  try {
    const config = parseConfig(readConfigText(file), file, format);
    return { key: JSON.stringify(config, withMaps), config };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { key: `\u0000${error.message}`, error }; // NUL: no JSON is confused with it
  }
}

function withMaps(_key: string, value: unknown): unknown {
  return value instanceof Map ? [...value] : value;
}
