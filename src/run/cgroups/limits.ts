// The one place that maps a `gcr run` limit to the files of each cgroup version. Pure: the
// manager (manager.ts) writes what this returns, in this order, into the container's cgroup.
//
//   flag            controller  cgroup v1                                   cgroup v2
//   --memory        memory      memory.limit_in_bytes                       memory.max
//   --memory-swap   memory      memory.memsw.limit_in_bytes (mem + swap)    memory.swap.max (swap only)
//   --cpus          cpu         cpu.cfs_period_us + cpu.cfs_quota_us        cpu.max "QUOTA PERIOD"
//   --cpu-shares    cpu         cpu.shares                                  cpu.weight (converted)
//   --cpuset-cpus   cpuset      cpuset.cpus                                 cpuset.cpus
//   --pids-limit    pids        pids.max                                    pids.max
//   (OOM kills)     memory      memory.oom_control "oom_kill N"             memory.events "oom_kill N"
import type { Controller } from "./layout.ts";
import type { Limits } from "./options.ts";

export interface LimitWrite {
  controller: Controller;
  file: string;
  value: string;
  /** The flag it comes from, for messages. */
  flag: string;
  /**
   * A file the kernel may lack on a given machine (memsw needs swap accounting): when
   * missing, warn and go on instead of failing.
   */
  optional?: boolean;
}

type Version = 1 | 2;

/** cpu.shares (2..262144, default 1024) -> cpu.weight (1..10000, default 100), as runc converts. */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** The writes for `l`; `version(c)` says which cgroup version holds controller c. */
export function limitWrites(l: Limits, version: (c: Controller) => Version | undefined): LimitWrite[] {
  const out: LimitWrite[] = [];
  const add = (controller: Controller, flag: string, v1: [string, string][], v2: [string, string][], optional = false) => {
    // An unavailable controller is reported by the caller (missingControllers), not here.
    const files = version(controller) === 2 ? v2 : v1;
    for (const [file, value] of files) out.push({ controller, file, value, flag, ...(optional ? { optional } : {}) });
  };
  if (l.memory !== undefined) {
    add("memory", "--memory", [["memory.limit_in_bytes", `${l.memory}`]], [["memory.max", `${l.memory}`]]);
    if (l.memorySwap !== undefined) {
      // v1 counts memory + swap together and must be written after the memory limit
      // (the kernel refuses memsw < memory); v2 limits swap alone.
      const swap = l.memorySwap === -1 ? "max" : `${l.memorySwap - l.memory}`;
      add("memory", "--memory-swap", [["memory.memsw.limit_in_bytes", `${l.memorySwap}`]], [["memory.swap.max", swap]], true);
    }
  }
  if (l.cpu !== undefined) {
    add("cpu", "--cpus", [["cpu.cfs_period_us", `${l.cpu.period}`], ["cpu.cfs_quota_us", `${l.cpu.quota}`]], [["cpu.max", `${l.cpu.quota} ${l.cpu.period}`]]);
  }
  if (l.cpuShares !== undefined) {
    add("cpu", "--cpu-shares", [["cpu.shares", `${l.cpuShares}`]], [["cpu.weight", `${sharesToWeight(l.cpuShares)}`]]);
  }
  if (l.cpusetCpus !== undefined) add("cpuset", "--cpuset-cpus", [["cpuset.cpus", l.cpusetCpus]], [["cpuset.cpus", l.cpusetCpus]]);
  if (l.pids !== undefined) {
    const v = l.pids === -1 ? "max" : `${l.pids}`;
    add("pids", "--pids-limit", [["pids.max", v]], [["pids.max", v]]);
  }
  return out;
}

/** The controllers the limits need, with the flag that needs each. */
export function neededControllers(l: Limits): Map<Controller, string> {
  const m = new Map<Controller, string>();
  for (const w of limitWrites(l, () => 1)) if (!m.has(w.controller)) m.set(w.controller, w.flag);
  return m;
}

/** Where each version counts OOM kills: a "key value" file and the key. */
export function oomKillCounter(v: Version): { file: string; key: string } {
  // "oom_kill", not "oom": "oom" also counts OOM situations that ended without a kill.
  return v === 2 ? { file: "memory.events", key: "oom_kill" } : { file: "memory.oom_control", key: "oom_kill" };
}

/** Parse a flat-keyed cgroup file ("key value" lines: memory.events, cpu.stat, ...). */
export function parseKeyed(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) m.set(k, Number(v));
  }
  return m;
}
