// A container's host-side home: stateDir()/containers/<id>/ with the overlay's upper, work and
// merged directories and the /etc files gcr provides. The directory is owned by one gcr
// process, which holds an flock on its "lock" file for as long as it lives; any later gcr
// command that can take the lock knows the owner is gone (even after SIGKILL) and sweeps it.
import { debug } from "../log.ts";
import { stateDir } from "../paths.ts";
import { flock, LOCK_EX, LOCK_NB, randomBytes } from "../sys/libc.ts";
import { O, close, exists, mkdir, mkdirp, open, readdir, readText, removeTree, rename, stat, unlinkIfExists, writeFile } from "../sys/fs.ts";
import { join } from "../path.ts";

export function containersDir(): string {
  return join(stateDir(), "containers");
}

export function newContainerId(): string {
  for (;;) {
    let id = "";
    for (const b of randomBytes(32)) id += (b < 16 ? "0" : "") + b.toString(16);
    // The short id is the default hostname: an all-digit one (1 in 280) reads as a number to
    // resolvers (busybox's `hostname -i` then says "Unknown host"), so draw again.
    for (let i = 0; i < 12; i++) if (id[i]! >= "a") return id;
  }
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

/** Create and lock a container's directory; `config` (config.json) is in place before it
 * becomes visible, so a concurrent sweep or name check never sees a half-made container. */
export function createContainerDir(id: string, config?: object): ContainerDir {
  mkdirp(containersDir(), 0o700);
  // Locked under a hidden name first, then renamed: a concurrent sweep never sees it unlocked.
  const tmp = join(containersDir(), `.new-${id}`);
  const dir = join(containersDir(), id);
  mkdir(tmp, 0o700);
  const lockFd = open(join(tmp, "lock"), O.WRONLY | O.CREAT | O.TRUNC, 0o600);
  flock(lockFd, LOCK_EX | LOCK_NB);
  if (config) writeFile(join(tmp, "config.json"), JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  rename(tmp, dir);
  const c = { id, dir, upper: join(dir, "upper"), work: join(dir, "work"), merged: join(dir, "merged"), lockFd };
  for (const d of [c.upper, c.work, c.merged]) mkdir(d, 0o755);
  return c;
}

/** Lock an existing, stopped container's directory again (gcr start). */
export function reopenContainerDir(id: string): ContainerDir | undefined {
  const dir = join(containersDir(), id);
  const lockFd = open(join(dir, "lock"), O.RDONLY);
  if (!flock(lockFd, LOCK_EX | LOCK_NB)) {
    close(lockFd);
    return undefined;
  }
  for (const f of ["exit", "pid", "released"]) unlinkIfExists(join(dir, f));
  return { id, dir, upper: join(dir, "upper"), work: join(dir, "work"), merged: join(dir, "merged"), lockFd };
}

/** Keep the directory (a persistent container), drop our lock on it. */
export function closeContainerDir(c: ContainerDir): void {
  try {
    close(c.lockFd);
  } catch {
    // already closed
  }
}

export function removeContainerDir(c: ContainerDir): void {
  // The lock goes last: if this removal fails half-way, a later sweep still finds the
  // directory, takes the lock and finishes the job.
  for (const name of readdir(c.dir)) if (name !== "lock") removeTree(join(c.dir, name));
  removeTree(c.dir);
  try {
    close(c.lockFd);
  } catch {
    // already closed
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - stat(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Release what a container holds outside its directory, then remove the directory. */
export function removeContainer(id: string): void {
  for (const s of sweepers) s(id);
  removeTree(join(containersDir(), id));
}

/** Whether a container dir belongs to a container that is kept after exit (run -d, --name). */
function keptAfterExit(dir: string): boolean {
  try {
    const c = JSON.parse(readText(join(dir, "config.json"))) as { persist?: boolean; autoRemove?: boolean };
    return c.persist === true && c.autoRemove !== true;
  } catch {
    return false;
  }
}

/**
 * Tidy up after containers whose owner (gcr, or gcr-monitor for a detached container) is
 * gone, even by SIGKILL: release their cgroup and network, and remove their directory unless
 * the container is kept until `gcr rm`. Cheap when there is nothing to do: one readdir and
 * one flock per container.
 */
export function sweepStale(): void {
  let ids: string[];
  try {
    ids = readdir(containersDir());
  } catch {
    return;
  }
  for (const id of ids) {
    const dir = join(containersDir(), id);
    // A ".new-" dir is being created right now (its creator takes the lock a moment after
    // making it); only one left behind by a creator that died is ever old.
    if (id.startsWith(".new-") && ageMs(dir) < 60_000) continue;
    let fd: number;
    try {
      fd = open(join(dir, "lock"), O.RDONLY);
    } catch {
      // No lock: being created right now (a ".new-" dir, for microseconds), or a removal
      // that died before the lock file was made. Only the latter is ever old.
      if (ageMs(dir) > 60_000) removeTree(dir);
      continue;
    }
    try {
      if (!flock(fd, LOCK_EX | LOCK_NB)) continue; // its owner is alive
      if (keptAfterExit(dir)) {
        if (exists(join(dir, "released"))) continue;
        debug("sweep", `container ${id.slice(0, 12)} ended: releasing its cgroup and network, keeping its files until gcr rm`);
        for (const s of sweepers) s(id);
        writeFile(join(dir, "released"), "");
        continue;
      }
      debug("sweep", `removing leftovers of container ${id.slice(0, 12)} (its gcr process is gone)`);
      removeContainer(id);
    } finally {
      close(fd);
    }
  }
}
