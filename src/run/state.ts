// What gcr remembers about a container, on disk, with no daemon: every gcr command is a
// short-lived process that reads these files.
//
//   <stateDir>/containers/<id>/
//     lock         flock'd by the process that owns the running container: the foreground gcr,
//                  or gcr-monitor for a detached one. Free lock = nothing is running.
//     config.json  how it was started (written once, before the container runs)
//     pid          the container's init, as a host pid (while it runs)
//     exit         "exited CODE" or "signaled N", written when it ended
//     ctr.log      stdout and stderr of a detached container
//     upper/ work/ merged/   the writable layer
//
// The status is derived from these files, never stored: running if the lock is held and no
// exit file exists; exited otherwise. A crash of any gcr process therefore cannot leave a
// wrong status behind, only an "exited (unknown)" when the monitor was killed.
import { GcrError } from "../errors.ts";
import { flock, LOCK_EX, LOCK_NB, LOCK_UN } from "../sys/libc.ts";
import { containersDir } from "./container.ts";
import type { RunOptions } from "./options.ts";
import { O, close, exists, mkdirp, open, readdir, readTextOrUndefined, rename, stat, writeFile } from "../sys/fs.ts";
import { join } from "../path.ts";

export interface ContainerConfig {
  id: string;
  name?: string;
  /** The IMAGE|ROOTFS argument and the rootfs it resolved to. */
  image: string;
  rootfs: string;
  argv: string[];
  created: string;
  /** Kept after exit until `gcr rm` (detached or named); else removed at exit. */
  persist: boolean;
  detached: boolean;
  autoRemove: boolean;
  hostname: string;
  /** The image's StopSignal (what `gcr stop` sends first), if it names one. */
  stopSignal?: string;
  opts: RunOptions;
  /** What `gcr exec` repeats for a new process in the container. */
  process: ProcessConfig;
}

export interface ProcessConfig {
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  /** The capability mask, as "0x..." (JSON has no bigint). */
  capabilities: string;
  seccomp: boolean;
  noNewPrivileges: boolean;
}

export type Status =
  | { state: "running"; pid: number; startedAt: string }
  | { state: "exited"; code: number | undefined; signal?: number; finishedAt?: string };

export interface ContainerInfo {
  config: ContainerConfig;
  status: Status;
  dir: string;
}

export function containerDir(id: string): string {
  return join(containersDir(), id);
}


function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFile(tmp, text, { mode: 0o600 });
  rename(tmp, path);
}

/** Record how a container ended (the foreground gcr does it; gcr-monitor does the same). */
export function writeExit(dir: string, s: { exited: true; code: number } | { exited: false; signal: number }): void {
  atomicWrite(join(dir, "exit"), s.exited ? `exited ${s.code}\n` : `signaled ${s.signal}\n`);
}


/** Whether some live process holds the container's lock. */
export function isLocked(dir: string): boolean {
  let fd: number;
  try {
    fd = open(join(dir, "lock"), O.RDONLY);
  } catch {
    return false;
  }
  try {
    if (!flock(fd, LOCK_EX | LOCK_NB)) return true;
    flock(fd, LOCK_UN);
    return false;
  } finally {
    close(fd);
  }
}

export function readStatus(dir: string): Status {
  const exit = readTextOrUndefined(join(dir, "exit"));
  const finishedAt = exit !== undefined ? new Date(stat(join(dir, "exit")).mtimeMs).toISOString() : undefined;
  if (exit === undefined && isLocked(dir)) {
    const pid = Number(readTextOrUndefined(join(dir, "pid")) ?? "0");
    const startedAt = exists(join(dir, "pid")) ? new Date(stat(join(dir, "pid")).mtimeMs).toISOString() : "";
    return { state: "running", pid, startedAt };
  }
  const m = /^(exited|signaled) (\d+)/.exec(exit ?? "");
  if (!m) return { state: "exited", code: undefined, finishedAt };
  if (m[1] === "exited") return { state: "exited", code: Number(m[2]), finishedAt };
  return { state: "exited", code: 128 + Number(m[2]), signal: Number(m[2]), finishedAt };
}

export function readInfo(id: string): ContainerInfo | undefined {
  const dir = containerDir(id);
  const text = readTextOrUndefined(join(dir, "config.json"));
  if (!text) return undefined;
  return { config: JSON.parse(text) as ContainerConfig, status: readStatus(dir), dir };
}

/** Every container with a config, newest first. */
export function listContainers(): ContainerInfo[] {
  let ids: string[];
  try {
    ids = readdir(containersDir()).filter((n) => /^[0-9a-f]{64}$/.test(n));
  } catch {
    return [];
  }
  return ids
    .map(readInfo)
    .filter((c): c is ContainerInfo => c !== undefined)
    .sort((a, b) => b.config.created.localeCompare(a.config.created));
}

/** ID, unique ID prefix, or name -> the container; a clear error otherwise. */
export function findContainer(ref: string): ContainerInfo {
  const all = listContainers();
  const byName = all.find((c) => c.config.name === ref);
  if (byName) return byName;
  if (/^[0-9a-f]{1,64}$/.test(ref)) {
    const matches = all.filter((c) => c.config.id.startsWith(ref));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw new GcrError(`container id prefix '${ref}' is ambiguous: ${matches.length} containers match`);
  }
  throw new GcrError(`no such container: ${ref}`);
}

/** Serialise name checks and creation across concurrent gcr processes. */
export function withStateLock<T>(fn: () => T): T {
  mkdirp(containersDir(), 0o700);
  const fd = open(join(containersDir(), "..", "containers.lock"), O.WRONLY | O.CREAT | O.APPEND, 0o600);
  try {
    flock(fd, LOCK_EX);
    return fn();
  } finally {
    close(fd);
  }
}

export function shortId(id: string): string {
  return id.slice(0, 12);
}
