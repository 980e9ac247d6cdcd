// Apply one layer (a tar changeset, image-spec layer.md) onto a root filesystem being built.
//
// The rootfs is hostile territory: a layer may carry `../` names, absolute names, symlinks
// that point anywhere (planted by this or a lower layer), hardlinks to host paths and
// whiteouts whose names walk out. The defence is one rule: every path is resolved inside the
// root by resolveInRoot(), one component at a time, with lstat; a symlink met on the way is
// expanded as if the rootfs were `/` (chroot semantics: absolute targets restart at the root,
// `..` stops at the root). Only the final component of an entry is acted on, and never
// through a link: we unlink what is there, create with O_EXCL|O_NOFOLLOW, and use lchown /
// lutimes / lsetxattr. Nobody else writes into the staging dir while we work (it lives in the
// 0700 store), so resolving then acting on the resolved real path is not racy.
//
// Whiteouts only hide lower layers: `written` remembers every path this layer created, so a
// whiteout or an opaque marker met later in the same layer spares it (umoci's approach).
import {
  closeSync,
  constants as C,
  fchmodSync,
  fchownSync,
  futimesSync,
  linkSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  chmodSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
  type Stats,
} from "node:fs";
import { join } from "node:path";
import { GcrError, SyscallError } from "../errors.ts";
import { debug } from "../log.ts";
import { removeTree } from "../sys/fs.ts";
import { S_IFBLK, S_IFCHR, S_IFIFO, lsetxattr, mknod } from "../sys/fsops.ts";
import type { TarEntry } from "./untar.ts";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
const MAX_SYMLINKS = 40;

export interface Limits {
  /** Most entries one layer may hold (E23). */
  maxEntries: number;
  /** Deepest path, in components (E23). */
  maxDepth: number;
}

export const DEFAULT_LIMITS: Limits = { maxEntries: 2_000_000, maxDepth: 512 };

export interface ExtractStats {
  entries: number;
  /** Device nodes not created because gcr runs without root. */
  skippedDevices: number;
  /** xattrs the kernel refused (e.g. security.* rootless). */
  skippedXattrs: number;
  /** Entries of a type gcr does not create (sockets, unknown typeflags). */
  skippedOther: number;
}

export function newStats(): ExtractStats {
  return { entries: 0, skippedDevices: 0, skippedXattrs: 0, skippedOther: 0 };
}

interface DirMeta {
  mode: number;
  mtime: Date;
}

/** Directory modes and mtimes are applied last, deepest first, so writing children cannot undo them. */
export class RootfsBuilder {
  readonly dirs = new Map<string, DirMeta>();
  readonly stats = newStats();
  constructor(
    readonly root: string,
    readonly privileged: boolean,
    readonly limits: Limits = DEFAULT_LIMITS,
  ) {}

  layer(name: string): LayerApplier {
    return new LayerApplier(this, name);
  }

  /** After the last layer: final directory modes (rootless kept them writable) and mtimes. */
  finish(): void {
    const rels = [...this.dirs.keys()].sort((a, b) => b.split("/").length - a.split("/").length);
    for (const rel of rels) {
      const meta = this.dirs.get(rel)!;
      const abs = rel ? join(this.root, rel) : this.root;
      let st: Stats;
      try {
        st = lstatSync(abs);
      } catch {
        continue; // removed by a later layer
      }
      if (!st.isDirectory()) continue;
      if (!this.privileged) chmodSync(abs, meta.mode);
      utimesSync(abs, meta.mtime, meta.mtime);
    }
  }
}

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Remove whatever is at `abs` (a directory recursively), never following a symlink. */
function removeAny(abs: string, st: Stats | null = lstatOrNull(abs)): void {
  if (st) removeTree(abs, st.isDirectory());
}

/** Split a tar member name into safe components: strip leading '/', drop '.', refuse '..'. */
export function cleanName(name: string): string[] | string {
  if (name.includes("\0")) return "name contains NUL";
  const parts: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") return "name contains '..'";
    parts.push(c);
  }
  return parts;
}

export class LayerApplier {
  /** Resolved in-root paths ("a/b") that this layer created or whose ancestors it needed. */
  private readonly written = new Set<string>();
  private entries = 0;

  constructor(
    private readonly fs: RootfsBuilder,
    /** The layer's digest, for messages. */
    readonly name: string,
  ) {}

  private refuse(entry: string, why: string): GcrError {
    return new GcrError(`layer ${this.name}: refusing entry '${entry}': ${why}`, {
      hint: "the image contains a hostile or corrupt layer; nothing was installed",
    });
  }

  private abs(rel: string[]): string {
    return rel.length ? join(this.fs.root, ...rel) : this.fs.root;
  }

  private markWritten(rel: string[]): void {
    for (let i = 1; i <= rel.length; i++) this.written.add(rel.slice(0, i).join("/"));
  }

  /**
   * Resolve `parts` inside the root. Symlinks in every component but the last (and in the last
   * when `followLast`) are expanded in-root. With `create`, a missing or non-directory
   * intermediate component becomes a directory (umoci); without it, such a path yields null.
   * With `dir`, the last component is a directory too (resolving an entry's parent).
   */
  resolveInRoot(parts: string[], opts: { followLast: boolean; create: boolean; entry: string; dir?: boolean }): string[] | null {
    let out: string[] = [];
    let queue = parts.slice();
    let links = 0;
    while (queue.length) {
      const c = queue.shift()!;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        out.pop(); // `..` at the root stays at the root
        continue;
      }
      const isLast = queue.length === 0;
      const p = join(this.fs.root, ...out, c);
      const st = lstatOrNull(p);
      if (st?.isSymbolicLink() && (!isLast || opts.followLast)) {
        if (++links > MAX_SYMLINKS) throw this.refuse(opts.entry, "too many levels of symbolic links");
        const target = readlinkSync(p);
        if (target.startsWith("/")) out = [];
        queue = [...target.split("/"), ...queue];
        continue;
      }
      if ((!isLast || opts.dir) && !st?.isDirectory()) {
        if (!opts.create) return null;
        // A missing parent is created; a file in the way becomes a directory.
        if (st) unlinkSync(p);
        mkdirSync(p, 0o755);
        this.written.add([...out, c].join("/"));
      }
      out.push(c);
    }
    return out;
  }

  /** Apply one tar entry. */
  async apply(e: TarEntry): Promise<void> {
    if (++this.entries > this.fs.limits.maxEntries) throw this.refuse(e.name, `more than ${this.fs.limits.maxEntries} entries in one layer`);
    this.fs.stats.entries++;
    const parts = cleanName(e.name);
    if (typeof parts === "string") throw this.refuse(e.name, parts);
    if (parts.length > this.fs.limits.maxDepth) throw this.refuse(e.name, `path deeper than ${this.fs.limits.maxDepth} components`);

    // The root itself ("./"): only its metadata may change, never its type (E03).
    if (parts.length === 0) {
      if (e.type !== "directory") throw this.refuse(e.name, `the rootfs root cannot become a ${e.type}`);
      this.fs.dirs.set("", { mode: e.mode & 0o7777, mtime: e.mtime });
      if (this.fs.privileged) lchownSync(this.fs.root, e.uid, e.gid);
      return;
    }

    const base = parts[parts.length - 1]!;
    if (base.startsWith(WHITEOUT) && e.type !== "directory") return this.whiteout(e, parts, base);

    const parent = this.resolveInRoot(parts.slice(0, -1), { followLast: true, create: true, entry: e.name, dir: true })!;
    const rel = [...parent, base];
    const abs = this.abs(rel);
    const existing = lstatOrNull(abs);

    switch (e.type) {
      case "directory": {
        if (!existing?.isDirectory()) {
          removeAny(abs, existing);
          mkdirSync(abs, 0o700);
        }
        if (this.fs.privileged) lchownSync(abs, e.uid, e.gid);
        // Rootless: keep the directory writable for us until finish() sets the real mode.
        chmodSync(abs, this.fs.privileged ? e.mode & 0o7777 : (e.mode & 0o7777) | 0o700);
        this.setXattrs(abs, e);
        this.fs.dirs.set(rel.join("/"), { mode: e.mode & 0o7777, mtime: e.mtime });
        break;
      }
      case "file": {
        removeAny(abs, existing);
        await this.writeFile(abs, e);
        break;
      }
      case "symlink": {
        removeAny(abs, existing);
        // The target is stored verbatim: it is only ever followed by resolveInRoot (or inside
        // the container, whose root is this directory).
        symlinkSync(e.linkname, abs);
        if (this.fs.privileged) lchownSync(abs, e.uid, e.gid);
        this.setXattrs(abs, e);
        lutimesSync(abs, e.mtime, e.mtime);
        break;
      }
      case "link": {
        const tparts = cleanName(e.linkname);
        if (typeof tparts === "string" || tparts.length === 0) throw this.refuse(e.name, `bad hardlink target '${e.linkname}': ${typeof tparts === "string" ? tparts : "the root"}`);
        // The target's parents are resolved in-root; the target itself is not followed, so a
        // hardlink to a symlink links the symlink (as link(2) does), never what it points to.
        const target = this.resolveInRoot(tparts, { followLast: false, create: false, entry: e.name });
        const tst = target ? lstatOrNull(this.abs(target)) : null;
        if (!target || !tst) throw this.refuse(e.name, `hardlink target '${e.linkname}' does not exist in the rootfs`);
        if (tst.isDirectory()) throw this.refuse(e.name, `hardlink target '${e.linkname}' is a directory`);
        if (existing && existing.ino === tst.ino && existing.dev === tst.dev) break;
        removeAny(abs, existing);
        linkSync(this.abs(target), abs);
        break;
      }
      case "character-device":
      case "block-device":
      case "fifo": {
        if (e.type !== "fifo" && !this.fs.privileged) {
          this.fs.stats.skippedDevices++;
          debug("pull", `skip device ${e.name} (${e.devmajor},${e.devminor}): not root`);
          return;
        }
        removeAny(abs, existing);
        const type = e.type === "fifo" ? S_IFIFO : e.type === "character-device" ? S_IFCHR : S_IFBLK;
        mknod(abs, type, 0o600, e.devmajor, e.devminor);
        if (this.fs.privileged) lchownSync(abs, e.uid, e.gid);
        chmodSync(abs, e.mode & 0o7777);
        this.setXattrs(abs, e);
        utimesSync(abs, e.mtime, e.mtime);
        break;
      }
      default:
        this.fs.stats.skippedOther++;
        debug("pull", `skip ${e.name}: unsupported entry type ${e.rawType}`);
        return;
    }
    this.markWritten(rel);
  }

  private async writeFile(abs: string, e: TarEntry): Promise<void> {
    // O_EXCL|O_NOFOLLOW: we just removed whatever was there; if something reappeared, fail.
    const fd = openSync(abs, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    try {
      let written = 0;
      for await (const chunk of e.body) {
        let off = 0;
        while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off);
        written += chunk.byteLength;
      }
      if (written !== e.size) throw this.refuse(e.name, `truncated: ${written} of ${e.size} bytes`);
      // chown before chmod (chown clears setuid/setgid) and before xattrs (it clears
      // security.capability); times last.
      if (this.fs.privileged) fchownSync(fd, e.uid, e.gid);
      fchmodSync(fd, e.mode & 0o7777);
      this.setXattrs(abs, e);
      futimesSync(fd, e.mtime, e.mtime);
    } finally {
      closeSync(fd);
    }
  }

  private setXattrs(abs: string, e: TarEntry): void {
    for (const [key, value] of e.xattrs) {
      try {
        lsetxattr(abs, key, value);
      } catch (err) {
        const code = err instanceof SyscallError ? err.code : "";
        if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "EACCES") {
          this.fs.stats.skippedXattrs++;
          debug("pull", `xattr ${key} on ${e.name} not set: ${code}`);
        } else throw err;
      }
    }
  }

  /** `.wh.NAME` deletes NAME from lower layers; `.wh..wh..opq` empties its directory of them. */
  private whiteout(e: TarEntry, parts: string[], base: string): void {
    const parentParts = parts.slice(0, -1);
    if (base === OPAQUE) {
      const dir = this.resolveInRoot(parentParts, { followLast: true, create: false, entry: e.name, dir: true });
      if (!dir) return;
      const st = lstatOrNull(this.abs(dir));
      if (!st?.isDirectory()) return;
      this.opaque(dir);
      this.markWritten(dir);
      debug("pull", `opaque ${dir.join("/") || "/"}`);
      return;
    }
    if (base.startsWith(WHITEOUT + WHITEOUT)) return; // other aufs metadata (.wh..wh.plnk, ...)
    const victim = base.slice(WHITEOUT.length);
    if (victim === "" || victim === "." || victim === "..") throw this.refuse(e.name, "invalid whiteout name");
    const dir = this.resolveInRoot(parentParts, { followLast: true, create: false, entry: e.name, dir: true });
    if (!dir) return; // the parent does not exist (or is a dead link): nothing to hide
    const rel = [...dir, victim];
    if (this.written.has(rel.join("/"))) return; // whiteouts never hide this layer's own files
    const abs = this.abs(rel);
    const st = lstatOrNull(abs);
    if (st) {
      removeAny(abs, st);
      debug("pull", `whiteout ${rel.join("/")}`);
    }
  }

  // Remove everything under `dir` that this layer did not write; descend into what it did.
  private opaque(dir: string[]): void {
    const abs = this.abs(dir);
    for (const name of readdirSync(abs)) {
      const rel = [...dir, name];
      const key = rel.join("/");
      const child = join(abs, name);
      if (!this.written.has(key)) {
        removeAny(child);
        continue;
      }
      if (lstatOrNull(child)?.isDirectory()) this.opaque(rel);
    }
  }
}
