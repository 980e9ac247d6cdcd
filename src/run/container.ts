// A container's host-side home: stateDir()/containers/<id>/ with the overlay's upper, work and
// merged directories and the /etc files gcr provides. The directory is owned by one gcr
// process, which holds an flock on its "lock" file for as long as it lives; any later gcr
// command that can take the lock knows the owner is gone (even after SIGKILL) and sweeps it.
import { closeSync, mkdirSync, openSync, readdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { removeTree } from "../fsutil.ts";
import { debug } from "../log.ts";
import { stateDir } from "../paths.ts";
import { flock, LOCK_EX, LOCK_NB } from "../sys/libc.ts";

export function containersDir(): string {
  return join(stateDir(), "containers");
}

export function newContainerId(): string {
  const b = new Uint8Array(32);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString("hex");
}

export interface ContainerDir {
  id: string;
  dir: string;
  upper: string;
  work: string;
  merged: string;
  lockFd: number;
}

/** Cleanup hooks for resources that live outside the container dir (cgroups, network). */
const sweepers: ((id: string) => void)[] = [];
export function onSweep(fn: (id: string) => void): void {
  sweepers.push(fn);
}

export function createContainerDir(id: string): ContainerDir {
  mkdirSync(containersDir(), { recursive: true, mode: 0o700 });
  // Locked under a hidden name first, then renamed: a concurrent sweep never sees it unlocked.
  const tmp = join(containersDir(), `.new-${id}`);
  const dir = join(containersDir(), id);
  mkdirSync(tmp, { mode: 0o700 });
  const lockFd = openSync(join(tmp, "lock"), "w", 0o600);
  flock(lockFd, LOCK_EX | LOCK_NB);
  writeFileSync(join(tmp, "owner"), `${process.pid}\n`);
  renameSync(tmp, dir);
  const c = { id, dir, upper: join(dir, "upper"), work: join(dir, "work"), merged: join(dir, "merged"), lockFd };
  for (const d of [c.upper, c.work, c.merged]) mkdirSync(d, { mode: 0o755 });
  return c;
}

export function removeContainerDir(c: ContainerDir): void {
  // The lock goes last: if this removal fails half-way, a later sweep still finds the
  // directory, takes the lock and finishes the job.
  for (const name of readdirSync(c.dir)) if (name !== "lock") removeTree(join(c.dir, name));
  removeTree(c.dir);
  try {
    closeSync(c.lockFd);
  } catch {
    // already closed
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Remove what dead gcr processes left behind. Cheap when there is nothing: one readdir. */
export function sweepStale(): void {
  let ids: string[];
  try {
    ids = readdirSync(containersDir());
  } catch {
    return;
  }
  for (const id of ids) {
    const dir = join(containersDir(), id);
    let fd: number;
    try {
      fd = openSync(join(dir, "lock"), "r");
    } catch {
      // No lock: being created right now (a ".new-" dir, for microseconds), or a removal
      // that died before the lock file was made. Only the latter is ever old.
      if (ageMs(dir) > 60_000) removeTree(dir);
      continue;
    }
    try {
      if (!flock(fd, LOCK_EX | LOCK_NB)) continue; // its gcr is alive
      debug("sweep", `removing leftovers of container ${id.slice(0, 12)} (its gcr process is gone)`);
      for (const s of sweepers) s(id);
      removeTree(dir);
    } finally {
      closeSync(fd);
    }
  }
}
