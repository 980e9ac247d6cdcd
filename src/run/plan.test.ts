// The setup program's order, checked without root: what must come before what.
import { describe, expect, test } from "bun:test";
import type { Op } from "../sys/child.ts";
import { buildPlan, execCandidates, type PlanInput } from "./plan.ts";
import { capabilityMask, defaultSeccompFilter } from "./security.ts";

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    lower: "/img", upper: "/c/upper", work: "/c/work", merged: "/c/merged", overlayData: "lowerdir=/img",
    setgroupsDenied: false, hostname: "h",
    volumes: [{ source: "/src", target: "/data", readonly: true }], tmpfs: [{ target: "/scratch", data: "mode=1777", noexec: false, readonly: false }], readOnly: false,
    newNetwork: true, cgroupNamespace: true, workdir: "/", uid: 0, gid: 0, additionalGids: [],
    capabilities: capabilityMask([], []), seccomp: defaultSeccompFilter(), noNewPrivileges: true,
    interactive: false, init: false, argv: ["sh"], env: ["PATH=/bin"],
    exists: () => true, isDir: (p) => !p.includes("kcore") && !p.includes("keys") && !p.includes("timer") && !p.includes("interrupts") && !p.includes("stats") && !p.includes("debug"),
    ...over,
  };
}

const kinds = (ops: Op[]) => ops.map((o) => o.op);
const first = (ops: Op[], k: Op["op"]) => kinds(ops).indexOf(k);
const last = (ops: Op[], k: Op["op"]) => kinds(ops).lastIndexOf(k);

describe("buildPlan order", () => {
  const { ops } = buildPlan(input());

  test("the first op makes / private; pivot_root comes after every mount", () => {
    expect(ops[0]).toMatchObject({ op: "mount", dst: "/", flags: expect.any(Number) });
    expect(first(ops, "pivot")).toBeGreaterThan(last(ops, "mount"));
    expect(first(ops, "pivot")).toBeGreaterThan(last(ops, "readonly"));
  });

  test("seccomp is the last op before exec; exec is last", () => {
    expect(kinds(ops).at(-1)).toBe("exec");
    expect(kinds(ops).at(-2)).toBe("seccomp");
  });

  test("capabilities are set after the uid change; the bounding set is dropped before it", () => {
    expect(first(ops, "capset")).toBeGreaterThan(first(ops, "setid"));
    expect(first(ops, "bounding")).toBeLessThan(first(ops, "setid"));
    expect(first(ops, "setgroups")).toBeLessThan(first(ops, "setid"));
  });

  test("fds are closed (CLOEXEC) before exec, after the tty/session setup", () => {
    expect(first(ops, "closefds")).toBeLessThan(first(ops, "exec"));
    expect(first(ops, "closefds")).toBeGreaterThan(first(ops, "setsid"));
  });

  test("the overlay is mounted nodev; a :ro volume is made read-only right after its bind", () => {
    const overlay = ops.find((o) => o.op === "mount" && o.fstype === "overlay");
    expect(overlay && overlay.op === "mount" && (overlay.flags & 4) !== 0).toBe(true);
    const i = ops.findIndex((o) => o.op === "mount" && o.dst === "/c/merged/data");
    expect(ops[i + 1]).toEqual({ op: "readonly", path: "/c/merged/data", recursive: true });
  });

  test("without a tty: stdin from /dev/null and a new session (TIOCSTI)", () => {
    expect(kinds(ops)).toContain("stdinNull");
    expect(kinds(ops)).toContain("setsid");
    const tty = buildPlan(input({ tty: { rows: 24, cols: 80 } })).ops;
    expect(kinds(tty)).toContain("tty");
    expect(kinds(tty)).not.toContain("stdinNull");
  });

  test("no seccomp op when unconfined; init comes before seccomp and exec", () => {
    expect(kinds(buildPlan(input({ seccomp: undefined })).ops)).not.toContain("seccomp");
    const init = buildPlan(input({ init: true })).ops;
    expect(first(init, "init")).toBeLessThan(first(init, "seccomp"));
  });
});

describe("masked paths", () => {
  test("only paths that exist on this kernel are masked", () => {
    const present = new Set(["/proc/keys", "/proc/acpi"]);
    const { ops } = buildPlan(input({ exists: (p) => present.has(p) || !p.startsWith("/proc/") && !p.startsWith("/sys/") }));
    const masks = ops.filter((o) => o.op === "mount" && (o.src === "/dev/null" && o.dst.startsWith("/c/merged/proc") || o.fstype === "tmpfs" && o.data === "size=0"));
    expect(masks.map((o) => (o.op === "mount" ? o.dst : ""))).toEqual(["/c/merged/proc/acpi", "/c/merged/proc/keys"]);
  });

  test("a masked file gets /dev/null, a masked directory an empty read-only tmpfs", () => {
    const { ops } = buildPlan(input());
    expect(ops).toContainEqual(expect.objectContaining({ op: "mount", src: "/dev/null", dst: "/c/merged/proc/kcore" }));
    expect(ops).toContainEqual(expect.objectContaining({ op: "mount", fstype: "tmpfs", dst: "/c/merged/proc/acpi", data: "size=0" }));
  });
});

describe("clone flags and exec candidates", () => {
  test("a user namespace only with an id map; no network namespace with --network host", () => {
    const CLONE_NEWUSER = 0x10000000;
    const CLONE_NEWNET = 0x40000000;
    expect(buildPlan(input()).cloneFlags & CLONE_NEWUSER).toBe(0);
    expect(buildPlan(input({ newNetwork: false })).cloneFlags & CLONE_NEWNET).toBe(0);
    const idmap = { uids: [{ inside: 0, outside: 1000, count: 1 }], gids: [{ inside: 0, outside: 1000, count: 1 }], helper: false };
    expect(buildPlan(input({ idmap })).cloneFlags & CLONE_NEWUSER).toBe(CLONE_NEWUSER);
  });

  test("execvp-style lookup over the container's PATH", () => {
    expect(execCandidates("ls", ["PATH=/usr/bin:/bin"])).toEqual(["/usr/bin/ls", "/bin/ls"]);
    expect(execCandidates("./x", ["PATH=/bin"])).toEqual(["./x"]);
    expect(execCandidates("ls", [])[0]).toBe("/usr/local/sbin/ls");
  });
});

describe("root with --userns=private", () => {
  test("as root the mounts come before the go (they overlap gcr's work), then the v1 cgroup joins, then pivot_root", () => {
    const ops = buildPlan(input({ cgroupJoin: ["/cg/cpu/gcr/x/tasks", "/cg/pids/gcr/x/tasks"] })).ops;
    const go = first(ops, "go");
    expect(go).toBe(last(ops, "go"));
    // Every mount made before pivot_root is made before the go.
    expect(ops.slice(go, first(ops, "pivot")).some((o) => o.op === "mount" || o.op === "readonly")).toBe(false);
    expect(ops.slice(go + 1, go + 3)).toEqual([
      { op: "write", path: "/cg/cpu/gcr/x/tasks", data: "0" },
      { op: "write", path: "/cg/pids/gcr/x/tasks", data: "0" },
    ]);
    expect(ops[go + 3]).toEqual({ op: "pivot", root: "/c/merged" });
    expect(first(ops, "write")).toBeLessThan(first(ops, "unshare"));
  });

  test("/dev nodes: mknod'ed 0666 without a user namespace (as runc), bind-mounted from the host with one", () => {
    const own = buildPlan(input()).ops;
    const nodes = own.filter((o) => o.op === "mknod");
    expect(nodes.map((o) => o.op === "mknod" && [o.path, o.mode, o.major, o.minor])).toContainEqual(["/c/merged/dev/null", 0o020666, 1, 3]);
    expect(nodes).toHaveLength(6);
    expect(own.some((o) => o.op === "mount" && o.src === "/dev/zero")).toBe(false);
    const idmap = { uids: [{ inside: 0, outside: 1000, count: 1 }], gids: [{ inside: 0, outside: 1000, count: 1 }], helper: false };
    const inNs = buildPlan(input({ idmap })).ops;
    expect(inNs.some((o) => o.op === "mknod")).toBe(false);
    expect(inNs).toContainEqual({ op: "mount", src: "/dev/zero", dst: "/c/merged/dev/zero", fstype: null, flags: 4096 });
  });

  test("wait for the go (the id maps), become the namespace's root, attach the idmapped image before the overlay uses it", () => {
    const idmap = { uids: [{ inside: 0, outside: 100000, count: 65536 }], gids: [{ inside: 0, outside: 100000, count: 65536 }], helper: false };
    const plan = buildPlan(input({ idmap, becomeRoot: true, idmappedLower: "/c/lower", overlayData: "lowerdir=/c/lower" }));
    const k = kinds(plan.ops);
    expect(plan.ops.slice(0, 2)).toEqual([{ op: "go" }, { op: "setid", uid: 0, gid: 0 }]);
    const overlay = plan.ops.findIndex((o) => o.op === "mount" && o.fstype === "overlay");
    expect(k.indexOf("moveMount")).toBeGreaterThan(0);
    expect(k.indexOf("moveMount")).toBeLessThan(overlay);
    expect(plan.ops[k.indexOf("moveMount")]).toEqual({ op: "moveMount", path: "/c/lower" });
    expect(plan.idmapSource).toBe("/img");
  });

  test("without it there is no idmapped tree and no early setid", () => {
    const plan = buildPlan(input());
    expect(kinds(plan.ops)).not.toContain("moveMount");
    expect(plan.idmapSource).toBeUndefined();
    expect(plan.ops[0]!.op).toBe("mount");
  });
});
