// Small filesystem helpers shared by run and img2rootfs.
import { chmodSync, lstatSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

/**
 * rm -rf that also removes directories the owner cannot enter: overlayfs leaves its
 * workdir/work as mode 000, and an image may ship such directories too. Never follows
 * symlinks (rmSync and lstat do not).
 */
export function removeTree(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EACCES" && code !== "EPERM") throw e;
  }
  makeWritable(path);
  rmSync(path, { recursive: true, force: true });
}

function makeWritable(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  if ((st.mode & 0o700) !== 0o700) chmodSync(path, (st.mode & 0o7777) | 0o700);
  for (const name of readdirSync(path)) makeWritable(join(path, name));
}

/** A text file's contents, or undefined when it cannot be read (missing, no permission). */
export function readTextOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
