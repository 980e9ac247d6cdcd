import { describe, expect, test } from "bun:test";
import { limitWrites, neededControllers, oomKillCounter, parseKeyed, sharesToWeight } from "./limits.ts";
import { parseLimits } from "./options.ts";

const all = parseLimits({ memory: "32m", memorySwap: "96m", cpus: "1.5", cpuShares: "512", cpusetCpus: "0", pidsLimit: "64" }, 2);
const files = (v: 1 | 2, l = all) => limitWrites(l, () => v).map((w) => `${w.controller} ${w.file}=${w.value}`);

describe("the option -> file table", () => {
  test("cgroup v1", () => {
    expect(files(1)).toEqual([
      "memory memory.limit_in_bytes=33554432",
      "memory memory.memsw.limit_in_bytes=100663296",
      "cpu cpu.cfs_period_us=100000",
      "cpu cpu.cfs_quota_us=150000",
      "cpu cpu.shares=512",
      "cpuset cpuset.cpus=0",
      "pids pids.max=64",
    ]);
  });
  test("cgroup v2: swap alone, cpu.max, converted weight", () => {
    expect(files(2)).toEqual([
      "memory memory.max=33554432",
      "memory memory.swap.max=67108864",
      "cpu cpu.max=150000 100000",
      "cpu cpu.weight=20",
      "cpuset cpuset.cpus=0",
      "pids pids.max=64",
    ]);
  });
  test("unlimited is 'max' on v2 and -1 / max on v1", () => {
    const l = parseLimits({ memory: "1g", memorySwap: "-1", pidsLimit: "-1" }, 2);
    expect(files(2, l)).toEqual(["memory memory.max=1073741824", "memory memory.swap.max=max", "pids pids.max=max"]);
    expect(files(1, l)).toEqual(["memory memory.limit_in_bytes=1073741824", "memory memory.memsw.limit_in_bytes=-1", "pids pids.max=max"]);
  });
  test("swap limits are optional (swap accounting may be off), the rest is not", () => {
    expect(limitWrites(all, () => 1).filter((w) => w.optional).map((w) => w.file)).toEqual(["memory.memsw.limit_in_bytes"]);
  });
  test("per-controller versions (hybrid: pids on v2, the rest on v1)", () => {
    const l = parseLimits({ memory: "32m", pidsLimit: "5" }, 2);
    expect(limitWrites(l, (c) => (c === "pids" ? 2 : 1)).map((w) => w.file)).toEqual(["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "pids.max"]);
  });
  test("needed controllers name the flag", () => {
    expect([...neededControllers(parseLimits({ cpus: "1", pidsLimit: "3" }, 2))]).toEqual([["cpu", "--cpus"], ["pids", "--pids-limit"]]);
  });
});

test("cpu.shares -> cpu.weight as runc converts", () => {
  expect(sharesToWeight(2)).toBe(1);
  expect(sharesToWeight(1024)).toBe(39);
  expect(sharesToWeight(262144)).toBe(10000);
});

test("OOM kills are read from oom_kill, not oom", () => {
  expect(oomKillCounter(1)).toEqual({ file: "memory.oom_control", key: "oom_kill" });
  expect(oomKillCounter(2)).toEqual({ file: "memory.events", key: "oom_kill" });
  expect(parseKeyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").get("oom_kill")).toBe(2);
  expect(parseKeyed("low 0\nhigh 0\nmax 9\noom 3\noom_kill 1\n").get("oom_kill")).toBe(1);
});
