// sys/libc.ts against the real kernel.
import { describe, expect, test } from "bun:test";
import { openSync, closeSync } from "node:fs";
import { SyscallError } from "../errors.ts";
import { inBoundingSet, randomBytes, sys, SYS, waitExit, windowSize, writeAll } from "./libc.ts";

describe("sys/libc", () => {
  test("sys() returns the result or -errno, never throws", () => {
    expect(sys(SYS.kill, process.pid, 0)).toBe(0);
    expect(sys(SYS.kill, 0x3fffffff, 0)).toBe(-3); // ESRCH
  });

  test("waitExit: false while the process runs, true once it has exited", async () => {
    const p = Bun.spawn(["sleep", "0.3"]);
    expect(waitExit(p.pid, 20)).toBe(false);
    expect(waitExit(p.pid, 5000)).toBe(true);
    await p.exited;
  });

  test("windowSize is undefined for a descriptor that is no terminal", () => {
    const fd = openSync("/dev/null", "r");
    try {
      expect(windowSize(fd)).toBeUndefined();
    } finally {
      closeSync(fd);
    }
  });

  test("randomBytes: the length asked for, and not twice the same", () => {
    const a = randomBytes(32);
    expect(a.length).toBe(32);
    expect(Buffer.from(a).equals(Buffer.from(randomBytes(32)))).toBe(false);
  });

  test("inBoundingSet agrees with CapBnd in /proc/self/status", async () => {
    const bnd = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(await Bun.file("/proc/self/status").text())![1]}`);
    for (let cap = 0; cap < 41; cap++) expect([cap, inBoundingSet(cap)]).toEqual([cap, (bnd & (1n << BigInt(cap))) !== 0n]);
  });

  test("writeAll reports a closed descriptor as SyscallError write EBADF", () => {
    let err: unknown;
    try {
      writeAll(999_999, new Uint8Array([1]));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe("EBADF");
  });
});
