// Hostile layers (security.md A1: E01-E16, E21) pulled by the real binary from a real
// registry. Sentinels sit next to the store; after every pull they must be unchanged (I1),
// and a refused image must leave nothing under its name and no staging dir.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gcr, skipReason, testDirs } from "../helpers/gcr.ts";
import { buildImage, pushImage } from "../helpers/images.ts";
import { type Registry, hasRegistry, startRegistry } from "../helpers/registry.ts";
import type { TarSpec } from "../helpers/tar.ts";

const dirs = testDirs("hostile");
const env = { GCR_ROOT: dirs.root, GCR_RUNROOT: dirs.runroot };
const V = join(dirs.base, "victim");
let reg: Registry;

function snapshot(): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      out.push(`${p} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${st.isFile() ? readFileSync(p, "utf8") : ""}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dirs.base);
  return out.filter((l) => !l.startsWith(dirs.root)).join("\n");
}

const up = "../../../../../../../../..";
type Case = { id: string; layers: TarSpec[][]; refused?: string; inRoot?: (root: string) => void };
const cases: Case[] = [
  { id: "E01", layers: [[{ name: "../victim/file", body: "evil" }]], refused: "name contains '..'" },
  { id: "E01b", layers: [[{ name: `a/${up}${V}/file`, body: "evil" }]], refused: "refusing entry" },
  { id: "E02", layers: [[{ name: `${V}/file`, body: "in root" }]], inRoot: (r) => expect(readFileSync(join(r, V, "file"), "utf8")).toBe("in root") },
  { id: "E03", layers: [[{ name: "./", type: "symlink", linkname: V }, { name: "file", body: "evil" }]], refused: "rootfs root cannot become a symlink" },
  { id: "E04", layers: [[{ name: "x", type: "symlink", linkname: "/" }, { name: `x${V}/file`, body: "in root" }]], inRoot: (r) => expect(readFileSync(join(r, V, "file"), "utf8")).toBe("in root") },
  { id: "E04b", layers: [[{ name: "x", type: "symlink", linkname: `${up}${V}` }, { name: "x/pwn", body: "p" }]], inRoot: (r) => expect(existsSync(join(r, V, "pwn"))).toBe(true) },
  { id: "E05", layers: [[{ name: "x", type: "symlink", linkname: `${up}${V}` }], [{ name: "x/pwn", body: "p" }, { name: "x/.wh.file" }]] },
  { id: "E06", layers: [[{ name: "foo/", type: "dir" }, { name: "foo/f", body: "1" }, { name: "foo", type: "symlink", linkname: V }, { name: "foo/file", body: "2" }]] },
  { id: "E07", layers: [[{ name: "l", type: "symlink", linkname: V }, { name: "l/newdir/", type: "dir" }, { name: "l/newdir/f", body: "f" }]] },
  { id: "E08", layers: [[{ name: "h", type: "link", linkname: `${V}/file` }]], refused: "does not exist in the rootfs" },
  { id: "E08b", layers: [[{ name: "d1", type: "symlink", linkname: `${up}${V}` }, { name: "h", type: "link", linkname: "d1/file" }]], refused: "does not exist in the rootfs" },
  { id: "E09", layers: [[{ name: "s", type: "symlink", linkname: `${V}/file`, mode: 0o777, uid: 4242, mtime: 0 }, { name: "h", type: "link", linkname: "s" }, { name: "s", type: "symlink", linkname: `${V}/file`, uid: 4343 }]] },
  { id: "E10", layers: [[{ name: "escape", type: "symlink", linkname: ".." }, { name: "absolute", type: "symlink", linkname: V }, { name: "escape/absolute/file", body: "x" }]] },
  { id: "E11", layers: [[{ name: "etc/.wh.." }]], refused: "invalid whiteout name" },
  { id: "E11b", layers: [[{ name: ".wh..." }]], refused: "invalid whiteout name" },
  { id: "E12", layers: [[{ name: "lnk", type: "symlink", linkname: V }], [{ name: "lnk/.wh.file" }, { name: "lnk/.wh.dir" }, { name: ".wh.lnk" }]], inRoot: (r) => expect(existsSync(join(r, "lnk"))).toBe(false) },
  { id: "E13", layers: [[{ name: "a/old", body: "1" }], [{ name: "a/b/c/foo", body: "2" }, { name: "a/.wh..wh..opq" }]], inRoot: (r) => expect(readdirSync(join(r, "a"))).toEqual(["b"]) },
  { id: "E14", layers: [[{ name: "etc/f", body: "1" }], [{ name: ".wh.etc/somefile", body: "x" }]], inRoot: (r) => expect(readFileSync(join(r, "etc/f"), "utf8")).toBe("1") },
  { id: "E15", layers: [[{ name: "a", type: "symlink", linkname: V }], [{ name: "a/", type: "dir" }, { name: "a/f", body: "f" }]], inRoot: (r) => expect(lstatSync(join(r, "a")).isDirectory()).toBe(true) },
  { id: "E16", layers: [[{ name: "d", body: "file" }, { name: "d/", type: "dir" }, { name: "d", type: "symlink", linkname: V }, { name: "d", body: "last" }]], inRoot: (r) => expect(readFileSync(join(r, "d"), "utf8")).toBe("last") },
  { id: "E21", layers: [[{ name: "safe", body: "x", pax: { path: "../victim/file" } }]], refused: "'../victim/file'" },
];

describe.if(skipReason(hasRegistry, "docker-registry not installed"))("hostile layers pulled from a registry", () => {
  beforeAll(async () => {
    mkdirSync(join(V, "dir"), { recursive: true });
    writeFileSync(join(V, "file"), "precious");
    utimesSync(join(V, "file"), 1000, 1000);
    symlinkSync("file", join(V, "link"));
    reg = await startRegistry();
    for (const c of cases) await pushImage(reg, `hostile/${c.id.toLowerCase()}`, "latest", buildImage(c.layers.map((entries) => ({ entries }))));
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dirs.base, { recursive: true, force: true });
  });

  for (const c of cases) {
    test(`${c.id}: ${c.refused ? "refused" : "kept inside the rootfs"}; sentinels unchanged`, async () => {
      const before = snapshot();
      const name = c.id.toLowerCase();
      const r = await gcr(["pull", "-q", `${reg.host}/hostile/${name}`, name], { env });
      if (c.refused) {
        expect(r.code).toBe(125);
        expect(r.stderr).toContain("refusing entry");
        expect(r.stderr).toContain(c.refused);
        expect(r.stderr).toMatch(/layer sha256:[0-9a-f]{64}/);
        expect(existsSync(join(dirs.root, "images", name))).toBe(false);
        expect(readdirSync(join(dirs.root, "tmp"))).toEqual([]);
      } else {
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        c.inRoot?.(join(dirs.root, "images", name, "rootfs"));
      }
      expect(snapshot()).toBe(before);
    });
  }
});
