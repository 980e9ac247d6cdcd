// The v2 path against a fake cgroupfs that behaves like the kernel where it matters: a new
// cgroup offers what its parent enables in cgroup.subtree_control, and enabling a controller
// in a cgroup that holds processes fails with EBUSY ("no internal processes").
import { describe, expect, test } from "bun:test";
import { dirname } from "node:path";
import { SyscallError } from "../../errors.ts";
import { detectLayout } from "./layout.ts";
import { limitWrites } from "./limits.ts";
import { Cgroup, removeLeaf, type CgroupFs } from "./manager.ts";
import { parseLimits } from "./options.ts";
import { cgroupMounts, delegationRoot, placeContainer } from "./resource.ts";

const ENOENT = 2;
const EBUSY = 16;
const ENOTEMPTY = 39;

class FakeCgroupFs implements CgroupFs {
  files = new Map<string, string>();
  dirs = new Set<string>();
  log: string[] = [];
  /** Paths the current user may write (undefined: all). */
  writableBy?: Set<string>;
  constructor(root: string, controllers: string[], private v2 = true) {
    this.dirs.add(root);
    this.files.set(`${root}/cgroup.controllers`, controllers.join(" "));
    this.files.set(`${root}/cgroup.subtree_control`, "");
    this.files.set(`${root}/cgroup.procs`, "");
  }
  mkdir(p: string): boolean {
    if (this.dirs.has(p)) return false;
    if (!this.dirs.has(dirname(p))) throw new SyscallError("mkdir", ENOENT, p);
    this.dirs.add(p);
    this.log.push(`mkdir ${p}`);
    if (this.v2) {
      this.files.set(`${p}/cgroup.subtree_control`, "");
      this.files.set(`${p}/cgroup.kill`, "");
      this.files.set(`${p}/memory.swap.max`, "max"); // swap accounting on
    }
    this.files.set(`${p}/cgroup.procs`, "");
    return true;
  }
  rmdir(p: string): void {
    if (!this.dirs.has(p)) throw new SyscallError("rmdir", ENOENT, p);
    if ([...this.dirs].some((d) => d.startsWith(`${p}/`))) throw new SyscallError("rmdir", ENOTEMPTY, p);
    if (this.files.get(`${p}/cgroup.procs`)) throw new SyscallError("rmdir", EBUSY, p);
    this.dirs.delete(p);
    for (const f of [...this.files.keys()]) if (dirname(f) === p) this.files.delete(f);
    this.log.push(`rmdir ${p}`);
  }
  write(p: string, v: string): void {
    const dir = dirname(p);
    if (!this.dirs.has(dir)) throw new SyscallError("write", ENOENT, p);
    this.log.push(`write ${p} ${v}`);
    if (p.endsWith("/cgroup.subtree_control")) {
      if (this.files.get(`${dir}/cgroup.procs`)) throw new SyscallError("write", EBUSY, p);
      const c = v.replace(/^\+/, "");
      if (!(this.read(`${dir}/cgroup.controllers`) ?? "").split(" ").includes(c)) throw new SyscallError("write", ENOENT, p);
      this.files.set(p, [this.files.get(p), c].filter(Boolean).join(" "));
    } else if (p.endsWith("/cgroup.kill")) {
      this.files.set(`${dir}/cgroup.procs`, "");
    } else this.files.set(p, v);
  }
  read(p: string) {
    // As in the kernel, a child's cgroup.controllers is whatever its parent enables right now.
    const dir = dirname(p);
    if (this.v2 && p.endsWith("/cgroup.controllers") && this.dirs.has(dir) && this.dirs.has(dirname(dir)))
      return this.files.get(`${dirname(dir)}/cgroup.subtree_control`);
    return this.files.get(p);
  }
  exists(p: string) {
    return this.dirs.has(p) || this.files.has(p);
  }
  writable(p: string) {
    return this.exists(p) && (this.writableBy === undefined || this.writableBy.has(p));
  }
}

const ID = "c0ffee";
const V2_MOUNTINFO = "25 1 0:22 / /cg rw - cgroup2 cgroup2 rw\n";

describe("cgroup v2 (fake cgroupfs)", () => {
  test("root: controllers enabled top-down before the leaf exists, then limits, then the pid", () => {
    const fs = new FakeCgroupFs("/cg", ["cpu", "cpuset", "io", "memory", "pids"]);
    const layout = detectLayout(V2_MOUNTINFO, "0::/user.slice/session-1.scope\n", () => ["cpu", "cpuset", "io", "memory", "pids"]);
    const limits = parseLimits({ memory: "32m", cpus: "0.5", pidsLimit: "-1" }, 2);
    const placed = placeContainer(layout, limits, ID, false, fs);
    if ("error" in placed) throw new Error(placed.error);
    expect(placed.placements.map((p) => p.leaf)).toEqual([`/cg/gcr/${ID}`]);
    const cg = new Cgroup(placed.placements, new Set(["memory", "cpu", "pids"]), fs);
    cg.create();
    cg.apply(limitWrites(limits, () => 2));
    cg.join(4242);
    expect(fs.log).toEqual([
      "mkdir /cg/gcr",
      "write /cg/cgroup.subtree_control +cpu",
      "write /cg/cgroup.subtree_control +cpuset",
      "write /cg/cgroup.subtree_control +memory",
      "write /cg/cgroup.subtree_control +pids",
      "write /cg/gcr/cgroup.subtree_control +cpu",
      "write /cg/gcr/cgroup.subtree_control +cpuset",
      "write /cg/gcr/cgroup.subtree_control +memory",
      "write /cg/gcr/cgroup.subtree_control +pids",
      `mkdir /cg/gcr/${ID}`,
      `write /cg/gcr/${ID}/memory.max 33554432`,
      `write /cg/gcr/${ID}/memory.swap.max 33554432`,
      `write /cg/gcr/${ID}/cpu.max 50000 100000`,
      `write /cg/gcr/${ID}/pids.max max`,
      `write /cg/gcr/${ID}/cgroup.procs 4242`,
    ]);
    expect(fs.read(`/cg/gcr/${ID}/cgroup.controllers`)).toBe("cpu cpuset memory pids");
    expect(cgroupMounts(layout, placed.placements)).toEqual([{ fstype: "cgroup2", data: "", path: "/sys/fs/cgroup" }]);
    // OOM kills come from memory.events.
    fs.files.set(`/cg/gcr/${ID}/memory.events`, "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
    expect(cg.oomKills()).toBe(1);
    // Removal kills through cgroup.kill, then rmdirs the leaf; the shared parent stays.
    cg.remove();
    expect(fs.log.slice(-2)).toEqual([`write /cg/gcr/${ID}/cgroup.kill 1`, `rmdir /cg/gcr/${ID}`]);
    expect(fs.dirs.has("/cg/gcr")).toBe(true);
  });

  test("a controller refused at some level fails only when a limit needs it", () => {
    const fs = new FakeCgroupFs("/cg", ["memory", "pids"]);
    const layout = detectLayout(V2_MOUNTINFO, "0::/\n", () => ["memory", "pids"]);
    const placed = placeContainer(layout, parseLimits({}, 2), ID, false, fs);
    if ("error" in placed) throw new Error(placed.error);
    fs.mkdir("/cg/gcr");
    fs.files.set("/cg/gcr/cgroup.procs", "77"); // someone put a process in gcr's parent
    new Cgroup(placed.placements, new Set(), fs).create(); // no limits: goes on without controllers
    expect(fs.dirs.has(`/cg/gcr/${ID}`)).toBe(true);
    const fs2 = new FakeCgroupFs("/cg", ["memory", "pids"]);
    fs2.mkdir("/cg/gcr");
    fs2.files.set("/cg/gcr/cgroup.procs", "77");
    expect(() => new Cgroup(placed.placements, new Set(["pids"]), fs2).create()).toThrow("enable the pids controller in /cg/gcr");
  });

  test("rootless: the topmost writable ancestor is the delegated subtree", () => {
    const fs = new FakeCgroupFs("/cg", ["cpu", "memory", "pids"]);
    const u = "/cg/user.slice/user-1000.slice/user@1000.service";
    for (const d of ["/cg/user.slice", "/cg/user.slice/user-1000.slice", u, `${u}/app.slice`, `${u}/app.slice/term.scope`]) fs.mkdir(d);
    fs.writableBy = new Set([u, `${u}/cgroup.procs`, `${u}/app.slice`, `${u}/app.slice/cgroup.procs`, `${u}/app.slice/term.scope`, `${u}/app.slice/term.scope/cgroup.procs`]);
    const layout = detectLayout(V2_MOUNTINFO, "0::/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope\n", () => ["cpu", "memory", "pids"]);
    expect(delegationRoot(layout.hierarchies[0]!, fs)).toBe("/user.slice/user-1000.slice/user@1000.service");
    const placed = placeContainer(layout, parseLimits({}, 2), ID, true, fs);
    if ("error" in placed) throw new Error(placed.error);
    expect(placed.placements[0]).toMatchObject({ parents: [`${u}/gcr`], enableAt: [u, `${u}/gcr`], leaf: `${u}/gcr/${ID}` });
    // An absolute --cgroup-parent outside the delegated subtree is refused.
    expect(placeContainer(layout, parseLimits({ parent: "/system.slice" }, 2), ID, true, fs)).toHaveProperty("error");
    // A relative one goes under it.
    const rel = placeContainer(layout, parseLimits({ parent: "mine/sub" }, 2), ID, true, fs);
    expect("placements" in rel && rel.placements[0]!.leaf).toBe(`${u}/mine/sub/${ID}`);
  });

  test("rootless without any writable cgroup: an error with a hint, never a silent no-op", () => {
    const fs = new FakeCgroupFs("/cg", []);
    fs.writableBy = new Set();
    const layout = detectLayout(V2_MOUNTINFO, "0::/\n", () => []);
    const r = placeContainer(layout, parseLimits({ memory: "32m" }, 2), ID, true, fs);
    expect(r).toMatchObject({ error: expect.stringContaining("no cgroup is writable"), hint: expect.stringContaining("Delegate=yes") });
  });
});

describe("cgroup v1 (fake cgroupfs)", () => {
  test("cpuset: new cgroups get the parent's cpus and mems before any task joins", () => {
    const fs = new FakeCgroupFs("/v1/cpuset", [], false);
    fs.files.set("/v1/cpuset/cpuset.cpus", "0-3");
    fs.files.set("/v1/cpuset/cpuset.mems", "0");
    const layout = detectLayout("33 30 0:30 / /v1/cpuset rw - cgroup cgroup rw,cpuset\n", "3:cpuset:/\n", () => []);
    const limits = parseLimits({ cpusetCpus: "1" }, 4);
    const placed = placeContainer(layout, limits, ID, false, fs);
    if ("error" in placed) throw new Error(placed.error);
    const cg = new Cgroup(placed.placements, new Set(["cpuset"]), fs);
    cg.create();
    cg.apply(limitWrites(limits, () => 1));
    expect(fs.log).toEqual([
      "mkdir /v1/cpuset/gcr",
      "write /v1/cpuset/gcr/cpuset.cpus 0-3",
      "write /v1/cpuset/gcr/cpuset.mems 0",
      `mkdir /v1/cpuset/gcr/${ID}`,
      `write /v1/cpuset/gcr/${ID}/cpuset.cpus 0-3`,
      `write /v1/cpuset/gcr/${ID}/cpuset.mems 0`,
      `write /v1/cpuset/gcr/${ID}/cpuset.cpus 1`,
    ]);
    expect(cgroupMounts(layout, placed.placements)).toEqual([{ fstype: "cgroup", data: "cpuset", path: "/sys/fs/cgroup/cpuset" }]);
    // The container process joins v1 leaves itself (their tasks files); join() then skips them.
    expect(cg.selfJoinFiles()).toEqual([`/v1/cpuset/gcr/${ID}/tasks`]);
    const before = fs.log.length;
    cg.join(4242, true);
    expect(fs.log.length).toBe(before);
    cg.join(4242);
    expect(fs.log.at(-1)).toBe(`write /v1/cpuset/gcr/${ID}/cgroup.procs 4242`);
  });

  test("a missing memsw file (no swap accounting) is skipped with a warning", () => {
    const fs = new FakeCgroupFs("/v1/memory", [], false);
    const layout = detectLayout("34 30 0:31 / /v1/memory rw - cgroup cgroup rw,memory\n", "4:memory:/\n", () => []);
    const limits = parseLimits({ memory: "64m", memorySwap: "128m" }, 2);
    const placed = placeContainer(layout, limits, ID, false, fs);
    if ("error" in placed) throw new Error(placed.error);
    const cg = new Cgroup(placed.placements, new Set(["memory"]), fs);
    cg.create();
    expect(cg.apply(limitWrites(limits, () => 1))).toEqual(["--memory-swap is ignored: this kernel has no memory.memsw.limit_in_bytes (swap accounting is off)"]);
    fs.files.set(`/v1/memory/gcr/${ID}/memory.oom_control`, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
    expect(cg.oomKills()).toBe(3);
  });

  test("removeLeaf retries while the cgroup is busy, and gives up with a warning", () => {
    const fs = new FakeCgroupFs("/v1/pids", [], false);
    fs.mkdir("/v1/pids/x");
    fs.files.set("/v1/pids/x/cgroup.procs", "999999999\n"); // a pid that does not exist: kill is ESRCH
    expect(removeLeaf("/v1/pids/x", fs, 50)).toBe(false);
    fs.files.set("/v1/pids/x/cgroup.procs", "");
    expect(removeLeaf("/v1/pids/x", fs, 50)).toBe(true);
    expect(removeLeaf("/v1/pids/x", fs, 50)).toBe(true); // already gone
  });
});
