// Malformed layers (security.md E22): a blob that is not a tar, a tar cut short, a header with
// a bad checksum. Each pull must fail with exit 125 and
// one clear line naming the layer, install nothing and leave no staging directory: never hang,
// never crash with a stack trace.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { gcr, skipReason, testDirs } from "../helpers/gcr.ts";
import { sha256 } from "../helpers/images.ts";
import { type Registry, hasRegistry, pushBlob, pushManifest, startRegistry } from "../helpers/registry.ts";
import { makeTar } from "../helpers/tar.ts";

const dirs = testDirs("malformed");
const env = { GCR_ROOT: dirs.root, GCR_RUNROOT: dirs.runroot };
let reg: Registry;
const enc = new TextEncoder();

/** Push an image whose single layer is `tar` (any bytes), gzip-compressed, with a correct diff_id. */
async function pushRawLayer(repo: string, tar: Uint8Array): Promise<void> {
  const gz = new Uint8Array(gzipSync(tar));
  const config = enc.encode(JSON.stringify({ architecture: "amd64", os: "linux", config: { Cmd: ["/bin/sh"] }, rootfs: { type: "layers", diff_ids: [sha256(tar)] } }));
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(gz), size: gz.length }],
  }));
  await pushBlob(reg, repo, sha256(gz), gz);
  await pushBlob(reg, repo, sha256(config), config);
  await pushManifest(reg, repo, "latest", manifest, "application/vnd.oci.image.manifest.v1+json");
}

const good = makeTar([{ name: "etc/hostname", body: "box\n" }, { name: "big", body: "x".repeat(4096) }]);
const cases: Record<string, Uint8Array> = {
  // 10 KiB of bytes that are no tar at all.
  notatar: Uint8Array.from({ length: 10240 }, (_, i) => (i * 7919 + 13) & 0xff),
  // The second entry's body stops half way (no end-of-archive blocks either).
  truncated: good.subarray(0, 512 + 512 + 512 + 2048),
  // The first header's checksum field is wrong.
  badchecksum: (() => {
    const t = good.slice();
    t.set(enc.encode("0000001\0"), 148);
    return t;
  })(),
};

describe.if(skipReason(hasRegistry, "docker-registry not installed"))("malformed layers", () => {
  beforeAll(async () => {
    reg = await startRegistry();
    for (const [name, tar] of Object.entries(cases)) await pushRawLayer(`bad/${name}`, tar);
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dirs.base, { recursive: true, force: true });
  });

  for (const name of Object.keys(cases)) {
    test(`${name}: exit 125, one clear line naming the layer, nothing installed`, async () => {
      const r = await gcr(["pull", "-q", `${reg.host}/bad/${name}`, name], { env, timeoutMs: 30_000 });
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/^gcr: /);
      expect(r.stderr).toMatch(/layer sha256:[0-9a-f]{64}/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(existsSync(join(dirs.root, "images", name))).toBe(false);
      expect(readdirSync(join(dirs.root, "tmp"))).toEqual([]);
    });
  }
});
