// gcr pull / img2rootfs / images / rmi against a real docker-registry on 127.0.0.1, with
// images this file builds and pushes over the registry's HTTP API.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gcr, isRoot, skipReason, testDirs } from "../helpers/gcr.ts";
import { DISTRO_CONFIG, type BuiltImage, buildImage, distroLayers, pushImage, pushIndex } from "../helpers/images.ts";
import { type Registry, freePort, hasRegistry, pushManifest, registryBlobFile, startRegistry } from "../helpers/registry.ts";

const dirs = testDirs("pull");
const env = { GCR_ROOT: dirs.root, GCR_RUNROOT: dirs.runroot, DOCKER_CONFIG: join(dirs.base, "docker") };
let reg: Registry;
let distro: BuiltImage;
let derived: BuiltImage;
const pull = (...args: string[]) => gcr(["pull", ...args], { env, timeoutMs: 60_000 });
const rootfsOf = (name: string) => join(dirs.root, "images", name, "rootfs");
const recordOf = (name: string) => JSON.parse(readFileSync(join(dirs.root, "images", name, "image.json"), "utf8"));
const blobCount = () => readdirSync(join(dirs.root, "blobs/sha256")).length;

describe.if(skipReason(hasRegistry, "docker-registry not installed (apt-get install docker-registry)"))("gcr pull from a real registry", () => {
  beforeAll(async () => {
    reg = await startRegistry();
    distro = buildImage(distroLayers(isRoot), { config: DISTRO_CONFIG });
    await pushImage(reg, "test/distro", "v1", distro);
    // Shares the distro's base layer.
    const [base] = distroLayers(false);
    derived = buildImage([base!, { entries: [{ name: "app/run.sh", body: "#!/bin/sh\necho app\n", mode: 0o755 }], compression: "gzip" }], { docker: true });
    await pushImage(reg, "test/derived", "latest", derived);
    const amd = buildImage([{ entries: [{ name: "arch", body: "amd64\n" }] }], { architecture: "amd64" });
    const arm = buildImage([{ entries: [{ name: "arch", body: "arm64\n" }] }], { architecture: "arm64", variant: "v8" });
    await pushIndex(reg, "test/multi", "latest", [
      { image: amd, platform: { os: "linux", architecture: "amd64" } },
      { image: arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ]);
    const armOnly = buildImage([{ entries: [{ name: "arch", body: "arm\n" }] }], { architecture: "arm", variant: "v7" });
    await pushIndex(reg, "test/armonly", "latest", [{ image: armOnly, platform: { os: "linux", architecture: "arm", variant: "v7" } }, { image: arm, platform: { os: "linux", architecture: "arm64" } }], true);
    const tampered = buildImage([{ entries: [{ name: "f", body: "x".repeat(5000) }], compression: "none" }]);
    await pushImage(reg, "test/tampered", "latest", tampered);
    // Flip one byte of the stored layer, same length: the registry now serves bad content.
    const file = registryBlobFile(reg, tampered.layers[0]!.digest);
    const bytes = readFileSync(file);
    bytes[600] = bytes[600]! ^ 0xff;
    writeFileSync(file, bytes);
    tamperedDigest = tampered.layers[0]!.digest;
  });
  let tamperedDigest = "";
  afterAll(async () => {
    await reg?.stop();
    rmSync(dirs.base, { recursive: true, force: true });
  });

  test("pulls a multi-layer image (gzip, zstd, plain) with whiteouts, opaque dirs, links", async () => {
    const r = await pull(`${reg.host}/test/distro:v1`, "distro");
    expect(r.stderr).not.toContain("at ");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`pulled ${reg.host}/test/distro:v1 as distro: ${distro.manifest.digest}`);
    const root = rootfsOf("distro");
    expect(readFileSync(join(root, "etc/motd"), "utf8")).toBe("welcome, version 2\n");
    expect(existsSync(join(root, "etc/remove-me"))).toBe(false);
    expect(readdirSync(join(root, "var/log"))).toEqual(["new.log"]);
    expect(readFileSync(join(root, "etc/opt"), "utf8")).toBe("a file now\n");
    expect(readFileSync(join(root, "srv/data/inner"), "utf8")).toBe("inner\n");
    expect(existsSync(join(root, "bin/grep"))).toBe(false);
    expect(readlinkSync(join(root, "bin/sh"))).toBe("busybox");
    expect(readlinkSync(join(root, "usr/bin/env"))).toBe("/bin/busybox");
    expect(readFileSync(join(root, "usr/share/doc/readme.hard"), "utf8")).toBe("read me\n");
    expect(statSync(join(root, "usr/bin/su")).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(root, "tmp")).mode & 0o7777).toBe(0o1777);
    expect(lstatSync(join(root, "var/spool/fifo")).isFIFO()).toBe(true);
    const files = readdirSync(root, { recursive: true }) as string[];
    expect(files.filter((f) => f.split("/").pop()!.startsWith(".wh."))).toEqual([]);
    if (isRoot) {
      expect(statSync(join(root, "home/app/shared")).uid).toBe(1000);
      expect(statSync(join(root, "home/app/shared")).gid).toBe(2000);
      expect(statSync(join(root, "dev/null")).isCharacterDevice()).toBe(true);
    }
    // The record keeps the manifest digest and the runtime config.
    const rec = recordOf("distro");
    expect(rec.manifestDigest).toBe(distro.manifest.digest);
    expect(rec.config.config).toEqual(DISTRO_CONFIG);
    // The store is private (S04).
    expect(statSync(dirs.root).mode & 0o777).toBe(0o700);
  });

  test("re-pull downloads nothing; a shared base layer is downloaded once", async () => {
    const before = blobCount();
    const again = await pull(`${reg.host}/test/distro:v1`, "distro");
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("up to date");
    const copy = await pull(`${reg.host}/test/distro:v1`, "distro2");
    expect(copy.stdout).toContain("0 downloaded");
    expect(blobCount()).toBe(before);
    const d = await pull(`${reg.host}/test/derived`, "derived");
    expect(d.code).toBe(0);
    expect(d.stdout).toContain("1 downloaded");
    expect(readFileSync(join(rootfsOf("derived"), "app/run.sh"), "utf8")).toContain("echo app");
  });

  test("pinned digest: matching pulls, unknown digest fails", async () => {
    const ok = await pull(`${reg.host}/test/distro@${distro.manifest.digest}`, "pinned", "-q");
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toBe(distro.manifest.digest);
    const bad = await pull(`${reg.host}/test/distro@sha256:${"0".repeat(64)}`, "pinned2");
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain("not found");
    expect(existsSync(join(dirs.root, "images/pinned2"))).toBe(false);
  });

  test("index: host platform by default, --platform, clear error listing platforms", async () => {
    const host = process.arch === "arm64" ? "arm64" : "amd64";
    expect((await pull(`${reg.host}/test/multi`, "multi")).code).toBe(0);
    expect(readFileSync(join(rootfsOf("multi"), "arch"), "utf8")).toBe(`${host}\n`);
    expect((await pull("--platform", "linux/arm64", `${reg.host}/test/multi`, "multi-arm")).code).toBe(0);
    expect(readFileSync(join(rootfsOf("multi-arm"), "arch"), "utf8")).toBe("arm64\n");
    expect((await pull("--platform", "linux/arm/v7", `${reg.host}/test/armonly`, "arm7")).code).toBe(0);
    const none = await pull("--platform", "linux/s390x", `${reg.host}/test/multi`, "nope");
    expect(none.code).toBe(125);
    expect(none.stderr).toContain("no matching manifest for linux/s390x");
    expect(none.stderr).toContain("available platforms: linux/amd64, linux/arm64");
  });

  test("errors a user understands, exit 125, no traceback", async () => {
    const tag = await pull(`${reg.host}/test/distro:nope`, "x");
    expect(tag.code).toBe(125);
    expect(tag.stderr).toContain("tag 'nope' not found");
    const port = await freePort();
    const down = await pull(`127.0.0.1:${port}/x`, "x");
    expect(down.code).toBe(125);
    expect(down.stderr).toContain(`registry 127.0.0.1:${port} is down`);
    const bad = await pull("UPPER/case", "x");
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain("invalid reference");
    const name = await pull(`${reg.host}/test/distro:v1`, "../evil");
    expect(name.code).toBe(125);
    expect(name.stderr).toContain("invalid image name");
    for (const r of [tag, down, bad, name]) expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  test("a tampered blob aborts the pull naming the digest; nothing is installed", async () => {
    const r = await pull(`${reg.host}/test/tampered`, "tampered");
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`digest mismatch for blob ${tamperedDigest}`);
    expect(existsSync(join(dirs.root, "images/tampered"))).toBe(false);
    expect(existsSync(join(dirs.root, "blobs/sha256", tamperedDigest.slice(7)))).toBe(false);
    expect(readdirSync(join(dirs.root, "tmp"))).toEqual([]);
  });

  test("a decompression bomb is stopped by the size limit", async () => {
    const bomb = buildImage([{ entries: [{ name: "zeros", body: new Uint8Array(8 << 20) }], compression: "gzip" }]);
    await pushImage(reg, "test/bomb", "latest", bomb);
    const r = await gcr(["pull", `${reg.host}/test/bomb`, "bomb"], { env: { ...env, GCR_MAX_LAYER_SIZE: "1M" } });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("exceeds the limit of 1048576 bytes");
    expect(existsSync(join(dirs.root, "images/bomb"))).toBe(false);
  });

  test("images lists, rmi removes the image and only unused blobs", async () => {
    const list = await gcr(["images"], { env });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+REFERENCE\s+DIGEST\s+SIZE\s+PULLED/);
    expect(list.stdout).toMatch(new RegExp(`^distro +${reg.host}/test/distro:v1 +${distro.manifest.digest.slice(0, 19)} +2\\.0 MB +\\d+ seconds ago$`, "m"));
    const json = (await gcr(["images", "--json"], { env })).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(json.find((j) => j.name === "derived").digest).toBe(derived.manifest.digest);
    const baseBlob = join(dirs.root, "blobs/sha256", distro.layers[0]!.digest.slice(7));
    const derivedOnly = join(dirs.root, "blobs/sha256", derived.layers[1]!.digest.slice(7));
    const rm = await gcr(["rmi", "derived"], { env });
    expect(rm.code).toBe(0);
    expect(existsSync(join(dirs.root, "images/derived"))).toBe(false);
    expect(existsSync(derivedOnly)).toBe(false);
    expect(existsSync(baseBlob)).toBe(true); // still used by distro
    const missing = await gcr(["rmi", "derived"], { env });
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("no such image: derived");
  });

  test("img2rootfs -image REF -output DIR (the seed's flags)", async () => {
    const out = join(dirs.base, "out-rootfs");
    const r = await gcr(["img2rootfs", "-image", `${reg.host}/test/distro:v1`, "-output", out], { env });
    expect(r.code).toBe(0);
    expect(readFileSync(join(out, "etc/motd"), "utf8")).toBe("welcome, version 2\n");
    const again = await gcr(["img2rootfs", "--image", `${reg.host}/test/distro:v1`, "--output", out], { env });
    expect(again.code).toBe(125);
    expect(again.stderr).toContain("exists and is not empty");
    const help = await gcr(["img2rootfs", "--help"], { env });
    expect(help.stdout).toContain("-image");
  });

  test("--help for each command; bad flags are usage errors", async () => {
    for (const c of ["pull", "images", "rmi", "login", "logout"]) {
      const r = await gcr([c, "--help"], { env });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Usage: gcr");
    }
    const bad = await gcr(["pull", "--bogus", "x"], { env });
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain("--bogus");
  });

  test("two concurrent pulls of one name: one waits, both succeed, one image", async () => {
    const [a, b] = await Promise.all([pull(`${reg.host}/test/distro:v1`, "twice"), pull(`${reg.host}/test/distro:v1`, "twice")]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(a.stdout + b.stdout).toContain("up to date");
    expect(recordOf("twice").manifestDigest).toBe(distro.manifest.digest);
    expect(readdirSync(join(dirs.root, "tmp"))).toEqual([]);
  });

  test.if(isRoot)("rootless (as nobody): devices skipped and counted, files are the user's", async () => {
    const store = join(dirs.base, "nobody-store");
    mkdirSync(store, { mode: 0o755 });
    chownSync(store, 65534, 65534);
    const r = await gcr(["pull", `${reg.host}/test/distro:v1`, "distro"], { env: { GCR_ROOT: join(store, "gcr") }, asUser: { uid: 65534, gid: 65534 } });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("warning: 2 device nodes not created (needs root)");
    const root = join(store, "gcr/images/distro/rootfs");
    expect(existsSync(join(root, "dev/null"))).toBe(false);
    expect(statSync(join(root, "home/app/shared")).uid).toBe(65534);
    expect(statSync(join(root, "usr/bin/su")).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(root, "root")).mode & 0o7777).toBe(0o700);
  });
  test.if(isRoot)("rootless (as nobody): img2rootfs sweeps a dead run's staging dir even with a mode-000 directory in it", async () => {
    // A run killed after its last layer leaves directories with their final modes, 000 ones
    // included; the owner may not even list those, and rm -rf must make them its own first.
    const base = join(dirs.base, "nobody-staging");
    const stale = join(base, ".out.gcr-tmp-4194000-dead00", "locked");
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, "inner"), "x\n");
    for (const d of [base, join(base, ".out.gcr-tmp-4194000-dead00"), stale, join(stale, "inner")]) chownSync(d, 65534, 65534);
    chmodSync(stale, 0);
    const store = join(base, "gcr");
    const r = await gcr(["img2rootfs", "-image", `${reg.host}/test/derived:latest`, "-output", join(base, "out")], { env: { GCR_ROOT: store }, asUser: { uid: 65534, gid: 65534 } });
    expect(r.code).toBe(0);
    expect(readdirSync(base).sort()).toEqual(["gcr", "out"]);
  });
  if (!isRoot) console.log("skip: rootless pull test needs root (to switch to nobody)");

  test("a corrupt cached blob is detected, dropped, and fetched again next time (S03)", async () => {
    const blob = join(dirs.root, "blobs/sha256", distro.layers[1]!.digest.slice(7));
    const bytes = readFileSync(blob);
    bytes[10] = bytes[10]! ^ 0xff;
    chmodSync(blob, 0o644);
    writeFileSync(blob, bytes);
    const r = await pull(`${reg.host}/test/distro:v1`, "again");
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`stored layer ${distro.layers[1]!.digest} was corrupt and has been removed`);
    expect(existsSync(join(dirs.root, "images/again"))).toBe(false);
    const ok = await pull(`${reg.host}/test/distro:v1`, "again");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("1 downloaded");
  });

  test.if(isRoot)("disk full: a clear error, nothing installed (store on a 1 MiB tmpfs)", async () => {
    const small = join(dirs.base, "small");
    mkdirSync(small);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small]).exitCode).toBe(0);
    try {
      const r = await gcr(["pull", `${reg.host}/test/distro:v1`, "full"], { env: { GCR_ROOT: small } });
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/disk full while (downloading|extracting)/);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(existsSync(join(small, "images/full"))).toBe(false);
      expect(readdirSync(join(small, "tmp"))).toEqual([]);
    } finally {
      Bun.spawnSync(["umount", small]);
    }
  });

  test("schema1 and garbage manifests are refused", async () => {
    await pushManifest(reg, "test/distro", "weird", new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] })), "application/vnd.oci.image.index.v1+json");
    const r = await pull(`${reg.host}/test/distro:weird`, "weird");
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("no matching manifest");
  });
});
