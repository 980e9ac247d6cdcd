// Pure: `gcr run` resource flags (raw strings, as docker spells them) -> validated Limits.
// Every rejection is a UsageError (exit 125) raised before anything is created.
import { UsageError } from "../../errors.ts";
import type { CgroupOptions } from "../options.ts";

export interface Limits {
  /** --memory, bytes. */
  memory?: number;
  /** --memory-swap: memory + swap in bytes, or -1 for unlimited swap. */
  memorySwap?: number;
  /** Whether --memory-swap was given (an unsupported swap limit is then worth a warning). */
  memorySwapExplicit: boolean;
  /** --cpus as a CFS quota per period, both in microseconds. */
  cpu?: { quota: number; period: number };
  /** --cpu-shares (cgroup v1 units, 2..262144). */
  cpuShares?: number;
  /** --cpuset-cpus, normalised ("0-2,5"). */
  cpusetCpus?: string;
  /** --pids-limit; -1 means unlimited. */
  pids?: number;
  /** --cgroup-parent, without trailing slashes; absolute (from the hierarchy root) or relative. */
  parent?: string;
  /** For messages: the flags as the user typed them. */
  raw: CgroupOptions;
}

/** Whether the user asked for any limit (a parent alone is not a limit). */
export function hasLimits(l: Limits): boolean {
  return l.memory !== undefined || l.memorySwap !== undefined || l.cpu !== undefined || l.cpuShares !== undefined || l.cpusetCpus !== undefined || l.pids !== undefined;
}

/** The flags the user asked for, for messages: "--memory 32m --pids-limit 64". */
export function describeLimits(l: Limits): string {
  const names: [keyof CgroupOptions, string][] = [
    ["memory", "--memory"], ["memorySwap", "--memory-swap"], ["cpus", "--cpus"], ["cpuShares", "--cpu-shares"],
    ["cpusetCpus", "--cpuset-cpus"], ["pidsLimit", "--pids-limit"],
  ];
  return names.filter(([k]) => l.raw[k] !== undefined).map(([k, flag]) => `${flag} ${l.raw[k]}`).join(" ");
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** docker's RAMInBytes: "512", "64k", "32m", "1.5g", "2GiB"; binary units. Undefined if malformed. */
export function parseBytes(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp]?)(?:i?b)?$/i.exec(s.trim());
  if (!m) return undefined;
  const n = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** docker refuses less than this: the runtime itself would not fit. */
export const MIN_MEMORY = 6 * 1024 * 1024;
export const CPU_PERIOD = 100_000;

/** A cpu list such as "0-2,5": normalised, and every cpu below `ncpu`. */
export function parseCpuList(s: string, ncpu: number): { cpus: string } | { error: string } {
  const cpus: number[] = [];
  for (const part of s.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return { error: `invalid --cpuset-cpus '${s}': use a list such as 0-2,5` };
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) return { error: `invalid --cpuset-cpus '${s}': ${part} is a reversed range` };
    if (hi >= ncpu) return { error: `invalid --cpuset-cpus '${s}': requested CPUs are not available, this machine has 0-${ncpu - 1}` };
    for (let c = lo; c <= hi; c++) cpus.push(c);
  }
  // Normalise into ranges, as the kernel prints them.
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    ranges.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return { cpus: ranges.join(",") };
}

const bad = (msg: string) => new UsageError(msg, "run");

export function parseLimits(o: CgroupOptions, ncpu: number): Limits {
  const l: Limits = { raw: o, memorySwapExplicit: o.memorySwap !== undefined };
  if (o.memory !== undefined) {
    const n = parseBytes(o.memory);
    if (n === undefined) throw bad(`invalid --memory '${o.memory}': use a size such as 512m or 2g (suffixes b, k, m, g)`);
    if (n < MIN_MEMORY) throw bad(`invalid --memory '${o.memory}': the minimum memory limit is 6m`);
    l.memory = n;
  }
  if (o.memorySwap !== undefined) {
    const n = o.memorySwap.trim() === "-1" ? -1 : parseBytes(o.memorySwap);
    if (n === undefined) throw bad(`invalid --memory-swap '${o.memorySwap}': use a size such as 1g, or -1 for unlimited swap`);
    if (l.memory === undefined) throw bad("--memory-swap needs --memory: it limits memory plus swap");
    if (n !== -1 && n < l.memory) throw bad(`invalid --memory-swap '${o.memorySwap}': it counts memory plus swap, so it must be at least --memory (${o.memory})`);
    l.memorySwap = n;
  } else if (l.memory !== undefined) {
    // docker's default: as much swap as memory.
    l.memorySwap = 2 * l.memory;
  }
  if (o.cpus !== undefined) {
    const n = /^\d*\.?\d+$/.test(o.cpus.trim()) ? Number(o.cpus) : NaN;
    if (!(n > 0)) throw bad(`invalid --cpus '${o.cpus}': use a positive number of CPUs such as 0.5 or 2`);
    if (n > ncpu) throw bad(`invalid --cpus '${o.cpus}': the range is 0.01 to ${ncpu}, as this machine has ${ncpu} CPUs`);
    const quota = Math.round(n * CPU_PERIOD);
    // The kernel's minimum quota is 1 ms.
    if (quota < 1000) throw bad(`invalid --cpus '${o.cpus}': the smallest value is 0.01`);
    l.cpu = { quota, period: CPU_PERIOD };
  }
  if (o.cpuShares !== undefined) {
    const n = /^\d+$/.test(o.cpuShares.trim()) ? Number(o.cpuShares) : NaN;
    if (!(n >= 2 && n <= 262144)) throw bad(`invalid --cpu-shares '${o.cpuShares}': use an integer from 2 to 262144 (the default weight is 1024)`);
    l.cpuShares = n;
  }
  if (o.cpusetCpus !== undefined) {
    const r = parseCpuList(o.cpusetCpus, ncpu);
    if ("error" in r) throw bad(r.error);
    l.cpusetCpus = r.cpus;
  }
  if (o.pidsLimit !== undefined) {
    const n = /^-?\d+$/.test(o.pidsLimit.trim()) ? Number(o.pidsLimit) : NaN;
    if (!Number.isSafeInteger(n) || n < -1) throw bad(`invalid --pids-limit '${o.pidsLimit}': use a positive integer, or -1 for unlimited`);
    // docker: 0 and -1 both mean unlimited.
    l.pids = n <= 0 ? -1 : n;
  }
  if (o.parent !== undefined) {
    const p = o.parent.replace(/\/+$/, "");
    const parts = p.split("/").filter((s, i) => !(i === 0 && s === ""));
    if (p === "" || parts.some((s) => s === "" || s === "." || s === ".." || !/^[A-Za-z0-9_.:@-]+$/.test(s)))
      throw bad(`invalid --cgroup-parent '${o.parent}': use a path such as /gcr or mygroup/sub (letters, digits, _ . : @ -)`);
    l.parent = p;
  }
  return l;
}
