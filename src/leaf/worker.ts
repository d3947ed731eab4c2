// A listener thread of a leaf started with --threads N: it serves the same process-global store
// as the main thread, on the same port (SO_REUSEPORT).
import { type Listener, listen } from "./listener.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

declare const self: Worker;

let listener: Listener | null = null;

function reply(message: FromWorker): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "listen") {
    try {
      listener = listen({
        hostname: message.hostname,
        port: message.port,
        reusePort: true,
        maxConnections: message.maxConnections,
        injectLatency: message.injectLatency,
        verbosity: message.verbosity,
        tls: message.tls,
        authPasswords: message.authPasswords,
      });
      reply({ type: "listening", port: listener.port });
    } catch (error) {
      reply({ type: "error", message: error instanceof Error ? error.message : String(error) });
    }
  } else if (message.type === "stop") {
    await listener?.stop(message.graceMs);
    reply({ type: "stopped" });
  }
};
