// The image store: where `gcr pull` puts images and where `gcr run NAME` finds them.
// This is the ONE place that maps an image name to a root filesystem and its config.
//
// Layout under dataDir() (0700: a setuid binary in a rootfs must not be reachable by other
// users, moby CVE-2021-41091):
//   blobs/sha256/<hex>        verified blobs (layers, configs, manifests), kept once, mode 0444
//   blobs/partial/<hex>       a download in progress; the next pull resumes it with Range
//   images/<name>/image.json  the record: reference, manifest digest, config, layers, size
//   images/<name>/rootfs/     the unpacked root filesystem
//   tmp/<kind>-<pid>-<rand>/  staging dirs; renamed into images/ when complete, swept when
//                             their pid is gone (an interrupted pull leaves nothing under NAME)
//   locks/<name>.lock         one pull per name at a time (holds the pid)
// Names and digests reaching a path are validated first (IMAGE_NAME, parseDigest; S01/S02).
import { GcrError } from "./errors.ts";
import { type Descriptor, type ImageConfig, type ImageConfigBlob, parseDigest } from "./oci.ts";
import { dataDir } from "./paths.ts";
import { chmod, exists, link, mkdir, mkdirp, readdir, readText, removeTree, rename, stat, unlink, writeFile } from "./sys/fs.ts";
import { join } from "./path.ts";

export interface StoredImage {
  name: string;
  /** Absolute path of the unpacked root filesystem (read-only for containers). */
  rootfs: string;
  config: ImageConfig;
}

/** What images/<name>/image.json holds. */
export interface ImageRecord {
  name: string;
  /** The normalised reference pulled, e.g. docker.io/library/ubuntu:latest. */
  reference: string;
  /** Digest of the manifest (not the index) that was unpacked. */
  manifestDigest: string;
  /** Digest of the index the manifest was chosen from, when there was one. */
  indexDigest?: string;
  platform: string;
  configDigest: string;
  /** The whole config blob; `config.config` is the runtime config (Env, Cmd, ...). */
  config: ImageConfigBlob;
  layers: Descriptor[];
  /** Every blob this image keeps alive (index, manifest, config, layers). */
  blobs: string[];
  /** Uncompressed size of all layers, bytes. */
  size: number;
  /** ISO time of the pull. */
  pulled: string;
}

/** Image names are single path-safe tokens so they can never escape the store. */
export const IMAGE_NAME = /^[a-z0-9][a-z0-9_.-]{0,127}$/;

export function validateName(name: string): void {
  if (!IMAGE_NAME.test(name)) {
    throw new GcrError(`invalid image name '${name}'`, { hint: "names are 1-128 of [a-z0-9_.-], starting with a letter or digit" });
  }
}

export function imageDir(name: string): string {
  return join(dataDir(), "images", name);
}

/** The stored image called `name`, or undefined. */
export function findImage(name: string): StoredImage | undefined {
  if (!IMAGE_NAME.test(name)) return undefined;
  const dir = imageDir(name);
  const meta = join(dir, "image.json");
  if (!exists(meta)) return undefined;
  const record = JSON.parse(readText(meta)) as { config?: { config?: ImageConfig } };
  return { name, rootfs: join(dir, "rootfs"), config: record.config?.config ?? {} };
}

/** Create the store skeleton (0700 root). */
export function ensureStore(): string {
  const root = dataDir();
  mkdirp(root, 0o700);
  chmod(root, 0o700);
  for (const d of ["blobs/sha256", "blobs/partial", "images", "tmp", "locks"]) mkdirp(join(root, d), 0o700);
  return root;
}

export function blobPath(digest: string): string {
  const d = parseDigest(digest);
  return join(dataDir(), "blobs", d.algorithm, d.hex);
}

export function partialBlobPath(digest: string): string {
  const d = parseDigest(digest);
  return join(dataDir(), "blobs", "partial", `${d.algorithm}-${d.hex}`);
}

/** A blob is reusable when present with its descriptor size; its hash is re-checked on use. */
export function hasBlob(desc: Descriptor): boolean {
  try {
    return stat(blobPath(desc.digest)).size === desc.size;
  } catch {
    return false;
  }
}

/** Store small verified bytes (manifests, configs) as blobs. */
export function putBlob(digest: string, bytes: Uint8Array): void {
  const dest = blobPath(digest);
  if (exists(dest)) return;
  mkdirp(join(dest, ".."), 0o700);
  const tmp = `${partialBlobPath(digest)}.${process.pid}`;
  writeFile(tmp, bytes, { mode: 0o444 });
  rename(tmp, dest);
}

export function readRecord(name: string): ImageRecord | undefined {
  if (!IMAGE_NAME.test(name)) return undefined;
  try {
    return JSON.parse(readText(join(imageDir(name), "image.json"))) as ImageRecord;
  } catch {
    return undefined;
  }
}

export function listImages(): ImageRecord[] {
  let names: string[];
  try {
    names = readdir(join(dataDir(), "images"));
  } catch {
    return [];
  }
  return names
    .sort()
    .map(readRecord)
    .filter((r): r is ImageRecord => r !== undefined);
}

/** Whether process `pid` exists (EPERM: it does, as another user's). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A fresh staging directory; its name carries our pid so a later sweep knows when it is stale. */
export function stagingDir(kind: string): string {
  const dir = join(dataDir(), "tmp", `${kind}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  mkdir(dir, 0o700);
  return dir;
}

/** True while some live process has a staging dir (a pull in progress). */
export function pullInProgress(): boolean {
  return staleOrLive().live > 0;
}

function staleOrLive(sweep = false): { live: number; swept: number } {
  const tmp = join(dataDir(), "tmp");
  let live = 0;
  let swept = 0;
  let names: string[] = [];
  try {
    names = readdir(tmp);
  } catch {
    return { live, swept };
  }
  for (const n of names) {
    const pid = Number(/^[a-z]+-(\d+)-/.exec(n)?.[1]);
    if (pid === process.pid) continue;
    if (pidAlive(pid)) live++;
    else if (sweep) {
      removeTree(join(tmp, n));
      swept++;
    }
  }
  return { live, swept };
}

/** Remove staging dirs left by interrupted pulls (kill -9, power loss). */
export function sweepStale(): number {
  return staleOrLive(true).swept;
}

/** Move a complete staging dir (rootfs/ + image.json) into images/<name>, replacing any old one. */
export function publish(name: string, staging: string): void {
  validateName(name);
  const dest = imageDir(name);
  if (exists(dest)) {
    const old = join(dataDir(), "tmp", `old-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
    rename(dest, old);
    rename(staging, dest);
    removeTree(old);
  } else {
    rename(staging, dest);
  }
}

/** Remove images/<name>; returns false when there is no such image. */
export function removeImage(name: string): boolean {
  validateName(name);
  const dest = imageDir(name);
  if (!exists(dest)) return false;
  // Rename first so no half-removed image is ever visible under the name.
  const old = join(dataDir(), "tmp", `rmi-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  rename(dest, old);
  removeTree(old);
  return true;
}

/** Delete blobs that no image record references. Skipped while a pull runs (it may need them). */
export function collectGarbage(): { removed: number; bytes: number; deferred: boolean } {
  if (pullInProgress()) return { removed: 0, bytes: 0, deferred: true };
  const used = new Set<string>();
  for (const r of listImages()) for (const b of r.blobs ?? []) used.add(b);
  let removed = 0;
  let bytes = 0;
  for (const alg of ["sha256", "sha512"]) {
    const dir = join(dataDir(), "blobs", alg);
    let names: string[] = [];
    try {
      names = readdir(dir);
    } catch {
      continue;
    }
    for (const hex of names) {
      if (used.has(`${alg}:${hex}`)) continue;
      const p = join(dir, hex);
      try {
        bytes += stat(p).size;
        unlink(p);
        removed++;
      } catch {
        /* raced with another gc */
      }
    }
  }
  return { removed, bytes, deferred: false };
}

/**
 * Hold the per-name lock while pulling. If another live process holds it, wait for it (the
 * second of two concurrent pulls then finds the image up to date). A dead holder's lock is taken over.
 */
export async function lockName(name: string, onWait?: (pid: number) => void): Promise<() => void> {
  validateName(name);
  const path = join(dataDir(), "locks", `${name}.lock`);
  let told = false;
  for (;;) {
    try {
      // Write the pid first, then link(2) it into place: the lock never exists without its
      // holder's pid, so a waiter cannot mistake a half-written lock for a stale one.
      const tmp = `${path}.${process.pid}`;
      writeFile(tmp, String(process.pid), { mode: 0o600 });
      try {
        link(tmp, path);
      } finally {
        unlink(tmp);
      }
      return () => {
        try {
          if (readText(path) === String(process.pid)) unlink(path);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let holder = 0;
    try {
      holder = Number(readText(path));
    } catch {
      continue;
    }
    if (!pidAlive(holder)) {
      try {
        unlink(path);
      } catch {
        /* someone else took it over */
      }
      continue;
    }
    if (!told) {
      onWait?.(holder);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
