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

  test("gcr.lima.yaml is valid YAML for an Ubuntu LTS VM whose provisioning runs provision.sh", () => {
    const vm = Bun.YAML.parse(readFileSync(join(ROOT_DIR, "gcr.lima.yaml"), "utf8")) as {
      images: { location: string; arch: string }[];
      provision: { mode: string; script: string }[];
      mounts: { location: string; writable: boolean }[];
    };
    expect(vm.images.map((i) => i.arch).sort()).toEqual(["aarch64", "x86_64"]);
    for (const i of vm.images) expect(i.location).toMatch(/ubuntu-24\.04-server-cloudimg-(amd64|arm64)\.img$/);
    expect(vm.mounts.some((m) => m.writable)).toBe(true);
    expect(vm.provision.map((p) => p.mode)).toEqual(["system", "user"]);
    expect(vm.provision[1]!.script).toContain("provision.sh");
    // Each provisioning script is valid bash.
    for (const p of vm.provision) expect(Bun.spawnSync(["bash", "-n"], { stdin: new TextEncoder().encode(p.script) }).exitCode).toBe(0);
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
