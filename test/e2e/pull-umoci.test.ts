// The oracle: a multi-layer busybox "distro" pulled by gcr must match what
// `skopeo copy docker://... oci:DIR:tag` + `umoci unpack` make of the same image:
// same paths, types, modes, owners, sizes, contents and link targets.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { gcr, isRoot, skipReason, testDirs } from "../helpers/gcr.ts";
import { DISTRO_CONFIG, buildImage, distroLayers, pushImage, sha256 } from "../helpers/images.ts";
import { type Registry, hasRegistry, startRegistry } from "../helpers/registry.ts";

const dirs = testDirs("umoci");
const env = { GCR_ROOT: dirs.root, GCR_RUNROOT: dirs.runroot };
const tools = hasRegistry && Bun.which("skopeo") !== null && Bun.which("umoci") !== null;
let reg: Registry;

/** One line per path: type, permission bits, owner, size, content hash or link target. */
export function describeTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = join(root, r);
      const st = lstatSync(p);
      const type = st.isFile() ? "f" : st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : st.isFIFO() ? "p" : st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "b" : "?";
      const extra = type === "f" ? sha256(readFileSync(p)).slice(7, 23) : type === "l" ? `-> ${readlinkSync(p)}` : type === "c" || type === "b" ? `dev ${st.rdev}` : "";
      const perm = type === "l" ? "" : (st.mode & 0o7777).toString(8);
      out.push(`${type} ${r} ${perm} ${st.uid}:${st.gid} ${type === "f" ? st.size : ""} ${extra}`.trimEnd());
      if (type === "d") walk(r);
    }
  };
  walk("");
  return out;
}

describe.if(skipReason(tools, "needs docker-registry, skopeo and umoci (apt-get install docker-registry skopeo umoci)"))("gcr pull matches skopeo + umoci unpack", () => {
  beforeAll(async () => {
    reg = await startRegistry();
    await pushImage(reg, "test/distro", "v1", buildImage(distroLayers(isRoot, false), { config: DISTRO_CONFIG }));
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dirs.base, { recursive: true, force: true });
  });

  test("same tree, entry by entry", async () => {
    const r = await gcr(["pull", "-q", `${reg.host}/test/distro:v1`, "distro"], { env });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const layout = join(dirs.base, "oci");
    const bundle = join(dirs.base, "bundle");
    const copy = Bun.spawnSync(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", `docker://${reg.host}/test/distro:v1`, `oci:${layout}:v1`], { stderr: "pipe", stdout: "pipe" });
    expect(copy.stderr.toString()).toBe("");
    expect(copy.exitCode).toBe(0);
    const unpack = Bun.spawnSync(["umoci", "unpack", ...(isRoot ? [] : ["--rootless"]), "--image", `${layout}:v1`, bundle], { stderr: "pipe", stdout: "pipe" });
    expect(unpack.stderr.toString()).toBe("");
    expect(unpack.exitCode).toBe(0);
    const ours = describeTree(join(dirs.root, "images/distro/rootfs"));
    const theirs = describeTree(join(bundle, "rootfs"));
    expect(ours.length).toBeGreaterThan(40);
    expect(ours).toEqual(theirs);
  });
});
