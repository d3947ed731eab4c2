// The gravity executable: `gravity leaf|router|cluster|--help|--version`.
import { ConfigError, UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { clusterCommand } from "./cluster-command.ts";
import { leafCommand } from "./leaf-command.ts";
import { routerCommand } from "./router-command.ts";

const USAGE = `usage: gravity <command> [flags]

commands:
  leaf        run a cache node (memcached protocol)
  router      run a router in front of pools of leaves (--config FILE)
  cluster     run a local router and six leaves (what npm start runs)

flags:
  --help      show this help (gravity <command> --help for a command's flags)
  --version   print the version

Every flag can also be set by an environment variable: --max-item-size -> GRAVITY_MAX_ITEM_SIZE.`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      throw new UsageError("missing command (try gravity --help)");
    case "--help":
    case "-h":
    case "help":
      console.log(USAGE);
      return 0;
    case "--version":
    case "-v":
      console.log(`gravity ${VERSION}`);
      return 0;
    case "leaf":
      return await leafCommand(rest);
    case "router":
      return await routerCommand(rest);
    case "cluster":
      return await clusterCommand(rest);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)} (try gravity --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    // A bad flag or a bad config file: the user's to fix, one line, exit 2.
    if (error instanceof UsageError || error instanceof ConfigError) {
      console.error(`gravity: ${error.message}`);
      process.exit(2);
    }
    console.error(`gravity: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
