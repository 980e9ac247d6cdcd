// The static probe (test/fixtures/probe.c), compiled once per test run, and the fixture rootfs
// the e2e files share: busybox + /bin/probe, world-readable so rootless runs can use it.
// Also the small process helpers the e2e files need (wait for a line, poll, remove a tree).
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeTree } from "../../src/sys/fs.ts";
import { busyboxRootfs, ensureBuilt, GCR, ROOT_DIR, testDirs } from "./gcr.ts";

const SOURCE = join(ROOT_DIR, "test/fixtures/probe.c");
let probePath: string | undefined;

/** Compile probe.c with `gcc -static -O2` into a temp dir, once per `bun test` process. */
export function buildProbe(): string {
  if (probePath) return probePath;
  const dir = mkdtempSync(join(tmpdir(), "gcr-probe-"));
  chmodSync(dir, 0o755);
  const out = join(dir, "probe");
  const p = Bun.spawnSync(["gcc", "-static", "-O2", "-Wall", "-o", out, SOURCE], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`gcc -static ${SOURCE} failed:\n${p.stderr.toString()}`);
  process.on("exit", () => removeTree(dir));
  probePath = out;
  return out;
}

export interface Fixture {
  base: string;
  rootfs: string;
  /** GCR_ROOT / GCR_RUNROOT for this test file. */
  env: Record<string, string>;
  containers: string;
  cleanup: () => void;
}

/** A private store, a state dir and a busybox+probe rootfs for one test file. */
export function fixture(name: string): Fixture {
  ensureBuilt();
  const d = testDirs(name);
  const rootfs = busyboxRootfs(join(d.base, "rootfs"));
  copyFileSync(buildProbe(), join(rootfs, "bin", "probe"));
  chmodSync(join(rootfs, "bin", "probe"), 0o755);
  return {
    base: d.base,
    rootfs,
    env: { GCR_ROOT: d.root, GCR_RUNROOT: d.runroot },
    containers: join(d.runroot, "containers"),
    cleanup: () => removeTree(d.base),
  };
}

/** Entries of a directory, [] when it does not exist. */
export function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** A started gcr process whose output is read as it comes. */
export interface Running {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  /** Resolves with everything read so far once `pattern` appears on stdout or stderr. */
  waitFor: (pattern: RegExp, ms?: number) => Promise<string>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | number | null; stdout: string; stderr: string }>;
}

export function startGcr(args: string[], env: Record<string, string>): Running {
  const proc = Bun.spawn([GCR, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  let err = "";
  const waiters: { re: RegExp; resolve: (s: string) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.re.test(out) || w.re.test(err)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(out + err);
      }
    }
  };
  const pump = async (s: ReadableStream<Uint8Array>, into: (t: string) => void) => {
    const dec = new TextDecoder();
    for await (const chunk of s) {
      into(dec.decode(chunk, { stream: true }));
      check();
    }
  };
  const pumps = Promise.all([pump(proc.stdout, (t) => (out += t)), pump(proc.stderr, (t) => (err += t))]);
  const done = (async () => {
    await proc.exited;
    await pumps;
    return { code: proc.exitCode, signal: proc.signalCode, stdout: out, stderr: err };
  })();
  const waitFor = (re: RegExp, ms = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout: ${out}; stderr: ${err}`)), ms);
      waiters.push({ re, resolve: (s) => (clearTimeout(t), resolve(s)) });
      check();
    });
  return { proc, waitFor, done };
}

/** Poll `cond` every 20 ms for up to `ms`; returns whether it became true. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    await Bun.sleep(20);
  }
}

/** Host pids whose state is Z (zombie), only those whose parent is `ppid` if given. */
export function zombies(ppid?: number): number[] {
  const out: number[] = [];
  for (const p of entries("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z" && (ppid === undefined || Number(fields[1]) === ppid)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

/** Host processes whose command line contains `needle`. */
export function processesMatching(needle: string): number[] {
  const out: number[] = [];
  for (const p of entries("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ").includes(needle)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

/** Whether a host pid still exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
