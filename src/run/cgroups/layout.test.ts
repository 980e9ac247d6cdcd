import { describe, expect, test } from "bun:test";
import { detectLayout, fsPath, parseMountinfo, parseProcCgroup } from "./layout.ts";

// This CI machine: v1 controllers mounted one by one plus an empty cgroup2 ("hybrid").
const HYBRID_MOUNTINFO = `22 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids,release_agent=/x
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const HYBRID_CGROUP = `9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`;

// A current distribution: one cgroup2 mount, the user's session deep in user.slice.
const V2_MOUNTINFO = `25 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n`;
const V2_CGROUP = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope\n";

// Older v1 distributions co-mount cpu and cpuacct (and bind-mount a second view).
const V1_MOUNTINFO = `30 22 0:27 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
32 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
99 30 0:31 /docker /mnt/other\\040view rw - cgroup cgroup rw,memory
33 30 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
`;
const V1_CGROUP = "3:pids:/user.slice\n2:memory:/user.slice\n1:cpu,cpuacct:/user.slice\n";

describe("parsing", () => {
  test("mountinfo: only cgroup mounts; v1 data keeps controllers and name=, drops release_agent and flags", () => {
    const m = parseMountinfo(HYBRID_MOUNTINFO);
    expect(m.map((x) => x.mountpoint)).toHaveLength(9);
    expect(m.find((x) => x.mountpoint.endsWith("pids"))!.data).toBe("pids");
    expect(m.find((x) => x.mountpoint.endsWith("cpuset"))!.data).toBe("cpuset");
    expect(m.find((x) => x.mountpoint.endsWith("systemd"))).toMatchObject({ data: "name=systemd", controllers: [] });
    expect(m.at(-1)).toMatchObject({ version: 2, mountpoint: "/sys/fs/cgroup/unified" });
    expect(parseMountinfo(V1_MOUNTINFO).find((x) => x.root === "/docker")!.mountpoint).toBe("/mnt/other view");
  });
  test("/proc/self/cgroup", () => {
    const c = parseProcCgroup(V1_CGROUP);
    expect(c.v1.get("cpuacct")).toBe("/user.slice");
    expect(c.unified).toBeUndefined();
    expect(parseProcCgroup(V2_CGROUP).unified).toStartWith("/user.slice/");
  });
});

describe("detectLayout", () => {
  test("hybrid: controllers on v1, the empty cgroup2 kept for its core files", () => {
    const l = detectLayout(HYBRID_MOUNTINFO, HYBRID_CGROUP, () => ["hugetlb"]);
    expect(l.kind).toBe("hybrid");
    expect(l.hierarchies.map((h) => `v${h.version} ${h.mountpoint} ${h.controllers.join(",")}`)).toEqual([
      "v1 /sys/fs/cgroup/cpu cpu",
      "v1 /sys/fs/cgroup/cpuacct cpuacct",
      "v1 /sys/fs/cgroup/cpuset cpuset",
      "v1 /sys/fs/cgroup/memory memory",
      "v1 /sys/fs/cgroup/freezer freezer",
      "v1 /sys/fs/cgroup/pids pids",
      "v2 /sys/fs/cgroup/unified ",
    ]);
    expect(l.byController.get("memory")!.current).toBe("/process_api/abc");
    expect(l.byController.get("memory")!.version).toBe(1);
  });
  test("hybrid never takes a v1-bound controller from v2, even if v2 lists it", () => {
    const l = detectLayout(HYBRID_MOUNTINFO, HYBRID_CGROUP, () => ["memory", "pids", "hugetlb"]);
    expect(l.byController.get("memory")!.version).toBe(1);
    expect(l.hierarchies.at(-1)!.controllers).toEqual([]);
  });
  test("v2: every controller the root enables; cpuacct rides on cpu", () => {
    const l = detectLayout(V2_MOUNTINFO, V2_CGROUP, () => ["cpuset", "cpu", "io", "memory", "pids"]);
    expect(l.kind).toBe("v2");
    expect(l.hierarchies).toHaveLength(1);
    expect(l.hierarchies[0]!.controllers).toEqual(["cpu", "cpuacct", "cpuset", "memory", "pids"]);
    expect(l.byController.get("freezer")).toBeUndefined();
  });
  test("v1 with co-mounted cpu,cpuacct, ignoring a second view of a hierarchy", () => {
    const l = detectLayout(V1_MOUNTINFO, V1_CGROUP, () => []);
    expect(l.kind).toBe("v1");
    expect(l.hierarchies.map((h) => [h.mountpoint, h.data])).toEqual([
      ["/sys/fs/cgroup/cpu,cpuacct", "cpu,cpuacct"],
      ["/sys/fs/cgroup/memory", "memory"],
      ["/sys/fs/cgroup/pids", "pids"],
    ]);
    expect(l.byController.get("cpuacct")).toBe(l.byController.get("cpu")!);
  });
  test("no cgroup mounts at all", () => {
    expect(detectLayout("", "", () => []).kind).toBe("none");
  });
});

test("fsPath maps hierarchy paths through the mount's root", () => {
  expect(fsPath({ mountpoint: "/sys/fs/cgroup", mountRoot: "/" }, "/gcr/x")).toBe("/sys/fs/cgroup/gcr/x");
  expect(fsPath({ mountpoint: "/sys/fs/cgroup", mountRoot: "/" }, "/")).toBe("/sys/fs/cgroup");
  expect(fsPath({ mountpoint: "/mnt/m", mountRoot: "/docker" }, "/docker/gcr")).toBe("/mnt/m/gcr");
});
