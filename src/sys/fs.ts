// Synchronous file operations on raw system calls (libc.ts), for `gcr run` and the commands
// around it. Why not node:fs: it costs more to load, and more per call, than the system
// calls themselves, and `gcr run` makes about fifty of them before its container starts
// (README, "Start time"). The names follow node:fs where the meaning is the same; errors
// are SyscallError ("mkdir /run/gcr: EACCES (Permission denied)"), whose .code is the errno
// name, as node's is. Paths are used as given: relative ones resolve against the cwd.
import { SyscallError } from "../errors.ts";
import { check, close, cstr, sys, SYS, EINTR, writeAll } from "./libc.ts";

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_REMOVEDIR = 0x200;

export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400, TRUNC: 0o1000,
  APPEND: 0o2000, NONBLOCK: 0o4000, DIRECTORY: 0o200000, NOFOLLOW: 0o400000, CLOEXEC: 0o2000000,
} as const;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** What gcr reads of struct stat (x86_64 layout), with node's predicate names. */
export class Stat {
  constructor(
    readonly dev: number,
    readonly ino: number,
    readonly mode: number,
    readonly nlink: number,
    readonly uid: number,
    readonly gid: number,
    readonly size: number,
    readonly mtimeMs: number,
  ) {}
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR;
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === S_IFREG;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === S_IFLNK;
  }
}

const statBuf = new Uint32Array(36); // sizeof(struct stat) == 144
// A 64-bit field as a number: exact below 2^53 (inode numbers, sizes and times all are).
const u64 = (i: number) => statBuf[i]! + statBuf[i + 1]! * 0x1_0000_0000;
const i64 = (i: number) => statBuf[i]! + (statBuf[i + 1]! | 0) * 0x1_0000_0000;

function statAt(path: string, flags: number): Stat | number {
  for (;;) {
    const rc = sys(SYS.newfstatat, AT_FDCWD, cstr(path), statBuf, flags);
    if (rc === -EINTR) continue;
    if (rc < 0) return rc;
    // st_dev @0, st_ino @8, st_nlink @16, st_mode @24, st_uid @28, st_gid @32, st_size @48,
    // st_mtime @88, st_mtime_nsec @96 (byte offsets; indexes below are in 32-bit words).
    return new Stat(u64(0), u64(2), statBuf[6]!, u64(4), statBuf[7]!, statBuf[8]!, u64(12), i64(22) * 1000 + Math.floor(statBuf[24]! / 1e6));
  }
}

/** stat(2): follows symlinks. */
export function stat(path: string): Stat {
  const s = statAt(path, 0);
  if (typeof s === "number") throw new SyscallError("stat", -s, path);
  return s;
}

/** lstat(2): a symlink is described, not followed. */
export function lstat(path: string): Stat {
  const s = statAt(path, AT_SYMLINK_NOFOLLOW);
  if (typeof s === "number") throw new SyscallError("lstat", -s, path);
  return s;
}

/** stat() or undefined when the path (or a directory on the way) does not exist. */
export function statOrUndefined(path: string): Stat | undefined {
  const s = statAt(path, 0);
  return typeof s === "number" ? undefined : s;
}

/** lstat() or undefined when the path does not exist. */
export function lstatOrUndefined(path: string): Stat | undefined {
  const s = statAt(path, AT_SYMLINK_NOFOLLOW);
  return typeof s === "number" ? undefined : s;
}

/** Whether the path exists, following symlinks (node's existsSync). */
export function exists(path: string): boolean {
  return typeof statAt(path, 0) !== "number";
}

export const R_OK = 4;
export const W_OK = 2;

/** access(2) with the real ids: throws when `mode` is not granted. */
export function access(path: string, mode: number): void {
  check(SYS.faccessat, "access", path, AT_FDCWD, cstr(path), mode, 0);
}

/** open(2): a close-on-exec descriptor. */
export function open(path: string, flags: number, mode = 0o666): number {
  return check(SYS.openat, "open", path, AT_FDCWD, cstr(path), flags | O.CLOEXEC, mode);
}

export { close };

/** read(2) into buf; 0 at end of file. */
export function read(fd: number, buf: Uint8Array, path?: string): number {
  return buf.length === 0 ? 0 : check(SYS.read, "read", path, fd, buf, buf.length);
}

/** pread(2): up to buf.length bytes at `offset`; 0 at end of file. */
export function pread(fd: number, buf: Uint8Array, offset: number, path?: string): number {
  return buf.length === 0 ? 0 : check(SYS.pread64, "pread", path, fd, buf, buf.length, offset);
}

/** Write all of data to fd. */
export function write(fd: number, data: Uint8Array | string, path?: string): void {
  writeAll(fd, typeof data === "string" ? encoder.encode(data) : data, path);
}

/** A whole file's bytes. */
export function readFile(path: string): Uint8Array {
  const fd = open(path, O.RDONLY);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (let size = 4096; ; size = Math.min(size * 2, 1 << 20)) {
      const buf = new Uint8Array(size);
      const n = read(fd, buf, path);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    if (chunks.length === 1) return chunks[0]!;
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  } finally {
    close(fd);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A whole file as UTF-8 text. */
export function readText(path: string): string {
  return decoder.decode(readFile(path));
}

/** A text file's contents, or undefined when it cannot be read (missing, no permission). */
export function readTextOrUndefined(path: string): string | undefined {
  try {
    return readText(path);
  } catch (e) {
    if (e instanceof SyscallError) return undefined;
    throw e;
  }
}

/**
 * Write a whole file. flag "w" creates or truncates, "wx" fails if it exists, "a" appends.
 * `mode` applies when the file is created (less the umask), as in node.
 */
export function writeFile(path: string, data: Uint8Array | string, opts: { mode?: number; flag?: "w" | "wx" | "a" } = {}): void {
  const flag = opts.flag ?? "w";
  const flags = O.WRONLY | O.CREAT | (flag === "a" ? O.APPEND : O.TRUNC) | (flag === "wx" ? O.EXCL : 0);
  const fd = open(path, flags, opts.mode ?? 0o666);
  try {
    write(fd, data, path);
  } finally {
    close(fd);
  }
}

/** mkdir(2); EEXIST is an error. */
export function mkdir(path: string, mode = 0o777): void {
  check(SYS.mkdirat, "mkdir", path, AT_FDCWD, cstr(path), mode);
}

/** mkdir -p: creates the missing directories of `path` with `mode`; an existing directory is fine. */
export function mkdirp(path: string, mode = 0o777): void {
  const rc = sys(SYS.mkdirat, AT_FDCWD, cstr(path), mode);
  if (rc === 0) return;
  if (rc === -17 /* EEXIST */) {
    if (!statOrUndefined(path)?.isDirectory()) throw new SyscallError("mkdir", 20 /* ENOTDIR */, path);
    return;
  }
  if (rc !== -2 /* ENOENT */) throw new SyscallError("mkdir", -rc, path);
  const parent = path.replace(/\/+[^/]*\/*$/, "");
  if (parent === "" || parent === path) throw new SyscallError("mkdir", 2, path);
  mkdirp(parent, mode);
  const again = sys(SYS.mkdirat, AT_FDCWD, cstr(path), mode);
  if (again < 0 && !(again === -17 && statOrUndefined(path)?.isDirectory())) throw new SyscallError("mkdir", -again, path);
}

export function rename(from: string, to: string): void {
  check(SYS.renameat, "rename", `${from} -> ${to}`, AT_FDCWD, cstr(from), AT_FDCWD, cstr(to));
}

export function unlink(path: string): void {
  check(SYS.unlinkat, "unlink", path, AT_FDCWD, cstr(path), 0);
}

/** unlink() where a missing file is not an error (rm -f). */
export function unlinkIfExists(path: string): void {
  const rc = sys(SYS.unlinkat, AT_FDCWD, cstr(path), 0);
  if (rc < 0 && rc !== -2) throw new SyscallError("unlink", -rc, path);
}

export function rmdir(path: string): void {
  check(SYS.unlinkat, "rmdir", path, AT_FDCWD, cstr(path), AT_REMOVEDIR);
}

/** link(2): a new name for an existing file; never follows a final symlink. */
export function link(existing: string, newPath: string): void {
  check(SYS.linkat, "link", `${existing} -> ${newPath}`, AT_FDCWD, cstr(existing), AT_FDCWD, cstr(newPath), 0);
}

export function symlink(target: string, path: string): void {
  check(SYS.symlinkat, "symlink", path, cstr(target), AT_FDCWD, cstr(path));
}

const linkBuf = new Uint8Array(4096);

export function readlink(path: string): string {
  const n = check(SYS.readlinkat, "readlink", path, AT_FDCWD, cstr(path), linkBuf, linkBuf.length);
  return decoder.decode(linkBuf.subarray(0, n));
}

export function chmod(path: string, mode: number): void {
  check(SYS.fchmodat, "chmod", path, AT_FDCWD, cstr(path), mode, 0);
}

/** chown(2), following symlinks. */
export function chown(path: string, uid: number, gid: number): void {
  check(SYS.fchownat, "chown", path, AT_FDCWD, cstr(path), uid, gid, 0);
}


const DT_DIR = 4;
const direntBuf = new Uint8Array(32768);

/** The names in a directory (no "." or ".."), with whether each is a directory (d_type). */
function entries(fd: number, path: string): { name: string; dir: boolean | undefined }[] {
  const out: { name: string; dir: boolean | undefined }[] = [];
  const view = new DataView(direntBuf.buffer);
  for (;;) {
    const n = check(SYS.getdents64, "getdents64", path, fd, direntBuf, direntBuf.length);
    if (n === 0) return out;
    for (let at = 0; at < n; ) {
      const reclen = view.getUint16(at + 16, true);
      const type = direntBuf[at + 18]!;
      let end = at + 19;
      while (direntBuf[end] !== 0) end++;
      const name = decoder.decode(direntBuf.subarray(at + 19, end));
      if (name !== "." && name !== "..") out.push({ name, dir: type === 0 ? undefined : type === DT_DIR });
      at += reclen;
    }
  }
}

/** readdir(3): the names in a directory, unsorted, without "." and "..". */
export function readdir(path: string): string[] {
  const fd = open(path, O.RDONLY | O.DIRECTORY);
  try {
    return entries(fd, path).map((e) => e.name);
  } finally {
    close(fd);
  }
}

/**
 * rm -rf that never follows symlinks and also removes directories the owner cannot enter or
 * write: overlayfs leaves its workdir/work as mode 000, and an image may ship such directories
 * too. A missing path is not an error.
 */
export function removeTree(path: string, isDir?: boolean): void {
  if (isDir !== true) {
    const rc = sys(SYS.unlinkat, AT_FDCWD, cstr(path), 0);
    if (rc === 0 || rc === -ENOENT) return;
    // Linux says EISDIR for a directory (POSIX allows EPERM, which also means "immutable").
    if (rc !== -EISDIR && rc !== -EPERM) throw new SyscallError("unlink", -rc, path);
  }
  emptyDir(path);
  const rc = sys(SYS.unlinkat, AT_FDCWD, cstr(path), AT_REMOVEDIR);
  if (rc < 0 && rc !== -ENOENT) throw new SyscallError("rmdir", -rc, path);
}

const ENOENT = 2;
const EPERM = 1;
const EACCES = 13;
const ENOTDIR = 20;
const EISDIR = 21;

function emptyDir(path: string): void {
  const openDir = () => sys(SYS.openat, AT_FDCWD, cstr(path), O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC, 0);
  let fd = openDir();
  if (fd === -EACCES) {
    chmod(path, 0o700);
    fd = openDir();
  }
  if (fd === -ENOENT) return;
  // Not a directory: the unlink before failed with EPERM for a reason of its own.
  if (fd === -ENOTDIR) throw new SyscallError("unlink", EPERM, path);
  if (fd < 0) throw new SyscallError("open", -fd, path);
  let list;
  try {
    list = entries(fd, path);
  } finally {
    close(fd);
  }
  let writable = false;
  for (const e of list) {
    for (;;) {
      try {
        removeTree(`${path}/${e.name}`, e.dir);
        break;
      } catch (err) {
        // A directory we may not write: make it ours to empty, once.
        if (writable || !(err instanceof SyscallError) || err.code !== "EACCES") throw err;
        chmod(path, 0o700);
        writable = true;
      }
    }
  }
}
