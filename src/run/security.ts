// Security policy as data: capability sets and the default seccomp filter. Pure; tested
// without root. The mechanism (prctl, capset, seccomp) is in src/sys/child.c.

/** Linux capability numbers (include/uapi/linux/capability.h). */
export const CAPS = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
  "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
  "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
  "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
  "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
  "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
] as const;

/** docker's default set (moby oci/caps/defaults.go): CapEff 00000000a80425fb. */
const DEFAULT_CAPS = [
  "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
  "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
];

function capNumber(name: string): number {
  const n = name.toUpperCase().replace(/^CAP_/, "");
  const i = (CAPS as readonly string[]).indexOf(n);
  if (i < 0) throw new Error(`unknown capability '${name}'`);
  return i;
}

/** The capability mask after docker's --cap-add / --cap-drop ("ALL" allowed in both). */
export function capabilityMask(add: string[], drop: string[]): bigint {
  const all = (1n << BigInt(CAPS.length)) - 1n;
  let mask = DEFAULT_CAPS.reduce((m, c) => m | (1n << BigInt(capNumber(c))), 0n);
  for (const d of drop) mask = d.toUpperCase() === "ALL" ? 0n : mask & ~(1n << BigInt(capNumber(d)));
  for (const a of add) mask = a.toUpperCase() === "ALL" ? all : mask | (1n << BigInt(capNumber(a)));
  return mask;
}

/** The capabilities of `mask` that gcr itself can pass on: those in its bounding set (a
 * container can never hold more; e.g. --cap-add ALL on a host whose bounding set lacks
 * CAP_SYS_RESOURCE). `inBounding` is prctl(PR_CAPBSET_READ) in gcr, a table in tests. */
export function withinBoundingSet(mask: bigint, inBounding: (cap: number) => boolean): bigint {
  let out = 0n;
  for (let cap = 0; cap < CAPS.length; cap++) if (mask & (1n << BigInt(cap)) && inBounding(cap)) out |= 1n << BigInt(cap);
  return out;
}

export function capNames(mask: bigint): string[] {
  return CAPS.filter((_, i) => mask & (1n << BigInt(i)));
}

// ---- seccomp -------------------------------------------------------------------------

/** x86_64 syscall numbers that docker's default profile refuses to an unprivileged container. */
export const BLOCKED_SYSCALLS: Record<string, number> = {
  acct: 163, add_key: 248, bpf: 321, clock_adjtime: 305, clock_settime: 227, create_module: 174,
  delete_module: 176, finit_module: 313, fsconfig: 431, fsmount: 432, fsopen: 430, fspick: 433,
  get_kernel_syms: 177, init_module: 175, io_uring_enter: 426, io_uring_register: 427,
  io_uring_setup: 425, ioperm: 173, iopl: 172, kcmp: 312, kexec_file_load: 320, kexec_load: 246,
  keyctl: 250, lookup_dcookie: 212, mount: 165, mount_setattr: 442, move_mount: 429,
  name_to_handle_at: 303, nfsservctl: 180, open_by_handle_at: 304, open_tree: 428,
  perf_event_open: 298, pivot_root: 155, process_vm_readv: 310, process_vm_writev: 311,
  query_module: 178, quotactl: 179, reboot: 169, request_key: 249, setns: 308,
  settimeofday: 164, swapoff: 168, swapon: 167, syslog: 103, sysfs: 139, _sysctl: 156,
  umount2: 166, unshare: 272, uselib: 134, userfaultfd: 323, ustat: 136,
};
const SYS_CLONE = 56;
const SYS_CLONE3 = 435;
/** clone() may not create namespaces (CLONE_NEW*, incl. CLONE_NEWTIME 0x80). */
const CLONE_NS_MASK = 0x7e020080;

const AUDIT_ARCH_X86_64 = 0xc000003e;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const RET_ALLOW = 0x7fff0000;
const EPERM = 1;
const ENOSYS = 38;

// Classic BPF opcodes.
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;

type Insn = { code: number; k: number; jt?: string; jf?: string; label?: string };

/** Assemble instructions whose jumps name labels into struct sock_filter bytes. */
function assemble(prog: Insn[]): Uint8Array {
  const at = new Map<string, number>();
  prog.forEach((p, i) => p.label && at.set(p.label, i));
  const out = new DataView(new ArrayBuffer(prog.length * 8));
  prog.forEach((p, i) => {
    const rel = (l?: string): number => {
      if (!l) return 0;
      const d = at.get(l)! - i - 1;
      if (!(d >= 0 && d < 256)) throw new Error(`seccomp jump out of range: ${l}`);
      return d;
    };
    out.setUint16(i * 8, p.code, true);
    out.setUint8(i * 8 + 2, rel(p.jt));
    out.setUint8(i * 8 + 3, rel(p.jf));
    out.setUint32(i * 8 + 4, p.k >>> 0, true);
  });
  return new Uint8Array(out.buffer);
}

/** The default filter: refuse foreign architectures and the x32 ABI, answer EPERM to the
 * blocked syscalls and to clone() with namespace flags, ENOSYS to clone3 (so libc falls back
 * to clone, whose flags a classic BPF filter can inspect), and allow everything else. */
export function defaultSeccompFilter(): Uint8Array {
  const prog: Insn[] = [
    { code: LD_W_ABS, k: 4 }, // seccomp_data.arch
    { code: JEQ_K, k: AUDIT_ARCH_X86_64, jt: "native", jf: "kill" },
    { code: RET_K, k: RET_KILL_PROCESS, label: "kill" },
    { code: LD_W_ABS, k: 0, label: "native" }, // seccomp_data.nr
    { code: JGE_K, k: 0x40000000, jt: "deny" }, // x32 syscalls
    { code: JEQ_K, k: SYS_CLONE3, jt: "enosys" },
    ...Object.values(BLOCKED_SYSCALLS).map((nr): Insn => ({ code: JEQ_K, k: nr, jt: "deny" })),
    { code: JEQ_K, k: SYS_CLONE, jf: "allow" },
    { code: LD_W_ABS, k: 16 }, // low 32 bits of args[0]: clone flags
    { code: JSET_K, k: CLONE_NS_MASK, jt: "deny", jf: "allow" },
    { code: RET_K, k: RET_ALLOW, label: "allow" },
    { code: RET_K, k: RET_ERRNO | EPERM, label: "deny" },
    { code: RET_K, k: RET_ERRNO | ENOSYS, label: "enosys" },
  ];
  return assemble(prog);
}
