// The entry of the gcr binary: global flags, then one subcommand, loaded lazily so that
// `gcr run` pays only for what it uses. One top-level catch turns any error into one line
// and an exit code (see errors.ts).
import { EXIT, UsageError, exitCodeOf, formatError } from "./errors.ts";
import { setDebug } from "./log.ts";
import { printErr, printOut } from "./output.ts";

export const VERSION = "0.1.0";

/** A subcommand gets its own argv (after its name) and returns the process exit code. */
export type Command = (args: string[]) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  run: { summary: "Run a command in a new container", load: async () => (await import("./run/command.ts")).runCommand },
  pull: { summary: "Pull an image from a registry into the image store", load: async () => (await import("./img2rootfs/command.ts")).pullCommand },
  img2rootfs: { summary: "Pull an image and unpack it into a directory (-image REF -output DIR)", load: async () => (await import("./img2rootfs/command.ts")).img2rootfsCommand },
  exec: { summary: "Run a command in a running container", load: async () => (await import("./run/exec.ts")).execCommand },
  ps: { summary: "List containers", load: async () => (await import("./run/lifecycle.ts")).psCommand },
  inspect: { summary: "Show a container's configuration and state as JSON", load: async () => (await import("./run/lifecycle.ts")).inspectCommand },
  logs: { summary: "Print a detached container's output", load: async () => (await import("./run/lifecycle.ts")).logsCommand },
  stop: { summary: "Stop containers (SIGTERM, then SIGKILL)", load: async () => (await import("./run/lifecycle.ts")).stopCommand },
  kill: { summary: "Send a signal to containers", load: async () => (await import("./run/lifecycle.ts")).killCommand },
  start: { summary: "Start stopped containers again", load: async () => (await import("./run/lifecycle.ts")).startCommand },
  rm: { summary: "Remove containers", load: async () => (await import("./run/lifecycle.ts")).rmCommand },
  container: { summary: "Manage containers (prune, ls, rm, inspect)", load: async () => (await import("./run/lifecycle.ts")).containerCommand },
  images: { summary: "List images in the store", load: async () => (await import("./img2rootfs/command.ts")).imagesCommand },
  rmi: { summary: "Remove images from the store", load: async () => (await import("./img2rootfs/command.ts")).rmiCommand },
  login: { summary: "Save credentials for a registry", load: async () => (await import("./img2rootfs/command.ts")).loginCommand },
  logout: { summary: "Remove saved credentials for a registry", load: async () => (await import("./img2rootfs/command.ts")).logoutCommand },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: gcr [--debug] COMMAND [ARGS...]

A small container runtime: Linux namespaces, pivot_root, cgroups, and a registry client.

Commands:
${lines.join("\n")}

Global options:
  --debug      narrate each isolation step on stderr
  -h, --help   show this help (also: gcr COMMAND --help)
  -v, --version

Exit codes: the container's own, 125 gcr failed, 126 command cannot be executed,
127 command not found, 128+N the command died from signal N.
`;
}

export async function main(argv: string[]): Promise<number> {
  let i = 0;
  let debugFlag = false;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--debug") debugFlag = true;
    else if (a === "-h" || a === "--help") {
      printOut(usage());
      return EXIT.ok;
    } else if (a === "-v" || a === "--version") {
      printOut(`gcr version ${VERSION}\n`);
      return EXIT.ok;
    } else break;
  }
  if (process.env.GCR_DEBUG === "1") debugFlag = true;
  setDebug(debugFlag);
  const name = argv[i];
  try {
    if (name === undefined) throw new UsageError("no command given");
    if (name === "help") {
      printOut(usage());
      return EXIT.ok;
    }
    if (name === "version") {
      printOut(`gcr version ${VERSION}\n`);
      return EXIT.ok;
    }
    const entry = commands[name];
    if (!entry) throw new UsageError(`unknown command '${name}'`);
    const cmd = await entry.load();
    return await cmd(argv.slice(i + 1));
  } catch (err) {
    printErr(formatError(err, { debug: debugFlag }) + "\n");
    return exitCodeOf(err);
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  process.exit(code);
}
