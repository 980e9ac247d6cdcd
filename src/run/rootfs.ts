// The container's root filesystem on the host side: a copy-on-write overlay over the image
// (lower, never written), a per-container upper/work/merged directory, and the mount points
// gcr needs, prepared in the upper layer BEFORE the overlay is mounted.
//
// Why prepare in upper: a hostile image may ship /proc, /etc or a volume target as a symlink
// pointing anywhere. Every path gcr mounts on is resolved here inside the image (chroot
// semantics: an absolute link target or ".." never leaves the root), and what is missing is
// created in the upper layer. A directory in upper hides a non-directory of the same name in
// lower, so after this step every mount target in the merged view is a real directory or
// file, and the kernel follows no symlink when gcr mounts on it.
import { GcrError } from "../errors.ts";
import { chmod, chown, link, lstat, lstatOrUndefined, mkdir, readlink, removeTree, writeFile, type Stat } from "../sys/fs.ts";
import { basename, dirname, join } from "../path.ts";

const MAX_LINKS = 40; // as the kernel's MAXSYMLINKS


/**
 * Resolve `path` inside `root` as if root were "/": symlinks are followed, but absolute targets
 * restart at root and ".." stops at root. Returns the resolved path relative to root (always
 * starting with "/"), and the part that does not exist yet. With followFinal false, a final
 * symlink is not followed (the caller will hide it).
 */
export function resolveInRoot(root: string, path: string, followFinal = true): { resolved: string; missing: string[] } {
  let links = 0;
  const done: string[] = [];
  let todo = path.split("/").filter((c) => c !== "" && c !== ".");
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === "..") {
      done.pop();
      continue;
    }
    const host = join(root, ...done, c);
    const st = lstatOrUndefined(host);
    if (!st) return { resolved: "/" + [...done, c, ...todo].join("/"), missing: [c, ...todo.filter((t) => t !== "..")] };
    if (st.isSymbolicLink() && (todo.length > 0 || followFinal)) {
      if (++links > MAX_LINKS) throw new GcrError(`resolve ${path} in the rootfs: too many levels of symbolic links`);
      const target = readlink(host);
      const parts = target.split("/").filter((t) => t !== "" && t !== ".");
      if (target.startsWith("/")) done.length = 0;
      todo = [...parts, ...todo];
      continue;
    }
    done.push(c);
  }
  return { resolved: "/" + done.join("/"), missing: [] };
}

/**
 * Who owns what gcr creates in the upper layer: "copy" (root, no user namespace: parent dirs
 * keep lower's owner, new entries are root's), "none" (rootless: the caller, who is the
 * container's root), or the host ids of the container's root (root with --userns=private).
 */
export type UpperOwner = "copy" | "none" | { uid: number; gid: number };

function own(path: string, owner: UpperOwner, lowerSt?: Stat): void {
  if (owner === "none") return;
  if (owner === "copy") {
    if (lowerSt) chown(path, lowerSt.uid, lowerSt.gid);
  } else chown(path, owner.uid, owner.gid);
}

/** Recreate lower's directory `rel` in upper with its mode (and owner, per `owner`), so that
 * something can be created below it without changing how the merged view shows it. */
function copyUpDir(lower: string, upper: string, rel: string[], owner: UpperOwner): void {
  const st = lstat(join(lower, ...rel));
  const up = join(upper, ...rel);
  mkdir(up);
  chmod(up, st.mode & 0o7777); // not through mkdir's mode, which the umask trims
  own(up, owner, st);
}

/**
 * Make sure `path` exists in the merged view as a directory (or a file) by creating what is
 * missing in upper. Parent directories that exist in lower are recreated in upper with
 * lower's owner and mode, so the merged view keeps them as they were.
 * Returns the in-root path to mount on (symlinks resolved).
 */
export function prepareMountPoint(lower: string, upper: string, path: string, kind: "dir" | "file", opts: { followFinal: boolean; owner: UpperOwner }): string {
  const { resolved } = resolveInRoot(lower, path, opts.followFinal);
  const parts = resolved.split("/").filter(Boolean);
  const typeOk = (st: Stat | undefined, last: boolean) =>
    st !== undefined && (last && kind === "file" ? st.isFile() : st.isDirectory());
  // The first component that lower lacks (or has with another type, e.g. a symlink).
  const first = parts.findIndex((_, i) => !typeOk(lstatOrUndefined(join(lower, ...parts.slice(0, i + 1))), i === parts.length - 1));
  if (first < 0) return resolved;
  for (let i = 0; i < parts.length; i++) {
    const up = join(upper, ...parts.slice(0, i + 1));
    if (lstatOrUndefined(up)) continue;
    const last = i === parts.length - 1;
    if (i < first) copyUpDir(lower, upper, parts.slice(0, i + 1), opts.owner);
    else {
      if (last && kind === "file") writeFile(up, "", { mode: 0o644 });
      else mkdir(up, 0o755);
      own(up, opts.owner);
    }
  }
  return resolved;
}

/**
 * Give the container its own /etc/hostname, hosts or resolv.conf: `source` (a file in the
 * container's directory) is hard-linked into the upper layer, where it hides whatever the
 * image has at that path (a file or a hostile symlink). Because it is the same inode, gcr can
 * still rewrite `source` until the container starts (the bridge adds the container's address
 * to hosts). The parent directory is resolved inside the image and recreated in upper with
 * lower's mode. No bind mount is needed, so nothing on the host side has to be reachable by
 * the container's user (root with --userns=private, rootless).
 */
export function linkIntoUpper(lower: string, upper: string, path: string, source: string, opts: { owner: UpperOwner }): string {
  const parent = prepareMountPoint(lower, upper, dirname(path), "dir", { followFinal: true, owner: opts.owner });
  const parts = parent.split("/").filter(Boolean);
  for (let i = 0; i < parts.length; i++) if (!lstatOrUndefined(join(upper, ...parts.slice(0, i + 1)))) copyUpDir(lower, upper, parts.slice(0, i + 1), opts.owner);
  const file = join(upper, ...parts, basename(path));
  removeTree(file);
  link(source, file);
  own(file, opts.owner);
  return (parent === "/" ? "" : parent) + "/" + basename(path);
}

/** overlayfs mount data. The option parser splits on "," and ":" so those are refused. */
export function overlayData(lower: string, upper: string, work: string, rootless: boolean): string {
  for (const p of [lower, upper, work]) {
    if (/[,:\\]/.test(p)) throw new GcrError(`the path ${p} contains ',', ':' or '\\', which overlayfs cannot take; move the rootfs`);
  }
  // userxattr: in a user namespace overlayfs keeps its metadata in user.* xattrs (Linux 5.11+).
  return `lowerdir=${lower},upperdir=${upper},workdir=${work}${rootless ? ",userxattr" : ""}`;
}
