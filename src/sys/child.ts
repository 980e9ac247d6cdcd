// Compile child.c with bun:ffi's TinyCC, encode a setup program for it, clone the container
// process, and speak the sync protocol (drawn at the top of child.c) from the parent side.
import { cc, dlopen, ptr, type Pointer } from "bun:ffi";
import { GcrError, SyscallError } from "../errors.ts";
import { debug } from "../log.ts";
import { socketpair, sys, SYS, writeAll } from "./libc.ts";
import { close, exists, lstat, mkdirp, readdir, rename, unlink, unlinkIfExists, writeFile } from "./fs.ts";
import { join } from "../path.ts";

const MSG_DONTWAIT = 0x40;

export const CLONE = {
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

/** One step of the container's setup, executed in order by child.c. Pure data. */
export type Op =
  | { op: "mount"; src: string | null; dst: string; fstype: string | null; flags: number; data?: string }
  | { op: "mkdir"; path: string; mode: number }
  | { op: "mkfile"; path: string; mode: number }
  | { op: "mknod"; path: string; mode: number; major: number; minor: number }
  | { op: "write"; path: string; data: string }
  | { op: "go" }
  | { op: "symlink"; target: string; path: string }
  | { op: "pivot"; root: string }
  | { op: "chdir"; path: string }
  | { op: "hostname"; name: string }
  | { op: "loopback" }
  | { op: "unshare"; flags: number }
  | { op: "setgroups"; gids: number[] }
  | { op: "setid"; uid: number; gid: number }
  | { op: "bounding"; keep: bigint }
  | { op: "capset"; effective: bigint; inheritable: bigint }
  | { op: "capambient" }
  | { op: "nnp" }
  | { op: "seccomp"; filter: Uint8Array }
  | { op: "stdinNull" }
  | { op: "setsid" }
  | { op: "tty"; rows: number; cols: number; uid: number; gid: number }
  | { op: "closefds" }
  | { op: "init" }
  | { op: "readonly"; path: string; recursive: boolean }
  | { op: "umask"; mask: number }
  | { op: "setns"; fd: number; nstype: number }
  | { op: "moveMount"; path: string }
  | { op: "exec"; candidates: string[]; argv: string[]; env: string[] };

// Must match the OP_* numbers in child.c.
const CODE: Record<Op["op"], number> = {
  mount: 1, mkdir: 2, mkfile: 3, symlink: 4, pivot: 5, chdir: 6, hostname: 7, loopback: 8,
  unshare: 9, setgroups: 10, setid: 11, bounding: 12, capset: 13, nnp: 14, seccomp: 15,
  stdinNull: 16, setsid: 17, tty: 18, closefds: 19, exec: 20, init: 21,
  readonly: 23, umask: 24, capambient: 25, setns: 26, moveMount: 27, mknod: 28, write: 29, go: 30,
};

const MS_NAMES: [number, string][] = [
  [1, "MS_RDONLY"], [2, "MS_NOSUID"], [4, "MS_NODEV"], [8, "MS_NOEXEC"], [32, "MS_REMOUNT"],
  [4096, "MS_BIND"], [8192, "MS_MOVE"], [16384, "MS_REC"], [1 << 18, "MS_PRIVATE"],
  [1 << 19, "MS_SLAVE"], [1 << 20, "MS_SHARED"], [1 << 21, "MS_RELATIME"], [1 << 24, "MS_STRICTATIME"],
];

export function mountFlagNames(flags: number): string {
  const names = MS_NAMES.filter(([bit]) => flags & bit).map(([, n]) => n);
  return names.join("|") || "0";
}

/** The syscall an op stands for and the path it acts on: used for errors and --debug. */
export function describeOp(o: Op): { syscall: string; path?: string; detail?: string } {
  switch (o.op) {
    case "mount":
      return { syscall: "mount", path: o.dst, detail: [o.fstype ?? o.src, mountFlagNames(o.flags), o.data].filter(Boolean).join(" ") };
    case "mkdir": case "mkfile": return { syscall: o.op === "mkdir" ? "mkdir" : "open O_CREAT", path: o.path };
    case "mknod": return { syscall: "mknod", path: o.path, detail: `${o.major}:${o.minor}` };
    case "write": return { syscall: "write", path: o.path, detail: JSON.stringify(o.data) };
    case "go": return { syscall: "recvmsg (wait for gcr's go)" };
    case "symlink": return { syscall: "symlink", path: o.path, detail: `-> ${o.target}` };
    case "pivot": return { syscall: "pivot_root", path: o.root };
    case "chdir": return { syscall: "chdir", path: o.path };
    case "hostname": return { syscall: "sethostname", detail: o.name };
    case "loopback": return { syscall: "ioctl SIOCSIFFLAGS", path: "lo" };
    case "unshare": return { syscall: "unshare", detail: `0x${o.flags.toString(16)}` };
    case "setgroups": return { syscall: "setgroups", detail: o.gids.join(",") };
    case "setid": return { syscall: "setresuid/setresgid", detail: `${o.uid}:${o.gid}` };
    case "bounding": return { syscall: "prctl PR_CAPBSET_DROP" };
    case "capset": return { syscall: "capset", detail: `0x${o.effective.toString(16)}` };
    case "capambient": return { syscall: "prctl PR_CAP_AMBIENT_CLEAR_ALL" };
    case "nnp": return { syscall: "prctl PR_SET_NO_NEW_PRIVS" };
    case "seccomp": return { syscall: "seccomp SECCOMP_SET_MODE_FILTER", detail: `${o.filter.length / 8} instructions` };
    case "stdinNull": return { syscall: "open", path: "/dev/null" };
    case "setsid": return { syscall: "setsid" };
    case "tty": return { syscall: "open /dev/ptmx + TIOCGPTPEER", detail: `${o.cols}x${o.rows}` };
    case "closefds": return { syscall: "close_range CLOSE_RANGE_CLOEXEC" };
    case "init": return { syscall: "fork (init)" };
    case "readonly": return { syscall: "mount_setattr MOUNT_ATTR_RDONLY", path: o.path };
    case "umask": return { syscall: "umask" };
    case "setns": return { syscall: "setns", detail: namespaceNames(o.nstype) };
    case "moveMount": return { syscall: "move_mount (idmapped image)", path: o.path };
    case "exec": return { syscall: "execve", path: o.argv[0] };
  }
}

interface Native {
  gcr_spawn: (prog: Pointer, flags: number, sock: number, peer: number, mem: Pointer, memsize: number) => number;
  gcr_recv: (sock: number, out: Pointer) => number;
  gcr_send_go: (sock: number, fd: number) => number;
  gcr_idmap_tree: (path: string, usernsFd: number) => number;
}
let native: Native | undefined;

const NATIVE_SYMBOLS = {
  gcr_spawn: { args: ["ptr", "i32", "i32", "i32", "ptr", "i64"], returns: "i32" },
  gcr_recv: { args: ["i32", "ptr"], returns: "i32" },
  gcr_send_go: { args: ["i32", "i32"], returns: "i32" },
  gcr_idmap_tree: { args: ["cstring", "i32"], returns: "i32" },
} as const;

/** Set by scripts/build.ts: child.c compiled by gcc. The id (a hash of both files) names
 * them on disk; the files themselves (base64) are read only when they must be written, so
 * a start never decodes them. */
declare const GCR_NATIVE_ID: string | undefined;
declare const GCR_NATIVE_SO: string;
declare const GCR_NATIVE_MONITOR: string;
const nativeId = typeof GCR_NATIVE_ID === "string" ? GCR_NATIVE_ID : undefined;

/** gcr's private directory for native code, checked before anything is loaded from it. */
function nativeDir(privateDir: string): string {
  const dir = join(privateDir, "native");
  mkdirp(dir, 0o700);
  assertPrivate(privateDir);
  assertPrivate(dir);
  return dir;
}

/** Write an embedded file once (atomically) and return its path. */
function materialize(dir: string, name: string, b64: () => string, mode: number): string {
  const file = join(dir, name);
  if (!exists(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFile(tmp, Buffer.from(b64(), "base64"), { mode, flag: "w" });
    rename(tmp, file);
    // Files of older gcr builds go (a process still using one keeps its mapping). Only
    // finished files of the same kind: another gcr may be writing its ".tmp" right now.
    const same = new RegExp(`^${name.replace(/[0-9a-f]{16}/, "[0-9a-f]{16}").replace(".", "\\.")}$`);
    for (const old of readdir(dir)) if (old !== name && same.test(old)) unlinkIfExists(join(dir, old));
  }
  return file;
}

/**
 * The native child, loaded once per process. A released build carries it precompiled
 * (scripts/build.ts): it is written once to gcr's private state dir and dlopen'ed. Otherwise
 * (`bun run src/main.ts`, tests of the sources) TinyCC compiles child.c from a file there.
 * Either way the file lives in a directory only this user can write, never in /tmp, so no
 * other user can swap it between write and load.
 */
function compile(privateDir: string): Native {
  if (native) return native;
  const t0 = performance.now();
  const dir = nativeDir(privateDir);
  if (nativeId) {
    const file = materialize(dir, `child-${nativeId}.so`, () => GCR_NATIVE_SO, 0o600);
    native = dlopen(file, NATIVE_SYMBOLS).symbols as unknown as Native;
    debug("run", `loaded the native child helper (${file}) in ${(performance.now() - t0).toFixed(1)} ms`);
    return native;
  }
  const file = join(dir, `child-${process.pid}-${Date.now()}.c`);
  // Required here, not imported: the C source is needed only without an embedded build.
  const { source } = require("./child-source.ts") as typeof import("./child-source.ts");
  writeFile(file, source, { mode: 0o600, flag: "wx" });
  try {
    native = cc({ source: file, symbols: NATIVE_SYMBOLS }).symbols as unknown as Native;
  } finally {
    unlink(file);
  }
  debug("run", `compiled the native child helper with TinyCC in ${(performance.now() - t0).toFixed(1)} ms`);
  return native;
}

/** The path of gcr-monitor (the parent of detached containers), written on first use. */
function monitorPath(privateDir: string): string {
  if (!nativeId) throw new GcrError("this gcr was built without a C compiler: detached containers need gcr-monitor", { hint: "rebuild with gcc installed (npm run build)" });
  return materialize(nativeDir(privateDir), `gcr-monitor-${nativeId}`, () => GCR_NATIVE_MONITOR, 0o700);
}

/** gcr loads code from this directory: it must be ours and closed to everyone else. */
function assertPrivate(dir: string): void {
  const st = lstat(dir);
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0)
    throw new GcrError(`${dir} must be a directory owned by uid ${uid} and writable only by it; refusing to load code from it`);
}

/**
 * Encode ops into one relocatable blob (see relocate() in child.c): 8-long records, then the
 * strings and arrays they use. Pointer fields hold offsets from the start of the blob.
 */
export function encode(ops: Op[]): Uint8Array {
  // Without a go, the child would run before gcr has made its maps, cgroups and network.
  if (ops.filter((o) => o.op === "go").length !== 1) throw new GcrError("internal: a setup program needs exactly one go op");
  const w = new BlobWriter((ops.length + 1) * 64);
  const strs = (a: string[]) => w.longs([...a.map((x) => w.str(x)), 0]);
  ops.forEach((o, i) => {
    const r = i * 64;
    const set = (field: number, v: number | bigint) => w.long(r + field * 8, v);
    set(0, CODE[o.op]);
    switch (o.op) {
      case "mount": set(1, w.str(o.src)); set(2, w.str(o.dst)); set(3, w.str(o.fstype)); set(4, o.flags); set(5, w.str(o.data)); break;
      case "mkdir": case "mkfile": set(1, w.str(o.path)); set(2, o.mode); break;
      case "write": set(1, w.str(o.path)); set(2, w.str(o.data)); set(3, encoder.encode(o.data).length); break;
      case "mknod": set(1, w.str(o.path)); set(2, o.mode); set(3, (o.major << 8) | o.minor); break;
      case "symlink": set(1, w.str(o.target)); set(2, w.str(o.path)); break;
      case "pivot": set(1, w.str(o.root)); break;
      case "chdir": set(1, w.str(o.path)); break;
      case "hostname": set(1, w.str(o.name)); set(2, encoder.encode(o.name).length); break;
      case "unshare": set(1, o.flags); break;
      case "setgroups": set(1, o.gids.length); set(2, w.bytes(new Uint8Array(new Uint32Array(o.gids.length ? o.gids : [0]).buffer))); break;
      case "setid": set(1, o.uid); set(2, o.gid); break;
      case "bounding": set(1, o.keep); break;
      case "capset": set(1, o.effective); set(2, o.inheritable); break;
      // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
      case "seccomp": set(1, w.longs([o.filter.length / 8, w.bytes(o.filter)])); break;
      case "tty": set(1, o.rows); set(2, o.cols); set(3, o.uid); set(4, o.gid); break;
      case "readonly": set(1, w.str(o.path)); set(2, o.recursive ? 1 : 0); break;
      case "umask": set(1, o.mask); break;
      case "setns": set(1, o.fd); set(2, o.nstype); break;
      case "moveMount": set(1, w.str(o.path)); break;
      case "exec": set(1, strs(o.candidates)); set(2, strs(o.argv)); set(3, strs(o.env)); break;
    }
  });
  return w.done();
}

const encoder = new TextEncoder();

/** The blob encode() builds: a fixed head (the op records), then 8-aligned data after it. */
class BlobWriter {
  private buf: Uint8Array;
  private view: DataView;
  private size: number;
  constructor(head: number) {
    this.buf = new Uint8Array(Math.max(8192, head * 4));
    this.view = new DataView(this.buf.buffer);
    this.size = head;
  }
  private reserve(n: number): number {
    if (this.size + n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.size + n));
      bigger.set(this.buf);
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    return this.size;
  }
  /** A 64-bit field at `at`; numbers stay out of BigInt where they fit in 32 bits. */
  long(at: number, v: number | bigint): void {
    if (typeof v === "number" && v >= 0 && v <= 0xffffffff) {
      this.view.setUint32(at, v, true);
      this.view.setUint32(at + 4, 0, true);
    } else this.view.setBigInt64(at, BigInt.asIntN(64, BigInt(v)), true);
  }
  /** Append raw bytes; returns their offset. */
  bytes(b: Uint8Array): number {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
    this.size = (at + b.length + 7) & ~7;
    return at;
  }
  /** Append a NUL-terminated string; returns its offset, 0 (NULL) for null. */
  str(s: string | null | undefined): number {
    if (s === null || s === undefined) return 0;
    if (s.includes("\0")) throw new GcrError(`NUL byte in ${JSON.stringify(s)}`);
    const at = this.reserve(s.length * 3 + 1);
    const { written } = encoder.encodeInto(s, this.buf.subarray(at));
    this.buf[at + written] = 0;
    this.size = (at + written + 1 + 7) & ~7;
    return at;
  }
  /** Append an array of 64-bit values; returns its offset. */
  longs(values: (number | bigint)[]): number {
    const at = this.reserve(values.length * 8);
    values.forEach((v, i) => this.long(at + i * 8, v));
    this.size = at + values.length * 8;
    return at;
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.size);
  }
}

/** The outcome of the child's setup, as the parent learns it. */
export type SetupResult =
  | { ok: true; ttyMaster?: number }
  | { ok: false; op: number; errno: number; ttyMaster?: number };

/** The child's stack and arguments (child.c: gcr_spawn). */
const CHILD_MEM = 64 * 1024;

export class Child {
  private constructor(
    readonly pid: number,
    private sock: number,
    /** The child runs in gcr's memory (CLONE_VM): its program, strings and stack must stay
     * alive until it has exec'd or died. Dropped by exited(). */
    private memory: unknown[] | undefined,
  ) {}

  /** Clone the container process. It waits, blocked, until release(). */
  static spawn(ops: Op[], cloneFlags: number, privateDir: string): Child {
    const lib = compile(privateDir);
    const prog = encode(ops);
    const mem = new Uint8Array(CHILD_MEM);
    const keep = [prog, mem];
    const [parentEnd, childEnd] = socketpair();
    let pid: number;
    try {
      pid = lib.gcr_spawn(ptr(prog), cloneFlags, childEnd, parentEnd, ptr(mem), CHILD_MEM);
    } finally {
      close(childEnd);
    }
    if (pid < 0) {
      close(parentEnd);
      throw new SyscallError("clone", -pid, undefined, namespaceNames(cloneFlags));
    }
    return new Child(pid, parentEnd, keep);
  }

  /**
   * Start a detached container: gcr-monitor (see the end of child.c) becomes its parent, in a
   * new session, so it outlives this gcr. The monitor inherits the log file as stdout and
   * stderr and the container's lock (held as long as the monitor lives), clones the container
   * from the program sent here, and answers with its pid. release() then works as usual.
   */
  static viaMonitor(ops: Op[], cloneFlags: number, privateDir: string, exitFile: string, logFd: number, lockFd: number): { child: Child; monitorPid: number } {
    const lib = compile(privateDir);
    const monitor = monitorPath(privateDir);
    const blob = encode(ops);
    const [parentEnd, childEnd] = socketpair();
    let proc;
    try {
      proc = Bun.spawn([monitor, exitFile], { stdio: ["ignore", logFd, logFd, childEnd, lockFd], env: {} });
    } finally {
      close(childEnd);
    }
    proc.unref();
    try {
      writeAll(parentEnd, new Uint8Array(new BigInt64Array([BigInt(cloneFlags), BigInt(blob.length)]).buffer));
      writeAll(parentEnd, blob);
      const out = new Int32Array(4);
      const n = lib.gcr_recv(parentEnd, ptr(out));
      if (n < 0) throw new SyscallError("recvmsg", -n, "gcr-monitor socket");
      if (n === 0 || String.fromCharCode(out[0]!) !== "P") throw new GcrError("gcr-monitor exited before starting the container");
      if (out[1]! < 0) throw new SyscallError("clone", out[2]!, undefined, namespaceNames(cloneFlags));
      return { child: new Child(out[1]!, parentEnd, undefined), monitorPid: proc.pid };
    } catch (e) {
      close(parentEnd);
      throw e;
    }
  }

  /** The child has been reaped: its memory may go. */
  exited(): void {
    if (this.memory) this.memory.length = 0;
    this.memory = undefined;
  }

  /** Let the child run its setup, then wait for execve (EOF), a pty master, or a failure. */
  release(passFd = -1): SetupResult {
    const lib = native!;
    // "G", with the idmapped image tree attached when there is one (OP_MOVE_MOUNT). EPIPE:
    // the child failed (and said why) in the part of its setup it runs before the go.
    const sent = lib.gcr_send_go(this.sock, passFd);
    if (sent < 0 && sent !== -32 /* EPIPE */ && sent !== -104 /* ECONNRESET */) throw new SyscallError("sendmsg", -sent, "sync socket");
    const out = new Int32Array(4);
    let ttyMaster: number | undefined;
    try {
      for (;;) {
        const n = lib.gcr_recv(this.sock, ptr(out));
        if (n < 0) throw new SyscallError("recvmsg", -n, "sync socket");
        if (n === 0) return ttyMaster === undefined ? { ok: true } : { ok: true, ttyMaster };
        const kind = String.fromCharCode(out[0]!);
        if (kind === "T" && out[3]! >= 0) ttyMaster = out[3]!;
        else if (kind === "E") return { ok: false, op: out[1]!, errno: out[2]!, ttyMaster };
      }
    } finally {
      close(this.sock);
    }
  }

  /**
   * The failure the child reported before the go, if it did: the setup it runs before the go
   * (its mounts, as root) overlaps gcr's own work, which may then fail only because the
   * child is gone. Never blocks.
   */
  earlyFailure(): { op: number; errno: number } | undefined {
    const msg = new Int32Array(3);
    const n = sys(SYS.recvfrom, this.sock, msg, 12, MSG_DONTWAIT, 0, 0);
    return n === 12 && msg[0] === "E".charCodeAt(0) ? { op: msg[1]!, errno: msg[2]! } : undefined;
  }

  /** Abandon a child that was never released (setup of the parent side failed). */
  abandon(): void {
    close(this.sock); // the child reads EOF and exits 125
  }
}

/** An idmapped copy of the mount tree at `path`, shifted into the user namespace `usernsFd`
 * (root with --userns=private): its fd, to pass to the child with release(). */
export function idmapTree(path: string, usernsFd: number, privateDir: string): number {
  const fd = compile(privateDir).gcr_idmap_tree(path, usernsFd);
  if (fd < 0) throw new SyscallError("open_tree/mount_setattr MOUNT_ATTR_IDMAP", -fd, path);
  return fd;
}

export function namespaceNames(flags: number): string {
  return Object.entries(CLONE)
    .filter(([, bit]) => flags & bit)
    .map(([name]) => name.replace("NEW", "").toLowerCase())
    .join(",");
}
