// Run the compiled ./gcr as a user would, and build the small root filesystems the e2e
// tests use. Every test gets its own GCR_ROOT / GCR_RUNROOT so nothing touches the host's store.
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT_DIR = resolve(import.meta.dir, "../..");
export const GCR = join(ROOT_DIR, "gcr");
export const isRoot = process.getuid?.() === 0;

/** Build ./gcr once if it is missing (CI builds it before the tests). */
export function ensureBuilt(): void {
  if (existsSync(GCR)) return;
  const p = Bun.spawnSync(["bun", "scripts/build.ts"], { cwd: ROOT_DIR, stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error("npm run build failed");
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export interface GcrOptions {
  env?: Record<string, string>;
  stdin?: string;
  /** Run as this uid/gid (via setpriv), for rootless tests. */
  asUser?: { uid: number; gid: number };
  timeoutMs?: number;
  cwd?: string;
}

/** A private store and state dir for a test file, readable by the unprivileged test user. */
export function testDirs(name: string): { root: string; runroot: string; base: string } {
  const base = mkdtempSync(join(tmpdir(), `gcr-test-${name}-`));
  chmodSync(base, 0o755);
  const root = join(base, "root");
  const runroot = join(base, "run");
  return { root, runroot, base };
}

export async function gcr(args: string[], o: GcrOptions = {}): Promise<Result> {
  ensureBuilt();
  const cmd = o.asUser
    ? ["setpriv", `--reuid=${o.asUser.uid}`, `--regid=${o.asUser.gid}`, "--clear-groups", GCR, ...args]
    : [GCR, ...args];
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...o.env };
  if (o.asUser && !env.HOME) env.HOME = "/tmp";
  const p = Bun.spawn(cmd, {
    env,
    cwd: o.cwd,
    stdin: o.stdin === undefined ? "ignore" : new TextEncoder().encode(o.stdin),
    stdout: "pipe",
    stderr: "pipe",
    timeout: o.timeoutMs ?? 30_000,
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** The host's static busybox, as the seed's demo rootfs used. */
export const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find(existsSync) ?? "/bin/busybox";

/** A busybox root filesystem (world-readable so rootless tests can use it as lower). */
export function busyboxRootfs(dir: string, extra: Record<string, string> = {}): string {
  for (const d of ["bin", "etc", "tmp", "root", "home", "proc", "sys", "dev"]) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, "tmp"), 0o1777);
  copyFileSync(BUSYBOX, join(dir, "bin", "busybox"));
  chmodSync(join(dir, "bin", "busybox"), 0o755);
  const applets = Bun.spawnSync([BUSYBOX, "--list"]).stdout.toString().split("\n").filter((a) => a && a !== "busybox");
  for (const a of applets) if (!existsSync(join(dir, "bin", a))) symlinkSync("busybox", join(dir, "bin", a));
  writeFileSync(join(dir, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  writeFileSync(join(dir, "etc", "group"), "root:x:0:\ntty:x:5:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n");
  for (const [path, content] of Object.entries(extra)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

/** A snapshot of a directory tree (names, sizes, modes) to prove an image was not modified. */
export function treeSnapshot(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, name.name);
      out.push(p);
      if (name.isDirectory()) walk(p);
    }
  };
  walk(dir);
  const stat = Bun.spawnSync(["stat", "-c", "%n %s %a %u %g %Y", ...out]).stdout.toString();
  return stat;
}

/** Host mount points, to check that nothing leaks. */
export function hostMounts(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4] ?? "").filter(Boolean).sort();
}

/** Print why a block of tests is skipped (a skip without a printed reason is a defect). */
export function skipReason(cond: boolean, reason: string): boolean {
  if (!cond) console.log(`skip: ${reason}`);
  return cond;
}
