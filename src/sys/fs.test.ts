// sys/fs.ts against the real kernel, checked with node:fs as the oracle.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import * as nodefs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SyscallError } from "../errors.ts";
import * as fs from "./fs.ts";

let dir: string;
beforeEach(() => {
  dir = nodefs.mkdtempSync(join(tmpdir(), "gcr-fs-"));
});
afterEach(() => {
  nodefs.rmSync(dir, { recursive: true, force: true });
});

describe("sys/fs", () => {
  test("writeFile / readText / readFile: create, truncate, exclusive, append, mode", () => {
    const f = join(dir, "a");
    fs.writeFile(f, "hello\n", { mode: 0o640 });
    expect(nodefs.readFileSync(f, "utf8")).toBe("hello\n");
    expect(nodefs.statSync(f).mode & 0o777).toBe(0o640 & ~process.umask());
    fs.writeFile(f, "x");
    expect(fs.readText(f)).toBe("x");
    fs.writeFile(f, "yz", { flag: "a" });
    expect(fs.readText(f)).toBe("xyz");
    expect(() => fs.writeFile(f, "no", { flag: "wx" })).toThrow(/open .*\/a: EEXIST/);
    // Bigger than the first read buffer, and binary.
    const big = new Uint8Array(300_000).map((_, i) => i % 251);
    fs.writeFile(f, big);
    expect(Buffer.from(fs.readFile(f)).equals(Buffer.from(big))).toBe(true);
  });

  test("errors are SyscallError with the call, the path and node's code", () => {
    const missing = join(dir, "nope", "x");
    let err: unknown;
    try {
      fs.readText(missing);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe("ENOENT");
    expect((err as SyscallError).message).toBe(`open ${missing}: ENOENT (No such file or directory)`);
    expect(fs.readTextOrUndefined(missing)).toBeUndefined();
    expect(fs.statOrUndefined(missing)).toBeUndefined();
    expect(fs.exists(missing)).toBe(false);
  });

  test("stat and lstat agree with node's", () => {
    const f = join(dir, "f");
    nodefs.writeFileSync(f, "12345");
    nodefs.symlinkSync("f", join(dir, "l"));
    const s = fs.stat(join(dir, "l"));
    const n = nodefs.statSync(f, { bigint: true });
    expect([s.mode, s.uid, s.gid, s.size, s.nlink, s.ino, s.dev]).toEqual([Number(n.mode), Number(n.uid), Number(n.gid), 5, 1, Number(n.ino), Number(n.dev)]);
    expect(Math.abs(s.mtimeMs - Number(n.mtimeMs))).toBeLessThan(1);
    expect(s.isFile() && !s.isDirectory() && !s.isSymbolicLink()).toBe(true);
    expect(fs.lstat(join(dir, "l")).isSymbolicLink()).toBe(true);
    expect(fs.stat(dir).isDirectory()).toBe(true);
    // Times before 1970 are negative.
    expect(Bun.spawnSync(["touch", "-m", "-d", "@-86400", f]).exitCode).toBe(0);
    expect(fs.stat(f).mtimeMs).toBe(-86400_000);
  });

  test("mkdir, mkdirp, readdir, rename, link, symlink, readlink, chmod, unlink, rmdir", () => {
    fs.mkdirp(join(dir, "a/b/c"), 0o750);
    fs.mkdirp(join(dir, "a/b/c"));
    expect(() => fs.mkdir(join(dir, "a"))).toThrow(/mkdir .*: EEXIST/);
    fs.writeFile(join(dir, "a/file"), "x");
    expect(() => fs.mkdirp(join(dir, "a/file/d"))).toThrow(/ENOTDIR/);
    for (let i = 0; i < 600; i++) fs.writeFile(join(dir, `a/b/n${i}`), ""); // more than one getdents64 batch
    expect(fs.readdir(join(dir, "a/b")).sort()).toEqual(nodefs.readdirSync(join(dir, "a/b")).sort());
    fs.rename(join(dir, "a/file"), join(dir, "a/moved"));
    fs.link(join(dir, "a/moved"), join(dir, "a/hard"));
    expect(fs.stat(join(dir, "a/hard")).nlink).toBe(2);
    fs.symlink("../elsewhere", join(dir, "a/sym"));
    expect(fs.readlink(join(dir, "a/sym"))).toBe("../elsewhere");
    fs.chmod(join(dir, "a/moved"), 0o604);
    expect(nodefs.statSync(join(dir, "a/moved")).mode & 0o777).toBe(0o604);
    fs.unlink(join(dir, "a/hard"));
    fs.unlinkIfExists(join(dir, "a/hard"));
    fs.rmdir(join(dir, "a/b/c"));
    expect(nodefs.existsSync(join(dir, "a/b/c"))).toBe(false);
  });

  test("removeTree: never follows symlinks, enters mode-000 and read-only directories, tolerates a missing path", () => {
    const outside = join(dir, "outside");
    nodefs.mkdirSync(outside);
    nodefs.writeFileSync(join(outside, "keep"), "k");
    const t = join(dir, "tree");
    nodefs.mkdirSync(join(t, "work/work"), { recursive: true });
    nodefs.mkdirSync(join(t, "ro/sub"), { recursive: true });
    nodefs.writeFileSync(join(t, "ro/sub/f"), "f");
    nodefs.symlinkSync(outside, join(t, "link-to-outside"));
    nodefs.symlinkSync(outside, join(t, "ro/link"));
    nodefs.chmodSync(join(t, "work/work"), 0);
    nodefs.chmodSync(join(t, "ro/sub"), 0o500);
    nodefs.chmodSync(join(t, "ro"), 0o500);
    fs.removeTree(t);
    expect(nodefs.existsSync(t)).toBe(false);
    expect(nodefs.readFileSync(join(outside, "keep"), "utf8")).toBe("k");
    fs.removeTree(t);
    fs.writeFile(join(dir, "plain"), "p");
    fs.removeTree(join(dir, "plain"));
    expect(nodefs.existsSync(join(dir, "plain"))).toBe(false);
  });

  test("open / write / read / close on a descriptor, including a subarray's offset", () => {
    const f = join(dir, "fd");
    const fd = fs.open(f, fs.O.WRONLY | fs.O.CREAT | fs.O.TRUNC, 0o600);
    const bytes = new TextEncoder().encode("0123456789");
    fs.write(fd, bytes.subarray(4, 7));
    fs.close(fd);
    expect(nodefs.readFileSync(f, "utf8")).toBe("456");
    const rfd = fs.open(f, fs.O.RDONLY);
    const buf = new Uint8Array(10);
    expect(fs.read(rfd, buf.subarray(2))).toBe(3);
    fs.close(rfd);
    expect(new TextDecoder().decode(buf.subarray(2, 5))).toBe("456");
  });
});
