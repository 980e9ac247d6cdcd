// The FFI boundary: the only place (with child.ts) that touches bun:ffi.
//
// gcr binds exactly two symbols of libc: syscall(2) and __errno_location. Every host-side
// system call goes through syscall() with its number from SYS below, so one binding serves
// them all: Bun compiles a trampoline per bound symbol at dlopen time, and node:fs, the
// alternative for files, costs more to load than all of `gcr run`'s own work (README,
// "Start time"). Every wrapper takes JS values, marshals them, and on failure reads errno at
// once and throws SyscallError naming the call. Callers never see pointers or errno.
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";
import { SyscallError } from "../errors.ts";

/** x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl). */
export const SYS = {
  read: 0, write: 1, close: 3, poll: 7, ioctl: 16, pread64: 17, socket: 41, sendto: 44, recvfrom: 45,
  socketpair: 53, wait4: 61, kill: 62, flock: 73, prctl: 157, lsetxattr: 189,
  getdents64: 217, openat: 257, mkdirat: 258, mknodat: 259, fchownat: 260, newfstatat: 262,
  unlinkat: 263, renameat: 264, linkat: 265, symlinkat: 266, readlinkat: 267, fchmodat: 268,
  faccessat: 269, setns: 308, getrandom: 318, pidfd_open: 434,
} as const;

const symbols = {
  // The kernel's calling convention for all six argument registers; unused ones are 0.
  syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], returns: FFIType.i64_fast },
  __errno_location: { args: [], returns: "ptr" },
} as const;

type Lib = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let lib: Lib | undefined;

function libc(): Lib {
  lib ??= dlopen("libc.so.6", symbols).symbols;
  return lib;
}

/** errno of the last failed call: read it at once, before any other native call. */
function errno(): number {
  return read.i32(libc().__errno_location() as Pointer, 0);
}

/** An argument for sys(): a number, or a buffer passed by address (kept alive by the caller). */
type Arg = number | bigint | NodeJS.TypedArray | null;

const addr = (a: Arg): number | bigint => (a === null ? 0 : typeof a === "object" ? ptr(a) : a);

/** syscall(nr, ...): the result, or -errno. Never throws; the wrappers decide what fails. */
export function sys(nr: number, a: Arg = 0, b: Arg = 0, c: Arg = 0, d: Arg = 0, e: Arg = 0, f: Arg = 0): number {
  const rc = Number(libc().syscall(nr, addr(a), addr(b), addr(c), addr(d), addr(e), addr(f)));
  return rc === -1 ? -errno() : rc;
}

export const EINTR = 4;

/** sys(), retrying EINTR, throwing SyscallError(name, errno, path) on failure. */
export function check(nr: number, name: string, path: string | undefined, a: Arg = 0, b: Arg = 0, c: Arg = 0, d: Arg = 0, e: Arg = 0, f: Arg = 0): number {
  for (;;) {
    const rc = sys(nr, a, b, c, d, e, f);
    if (rc >= 0) return rc;
    if (rc !== -EINTR) throw new SyscallError(name, -rc, path);
  }
}

const encoder = new TextEncoder();
/** A NUL-terminated copy of a string, for a `const char *` argument. */
export function cstr(s: string): Uint8Array {
  return encoder.encode(`${s}\0`);
}

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
export const SOCK_CLOEXEC = 0o2000000;

/** A connected socket pair, both ends close-on-exec. */
export function socketpair(type = SOCK_SEQPACKET): [number, number] {
  const fds = new Int32Array(2);
  check(SYS.socketpair, "socketpair", undefined, AF_UNIX, type | SOCK_CLOEXEC, 0, fds);
  return [fds[0]!, fds[1]!];
}

export function close(fd: number): void {
  // Never retried: after EINTR the descriptor is already gone on Linux.
  const rc = sys(SYS.close, fd);
  if (rc < 0 && rc !== -EINTR) throw new SyscallError("close", -rc);
}

/** Write all of data, blocking: a non-blocking fd (a terminal Bun made O_NONBLOCK) is waited
 * on with poll(2) until it takes more. `path` names the file in errors. */
export function writeAll(fd: number, data: Uint8Array, path?: string): void {
  // struct pollfd { int fd; short events; short revents; }, waiting for POLLOUT.
  const pfd = new Uint8Array(8);
  new DataView(pfd.buffer).setInt32(0, fd, true);
  new DataView(pfd.buffer).setInt16(4, 4 /* POLLOUT */, true);
  let off = 0;
  while (off < data.length) {
    const n = sys(SYS.write, fd, data.subarray(off), data.length - off);
    if (n >= 0) off += n;
    else if (n === -11 /* EAGAIN */) check(SYS.poll, "poll", path, pfd, 1, -1);
    else if (n !== -EINTR) throw new SyscallError("write", -n, path);
  }
}

export type WaitStatus = { exited: true; code: number } | { exited: false; signal: number };

const WNOHANG = 1;
const ECHILD = 10;
const statusBuf = new Int32Array(1);

/** Non-blocking wait for one child: undefined while it runs. */
export function waitpidNoHang(pid: number): WaitStatus | undefined {
  const rc = sys(SYS.wait4, pid, statusBuf, WNOHANG, 0);
  if (rc === 0) return undefined;
  if (rc < 0) {
    if (rc === -ECHILD) return { exited: true, code: 0 };
    if (rc === -EINTR) return undefined;
    throw new SyscallError("waitpid", -rc, String(pid));
  }
  const s = statusBuf[0]!;
  if ((s & 0x7f) === 0) return { exited: true, code: (s >> 8) & 0xff };
  return { exited: false, signal: s & 0x7f };
}

/** kill(2); a process that is already gone is not an error. */
export function kill(pid: number, signal: number): boolean {
  const rc = sys(SYS.kill, pid, signal);
  if (rc === 0) return true;
  if (rc === -3) return false; // ESRCH
  throw new SyscallError("kill", -rc, String(pid));
}

const TIOCSWINSZ = 0x5414;
const TIOCGWINSZ = 0x5413;

/** The size of the terminal on fd, or undefined when fd is not a terminal. */
export function windowSize(fd: number): { rows: number; cols: number } | undefined {
  const ws = new Uint16Array(4);
  if (sys(SYS.ioctl, fd, TIOCGWINSZ, ws) < 0) return undefined;
  return { rows: ws[0]!, cols: ws[1]! };
}

export function setWindowSize(fd: number, rows: number, cols: number): void {
  check(SYS.ioctl, "ioctl TIOCSWINSZ", undefined, fd, TIOCSWINSZ, new Uint16Array([rows, cols, 0, 0]));
}

export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/** flock(2). Returns false when LOCK_NB was given and the lock is held elsewhere. */
export function flock(fd: number, op: number): boolean {
  for (;;) {
    const rc = sys(SYS.flock, fd, op);
    if (rc === 0) return true;
    if (rc === -11 && op & LOCK_NB) return false; // EWOULDBLOCK
    if (rc !== -EINTR) throw new SyscallError("flock", -rc);
  }
}

/** setns(2) into the namespace behind fd. */
export function setns(fd: number, nstype: number, path?: string, detail?: string): void {
  const rc = sys(SYS.setns, fd, nstype);
  if (rc < 0) throw new SyscallError("setns", -rc, path, detail);
}

/** Random bytes from the kernel (getrandom(2)): cheaper at start than WebCrypto's first use. */
export function randomBytes(n: number): Uint8Array {
  const buf = new Uint8Array(n);
  for (let got = 0; got < n; ) got += check(SYS.getrandom, "getrandom", undefined, buf.subarray(got), n - got, 0);
  return buf;
}

const PR_CAPBSET_READ = 23;

/** Whether capability `cap` is in this process's bounding set (prctl(PR_CAPBSET_READ)). */
export function inBoundingSet(cap: number): boolean {
  return sys(SYS.prctl, PR_CAPBSET_READ, cap) === 1;
}

/**
 * Block up to `ms` milliseconds for child `pid` to exit (poll(2) on its pidfd). True once it
 * has (it is then a zombie for waitpidNoHang to reap); false on timeout, on a signal, or on a
 * kernel without pidfd_open (Linux < 5.3).
 */
export function waitExit(pid: number, ms: number): boolean {
  const pidfd = sys(SYS.pidfd_open, pid, 0);
  if (pidfd < 0) return false;
  try {
    const pfd = new Uint8Array(8); // struct pollfd, waiting for POLLIN
    new DataView(pfd.buffer).setInt32(0, pidfd, true);
    new DataView(pfd.buffer).setInt16(4, 1 /* POLLIN */, true);
    return sys(SYS.poll, pfd, 1, ms) === 1;
  } finally {
    close(pidfd);
  }
}
