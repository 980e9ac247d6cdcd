// Pure: everything `gcr run` decided (rootfs paths, user, mounts, security) -> the ordered
// list of ops that src/sys/child.c executes inside the new namespaces, plus the clone flags.
// The order matters and is explained inline; plan.test.ts checks it without root.
import { CLONE, type Op } from "../sys/child.ts";
import type { IdMapping } from "./idmap.ts";
import { isMapped } from "./idmap.ts";
import { DEV_SYMLINKS, DEVICES, MASKED_PATHS, MS, READONLY_PATHS } from "./mounts.ts";

/** st_mode type bits of a character device, for mknod. */
const S_IFCHR = 0o020000;

export interface PlanInput {
  /** Host paths of the overlay. */
  lower: string;
  upper: string;
  work: string;
  merged: string;
  overlayData: string;
  idmap?: IdMapping;
  /** root with --userns=private: setresuid(0) inside the new user namespace first. */
  becomeRoot?: boolean;
  /** root with --userns=private: where to attach the idmapped image tree gcr passes with the
   * go (its owners shifted into the user namespace); then the overlay's lowerdir. */
  idmappedLower?: string;
  /** A rootless single-id user namespace denies setgroups(2) (user_namespaces(7)). */
  setgroupsDenied: boolean;
  hostname: string;
  volumes: { source: string; target: string; readonly: boolean }[];
  tmpfs: { target: string; data: string; noexec: boolean; readonly: boolean }[];
  readOnly: boolean;
  /** A new network namespace (loopback only) unless --network host. */
  newNetwork: boolean;
  /** Enter a new cgroup namespace after the parent placed the process in its cgroup. */
  cgroupNamespace: boolean;
  /** Cgroup files the child writes "0" to, joining those cgroups itself (v1 `tasks`; see
   * cgroups/resource.ts for why). */
  cgroupJoin?: string[];
  /** Cgroup filesystems to mount read-only under /sys/fs/cgroup (cgroups/resource.ts). */
  cgroupMounts?: { fstype: "cgroup" | "cgroup2"; data: string; path: string }[];
  workdir: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  capabilities: bigint;
  seccomp?: Uint8Array;
  noNewPrivileges: boolean;
  tty?: { rows: number; cols: number };
  interactive: boolean;
  init: boolean;
  argv: string[];
  env: string[];
  /** Whether a kernel path such as /proc/timer_stats exists (same kernel inside and out). */
  exists: (path: string) => boolean;
  /** Whether a kernel path is a directory. */
  isDir: (path: string) => boolean;
}

export interface Plan {
  cloneFlags: number;
  ops: Op[];
  /** The image to pass to the child as an idmapped tree (for the moveMount op). */
  idmapSource?: string;
}

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Where execve will look for argv[0], in order, as execvp does with the container's PATH. */
export function execCandidates(cmd: string, env: string[]): string[] {
  if (cmd.includes("/")) return [cmd];
  const path = env.findLast((e) => e.startsWith("PATH="))?.slice(5) ?? DEFAULT_PATH;
  return path.split(":").map((d) => `${d === "" ? "." : d.replace(/\/$/, "")}/${cmd}`);
}

export function buildPlan(p: PlanInput): Plan {
  const m = p.merged;
  const at = (inRoot: string) => m + (inRoot === "/" ? "" : inRoot);
  const ops: Op[] = [];
  let cloneFlags = CLONE.NEWNS | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWPID;
  if (p.newNetwork) cloneFlags |= CLONE.NEWNET;
  if (p.idmap) cloneFlags |= CLONE.NEWUSER;

  // 0. In a user namespace nothing can happen before gcr has written the id maps: wait for its
  // go first. root with --userns=private then becomes the namespace's root (host uid/gid of
  // the map) right away, so the overlay and every file gcr prepared are used with the
  // container's identity.
  if (p.idmap) ops.push({ op: "go" });
  if (p.idmap && p.becomeRoot) ops.push({ op: "setid", uid: 0, gid: 0 });
  // 1. Nothing mounted from here on may propagate back to the host.
  ops.push({ op: "mount", src: null, dst: "/", fstype: null, flags: MS.REC | MS.PRIVATE });
  // 2. The copy-on-write root, over the idmapped image where there is one. nodev: device
  // nodes shipped in the image cannot be opened.
  if (p.idmappedLower) ops.push({ op: "moveMount", path: p.idmappedLower });
  ops.push({ op: "mount", src: "overlay", dst: m, fstype: "overlay", flags: MS.NODEV, data: p.overlayData });
  // 3. A fresh /proc for the new pid namespace.
  ops.push({ op: "mount", src: "proc", dst: at("/proc"), fstype: "proc", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC });
  // 4. A minimal /dev on tmpfs: a few host devices, a private devpts, shm and mqueue.
  ops.push({ op: "mount", src: "tmpfs", dst: at("/dev"), fstype: "tmpfs", flags: MS.NOSUID | MS.STRICTATIME, data: "mode=755,size=65536k" });
  for (const d of DEVICES) {
    const path = at(`/dev/${d.name}`);
    if (p.idmap) {
      ops.push({ op: "mkfile", path, mode: 0o666 });
      ops.push({ op: "mount", src: `/dev/${d.name}`, dst: path, fstype: null, flags: MS.BIND });
    } else ops.push({ op: "mknod", path, mode: S_IFCHR | 0o666, major: d.major, minor: d.minor });
  }
  ops.push({ op: "mkdir", path: at("/dev/pts"), mode: 0o755 });
  // gid=5 (tty) only when that group exists in the user namespace, or the mount fails.
  const ptsGid = isMapped(p.idmap?.gids, 5) ? ",gid=5" : "";
  ops.push({ op: "mount", src: "devpts", dst: at("/dev/pts"), fstype: "devpts", flags: MS.NOSUID | MS.NOEXEC, data: `newinstance,ptmxmode=0666,mode=0620${ptsGid}` });
  ops.push({ op: "mkdir", path: at("/dev/shm"), mode: 0o1777 });
  ops.push({ op: "mount", src: "shm", dst: at("/dev/shm"), fstype: "tmpfs", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "mode=1777,size=65536k" });
  ops.push({ op: "mkdir", path: at("/dev/mqueue"), mode: 0o755 });
  ops.push({ op: "mount", src: "mqueue", dst: at("/dev/mqueue"), fstype: "mqueue", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC });
  for (const [target, path] of DEV_SYMLINKS) ops.push({ op: "symlink", target, path: at(path) });
  // 5. /sys read-only. A user namespace may mount sysfs only with a network namespace of its
  // own; otherwise bind the host's, read-only.
  if (p.newNetwork || !p.idmap) {
    ops.push({ op: "mount", src: "sysfs", dst: at("/sys"), fstype: "sysfs", flags: MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC });
  } else {
    ops.push({ op: "mount", src: "/sys", dst: at("/sys"), fstype: null, flags: MS.BIND | MS.REC });
    ops.push({ op: "readonly", path: at("/sys"), recursive: true });
  }
  // 6. The user's volumes and tmpfs (/etc/hostname, hosts, resolv.conf are in the upper layer).
  for (const v of p.volumes) {
    ops.push({ op: "mount", src: v.source, dst: at(v.target), fstype: null, flags: MS.BIND | MS.REC });
    if (v.readonly) ops.push({ op: "readonly", path: at(v.target), recursive: true });
  }
  for (const t of p.tmpfs)
    ops.push({ op: "mount", src: "tmpfs", dst: at(t.target), fstype: "tmpfs", flags: MS.NOSUID | MS.NODEV | (t.noexec ? MS.NOEXEC : 0) | (t.readonly ? MS.RDONLY : 0), data: t.data });
  // 7. Masked and read-only kernel paths, after /proc and /sys exist.
  for (const path of MASKED_PATHS) {
    if (!p.exists(path)) continue;
    if (p.isDir(path)) ops.push({ op: "mount", src: "tmpfs", dst: at(path), fstype: "tmpfs", flags: MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "size=0" });
    else ops.push({ op: "mount", src: "/dev/null", dst: at(path), fstype: null, flags: MS.BIND });
  }
  for (const path of READONLY_PATHS) {
    if (!p.exists(path)) continue;
    ops.push({ op: "mount", src: at(path), dst: at(path), fstype: null, flags: MS.BIND | MS.REC });
    ops.push({ op: "readonly", path: at(path), recursive: true });
  }
  // 8. --read-only: the root mount itself (not the mounts above it).
  if (p.readOnly) ops.push({ op: "readonly", path: m, recursive: false });
  // 9. Without a user namespace the go comes here: the mounts above ran while gcr made the
  // cgroups and the network. Then into the container's cgroups, while the host's
  // /sys/fs/cgroup is still in view.
  if (!p.idmap) ops.push({ op: "go" });
  for (const path of p.cgroupJoin ?? []) ops.push({ op: "write", path, data: "0" });
  // 10. Enter the new root; the old one is detached, so no host path is reachable.
  ops.push({ op: "pivot", root: m });
  ops.push({ op: "hostname", name: p.hostname });
  if (p.newNetwork) ops.push({ op: "loopback" });
  // The cgroup namespace is made now, after the parent moved us into our cgroup, so that the
  // container sees its own cgroup as "/".
  if (p.cgroupNamespace) ops.push({ op: "unshare", flags: CLONE.NEWCGROUP });
  // /sys/fs/cgroup as docker shows it: mounted inside the new cgroup namespace, so each
  // hierarchy's root is the container's own cgroup, and read-only (XM04: nothing inside may
  // change its limits or reach release_agent). v1 needs a tmpfs to hold one dir per hierarchy.
  if (p.cgroupMounts?.length) {
    const top = "/sys/fs/cgroup";
    const nested = p.cgroupMounts.some((c) => c.path !== top);
    if (nested) ops.push({ op: "mount", src: "tmpfs", dst: top, fstype: "tmpfs", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "mode=755" });
    for (const c of p.cgroupMounts) {
      if (c.path !== top) ops.push({ op: "mkdir", path: c.path, mode: 0o755 });
      ops.push({ op: "mount", src: c.fstype, dst: c.path, fstype: c.fstype, flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: c.data || undefined });
      ops.push({ op: "readonly", path: c.path, recursive: false });
    }
    if (nested) ops.push({ op: "readonly", path: top, recursive: false });
  }
  ops.push({ op: "chdir", path: p.workdir });
  // 11. Standard streams. Always a new session: without a controlling terminal the command
  // cannot push keystrokes into the caller's terminal with TIOCSTI.
  if (p.tty) ops.push({ op: "tty", rows: p.tty.rows, cols: p.tty.cols, uid: p.uid, gid: p.gid });
  else {
    if (!p.interactive) ops.push({ op: "stdinNull" });
    ops.push({ op: "setsid" });
  }
  ops.push({ op: "umask", mask: 0o022 });
  // 12. Credentials and privileges, in this order: the bounding set needs CAP_SETPCAP, which
  // setresuid() to a non-root uid takes away; capset comes after the uid change.
  if (!p.setgroupsDenied) ops.push({ op: "setgroups", gids: p.additionalGids });
  ops.push({ op: "bounding", keep: p.capabilities });
  ops.push({ op: "setid", uid: p.uid, gid: p.gid });
  ops.push({ op: "capset", effective: p.uid === 0 ? p.capabilities : 0n, inheritable: 0n });
  ops.push({ op: "capambient" });
  if (p.noNewPrivileges) ops.push({ op: "nnp" });
  // 13. No fd of gcr survives execve (CVE-2024-21626 class): everything above 2 is CLOEXEC.
  ops.push({ op: "closefds" });
  if (p.init) ops.push({ op: "init" });
  // 14. seccomp last: it forbids some of the calls above.
  if (p.seccomp) ops.push({ op: "seccomp", filter: p.seccomp });
  ops.push({ op: "exec", candidates: execCandidates(p.argv[0]!, p.env), argv: p.argv, env: p.env });
  return { cloneFlags, ops, idmapSource: p.idmappedLower ? p.lower : undefined };
}
