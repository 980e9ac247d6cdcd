import { describe, expect, test } from "bun:test";
import { isMapped, mapLines, passwdName, planIdMapping, subordinateRange } from "./idmap.ts";

describe("idmap", () => {
  test("subordinateRange matches a name or a uid and ignores junk", () => {
    const text = "# c\nalice:100000:65536\n1001:200000:1000\nbob:x:1\n";
    expect(subordinateRange(text, "alice", 1000)).toEqual({ start: 100000, count: 65536 });
    expect(subordinateRange(text, "carol", 1001)).toEqual({ start: 200000, count: 1000 });
    expect(subordinateRange(text, "bob", 5)).toBeUndefined();
  });
  test("mapLines writes one 'inside outside count' line per range", () => {
    expect(mapLines([{ inside: 0, outside: 1000, count: 1 }, { inside: 1, outside: 100000, count: 65536 }])).toBe("0 1000 1\n1 100000 65536\n");
  });
  test("isMapped: without a user namespace every id exists", () => {
    expect(isMapped(undefined, 5)).toBe(true);
    expect(isMapped([{ inside: 0, outside: 1000, count: 1 }], 5)).toBe(false);
    expect(isMapped([{ inside: 0, outside: 100000, count: 65536 }], 5)).toBe(true);
  });
  test("root with --userns=host has no user namespace; rootless maps root to the caller", () => {
    expect(planIdMapping(false, undefined)).toBeUndefined();
    expect(planIdMapping(false, "host")).toBeUndefined();
    const m = planIdMapping(true, undefined)!;
    expect(m.uids[0]).toMatchObject({ inside: 0, outside: process.getuid!() });
    expect(m.gids[0]).toMatchObject({ inside: 0, outside: process.getgid!() });
  });
});

describe("passwdName", () => {
  test("finds the login name of a uid (os.userInfo() may not know it under setpriv)", () => {
    const text = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    expect(passwdName(text, 65534)).toBe("nobody");
    expect(passwdName(text, 0)).toBe("root");
    expect(passwdName(text, 1000)).toBeUndefined();
  });
});
