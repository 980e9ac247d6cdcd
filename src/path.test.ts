import { describe, expect, test } from "bun:test";
import { posix } from "node:path";
import { basename, dirname, join, normalize, resolve } from "./path.ts";

const samples = ["", "/", "//", "a", "/a", "a/", "/a/b/", "a//b", "./a", "../a", "a/../..", "/../a", "/a/./b/../c", "a/b/../../..", ".", "..", "/a/b//", "a/.", "/x/y/../../../z", "///a/b", "a///b//"]
// (One divergence: node says dirname("//a") is "//"; here it is "/".);

describe("path (against node:path.posix)", () => {
  test("normalize, dirname, basename", () => {
    for (const p of samples) {
      expect([p, normalize(p)]).toEqual([p, posix.normalize(p)]);
      expect([p, dirname(p)]).toEqual([p, posix.dirname(p)]);
      expect([p, basename(p)]).toEqual([p, posix.basename(p)]);
    }
  });
  test("join and resolve", () => {
    for (const a of samples)
      for (const b of ["", "b", "/b", "../b", "b/", "./b/.."]) {
        expect([a, b, join(a, b)]).toEqual([a, b, posix.join(a, b)]);
        expect([a, b, resolve(a, b)]).toEqual([a, b, posix.resolve(a, b)]);
      }
    expect(join("/run/gcr", "containers", "abc")).toBe("/run/gcr/containers/abc");
  });
});
