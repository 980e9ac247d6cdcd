// Policy: where a container's cgroup goes on this machine's layout, and the ContainerResource
// that `gcr run` attaches (create, limit, join), releases (kill, remove) and asks about
// OOM kills. Placement:
//   root       <hierarchy root>/gcr/<id> in every hierarchy gcr uses (v1 controllers, and the
//              v2 hierarchy too, also in hybrid mode: it gives cgroup.kill and a clean "0::/");
//   rootless   <delegated subtree>/gcr/<id>, cgroup v2 only: the topmost ancestor of gcr's own
//              cgroup that the user may write (systemd delegates user@UID.service). v1 cannot
//              be delegated, so rootless v1/hybrid machines run without a cgroup.
//   --cgroup-parent P: "/P" counts from the hierarchy root, "P" from the default base.
// What was created is recorded in the container's directory before the first mkdir, so
// the next gcr command removes it even if this one is SIGKILLed (sweepStale in container.ts).
import { GcrError } from "../../errors.ts";
import { debug, warn } from "../../log.ts";
import type { WaitStatus } from "../../sys/libc.ts";
import { containersDir, onSweep } from "../container.ts";
import type { CgroupOptions } from "../options.ts";
import type { ContainerResource } from "../resources.ts";
import { fsPath, readLayout, type Controller, type Hierarchy, type Layout } from "./layout.ts";
import { limitWrites, neededControllers } from "./limits.ts";
import { Cgroup, realFs, removeLeaf, type CgroupFs, type Placement } from "./manager.ts";
import { describeLimits, hasLimits, parseLimits, type Limits } from "./options.ts";
import { readdir, readText, stat, writeFile } from "../../sys/fs.ts";
import { basename, dirname, join } from "../../path.ts";

/** A cgroup filesystem to mount read-only inside the container (plan.ts), by in-container path. */
export interface CgroupMount {
  fstype: "cgroup" | "cgroup2";
  /** v1: the hierarchy's controllers as mount data ("cpu,cpuacct"). */
  data: string;
  path: string;
}

const RECORD = "cgroups";
const DEFAULT_PARENT = "gcr";

const parentOf = (p: string) => p.slice(0, p.lastIndexOf("/")) || "/";
const joinPath = (a: string, b: string) => (a === "/" ? `/${b}` : `${a}/${b}`);

/**
 * Rootless: the topmost cgroup, from gcr's own up, whose directory and cgroup.procs this
 * user may write. Moving a process needs write access to the common ancestor's cgroup.procs.
 */
export function delegationRoot(h: Hierarchy, fs: CgroupFs): string | undefined {
  let found: string | undefined;
  for (let p = h.current; ; p = parentOf(p)) {
    const dir = fsPath(h, p);
    if (fs.writable(dir) && fs.writable(`${dir}/cgroup.procs`)) found = p;
    else if (found) break;
    if (p === "/" || p === h.mountRoot) break;
  }
  return found;
}

export type PlaceResult = { placements: Placement[] } | { error: string; hint: string };

/** Pure but for `fs` (rootless writability): the container's directories in each hierarchy. */
export function placeContainer(layout: Layout, limits: Limits, id: string, rootless: boolean, fs: CgroupFs): PlaceResult {
  let hierarchies = layout.hierarchies;
  let top = (_h: Hierarchy): string | undefined => "/";
  if (rootless) {
    hierarchies = hierarchies.filter((h) => h.version === 2);
    const v1 = layout.kind === "v1" || layout.kind === "hybrid";
    const hint = v1
      ? "rootless limits need cgroup v2 (this machine has cgroup v1 controllers, which cannot be delegated to a user): run as root, or boot with systemd.unified_cgroup_hierarchy=1"
      : "run as root, or from a delegated cgroup v2 subtree, e.g. systemd-run --user --scope -p Delegate=yes gcr run ...";
    const h = hierarchies[0];
    const root = h && delegationRoot(h, fs);
    if (!h || root === undefined)
      return { error: `no cgroup is writable by uid ${process.getuid?.()}${h ? ` (own cgroup ${h.current} in ${h.mountpoint})` : " (no cgroup v2 mount)"}`, hint };
    top = () => root;
  }
  const placements: Placement[] = [];
  for (const h of hierarchies) {
    const t = top(h)!;
    const parent = limits.parent ?? DEFAULT_PARENT;
    const base = parent.startsWith("/") ? parent : `${t === "/" ? "" : t}/${parent}`;
    if (!(t === "/" || base === t || base.startsWith(`${t}/`)))
      return { error: `--cgroup-parent ${parent} is outside the cgroup this user may write (${t})`, hint: `use a path under ${t}, or a relative one` };
    // The levels between the top and the container, created if missing.
    const levels: string[] = [];
    for (let p = base; p !== t && p !== "/"; p = parentOf(p)) levels.unshift(p);
    const leaf = joinPath(base, id);
    placements.push({
      hierarchy: h,
      parents: levels.map((p) => fsPath(h, p)),
      enableAt: [t, ...levels].map((p) => fsPath(h, p)),
      leaf: fsPath(h, leaf),
    });
  }
  if (placements.length === 0) return { error: "no cgroup hierarchy is mounted (/proc/self/mountinfo has no cgroup or cgroup2)", hint: "mount cgroup2 on /sys/fs/cgroup" };
  if (!rootless) {
    // Root on a read-only cgroupfs (gcr inside another container): there is nowhere to go.
    const h = placements[0]!.hierarchy;
    if (!fs.writable(fsPath(h, "/"))) return { error: `the cgroup filesystem at ${h.mountpoint} is not writable`, hint: "mount it read-write, or run gcr on the host" };
  }
  return { placements };
}

/** The in-container mounts that show the container's cgroups under /sys/fs/cgroup. */
export function cgroupMounts(layout: Layout, placements: Placement[]): CgroupMount[] {
  return placements.map(({ hierarchy: h }) => {
    if (h.version === 2) return { fstype: "cgroup2", data: "", path: layout.kind === "v2" ? "/sys/fs/cgroup" : `/sys/fs/cgroup/${basename(h.mountpoint)}` };
    return { fstype: "cgroup", data: h.data, path: `/sys/fs/cgroup/${basename(h.mountpoint)}` };
  });
}

function controllerMissing(layout: Layout, placements: Placement[], needed: Map<Controller, string>, rootless: boolean): string | undefined {
  for (const [c, flag] of needed) {
    if (placements.some((p) => p.hierarchy.controllers.includes(c))) continue;
    const bound = layout.byController.get(c);
    if (rootless && bound?.version === 1) return `${flag} needs the ${c} controller, which is bound to cgroup v1 here (${bound.mountpoint}) and cannot be used rootless`;
    const v2 = layout.hierarchies.find((h) => h.version === 2);
    return `${flag} needs the ${c} controller, which this machine does not offer${v2 ? ` (the cgroup v2 root ${v2.mountpoint} enables ${v2.controllers.filter((x) => x !== "cpuacct").join(" ") || "none of cpu cpuset memory pids"})` : ""}`;
  }
  return undefined;
}

export interface CgroupSetup {
  resource?: ContainerResource;
  /** For PlanInput.cgroupMounts. */
  mounts: CgroupMount[];
  /** For PlanInput.cgroupJoin: the files the container process writes to join its v1 cgroups. */
  join: string[];
}

/**
 * Validate the flags and decide the placement, before anything exists. Throws a UsageError
 * for bad values and a GcrError (exit 125) when limits were asked for but cannot be had.
 */
export function prepareCgroup(id: string, opts: CgroupOptions, rootless: boolean, opt: { childJoins?: boolean; fs?: CgroupFs } = {}): CgroupSetup {
  const fs = opt.fs ?? realFs;
  const limits = parseLimits(opts, navigator.hardwareConcurrency);
  const layout = readLayout();
  debug("cgroup", () => `layout ${layout.kind}: ${layout.hierarchies.map((h) => `v${h.version} ${h.mountpoint} [${h.controllers.join(",")}] own ${h.current}`).join("; ") || "none"}`);
  const placed = placeContainer(layout, limits, id, rootless, fs);
  if ("error" in placed) {
    if (hasLimits(limits)) throw new GcrError(`${describeLimits(limits)}: cannot limit resources: ${placed.error}`, { hint: placed.hint });
    // Nothing was asked for: run without a cgroup, silently (docker rootless on v1 does the same).
    debug("cgroup", `running without a cgroup: ${placed.error}`);
    return { mounts: [], join: [] };
  }
  sweepOrphans(placed.placements, fs);
  const needed = neededControllers(limits);
  const missing = controllerMissing(layout, placed.placements, needed, rootless);
  if (missing) throw new GcrError(`cannot limit resources: ${missing}`);
  const writes = limitWrites(limits, (c) => placed.placements.find((p) => p.hierarchy.controllers.includes(c))?.hierarchy.version);
  const cg = new Cgroup(placed.placements, new Set(needed.keys()), fs);
  // A container process without a user namespace joins its v1 cgroups itself (child.c), which
  // is cheaper than being moved (Cgroup.selfJoinFiles); in a user namespace it may not.
  const childJoins = opt.childJoins === true && !rootless;
  const record = join(containersDir(), id, RECORD);

  const resource: ContainerResource = {
    name: "cgroup",
    attach(pid) {
      // Recorded first: a gcr killed between here and release() leaves a trail for the sweep.
      writeFile(record, placed.placements.map((p) => p.leaf).join("\n") + "\n");
      try {
        cg.create();
        for (const w of cg.apply(writes)) if (limits.memorySwapExplicit) warn(w);
        cg.join(pid, childJoins);
      } catch (e) {
        cg.remove();
        throw e instanceof GcrError ? new GcrError("set up the cgroup", { cause: e }) : e;
      }
    },
    release() {
      cg.remove();
    },
    explainExit(status: WaitStatus) {
      const n = cg.oomKills();
      if (n === 0) return undefined;
      const limit = limits.memory !== undefined ? `the memory limit (--memory ${opts.memory} = ${limits.memory} bytes)` : "the memory limit of its parent cgroup";
      const killed = status.exited ? status.code === 137 : status.signal === 9;
      return killed
        ? `container killed: out of memory, it reached ${limit}`
        : `${n} process${n > 1 ? "es" : ""} in the container killed: out of memory, ${limit} reached`;
    },
  };
  return { resource, mounts: cgroupMounts(layout, placed.placements), join: childJoins ? cg.selfJoinFiles() : [] };
}

/**
 * Empty container cgroups whose record is gone too (a test harness removed GCR_RUNROOT after
 * SIGKILLing gcr): no live gcr leaves its container's cgroup empty for more than the
 * milliseconds between mkdir and join, so an empty one older than a minute is an orphan.
 * rmdir of a cgroup that has processes fails (EBUSY), so a live container is never touched.
 * Only the first hierarchy is listed: a container's cgroups are made in placement order and
 * removed in reverse, so one that is gone from the first is gone from all.
 */
export function sweepOrphans(placements: Placement[], fs: CgroupFs = realFs, maxAgeMs = 60_000): void {
  const first = placements[0];
  if (!first) return;
  let names: string[];
  try {
    names = readdir(dirname(first.leaf)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  } catch {
    return;
  }
  for (const n of names) {
    for (const p of placements) {
      const dir = `${dirname(p.leaf)}/${n}`;
      try {
        if (Date.now() - stat(dir).mtimeMs < maxAgeMs || (fs.read(`${dir}/cgroup.procs`) ?? "x").trim() !== "") continue;
        fs.rmdir(dir);
        debug("sweep", `removed orphaned empty cgroup ${dir}`);
      } catch {
        // busy or gone: not ours to worry about
      }
    }
  }
}

/** The sweep of a dead gcr's container: kill and remove the cgroups it recorded. */
export function sweepCgroups(id: string, fs: CgroupFs = realFs): void {
  // Last made, first removed (sweepOrphans relies on the first hierarchy going last).
  for (const leaf of recordedCgroups(id).reverse()) removeLeaf(leaf, fs);
}

/** The cgroup directories recorded for a container (none: it has no cgroup). Only the
 * container's own directories (named after its id) count, whatever the file says. */
export function recordedCgroups(id: string): string[] {
  let text: string;
  try {
    text = readText(join(containersDir(), id, RECORD));
  } catch {
    return [];
  }
  return text.split("\n").filter((leaf) => basename(leaf) === id && leaf.startsWith("/"));
}

onSweep((id) => sweepCgroups(id));
