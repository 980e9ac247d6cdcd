// Which cgroup layout this machine has, read at run time from /proc/self/mountinfo and
// /proc/self/cgroup (never from a hard-coded path):
//   v2      one cgroup2 mount holds every controller (current distributions);
import { readTextOrUndefined } from "../../sys/fs.ts";
//   v1      one cgroup mount per controller or group of controllers ("cpu,cpuacct");
//   hybrid  v1 controllers plus a cgroup2 mount, usually with no controllers (systemd's
//           "unified" mode on older systems; this is also what the CI machine has).
// The layout is decided per controller: a controller lives in exactly one hierarchy, and a
// controller bound to v1 is never looked for in v2 even if a cgroup2 mount exists.
// Parsing is pure (tests feed it text); readLayout() does the reading.

/** The controllers gcr uses: limits (cpu, cpuset, memory, pids), accounting and freezing. */
export const CONTROLLERS = ["cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"] as const;
export type Controller = (typeof CONTROLLERS)[number];

export interface CgroupMount {
  mountpoint: string;
  /** The path inside the hierarchy that is mounted there ("/" unless bind-mounted or namespaced). */
  root: string;
  version: 1 | 2;
  /** v1: the mount's controllers and name= option, as mount(2) data ("cpu,cpuacct"). */
  data: string;
  /** v1: the controllers of the mount. v2: filled from cgroup.controllers by the caller. */
  controllers: string[];
}

/** mountinfo escapes spaces, tabs, newlines and backslashes as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

// v1 super options that are not controllers (and must never be passed on, e.g. release_agent).
const V1_NON_CONTROLLER = /^(rw|ro|noprefix|xattr|clone_children|cpuset_v2_mode|release_agent=.*|none)$/;

/** The cgroup and cgroup2 mounts in a mountinfo text (proc(5)). */
export function parseMountinfo(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const [fstype, , superOpts = ""] = line.slice(sep + 3).split(" ");
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    const root = unescape(left[3] ?? "/");
    const mountpoint = unescape(left[4] ?? "");
    if (fstype === "cgroup2") {
      out.push({ mountpoint, root, version: 2, data: "", controllers: [] });
      continue;
    }
    const opts = superOpts.split(",").filter((o) => o && !V1_NON_CONTROLLER.test(o));
    out.push({ mountpoint, root, version: 1, data: opts.join(","), controllers: opts.filter((o) => !o.startsWith("name=")) });
  }
  return out;
}

export interface ProcCgroup {
  /** v1: controller -> path of this process in that hierarchy. */
  v1: Map<string, string>;
  /** The "0::" line: this process's cgroup in the v2 hierarchy. */
  unified?: string;
}

/** /proc/self/cgroup: "4:memory:/x", "1:cpu,cpuacct:/y", "0::/z". */
export function parseProcCgroup(text: string): ProcCgroup {
  const r: ProcCgroup = { v1: new Map() };
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") r.unified = m[3]!;
    else for (const c of m[2]!.split(",")) if (c) r.v1.set(c, m[3]!);
  }
  return r;
}

/** One hierarchy gcr may use: where it is mounted and where this process sits in it. */
export interface Hierarchy {
  version: 1 | 2;
  mountpoint: string;
  /** The mount's root inside the hierarchy. */
  mountRoot: string;
  /** v1 mount data, to mount the same hierarchy inside the container. */
  data: string;
  /** The controllers of this hierarchy that gcr uses (v2: those enabled at its root). */
  controllers: Controller[];
  /** This process's cgroup in the hierarchy (a hierarchy path, not a file path). */
  current: string;
}

export interface Layout {
  kind: "v1" | "v2" | "hybrid" | "none";
  /** v1 hierarchies with at least one controller gcr uses, then the v2 hierarchy if mounted. */
  hierarchies: Hierarchy[];
  /** Which hierarchy holds each controller gcr uses; absent = not available. */
  byController: Map<Controller, Hierarchy>;
}

const isUnder = (path: string, root: string) => root === "/" || path === root || path.startsWith(`${root}/`);

/** The file path of a hierarchy path, through the mount that shows it. */
export function fsPath(h: Pick<Hierarchy, "mountpoint" | "mountRoot">, path: string): string {
  const rel = h.mountRoot === "/" ? path : path.slice(h.mountRoot.length);
  return (h.mountpoint + (rel === "/" ? "" : rel)).replace(/\/+$/, "") || "/";
}

/**
 * Decide the layout. `v2Controllers(mountpoint)` reads the root's cgroup.controllers (the
 * controllers a cgroup2 mount offers); injected so that tests need no cgroupfs.
 */
export function detectLayout(mountinfo: string, procCgroup: string, v2Controllers: (mountpoint: string) => string[]): Layout {
  const mounts = parseMountinfo(mountinfo);
  const self = parseProcCgroup(procCgroup);
  const hierarchies: Hierarchy[] = [];
  const byController = new Map<Controller, Hierarchy>();
  const seen = new Set<string>();
  let anyV1 = false;
  for (const m of mounts) {
    if (m.version !== 1 || m.controllers.length === 0) continue;
    anyV1 = true;
    const current = self.v1.get(m.controllers[0]!);
    // The same hierarchy may be mounted twice; use a mount that shows our own cgroup.
    if (current === undefined || seen.has(m.data) || !isUnder(current, m.root)) continue;
    const used = CONTROLLERS.filter((c) => m.controllers.includes(c));
    if (used.length === 0) continue;
    seen.add(m.data);
    const h: Hierarchy = { version: 1, mountpoint: m.mountpoint, mountRoot: m.root, data: m.data, controllers: used, current };
    hierarchies.push(h);
    for (const c of used) byController.set(c, h);
  }
  const v2mount = self.unified === undefined ? undefined : mounts.find((m) => m.version === 2 && isUnder(self.unified!, m.root));
  if (v2mount) {
    // cpuacct is not a v2 controller: v2 accounts cpu time in every cgroup's cpu.stat.
    const offered = v2Controllers(v2mount.mountpoint);
    const used = CONTROLLERS.filter((c) => !byController.has(c) && (offered.includes(c) || (c === "cpuacct" && offered.includes("cpu"))));
    const h: Hierarchy = { version: 2, mountpoint: v2mount.mountpoint, mountRoot: v2mount.root, data: "", controllers: used, current: self.unified! };
    hierarchies.push(h);
    for (const c of used) byController.set(c, h);
  }
  const kind = anyV1 && v2mount ? "hybrid" : anyV1 ? "v1" : v2mount ? "v2" : "none";
  return { kind, hierarchies, byController };
}

/** The layout of the cgroup hierarchies this process sees. */
export function readLayout(): Layout {
  const read = (path: string) => readTextOrUndefined(path) ?? "";
  return detectLayout(read("/proc/self/mountinfo"), read("/proc/self/cgroup"), (mp) => read(`${mp}/cgroup.controllers`).trim().split(/\s+/).filter(Boolean));
}
