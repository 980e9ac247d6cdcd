// Capability masks and the seccomp program, decoded back from its bytes.
import { describe, expect, test } from "bun:test";
import { BLOCKED_SYSCALLS, CAPS, withinBoundingSet, capabilityMask, capNames, defaultSeccompFilter } from "./security.ts";

describe("capabilityMask", () => {
  test("docker's default set is 0xa80425fb", () => {
    expect(capabilityMask([], [])).toBe(0xa80425fbn);
    expect(capNames(0xa80425fbn)).toContain("NET_BIND_SERVICE");
  });
  test("--cap-drop ALL, --cap-add ALL, and single names (with or without CAP_)", () => {
    expect(capabilityMask([], ["ALL"])).toBe(0n);
    expect(capabilityMask(["ALL"], [])).toBe((1n << BigInt(CAPS.length)) - 1n);
    expect(capabilityMask(["SYS_ADMIN"], [])).toBe(0xa80425fbn | (1n << 21n));
    expect(capabilityMask(["cap_net_admin"], ["ALL"])).toBe(1n << 12n);
    expect(capabilityMask([], ["CHOWN"])).toBe(0xa80425fbn & ~1n);
  });
  test("an unknown capability is an error", () => {
    expect(() => capabilityMask(["NOPE"], [])).toThrow(/unknown capability/);
  });
});

describe("default seccomp filter", () => {
  const bytes = defaultSeccompFilter();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const insns = Array.from({ length: bytes.length / 8 }, (_, i) => ({
    code: view.getUint16(i * 8, true), jt: view.getUint8(i * 8 + 2), jf: view.getUint8(i * 8 + 3), k: view.getUint32(i * 8 + 4, true),
  }));
  const RET = 0x06;

  test("checks the architecture first: load arch, x86_64 or kill", () => {
    expect(insns[0]).toEqual({ code: 0x20, jt: 0, jf: 0, k: 4 });
    expect(insns[1]).toMatchObject({ code: 0x15, k: 0xc000003e });
    const kill = insns[1 + 1 + insns[1]!.jf]!;
    expect(kill).toMatchObject({ code: RET, k: 0x80000000 });
  });

  test("every blocked syscall number is compared and jumps to EPERM; clone3 to ENOSYS", () => {
    const target = (i: number) => insns[i + 1 + insns[i]!.jt]!;
    for (const [name, nr] of Object.entries(BLOCKED_SYSCALLS)) {
      const i = insns.findIndex((x) => x.code === 0x15 && x.k === nr && x.jt > 0);
      expect(`${name}: ${i >= 0}`).toBe(`${name}: true`);
      expect(target(i)).toEqual({ code: RET, jt: 0, jf: 0, k: 0x00050001 });
    }
    const c3 = insns.findIndex((x) => x.code === 0x15 && x.k === 435);
    expect(target(c3)).toMatchObject({ code: RET, k: 0x00050026 });
  });

  test("ends in returns only: allow, EPERM, ENOSYS", () => {
    expect(insns.slice(-3).map((x) => [x.code, x.k])).toEqual([[RET, 0x7fff0000], [RET, 0x00050001], [RET, 0x00050026]]);
    expect(insns.length).toBeLessThan(4096);
  });
});

describe("bounding set", () => {
  test("gcr's bounding set limits what --cap-add ALL can give", () => {
    const bnd = 0x1fffeffffffn; // all but SYS_RESOURCE (24)
    const inBounding = (cap: number) => (bnd & (1n << BigInt(cap))) !== 0n;
    expect(withinBoundingSet(capabilityMask(["ALL"], []), inBounding)).toBe(0x1fffeffffffn);
    expect(withinBoundingSet(capabilityMask(["ALL"], []), inBounding) & (1n << 24n)).toBe(0n);
    expect(withinBoundingSet(capabilityMask([], []), inBounding)).toBe(capabilityMask([], []));
  });
});
