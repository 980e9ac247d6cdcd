// gcr run as an unprivileged user (nobody, via setpriv, no sudo): a user namespace maps the
// container's root to the caller; the rest of the isolation holds as for root.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gcr, isRoot, skipReason, treeSnapshot, type Result } from "../helpers/gcr.ts";
import { entries, fixture, type Fixture } from "../helpers/probe.ts";

setDefaultTimeout(60_000);

const NOBODY = { uid: 65534, gid: 65534 };
let fx: Fixture;
let env: Record<string, string>;

describe.if(skipReason(isRoot, "rootless tests switch to nobody with setpriv, which needs root"))("rootless (as nobody)", () => {
  beforeAll(() => {
    fx = fixture("rootless");
    // State and store dirs nobody can write; the rootfs stays root-owned and world-readable.
    const home = join(fx.base, "nobody");
    mkdirSync(home);
    chownSync(home, NOBODY.uid, NOBODY.gid);
    env = { GCR_ROOT: join(home, "root"), GCR_RUNROOT: join(home, "run"), HOME: home };
  });
  afterAll(() => fx.cleanup());

  const run = (args: string[]): Promise<Result> => gcr(["run", ...args], { env, asUser: NOBODY });

  test("/dev: the host's devices bind-mounted (a user namespace may not mknod), and they work", async () => {
    const r = await run([fx.rootfs, "sh", "-c", "stat -c '%F %t:%T' /dev/null /dev/urandom; echo x > /dev/null && head -c 2 /dev/urandom | wc -c; grep -c ' /dev/null ' /proc/self/mountinfo"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("character special file 1:3\ncharacter special file 1:9\n2\n1\n");
  });

  test("user: container root is the caller outside (uid_map 0 65534 1, setgroups deny)", async () => {
    const r = await run([fx.rootfs, "sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups"]);
    // The first rootless run in a state dir may say once that rootless networking falls back
    // to none (/dev/net/tun is 0600 on this VM); nothing else may be printed.
    expect(r.stderr.replace(/^gcr: warning: rootless networking .*\n/, "")).toBe("");
    expect(r.code).toBe(0);
    const [uid, uidMap, gidMap, setgroups] = r.stdout.trim().split("\n");
    expect(uid).toBe("0");
    expect(uidMap!.trim().split(/\s+/)).toEqual(["0", "65534", "1"]);
    expect(gidMap!.trim().split(/\s+/)).toEqual(["0", "65534", "1"]);
    expect(setgroups).toBe("deny");
  });

  test("pid, uts and the security defaults hold without root", async () => {
    const r = await run(["--hostname", "rl", fx.rootfs, "sh", "-c", "ps -o pid | tail -n +2 | tr -d ' ' | tr '\\n' ' '; echo; hostname; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"]);
    expect(r.code).toBe(0);
    const [pids, host, ...status] = r.stdout.trim().split("\n");
    expect(pids!.trim().split(" ")[0]).toBe("1");
    expect(host).toBe("rl");
    expect(status).toEqual(["CapEff:\t00000000a80425fb", "NoNewPrivs:\t1", "Seccomp:\t2"]);
  });

  // The image belongs to host root, unmapped here: overlayfs cannot copy such a directory up
  // (EOVERFLOW), so the writable places are volumes and --tmpfs mounts.
  test("writes land in the container's layer, never in the image; a volume is written as the caller", async () => {
    const before = treeSnapshot(fx.rootfs);
    const vol = join(fx.base, "nobody", "vol");
    mkdirSync(vol);
    chownSync(vol, NOBODY.uid, NOBODY.gid);
    const r = await run(["-v", `${vol}:/data`, "--tmpfs", "/scratch", fx.rootfs, "sh", "-c", "echo x > /scratch/new && echo y > /data/f && exit 3"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 3, stderr: "" });
    expect(treeSnapshot(fx.rootfs)).toBe(before);
    expect(readFileSync(join(vol, "f"), "utf8")).toBe("y\n");
    expect(statSync(join(vol, "f")).uid).toBe(NOBODY.uid);
  });

  test("with an /etc/subuid range and newuidmap, the container gets 65536 ids", async () => {
    const newuidmap = ["/usr/bin/newuidmap", "/bin/newuidmap"].some((p) => existsSync(p));
    if (!newuidmap) {
      console.log("skip: newuidmap is not installed (apt-get install uidmap)");
      return;
    }
    // A range for nobody, for this test only: the host files are put back as they were.
    const saved = ["/etc/subuid", "/etc/subgid"].map((f) => [f, existsSync(f) ? readFileSync(f, "utf8") : undefined] as const);
    try {
      for (const [f, text] of saved) writeFileSync(f, `${text ?? ""}nobody:300000:65536\n`);
      // (A tmpfs: the fixture rootfs is owned by host root, which this namespace does not map.)
      const r = await run(["--tmpfs", "/scratch", fx.rootfs, "sh", "-c", "cat /proc/self/uid_map; echo x > /scratch/f; chown 1000:1000 /scratch/f && stat -c %u /scratch/f"]);
      expect(r.stderr.replace(/^gcr: warning: rootless networking .*\n/, "")).toBe("");
      const lines = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" "));
      expect(lines).toEqual(["0 65534 1", "1 300000 65536", "1000"]);
    } finally {
      for (const [f, text] of saved) {
        if (text === undefined) rmSync(f, { force: true });
        else writeFileSync(f, text);
      }
    }
  });

  test("a user the namespace does not map (-u 1000 with one id) is a clear error, exit 125, nothing started", async () => {
    const r = await run(["--network", "none", "-u", "1000", fx.rootfs, "id"]);
    expect(r.code).toBe(125);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("gcr: user 1000:");
    expect(r.stderr).toContain("does not exist in this container's user namespace, which maps only ids 0");
    expect(r.stderr).toContain("hint: run as -u 0, or give your user a range in /etc/subuid");
    expect(entries(join(env.GCR_RUNROOT!, "containers"))).toEqual([]);
  });

  test("run -d, exec and rm work rootless (exec joins the user namespace first; setgroups stays denied)", async () => {
    const g = (args: string[]) => gcr(args, { env, asUser: NOBODY });
    const d = await g(["run", "-d", "--network", "none", fx.rootfs, "sleep", "1000"]);
    expect(d.code).toBe(0);
    const id = d.stdout.trim();
    const e = await g(["exec", id, "sh", "-c", "id -u; cat /proc/1/cmdline | tr '\\0' ' '; cat /proc/self/setgroups"]);
    expect({ code: e.code, out: e.stdout, err: e.stderr }).toEqual({ code: 0, out: "0\nsleep 1000 deny\n", err: "" });
    expect((await g(["rm", "-f", id])).code).toBe(0);
    expect(entries(join(env.GCR_RUNROOT!, "containers"))).toEqual([]);
  });

  test("no container directory is left behind", async () => {
    expect((await run([fx.rootfs, "true"])).code).toBe(0);
    expect(entries(join(env.GCR_RUNROOT!, "containers"))).toEqual([]);
  });
});
