// The shipped artefact: ./gcr copied alone to a fresh directory runs with no bun on PATH and
// an empty environment (env -i), as it will on a host that only received the binary.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBuilt, GCR, testDirs } from "../helpers/gcr.ts";
import { removeTree } from "../../src/sys/fs.ts";

setDefaultTimeout(60_000);

let dirs: ReturnType<typeof testDirs>;
let bin: string;
beforeAll(() => {
  ensureBuilt();
  dirs = testDirs("binary");
  bin = join(dirs.base, "gcr");
  copyFileSync(GCR, bin);
  // A compiled Bun binary must not pick up .env or bunfig.toml from its cwd.
  writeFileSync(join(dirs.base, ".env"), "BUN_BE_BUN=1\nGCR_DEBUG=1\n");
});
afterAll(() => removeTree(dirs.base));

const bare = (args: string[]) =>
  Bun.spawnSync(["env", "-i", "PATH=/usr/bin:/bin", `GCR_ROOT=${dirs.root}`, `GCR_RUNROOT=${dirs.runroot}`, bin, ...args], { cwd: dirs.base });

test("no bun on PATH=/usr/bin:/bin", () => {
  expect(Bun.spawnSync(["env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", "command -v bun || echo none"]).stdout.toString()).toBe("none\n");
});

test("a copied binary runs `gcr run demo true` under env -i", () => {
  const p = bare(["run", "demo", "true"]);
  expect({ code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() }).toEqual({ code: 0, stdout: "", stderr: "" });
  const hi = bare(["run", "demo", "sh", "-c", "echo hello from $(hostname)"]);
  expect(hi.exitCode).toBe(0);
  expect(hi.stdout.toString()).toMatch(/^hello from [0-9a-f]{12}\n$/);
});

test("--debug narrates from the copied binary too", () => {
  const p = bare(["--debug", "run", "demo", "true"]);
  expect(p.exitCode).toBe(0);
  const err = p.stderr.toString();
  for (const want of ["[run] as pid", "[fork] as pid 1", "namespaces", "[mount]", "pivot_root"]) expect(err).toContain(want);
});
