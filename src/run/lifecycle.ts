// Managing containers with no daemon: ps, inspect, logs, stop, kill, rm, container prune.
// Each reads the state files described in state.ts; none keeps running after it answers
// (logs -f follows until the container ends or the user interrupts).
import { helpText, parseOptions, type OptionSpec } from "../cli.ts";
import { EXIT, GcrError, UsageError } from "../errors.ts";
import { debug } from "../log.ts";
import { kill } from "../sys/libc.ts";
import { sweep } from "./sweep.ts";
import { findContainer, listContainers, readStatus, shortId, type ContainerInfo, type Status } from "./state.ts";
import { removeContainer, reopenContainerDir } from "./container.ts";
import { printErr, printOut, writeStdout } from "../output.ts";
import { steady } from "../jit.ts";
import { close, exists, O, open, pread, stat } from "../sys/fs.ts";
import { join } from "../path.ts";

export const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11,
  USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20,
  TTIN: 21, TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};

/** "TERM", "SIGTERM", "15" -> 15. */
export function parseSignal(s: string): number {
  const n = /^\d+$/.test(s) ? Number(s) : SIGNALS[s.toUpperCase().replace(/^SIG/, "")];
  if (n === undefined || n < 1 || n > 64) throw new UsageError(`invalid signal '${s}'`);
  return n;
}

function parse(cmd: string, usage: string, summary: string, argv: string[], specs: OptionSpec[]) {
  const p = parseOptions(cmd, argv, specs, { stopAtPositional: false });
  if (p.help) {
    printOut(helpText(usage, summary, specs));
    return undefined;
  }
  return p;
}

// ---- ps ------------------------------------------------------------------------------

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? "" : "s"}`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} hour${h === 1 ? "" : "s"}`;
  return `${Math.round(h / 24)} days`;
}

export function statusText(s: Status): string {
  if (s.state === "running") return `Up ${ago(s.startedAt)}`;
  const code = s.code === undefined ? "unknown" : String(s.code);
  return s.finishedAt ? `Exited (${code}) ${ago(s.finishedAt)} ago` : `Exited (${code})`;
}

function psRow(c: ContainerInfo) {
  return {
    id: c.config.id,
    name: c.config.name ?? "",
    image: c.config.image,
    command: c.config.argv.join(" "),
    created: c.config.created,
    state: c.status.state,
    status: statusText(c.status),
    exitCode: c.status.state === "exited" ? (c.status.code ?? null) : null,
    pid: c.status.state === "running" ? c.status.pid : 0,
  };
}

const PS_SPECS: OptionSpec[] = [
  { name: "all", short: "a", type: "boolean", help: "show all containers (default: running ones)" },
  { name: "format", type: "string", arg: "table|json", help: "output format" },
  { name: "quiet", short: "q", type: "boolean", help: "only ids" },
];

export async function psCommand(argv: string[]): Promise<number> {
  const p = parse("ps", "gcr ps [-a] [--format json]", "List containers.", argv, PS_SPECS);
  if (!p) return EXIT.ok;
  sweep();
  const rows = listContainers().filter((c) => p.values.all || c.status.state === "running").map(psRow);
  if (p.values.quiet) {
    printOut(rows.map((r) => shortId(r.id) + "\n").join(""));
  } else if (p.values.format === "json") {
    printOut(JSON.stringify(rows, null, 2) + "\n");
  } else if (p.values.format === undefined || p.values.format === "table") {
    const table = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PID", "NAMES"]];
    for (const r of rows) {
      const cmd = r.command.length > 22 ? `${r.command.slice(0, 21)}…` : r.command;
      table.push([shortId(r.id), r.image, JSON.stringify(cmd), `${ago(r.created)} ago`, r.status, r.pid ? String(r.pid) : "", r.name]);
    }
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    printOut(table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join("   ").trimEnd() + "\n").join(""));
  } else throw new UsageError(`unknown --format '${p.values.format}': use table or json`, "ps");
  return EXIT.ok;
}

// ---- inspect ---------------------------------------------------------------------------

export async function inspectCommand(argv: string[]): Promise<number> {
  const p = parse("inspect", "gcr inspect ID|NAME...", "Show a container's configuration and state as JSON.", argv, []);
  if (!p) return EXIT.ok;
  if (p.rest.length === 0) throw new UsageError("requires at least 1 argument: ID|NAME", "inspect");
  sweep();
  const out = p.rest.map((ref) => {
    const c = findContainer(ref);
    return { Id: c.config.id, Name: c.config.name ?? "", State: { ...c.status, Status: statusText(c.status) }, Config: c.config, Dir: c.dir };
  });
  printOut(JSON.stringify(out, null, 2) + "\n");
  return EXIT.ok;
}

// ---- logs ------------------------------------------------------------------------------

const LOGS_SPECS: OptionSpec[] = [
  { name: "follow", short: "f", type: "boolean", help: "keep printing new output until the container ends" },
  { name: "tail", short: "n", type: "string", arg: "N", help: "only the last N lines" },
];

/** The start offset of the last `n` lines of a file, reading it backwards in chunks. */
export function tailOffset(fd: number, size: number, n: number): number {
  if (n <= 0) return size;
  let pos = size;
  let newlines = 0;
  const buf = new Uint8Array(64 * 1024);
  // A final newline ends the last line; it does not start a new one.
  let skipLast = true;
  while (pos > 0) {
    const len = Math.min(buf.length, pos);
    pos -= len;
    pread(fd, buf.subarray(0, len), pos);
    for (let i = len - 1; i >= 0; i--) {
      if (buf[i] !== 0x0a) {
        skipLast = false;
        continue;
      }
      if (skipLast) {
        skipLast = false;
        continue;
      }
      if (++newlines === n) return pos + i + 1;
    }
  }
  return 0;
}

export async function logsCommand(argv: string[]): Promise<number> {
  const p = parse("logs", "gcr logs [-f] [--tail N] ID|NAME", "Print what a detached container wrote to stdout and stderr.", argv, LOGS_SPECS);
  if (!p) return EXIT.ok;
  const [ref, ...extra] = p.rest;
  if (!ref || extra.length) throw new UsageError("requires exactly 1 argument: ID|NAME", "logs");
  const tail = p.values.tail as string | undefined;
  if (tail !== undefined && tail !== "all" && !/^\d+$/.test(tail)) throw new UsageError(`invalid --tail '${tail}'`, "logs");
  const c = findContainer(ref);
  const file = join(c.dir, "ctr.log");
  if (!exists(file)) throw new GcrError(`container ${ref} has no logs: only detached containers (run -d) write them`);
  const fd = open(file, O.RDONLY);
  try {
    let pos = tail === undefined || tail === "all" ? 0 : tailOffset(fd, stat(file).size, Number(tail));
    const buf = new Uint8Array(64 * 1024);
    const drain = () => {
      for (;;) {
        const n = pread(fd, buf, pos, file);
        if (n <= 0) return;
        writeStdout(buf.subarray(0, n));
        pos += n;
      }
    };
    drain();
    if (p.values.follow) {
      steady();
      while (readStatus(c.dir).state === "running") {
        await Bun.sleep(100);
        drain();
      }
      drain();
    }
  } finally {
    close(fd);
  }
  return EXIT.ok;
}

// ---- stop, kill ------------------------------------------------------------------------

async function waitExited(c: ContainerInfo, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (readStatus(c.dir).state !== "running") return true;
    if (Date.now() >= end) return false;
    await Bun.sleep(20);
  }
}

const STOP_SPECS: OptionSpec[] = [
  { name: "time", short: "t", type: "string", arg: "SECS", help: "seconds to wait after SIGTERM before SIGKILL (default 10)" },
  { name: "signal", short: "s", type: "string", arg: "SIG", help: "signal to send first (default: the image's StopSignal or TERM)" },
];

export async function stopCommand(argv: string[]): Promise<number> {
  const p = parse("stop", "gcr stop [-t SECS] ID|NAME...", "Stop containers: SIGTERM, then SIGKILL after the grace period.", argv, STOP_SPECS);
  if (!p) return EXIT.ok;
  if (p.rest.length === 0) throw new UsageError("requires at least 1 argument: ID|NAME", "stop");
  const t = (p.values.time as string | undefined) ?? "10";
  if (!/^\d+$/.test(t)) throw new UsageError(`invalid --time '${t}'`, "stop");
  for (const ref of p.rest) {
    const c = findContainer(ref);
    const first = parseSignal((p.values.signal as string | undefined) ?? c.config.stopSignal ?? "TERM");
    if (c.status.state === "running") {
      debug("stop", `signal ${first} to ${shortId(c.config.id)} (host pid ${c.status.pid}), SIGKILL after ${t} s`);
      kill(c.status.pid, first);
      if (!(await waitExited(c, Number(t) * 1000))) {
        debug("stop", `still running after ${t} s: SIGKILL`);
        kill(c.status.pid, SIGNALS.KILL!);
        await waitExited(c, 5000);
      }
    }
    printOut(`${ref}\n`);
  }
  sweep();
  return EXIT.ok;
}

export async function killCommand(argv: string[]): Promise<number> {
  const specs: OptionSpec[] = [{ name: "signal", short: "s", type: "string", arg: "SIG", help: "signal to send (default KILL)" }];
  const p = parse("kill", "gcr kill [-s SIG] ID|NAME...", "Send a signal to containers' init process.", argv, specs);
  if (!p) return EXIT.ok;
  if (p.rest.length === 0) throw new UsageError("requires at least 1 argument: ID|NAME", "kill");
  const sig = parseSignal((p.values.signal as string | undefined) ?? "KILL");
  for (const ref of p.rest) {
    const c = findContainer(ref);
    if (c.status.state !== "running") throw new GcrError(`container ${ref} is not running`);
    kill(c.status.pid, sig);
    printOut(`${ref}\n`);
  }
  return EXIT.ok;
}

// ---- rm, prune -------------------------------------------------------------------------

export async function rmCommand(argv: string[]): Promise<number> {
  const specs: OptionSpec[] = [{ name: "force", short: "f", type: "boolean", help: "kill a running container first" }];
  const p = parse("rm", "gcr rm [-f] ID|NAME...", "Remove containers and everything they own (mounts, cgroup, network, files).", argv, specs);
  if (!p) return EXIT.ok;
  if (p.rest.length === 0) throw new UsageError("requires at least 1 argument: ID|NAME", "rm");
  let failed = false;
  for (const ref of p.rest) {
    try {
      const c = findContainer(ref);
      if (c.status.state === "running") {
        if (!p.values.force) throw new GcrError(`container ${ref} is running: stop it first or use rm -f`);
        kill(c.status.pid, SIGNALS.KILL!);
        if (!(await waitExited(c, 5000))) throw new GcrError(`container ${ref} did not die after SIGKILL`);
      }
      removeContainer(c.config.id);
      printOut(`${ref}\n`);
    } catch (e) {
      if (!(e instanceof GcrError)) throw e;
      printErr(`gcr: rm ${ref}: ${e.message}\n`);
      failed = true;
    }
  }
  return failed ? EXIT.gcr : EXIT.ok;
}

export async function containerCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "prune") {
    const p = parse("container prune", "gcr container prune", "Remove every stopped container.", rest, []);
    if (!p) return EXIT.ok;
    sweep();
    for (const c of listContainers()) {
      if (c.status.state === "running") continue;
      removeContainer(c.config.id);
      printOut(`${c.config.id}\n`);
    }
    return EXIT.ok;
  }
  if (sub === "ls" || sub === "list") return psCommand(rest);
  if (sub === "rm") return rmCommand(rest);
  if (sub === "inspect") return inspectCommand(rest);
  if (sub === "--help" || sub === undefined) {
    printOut("Usage: gcr container prune|ls|rm|inspect\n");
    return sub === undefined ? EXIT.gcr : EXIT.ok;
  }
  throw new UsageError(`unknown container command '${sub}'`, "container");
}

// ---- start -----------------------------------------------------------------------------

export async function startCommand(argv: string[]): Promise<number> {
  const p = parse("start", "gcr start ID|NAME...", "Start stopped containers again, detached, with their writable layer.", argv, []);
  if (!p) return EXIT.ok;
  if (p.rest.length === 0) throw new UsageError("requires at least 1 argument: ID|NAME", "start");
  sweep();
  const { launch } = await import("./command.ts");
  const { resolveImage } = await import("./image.ts");
  for (const ref of p.rest) {
    const c = findContainer(ref);
    if (c.status.state === "running") throw new GcrError(`container ${ref} is already running`);
    const dir = reopenContainerDir(c.config.id);
    if (!dir) throw new GcrError(`container ${ref} is busy (another gcr is using it)`);
    const image = resolveImage(c.config.image);
    // `gcr start` runs in the background, as docker start without -a does.
    const config = { ...c.config, detached: true, persist: true };
    const code = await launch(dir, config, image);
    if (code !== EXIT.ok) return code;
  }
  return EXIT.ok;
}
