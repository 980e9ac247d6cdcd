// The two file-system calls node:fs lacks, for layer extraction: mknod (device nodes, fifos)
// and lsetxattr (security.capability & co), as raw system calls through libc.ts.
import { SyscallError } from "../errors.ts";
import { check, cstr, SYS } from "./libc.ts";

/** glibc's makedev(). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** mknod(2): `type` is S_IFIFO, S_IFCHR or S_IFBLK; `perm` the permission bits. */
export function mknod(path: string, type: number, perm: number, major = 0, minor = 0): void {
  check(SYS.mknodat, "mknod", path, -100 /* AT_FDCWD */, cstr(path), (type | (perm & 0o7777)) >>> 0, makedev(major, minor));
}

/** lsetxattr(2): never follows a symlink. */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  const buf = value.byteLength ? value : new Uint8Array(1);
  try {
    check(SYS.lsetxattr, "lsetxattr", path, cstr(path), cstr(name), buf, value.byteLength, 0);
  } catch (e) {
    throw new SyscallError("lsetxattr", (e as SyscallError).errno, path, name);
  }
}
