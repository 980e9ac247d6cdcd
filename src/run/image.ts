// IMAGE|ROOTFS -> a root filesystem and its config. The order: a path (contains "/" or
// starts with "."), a name in the image store, a directory under ./rootfs (the seed's
// layout: `gcr run ubuntu` uses rootfs/ubuntu), the built-in "demo" image.
import { GcrError } from "../errors.ts";
import { debug } from "../log.ts";
import type { ImageConfig } from "../oci.ts";
import { dataDir } from "../paths.ts";
import { ensureStore, findImage } from "../store.ts";
import { resolveInRoot } from "./rootfs.ts";
import { chmod, exists, mkdirp, readFile, readText, removeTree, rename, stat, symlink, writeFile } from "../sys/fs.ts";
import { join, resolve } from "../path.ts";

export interface ResolvedImage {
  /** What the user typed. */
  ref: string;
  rootfs: string;
  config: ImageConfig;
}

export const DEMO_IMAGE = "demo";

export function resolveImage(ref: string, cwd = process.cwd()): ResolvedImage {
  if (ref.includes("/") || ref.startsWith(".")) {
    const rootfs = resolve(cwd, ref);
    if (!isDir(rootfs)) throw new GcrError(`rootfs ${rootfs}: not a directory`);
    return { ref, rootfs, config: {} };
  }
  const stored = findImage(ref);
  if (stored) return { ref, rootfs: stored.rootfs, config: stored.config };
  const seed = join(cwd, "rootfs", ref);
  if (isDir(seed)) return { ref, rootfs: seed, config: {} };
  if (ref === DEMO_IMAGE) return { ref, rootfs: demoRootfs(), config: { Cmd: ["sh"], Env: ["PATH=/bin"] } };
  throw new GcrError(`image '${ref}' not found: not in the image store (gcr images), not a directory under ./rootfs, not a path`, {
    hint: `pull it first: gcr pull ${ref} ${ref}`,
  });
}

function isDir(p: string): boolean {
  try {
    return stat(p).isDirectory();
  } catch {
    return false;
  }
}

const BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"];

/** The built-in demo image: the host's static busybox and a link per applet, built once. */
export function demoRootfs(): string {
  const dir = join(dataDir(), "demo", "rootfs");
  if (exists(join(dir, "bin", "sh"))) return dir;
  // Inside the store, which is closed to other users (setuid files in images, CVE-2021-41091).
  ensureStore();
  const busybox = BUSYBOX_CANDIDATES.find((p) => exists(p) && isStatic(p));
  if (!busybox) throw new GcrError("the demo image needs a static busybox on the host", { hint: "apt-get install busybox-static" });
  const tmp = `${dir}.tmp-${process.pid}`;
  removeTree(tmp);
  for (const d of ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "home"]) mkdirp(join(tmp, d));
  writeFile(join(tmp, "bin", "busybox"), readFile(busybox), { mode: 0o755 });
  const list = Bun.spawnSync([join(tmp, "bin", "busybox"), "--list"]).stdout.toString().split("\n").filter(Boolean);
  for (const applet of list) if (applet !== "busybox") symlink("busybox", join(tmp, "bin", applet));
  writeFile(join(tmp, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n");
  writeFile(join(tmp, "etc", "group"), "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n");
  chmod(join(tmp, "tmp"), 0o1777);
  mkdirp(join(dir, ".."));
  rename(tmp, dir);
  debug("run", `built the demo rootfs from ${busybox} at ${dir}`);
  return dir;
}

function isStatic(p: string): boolean {
  // A dynamic binary has a PT_INTERP header naming its loader.
  const head = Buffer.from(readFile(p).subarray(0, 4096));
  return !head.includes("/lib64/ld-linux") && !head.includes("/lib/ld-linux");
}

/** Read a file of the image (e.g. /etc/passwd) with symlinks resolved inside the rootfs. */
export function readImageFile(rootfs: string, path: string): string | undefined {
  const { resolved, missing } = resolveInRoot(rootfs, path);
  if (missing.length > 0) return undefined;
  try {
    return readText(join(rootfs, resolved));
  } catch {
    return undefined;
  }
}

export interface UserSpec {
  uid: number;
  gid: number;
  home?: string;
  additionalGids: number[];
}

/** docker's -u: "", NAME, UID, NAME:GROUP, UID:GID; names from the image's /etc/passwd and /etc/group. */
export function resolveUser(rootfs: string, spec: string | undefined): UserSpec {
  const [userPart = "", groupPart] = (spec ?? "").split(":");
  const passwd = parseDb(readImageFile(rootfs, "/etc/passwd"));
  const groups = parseDb(readImageFile(rootfs, "/etc/group"));
  let uid = 0;
  let gid: number | undefined;
  let home: string | undefined;
  let name: string | undefined;
  if (userPart === "" || /^\d+$/.test(userPart)) {
    uid = userPart === "" ? 0 : Number(userPart);
    const row = passwd.find((r) => Number(r[2]) === uid);
    if (row) {
      gid = Number(row[3]);
      home = row[5];
      name = row[0];
    }
  } else {
    const row = passwd.find((r) => r[0] === userPart);
    if (!row) throw new GcrError(`unable to find user ${userPart}: no matching entries in the image's /etc/passwd`);
    uid = Number(row[2]);
    gid = Number(row[3]);
    home = row[5];
    name = row[0];
  }
  if (groupPart !== undefined && groupPart !== "") {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const row = groups.find((r) => r[0] === groupPart);
      if (!row) throw new GcrError(`unable to find group ${groupPart}: no matching entries in the image's /etc/group`);
      gid = Number(row[2]);
    }
  }
  if (uid > 0xfffffffe || (gid ?? 0) > 0xfffffffe) throw new GcrError(`invalid user ${spec}`);
  const additionalGids = name
    ? groups.filter((r) => (r[3] ?? "").split(",").includes(name!)).map((r) => Number(r[2])).filter((g) => g !== gid)
    : [];
  return { uid, gid: gid ?? 0, home, additionalGids };
}

function parseDb(text: string | undefined): string[][] {
  if (!text) return [];
  return text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(":"));
}
