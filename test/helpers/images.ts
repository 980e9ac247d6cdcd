// Images built in code for the pull tests: layers from tar specs (gzip, zstd or plain), an
// OCI or Docker schema2 manifest, a config with diff_ids, indexes with platforms; and the
// busybox-based multi-layer "distro" used for the umoci comparison.
import { readFileSync } from "node:fs";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { type Registry, pushBlob, pushManifest } from "./registry.ts";
import { type TarSpec, makeTar } from "./tar.ts";

export type Compression = "gzip" | "zstd" | "none";

export interface LayerSpec {
  entries: TarSpec[];
  compression?: Compression;
}

export interface Blob {
  digest: string;
  bytes: Uint8Array;
  mediaType: string;
}

export interface BuiltImage {
  manifest: Blob;
  config: Blob;
  layers: (Blob & { diffId: string })[];
}

export const sha256 = (b: Uint8Array | string) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;
const enc = new TextEncoder();

const LAYER_TYPES = {
  oci: { gzip: "application/vnd.oci.image.layer.v1.tar+gzip", zstd: "application/vnd.oci.image.layer.v1.tar+zstd", none: "application/vnd.oci.image.layer.v1.tar" },
  docker: { gzip: "application/vnd.docker.image.rootfs.diff.tar.gzip", zstd: "application/vnd.oci.image.layer.v1.tar+zstd", none: "application/vnd.oci.image.layer.v1.tar" },
};

export function buildImage(
  layers: LayerSpec[],
  opts: { config?: Record<string, unknown>; os?: string; architecture?: string; variant?: string; docker?: boolean } = {},
): BuiltImage {
  const kind = opts.docker ? "docker" : "oci";
  const built = layers.map((l) => {
    const tar = makeTar(l.entries);
    const c = l.compression ?? "gzip";
    const bytes = c === "gzip" ? gzipSync(tar) : c === "zstd" ? zstdCompressSync(tar) : tar;
    return { digest: sha256(bytes), bytes, mediaType: LAYER_TYPES[kind][c], diffId: sha256(tar) };
  });
  const configJson = {
    architecture: opts.architecture ?? "amd64",
    os: opts.os ?? "linux",
    ...(opts.variant ? { variant: opts.variant } : {}),
    config: opts.config ?? { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: built.map((l) => l.diffId) },
    history: [],
  };
  const configBytes = enc.encode(JSON.stringify(configJson));
  const config = { digest: sha256(configBytes), bytes: configBytes, mediaType: opts.docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json" };
  const manifestType = opts.docker ? "application/vnd.docker.distribution.manifest.v2+json" : "application/vnd.oci.image.manifest.v1+json";
  const manifestJson = {
    schemaVersion: 2,
    mediaType: manifestType,
    config: { mediaType: config.mediaType, digest: config.digest, size: configBytes.byteLength },
    layers: built.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.byteLength })),
  };
  const mbytes = enc.encode(JSON.stringify(manifestJson));
  return { manifest: { digest: sha256(mbytes), bytes: mbytes, mediaType: manifestType }, config, layers: built };
}

export async function pushImage(reg: Registry, repo: string, tag: string, img: BuiltImage): Promise<void> {
  for (const l of img.layers) await pushBlob(reg, repo, l.digest, l.bytes);
  await pushBlob(reg, repo, img.config.digest, img.config.bytes);
  await pushManifest(reg, repo, tag, img.manifest.bytes, img.manifest.mediaType);
}

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

/** Push each image by digest, then an index (OCI, or a Docker manifest list) under `tag`. */
export async function pushIndex(reg: Registry, repo: string, tag: string, entries: { image: BuiltImage; platform: PlatformSpec }[], docker = false): Promise<Blob> {
  for (const e of entries) await pushImage(reg, repo, e.image.manifest.digest, e.image);
  const mediaType = docker ? "application/vnd.docker.distribution.manifest.list.v2+json" : "application/vnd.oci.image.index.v1+json";
  const json = {
    schemaVersion: 2,
    mediaType,
    manifests: [
      ...entries.map((e) => ({ mediaType: e.image.manifest.mediaType, digest: e.image.manifest.digest, size: e.image.manifest.bytes.byteLength, platform: e.platform })),
    ],
  };
  const bytes = enc.encode(JSON.stringify(json));
  await pushManifest(reg, repo, tag, bytes, mediaType);
  return { digest: sha256(bytes), bytes, mediaType };
}

export const BUSYBOX_BIN = readFileSync(["/bin/busybox", "/usr/bin/busybox"].find((p) => Bun.file(p).size > 0) ?? "/bin/busybox");
const APPLETS = ["sh", "ls", "cat", "echo", "id", "env", "mkdir", "rm", "cp", "mv", "ln", "stat", "sleep", "true", "false", "hostname", "ps", "grep"];

/**
 * A small Debian-like distro in three layers: a gzip base (busybox + applet symlinks, /etc,
 * sticky /tmp, 0700 /root), a zstd layer (setuid binary, owned home, hardlinks, a fifo, a
 * changed file, extra files to delete later; gzip when `zstd` is false, for umoci 0.4 which
 * cannot read zstd), and a plain layer with whiteouts, an opaque
 * directory and file<->directory replacements. `devices` adds /dev nodes (root only).
 */
export function distroLayers(devices: boolean, zstd = true): LayerSpec[] {
  const t = 1_700_000_000;
  const dir = (name: string, mode = 0o755, uid = 0, gid = 0): TarSpec => ({ name, type: "dir", mode, uid, gid, mtime: t });
  const file = (name: string, body: string | Uint8Array, mode = 0o644, uid = 0, gid = 0): TarSpec => ({ name, body, mode, uid, gid, mtime: t });
  const base: TarSpec[] = [
    dir("bin/"),
    dir("etc/"),
    dir("etc/opt/"),
    dir("tmp/", 0o1777),
    dir("root/", 0o700),
    dir("usr/"),
    dir("usr/bin/"),
    dir("usr/share/"),
    dir("var/"),
    dir("var/log/"),
    dir("home/"),
    dir("dev/"),
    file("bin/busybox", BUSYBOX_BIN, 0o755),
    ...APPLETS.map((a): TarSpec => ({ name: `bin/${a}`, type: "symlink", linkname: "busybox", mtime: t })),
    { name: "usr/bin/env", type: "symlink", linkname: "/bin/busybox", mtime: t },
    file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"),
    file("etc/group", "root:x:0:\napp:x:1000:\nstaff:x:2000:app\n"),
    file("etc/hostname", "distro\n"),
    file("etc/motd", "welcome\n"),
    file("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o640, 0, 42),
    file("etc/opt/conf", "a=1\n"),
    file("var/log/old.log", "old\n"),
    file("var/log/keep.log", "keep?\n"),
    file("usr/share/data", "x".repeat(10_000)),
  ];
  const second: TarSpec[] = [
    dir("usr/share/doc/"),
    file("usr/share/doc/readme", "read me\n"),
    { name: "usr/share/doc/readme.hard", type: "link", linkname: "usr/share/doc/readme", mtime: t },
    file("usr/bin/su", BUSYBOX_BIN.subarray(0, 4096), 0o4755),
    file("usr/bin/wall", "wall", 0o2755, 0, 5),
    dir("home/app/", 0o750, 1000, 1000),
    file("home/app/.profile", "export A=1\n", 0o600, 1000, 1000),
    file("home/app/shared", "mixed owner\n", 0o664, 1000, 2000),
    { name: "var/spool/fifo", type: "fifo", mode: 0o620, mtime: t },
    file("etc/motd", "welcome, version 2\n"),
    file("etc/remove-me", "bye\n"),
    dir("srv/"),
    file("srv/data", "becomes a dir\n"),
    ...(devices ? [{ name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666, mtime: t } as TarSpec, { name: "dev/sda", type: "block", devmajor: 8, devminor: 0, mode: 0o660, gid: 6, mtime: t } as TarSpec] : []),
  ];
  const third: TarSpec[] = [
    { name: "etc/.wh.remove-me", mtime: t },
    { name: "var/log/new.log", body: "new\n", mtime: t },
    { name: "var/log/.wh..wh..opq", mtime: t },
    { name: "etc/opt", body: "a file now\n", mtime: t }, // a file replacing a directory
    dir("srv/data/"), // a directory replacing a file
    file("srv/data/inner", "inner\n"),
    { name: "bin/.wh.grep", mtime: t },
    file("usr/share/doc/readme", "read me, v3\n"), // the hardlink keeps the old contents
  ];
  return [
    { entries: base, compression: "gzip" },
    { entries: second, compression: zstd ? "zstd" : "gzip" },
    { entries: third, compression: "none" },
  ];
}

export const DISTRO_CONFIG = {
  Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
  Entrypoint: ["/bin/sh", "-c"],
  Cmd: ["echo hello"],
  WorkingDir: "/home/app",
  User: "1000:1000",
  Labels: { "org.opencontainers.image.title": "distro" },
};
