// Mechanism: create a container's cgroup in every hierarchy it uses, write its limits, move
// its process in, count OOM kills, kill what is left and remove it. Policy (which
// hierarchies, which paths, which values) is decided by resource.ts and limits.ts.
// Every file operation goes through CgroupFs, so unit tests run against a recording fake.
import { GcrError, SyscallError } from "../../errors.ts";
import { debug, warn } from "../../log.ts";
import { kill } from "../../sys/libc.ts";
import type { Controller, Hierarchy } from "./layout.ts";
import { oomKillCounter, parseKeyed, type LimitWrite } from "./limits.ts";
import { W_OK, access, exists, mkdir, readText, rmdir, writeFile } from "../../sys/fs.ts";
import { dirname } from "../../path.ts";

export interface CgroupFs {
  /** mkdir(2); false if it already existed. */
  mkdir(path: string): boolean;
  rmdir(path: string): void;
  write(path: string, value: string): void;
  /** undefined when the file cannot be read (missing, no such controller). */
  read(path: string): string | undefined;
  exists(path: string): boolean;
  writable(path: string): boolean;
}

/** sys/fs's errors already name the call and the path ("rmdir /sys/fs/cgroup/...: EBUSY"). */
export const realFs: CgroupFs = {
  mkdir(path) {
    try {
      mkdir(path, 0o755);
      return true;
    } catch (e) {
      if (e instanceof SyscallError && e.code === "EEXIST") return false;
      throw e;
    }
  },
  rmdir,
  write(path, value) {
    try {
      writeFile(path, value);
    } catch (e) {
      // "write", also when open(2) failed: a cgroup file is written, never created.
      throw e instanceof SyscallError ? new SyscallError("write", e.errno, path) : e;
    }
  },
  read(path) {
    try {
      return readText(path);
    } catch {
      return undefined;
    }
  },
  exists,
  writable(path) {
    try {
      access(path, W_OK);
      return true;
    } catch {
      return false;
    }
  },
};

/** The container's cgroup in one hierarchy. */
export interface Placement {
  hierarchy: Hierarchy;
  /** File paths of the parent levels, top-down, that must exist (created if missing). */
  parents: string[];
  /** File paths of the levels whose cgroup.subtree_control must enable controllers (v2), top-down. */
  enableAt: string[];
  /** The container's own directory. */
  leaf: string;
}

/** The controllers gcr turns on in v2 subtrees (cpuacct and freezer have no v2 controller). */
const V2_ENABLE: Controller[] = ["cpu", "cpuset", "memory", "pids"];

export class Cgroup {
  private made: string[] = [];

  constructor(
    readonly placements: Placement[],
    /** Controllers the user's limits need: failing to enable one of them is an error. */
    private readonly required: Set<Controller>,
    private readonly fs: CgroupFs = realFs,
  ) {}

  /** The leaf of the hierarchy that holds controller c. */
  leafOf(c: Controller): Placement | undefined {
    return this.placements.find((p) => p.hierarchy.controllers.includes(c));
  }

  /** mkdir every level, prepare v1 cpusets and v2 subtree controllers, then the leaf. */
  create(): void {
    for (const p of this.placements) {
      for (const dir of p.parents) {
        if (this.fs.mkdir(dir)) debug("cgroup", `created parent ${dir}`);
        this.inheritCpuset(p, dir);
      }
      if (p.hierarchy.version === 2) this.enableControllers(p);
      if (!this.fs.mkdir(p.leaf)) throw new GcrError(`cgroup ${p.leaf} already exists`);
      this.made.push(p.leaf);
      debug("cgroup", `created ${p.leaf} (cgroup v${p.hierarchy.version}${p.hierarchy.controllers.length ? `: ${p.hierarchy.controllers.join(",")}` : ", no controllers"})`);
      this.inheritCpuset(p, p.leaf);
    }
  }

  /**
   * v1 cpuset starts a new cgroup with no cpus and no memory nodes, and refuses tasks until
   * both are set: copy them from the parent (what cgroup.clone_children=1 would do).
   */
  private inheritCpuset(p: Placement, dir: string): void {
    if (p.hierarchy.version !== 1 || !p.hierarchy.controllers.includes("cpuset")) return;
    for (const f of ["cpuset.cpus", "cpuset.mems"]) {
      if ((this.fs.read(`${dir}/${f}`) ?? "").trim() !== "") continue;
      const parent = (this.fs.read(`${dirname(dir)}/${f}`) ?? "").trim();
      if (parent) this.fs.write(`${dir}/${f}`, parent);
    }
  }

  /**
   * v2 gives a cgroup a controller only if every ancestor enables it in cgroup.subtree_control.
   * Writes "+c" one by one: a controller the kernel refuses (cpu with realtime tasks, EBUSY in
   * a cgroup that holds processes: "no internal processes") fails only if a limit needs it.
   */
  private enableControllers(p: Placement): void {
    const want = V2_ENABLE.filter((c) => p.hierarchy.controllers.includes(c));
    for (const dir of p.enableAt) {
      const offered = (this.fs.read(`${dir}/cgroup.controllers`) ?? "").trim().split(/\s+/);
      const enabled = (this.fs.read(`${dir}/cgroup.subtree_control`) ?? "").trim().split(/\s+/);
      for (const c of want) {
        if (enabled.includes(c)) continue;
        if (!offered.includes(c)) {
          if (this.required.has(c)) throw new GcrError(`the ${c} controller is not available in ${dir} (cgroup.controllers: ${offered.join(" ") || "none"})`);
          continue;
        }
        try {
          this.fs.write(`${dir}/cgroup.subtree_control`, `+${c}`);
          debug("cgroup", `enabled ${c} in ${dir}/cgroup.subtree_control`);
        } catch (e) {
          if (this.required.has(c)) throw new GcrError(`enable the ${c} controller in ${dir}`, { cause: e });
          debug("cgroup", `cannot enable ${c} in ${dir}: ${(e as Error).message}`);
        }
      }
    }
  }

  /** Write the limits, in order, each into the leaf of its controller's hierarchy. */
  apply(writes: LimitWrite[]): string[] {
    const warnings: string[] = [];
    for (const w of writes) {
      const p = this.leafOf(w.controller);
      if (!p) throw new GcrError(`${w.flag} needs the ${w.controller} controller, which is not available`);
      const path = `${p.leaf}/${w.file}`;
      if (w.optional && !this.fs.exists(path)) {
        warnings.push(`${w.flag} is ignored: this kernel has no ${w.file} (swap accounting is off)`);
        continue;
      }
      try {
        this.fs.write(path, w.value);
      } catch (e) {
        throw new GcrError(`set ${w.flag}`, { cause: e });
      }
      debug("cgroup", `${w.flag}: wrote ${w.value} to ${path}`);
    }
    return warnings;
  }

  /** Move the (still waiting) container process into every leaf. */
  /** Move pid into every leaf; `skipV1` when the process joins its v1 leaves itself (selfJoinFiles). */
  join(pid: number, skipV1 = false): void {
    for (const p of this.placements) {
      if (skipV1 && p.hierarchy.version === 1) continue;
      this.fs.write(`${p.leaf}/cgroup.procs`, `${pid}`);
      debug("cgroup", `moved pid ${pid} into ${p.leaf}`);
    }
  }

  /**
   * The v1 `tasks` files a single-threaded process writes "0" to, to join its leaves itself.
   * Moving another process (a pid into cgroup.procs) takes the kernel's global threadgroup
   * rwsem for writing: that waits for an RCU grace period and holds up every fork, exec and
   * exit on the host meanwhile. A thread moving itself does not take it.
   */
  selfJoinFiles(): string[] {
    return this.placements.filter((p) => p.hierarchy.version === 1).map((p) => `${p.leaf}/tasks`);
  }

  /** How many processes the kernel OOM-killed in the container's memory cgroup. */
  oomKills(): number {
    const p = this.leafOf("memory");
    if (!p) return 0;
    const c = oomKillCounter(p.hierarchy.version);
    return parseKeyed(this.fs.read(`${p.leaf}/${c.file}`) ?? "").get(c.key) ?? 0;
  }

  /** Kill whatever is left, remove the leaves (the shared parents stay). Never throws. */
  remove(): void {
    for (const leaf of this.made.reverse()) removeLeaf(leaf, this.fs);
    this.made = [];
  }
}

function pidsIn(leaf: string, fs: CgroupFs): number[] {
  return (fs.read(`${leaf}/cgroup.procs`) ?? "").split("\n").filter(Boolean).map(Number);
}

/**
 * rmdir a container's cgroup; while that says EBUSY, kill what is left in it and try again.
 * After a normal exit the cgroup is already empty (the pid namespace died with its init), so
 * the first rmdir is all it takes. To kill: v2 has cgroup.kill (one write, race-free against
 * forks); v1 freezes the cgroup first when it is a freezer cgroup, so that nothing can fork
 * while we kill, then thaws it so the SIGKILLs are delivered. rmdir says EBUSY until the last
 * process has exited, hence the retries (runc#4040, crun#657).
 */
export function removeLeaf(leaf: string, fs: CgroupFs = realFs, waitMs = 3000): boolean {
  const deadline = performance.now() + waitMs;
  for (let round = 0; ; round++) {
    try {
      fs.rmdir(leaf);
      debug("cgroup", `removed ${leaf}`);
      return true;
    } catch (e) {
      if (e instanceof SyscallError && e.code === "ENOENT") return true;
      if (performance.now() > deadline) {
        warn(`cannot remove cgroup: ${(e as Error).message}`);
        return false;
      }
    }
    if (pidsIn(leaf, fs).length > 0) {
      try {
        if (fs.exists(`${leaf}/cgroup.kill`)) fs.write(`${leaf}/cgroup.kill`, "1");
        else {
          const freezer = fs.exists(`${leaf}/freezer.state`);
          if (freezer) fs.write(`${leaf}/freezer.state`, "FROZEN");
          for (const pid of pidsIn(leaf, fs)) kill(pid, 9);
          if (freezer) fs.write(`${leaf}/freezer.state`, "THAWED");
        }
        if (round === 0) debug("cgroup", `killed the processes left in ${leaf}`);
      } catch (e) {
        debug("cgroup", `kill in ${leaf}: ${(e as Error).message}`);
      }
    }
    Bun.sleepSync(round < 10 ? 5 : 25);
  }
}
