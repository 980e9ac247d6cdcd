// Checks on the repository itself: types, shell scripts, and the FFI boundary.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ROOT_DIR } from "./helpers/gcr.ts";

function filesUnder(dir: string, ext: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => join(e.parentPath, e.name));
}

describe("repository", () => {
  test("tsc --noEmit passes (strict)", () => {
    const p = Bun.spawnSync([join(ROOT_DIR, "node_modules/.bin/tsc"), "--noEmit", "-p", ROOT_DIR], { cwd: ROOT_DIR });
    const out = p.stdout.toString() + p.stderr.toString();
    expect(out).toBe("");
    expect(p.exitCode).toBe(0);
  }, 120_000);

  test("shell scripts pass bash -n and shellcheck", () => {
    const scripts = ["provision.sh", ".ci/run", ...readdirSync(join(ROOT_DIR, "bench")).map((f) => `bench/${f}`)]
      .filter((f) => readFileSync(join(ROOT_DIR, f), "utf8").startsWith("#!/usr/bin/env bash"));
    expect(scripts).toContain("provision.sh");
    for (const s of scripts) {
      expect(Bun.spawnSync(["bash", "-n", join(ROOT_DIR, s)]).exitCode).toBe(0);
      const sc = Bun.spawnSync(["shellcheck", join(ROOT_DIR, s)]);
      expect(`${s}: ${sc.stdout.toString()}`).toBe(`${s}: `);
    }
  });

  test("bun:ffi is imported only under src/sys/", () => {
    const offenders = filesUnder(join(ROOT_DIR, "src"), ".ts")
      .filter((f) => !relative(ROOT_DIR, f).startsWith("src/sys/"))
      .filter((f) => /from "bun:ffi"/.test(readFileSync(f, "utf8")));
    expect(offenders).toEqual([]);
  });

  test("tests and scripts are never silently skipped", () => {
    const offenders = filesUnder(join(ROOT_DIR, "test"), ".ts")
      .concat(filesUnder(join(ROOT_DIR, "src"), ".test.ts"))
      .filter((f) => /\b(test|it|describe)\.(skip|todo)\(/.test(readFileSync(f, "utf8")));
    expect(offenders).toEqual([]);
  });
});
