// In-root path resolution and mount-point preparation against hostile trees on a temp dir.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { linkIntoUpper, overlayData, prepareMountPoint, resolveInRoot } from "./rootfs.ts";

const base = mkdtempSync(join(tmpdir(), "gcr-rootfs-unit-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

function tree(name: string): string {
  const root = join(base, name);
  mkdirSync(join(root, "etc"), { recursive: true });
  mkdirSync(join(root, "usr/lib"), { recursive: true });
  writeFileSync(join(root, "etc/passwd"), "root\n");
  return root;
}

describe("resolveInRoot", () => {
  const root = tree("resolve");
  symlinkSync("/etc", join(root, "abs"));
  symlinkSync("../../../../..", join(root, "usr/lib/up"));
  symlinkSync("/../../etc/passwd", join(root, "pw"));
  symlinkSync("loop2", join(root, "loop1"));
  symlinkSync("loop1", join(root, "loop2"));

  test("an absolute link restarts at the root, not the host's /", () => {
    expect(resolveInRoot(root, "/abs/passwd")).toEqual({ resolved: "/etc/passwd", missing: [] });
  });
  test("'..' chains stop at the root", () => {
    expect(resolveInRoot(root, "/../../../etc")).toEqual({ resolved: "/etc", missing: [] });
    expect(resolveInRoot(root, "/usr/lib/up/etc/passwd").resolved).toBe("/etc/passwd");
    expect(resolveInRoot(root, "/pw").resolved).toBe("/etc/passwd");
  });
  test("missing components are reported; a final link is kept when asked", () => {
    expect(resolveInRoot(root, "/abs/new/dir")).toEqual({ resolved: "/etc/new/dir", missing: ["new", "dir"] });
    expect(resolveInRoot(root, "/abs", false).resolved).toBe("/abs");
  });
  test("a link loop is an error", () => {
    expect(() => resolveInRoot(root, "/loop1/x")).toThrow(/too many levels of symbolic links/);
  });
});

describe("prepareMountPoint", () => {
  test("a hostile /proc -> /etc symlink is hidden by a directory in upper; nothing is created outside", () => {
    const lower = tree("hostile-lower");
    const upper = join(base, "hostile-upper");
    mkdirSync(upper);
    symlinkSync("/etc", join(lower, "proc"));
    const outsider = join(base, "outside");
    mkdirSync(outsider);
    symlinkSync(outsider, join(lower, "data"));
    const etcBefore = readdirSync("/etc").length;
    expect(prepareMountPoint(lower, upper, "/proc", "dir", { followFinal: false, owner: "none" })).toBe("/proc");
    expect(lstatSync(join(upper, "proc")).isDirectory()).toBe(true);
    // A volume target through an absolute link to a host path stays inside the root.
    const target = prepareMountPoint(lower, upper, "/data/vol", "dir", { followFinal: true, owner: "none" });
    expect(target).toBe(`${outsider}/vol`);
    expect(lstatSync(join(upper, outsider, "vol")).isDirectory()).toBe(true);
    expect(readdirSync(outsider)).toEqual([]);
    expect(readdirSync("/etc").length).toBe(etcBefore);
    expect(existsSync(join(lower, "etc", "proc"))).toBe(false);
  });

  test("an existing directory or file in lower needs nothing in upper", () => {
    const lower = tree("plain-lower");
    const upper = join(base, "plain-upper");
    mkdirSync(upper);
    expect(prepareMountPoint(lower, upper, "/etc", "dir", { followFinal: true, owner: "none" })).toBe("/etc");
    expect(prepareMountPoint(lower, upper, "/etc/passwd", "file", { followFinal: false, owner: "none" })).toBe("/etc/passwd");
    expect(readdirSync(upper)).toEqual([]);
    prepareMountPoint(lower, upper, "/etc/hosts", "file", { followFinal: false, owner: "none" });
    expect(lstatSync(join(upper, "etc/hosts")).isFile()).toBe(true);
  });

  test("overlayData refuses separators overlayfs would split on", () => {
    expect(overlayData("/a", "/b", "/c", true)).toBe("lowerdir=/a,upperdir=/b,workdir=/c,userxattr");
    expect(() => overlayData("/a,b", "/b", "/c", false)).toThrow(/overlayfs/);
  });
});

describe("linkIntoUpper", () => {
  test("hides a hostile symlink in the image with the container's own file, nothing outside changes", () => {
    const base = mkdtempSync(join(tmpdir(), "gcr-wiu-"));
    const lower = join(base, "lower");
    const upper = join(base, "upper");
    const victim = join(base, "victim");
    mkdirSync(join(lower, "etc"), { recursive: true });
    mkdirSync(upper);
    writeFileSync(victim, "host file\n");
    symlinkSync(victim, join(lower, "etc", "hosts"));
    const source = join(base, "hosts");
    writeFileSync(source, "127.0.0.1 localhost\n");
    expect(linkIntoUpper(lower, upper, "/etc/hosts", source, { owner: "none" })).toBe("/etc/hosts");
    expect(readFileSync(join(upper, "etc", "hosts"), "utf8")).toBe("127.0.0.1 localhost\n");
    // Rewriting the source in place (as the bridge does with the container's address) shows through.
    writeFileSync(source, "10.88.0.2 box\n");
    expect(readFileSync(join(upper, "etc", "hosts"), "utf8")).toBe("10.88.0.2 box\n");
    expect(lstatSync(join(upper, "etc", "hosts")).isFile()).toBe(true);
    expect(readFileSync(victim, "utf8")).toBe("host file\n");
    rmSync(base, { recursive: true, force: true });
  });
});
