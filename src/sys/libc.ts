// The FFI boundary: the only place (with child.ts) that touches bun:ffi. Every wrapper takes
// JS values, marshals them, and on failure reads errno at once and throws SyscallError
// naming the call. Callers never see pointers or errno.
import { dlopen, ptr, read, type Pointer } from "bun:ffi";
import { SyscallError } from "../errors.ts";

const symbols = {
  __errno_location: { args: [], returns: "ptr" },
  socketpair: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i64" },
  waitpid: { args: ["i32", "ptr", "i32"], returns: "i32" },
  kill: { args: ["i32", "i32"], returns: "i32" },
  ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
  flock: { args: ["i32", "i32"], returns: "i32" },
  // For the layer extractor (fsops.ts).
  mknod: { args: ["cstring", "u32", "u64"], returns: "i32" },
  lsetxattr: { args: ["cstring", "cstring", "ptr", "u64", "i32"], returns: "i32" },
  // For rtnetlink (netlink.ts).
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i64" },
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
  setns: { args: ["i32", "i32"], returns: "i32" },
} as const;

type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let lib: Lib | undefined;

/** The one libc handle of gcr, opened on first use. fsops.ts and netlink.ts call through it. */
export function libc(): Lib {
  lib ??= dlopen("libc.so.6", symbols).symbols;
  return lib;
}

/** errno of the last failed call: read it at once, before any other native call. */
export function errno(): number {
  return read.i32(libc().__errno_location() as Pointer, 0);
}

function check(rc: number | bigint, syscall: string, path?: string): number {
  const n = Number(rc);
  if (n < 0) throw new SyscallError(syscall, errno(), path);
  return n;
}

export const AF_UNIX = 1;
export const SOCK_SEQPACKET = 5;
export const SOCK_CLOEXEC = 0o2000000;

/** A connected socket pair, both ends close-on-exec. */
export function socketpair(type = SOCK_SEQPACKET): [number, number] {
  const fds = new Int32Array(2);
  check(libc().socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, ptr(fds)), "socketpair");
  return [fds[0]!, fds[1]!];
}

export function close(fd: number): void {
  check(libc().close(fd), "close");
}

export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    const n = Number(libc().write(fd, ptr(data, off), data.length - off));
    if (n < 0) {
      const e = errno();
      if (e === 4) continue; // EINTR
      throw new SyscallError("write", e);
    }
    off += n;
  }
}

export type WaitStatus = { exited: true; code: number } | { exited: false; signal: number };

const WNOHANG = 1;
const ECHILD = 10;
const statusBuf = new Int32Array(1);

/** Non-blocking wait for one child: undefined while it runs. */
export function waitpidNoHang(pid: number): WaitStatus | undefined {
  const rc = libc().waitpid(pid, ptr(statusBuf), WNOHANG);
  if (rc === 0) return undefined;
  if (rc < 0) {
    const e = errno();
    if (e === ECHILD) return { exited: true, code: 0 };
    throw new SyscallError("waitpid", e, String(pid));
  }
  const s = statusBuf[0]!;
  if ((s & 0x7f) === 0) return { exited: true, code: (s >> 8) & 0xff };
  return { exited: false, signal: s & 0x7f };
}

/** kill(2); a process that is already gone is not an error. */
export function kill(pid: number, signal: number): boolean {
  if (libc().kill(pid, signal) === 0) return true;
  const e = errno();
  if (e === 3) return false; // ESRCH
  throw new SyscallError("kill", e, String(pid));
}

const TIOCSWINSZ = 0x5414;

export function setWindowSize(fd: number, rows: number, cols: number): void {
  const ws = new Uint16Array([rows, cols, 0, 0]);
  check(libc().ioctl(fd, TIOCSWINSZ, ptr(ws)), "ioctl TIOCSWINSZ");
}

export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** flock(2). Returns false when LOCK_NB was given and the lock is held elsewhere. */
export function flock(fd: number, op: number): boolean {
  if (libc().flock(fd, op) === 0) return true;
  const e = errno();
  if (e === 11 && op & LOCK_NB) return false; // EWOULDBLOCK
  throw new SyscallError("flock", e);
}


