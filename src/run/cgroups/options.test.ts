import { describe, expect, test } from "bun:test";
import { UsageError } from "../../errors.ts";
import { describeLimits, hasLimits, parseBytes, parseCpuList, parseLimits } from "./options.ts";

describe("parseBytes (docker's RAMInBytes)", () => {
  test.each([
    ["1024", 1024], ["64k", 65536], ["32m", 32 * 2 ** 20], ["32M", 32 * 2 ** 20], ["1.5g", 1.5 * 2 ** 30],
    ["2GiB", 2 * 2 ** 30], ["512mb", 512 * 2 ** 20], ["10b", 10],
  ])("%s", (s, n) => expect(parseBytes(s)).toBe(n));
  test.each(["lots", "", "-1", "1x", "m", "1.2.3m", "1e9"])("rejects %p", (s) => expect(parseBytes(s)).toBeUndefined());
});

describe("parseCpuList", () => {
  test("normalises into kernel ranges", () => {
    expect(parseCpuList("3,0-1,2", 8)).toEqual({ cpus: "0-3" });
    expect(parseCpuList("0,2,4-5", 8)).toEqual({ cpus: "0,2,4-5" });
  });
  test("rejects CPUs that do not exist and bad syntax", () => {
    expect(parseCpuList("0-4", 2)).toHaveProperty("error");
    expect(parseCpuList("1-0", 2)).toHaveProperty("error");
    expect(parseCpuList("a", 2)).toHaveProperty("error");
  });
});

describe("parseLimits", () => {
  test("docker defaults: swap = 2x memory, cpus -> quota/period, pids 0/-1 unlimited", () => {
    const l = parseLimits({ memory: "32m", cpus: "0.5", pidsLimit: "0" }, 2);
    expect(l.memory).toBe(32 * 2 ** 20);
    expect(l.memorySwap).toBe(64 * 2 ** 20);
    expect(l.memorySwapExplicit).toBe(false);
    expect(l.cpu).toEqual({ quota: 50_000, period: 100_000 });
    expect(l.pids).toBe(-1);
    expect(parseLimits({ pidsLimit: "-1" }, 2).pids).toBe(-1);
    expect(parseLimits({ memory: "1g", memorySwap: "-1" }, 2).memorySwap).toBe(-1);
  });
  test.each([
    [{ memory: "lots" }, "invalid --memory 'lots'"],
    [{ memory: "1m" }, "minimum memory limit is 6m"],
    [{ memorySwap: "1g" }, "--memory-swap needs --memory"],
    [{ memory: "1g", memorySwap: "512m" }, "at least --memory"],
    [{ cpus: "-1" }, "invalid --cpus '-1'"],
    [{ cpus: "0" }, "invalid --cpus '0'"],
    [{ cpus: "3" }, "this machine has 2 CPUs"],
    [{ cpus: "0.001" }, "smallest value is 0.01"],
    [{ cpuShares: "1" }, "2 to 262144"],
    [{ cpusetCpus: "5" }, "not available"],
    [{ pidsLimit: "many" }, "invalid --pids-limit"],
    [{ pidsLimit: "-2" }, "invalid --pids-limit"],
    [{ parent: "../escape" }, "invalid --cgroup-parent"],
    [{ parent: "a//b" }, "invalid --cgroup-parent"],
  ])("%p is a usage error", (o, msg) => {
    expect(() => parseLimits(o, 2)).toThrow(UsageError);
    expect(() => parseLimits(o, 2)).toThrow(msg);
  });
  test("a parent alone is not a limit; messages quote the flags as typed", () => {
    expect(hasLimits(parseLimits({ parent: "/mine/sub/" }, 2))).toBe(false);
    expect(parseLimits({ parent: "/mine/sub/" }, 2).parent).toBe("/mine/sub");
    expect(describeLimits(parseLimits({ memory: "32m", pidsLimit: "64" }, 2))).toBe("--memory 32m --pids-limit 64");
  });
});
