// Resource limits end to end (issue 3): the compiled ./gcr, real cgroups. On the CI machine
// (hybrid: v1 controllers + an empty cgroup2 at /sys/fs/cgroup/unified) the limits are v1 for
// real; the v2 path runs for real in a private mount namespace whose /sys/fs/cgroup is the
// cgroup2 hierarchy (core files only: no controllers can be moved off v1 here), and its limit
// files are covered by src/run/cgroups/manager.test.ts on a fake cgroupfs.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { removeTree } from "../../src/sys/fs.ts";
import { busyboxRootfs, ensureBuilt, gcr, GCR, isRoot, skipReason, testDirs, type Result } from "../helpers/gcr.ts";

setDefaultTimeout(25_000);

const NOBODY = { uid: 65534, gid: 65534 };
let base: string;
let rootfs: string;
let env: Record<string, string>;
let userEnv: Record<string, string>;

// The memory probe: busybox has no allocator that really touches its pages.
const MEMHOG = `#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(int argc, char **argv) {
	long mb = argc > 1 ? atol(argv[1]) : 256;
	for (long i = 0; i < mb; i++) {
		char *p = malloc(1 << 20);
		if (!p) { printf("malloc failed at %ld MiB\\n", i); return 1; }
		memset(p, 1, 1 << 20);
	}
	printf("allocated %ld MiB\\n", mb);
	return 0;
}
`;

beforeAll(() => {
  ensureBuilt();
  const d = testDirs("cgroups");
  base = d.base;
  rootfs = busyboxRootfs(join(base, "rootfs"));
  writeFileSync(join(base, "memhog.c"), MEMHOG);
  const cc = Bun.spawnSync(["gcc", "-static", "-O2", "-o", join(rootfs, "bin", "memhog"), join(base, "memhog.c")], { stderr: "pipe" });
  if (cc.exitCode !== 0) throw new Error(`gcc -static memhog.c: ${cc.stderr}`);
  env = { GCR_ROOT: d.root, GCR_RUNROOT: d.runroot };
  const u = join(base, "user");
  mkdirSync(u, { mode: 0o777 });
  chmodSync(u, 0o777);
  userEnv = { GCR_ROOT: join(u, "root"), GCR_RUNROOT: join(u, "run") };
});
afterAll(() => removeTree(base));

// --network none everywhere: these tests are about cgroups, not about network set-up.
const NET = ["--network", "none"];
const run = (args: string[], o: { debug?: boolean } = {}): Promise<Result> =>
  gcr([...(o.debug ? ["--debug"] : []), "run", ...NET, ...args], { env, timeoutMs: 20_000 });

/** The container's cgroup directories, from --debug ("[cgroup] created /sys/fs/cgroup/.../<id> (...)"). */
const createdDirs = (stderr: string): string[] => [...stderr.matchAll(/\[cgroup\] created (\/\S+\/[0-9a-f]{64}) /g)].map((m) => m[1]!);
const keyed = (text: string, key: string): number => Number(new RegExp(`^${key}[ =](\\d+)`, "m").exec(text)?.[1] ?? NaN);

/** Run a shell script as root in a private mount namespace (for the cgroup2-only layout). */
async function inMountNs(script: string): Promise<Result> {
  const p = Bun.spawn(["unshare", "-m", "--propagation", "private", "sh", "-euc", script], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env, GCR: GCR, ROOTFS: rootfs },
    cwd: base,
    stdout: "pipe",
    stderr: "pipe",
    timeout: 25_000,
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

const v1 = isRoot && existsSync("/sys/fs/cgroup/pids/cgroup.procs") && existsSync("/sys/fs/cgroup/memory/cgroup.procs");
const v2Here = readFileSync("/proc/self/mountinfo", "utf8").includes(" - cgroup2 ");

describe.if(skipReason(isRoot, "cgroup limits: needs root (CI runs as root)"))("limits (root)", () => {
  test("a fork bomb under --pids-limit 64 is contained, the host stays usable", async () => {
    // Only builtins after the bomb starts: every fork in the container fails with EAGAIN.
    const script = `
      bomb() { bomb | bomb & }; bomb
      i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done
      f=/sys/fs/cgroup/pids; [ -d $f ] || f=/sys/fs/cgroup
      read cur < $f/pids.current; echo current=$cur
      while read k v; do echo events_$k=$v; done < $f/pids.events
      read max < $f/pids.max; echo max=$max
      [ -f $f/pids.peak ] && read peak < $f/pids.peak && echo peak=$peak; true`;
    const t0 = performance.now();
    const r = await run(["--pids-limit", "64", rootfs, "sh", "-c", script], { debug: true });
    const hostOk = Bun.spawnSync(["true"]).exitCode === 0;
    expect(r.code).toBe(0);
    expect(keyed(r.stdout, "max")).toBe(64);
    expect(keyed(r.stdout, "current")).toBeLessThanOrEqual(64);
    // The bomb hit the ceiling (pids.events "max") and never went through it (pids.peak, 6.1+).
    if (/^peak=/m.test(r.stdout)) expect(keyed(r.stdout, "peak")).toBeLessThanOrEqual(64);
    expect(keyed(r.stdout, "events_max")).toBeGreaterThan(0);
    expect(hostOk).toBe(true);
    expect(performance.now() - t0).toBeLessThan(20_000);
    // Every fork-bomb process died with pid 1, and its cgroups are gone.
    const dirs = createdDirs(r.stderr);
    expect(dirs.length).toBeGreaterThan(0);
    for (const d of dirs) expect(existsSync(d)).toBe(false);
  });

  test("allocating past --memory 32m: exit 137 and a message naming the limit; cgroup removed", async () => {
    const r = await run(["--memory", "32m", rootfs, "memhog", "256"], { debug: true });
    expect(r.code).toBe(137);
    expect(r.stdout).not.toContain("allocated");
    expect(r.stderr).toMatch(/^gcr: container killed: out of memory, it reached the memory limit \(--memory 32m = 33554432 bytes\)$/m);
    for (const d of createdDirs(r.stderr)) expect(existsSync(d)).toBe(false);
    // Under the limit, the same probe succeeds and nothing is reported.
    const ok = await run(["--memory", "32m", rootfs, "memhog", "8"]);
    expect({ code: ok.code, out: ok.stdout.trim(), err: ok.stderr }).toEqual({ code: 0, out: "allocated 8 MiB", err: "" });
  });

  test("--cpus 0.5 throttles a busy loop (cpu.stat nr_throttled), and no limit does not", async () => {
    const script = `
      f=/sys/fs/cgroup/cpu; [ -f $f/cpu.stat ] || f=/sys/fs/cgroup
      i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done
      cat $f/cpu.stat; cat $f/cpu.cfs_quota_us $f/cpu.max 2>/dev/null; true`;
    const limited = await run(["--cpus", "0.5", rootfs, "sh", "-c", script]);
    expect(limited.code).toBe(0);
    expect(keyed(limited.stdout, "nr_throttled")).toBeGreaterThan(0);
    expect(limited.stdout).toMatch(/^(50000|50000 100000)$/m);
    const free = await run([rootfs, "sh", "-c", script]);
    expect(keyed(free.stdout, "nr_throttled")).toBe(0);
  });

  test("--cpuset-cpus 0 pins the container to cpu 0", async () => {
    const r = await run(["--cpuset-cpus", "0", rootfs, "grep", "Cpus_allowed_list", "/proc/self/status"]);
    expect({ code: r.code, out: r.stdout.trim() }).toEqual({ code: 0, out: "Cpus_allowed_list:\t0" });
  });

  test("--debug names the cgroup paths and the values written; inside, the container is the root", async () => {
    const r = await run(["--memory", "64m", "--cpu-shares", "512", "--pids-limit", "100", rootfs, "cat", "/proc/self/cgroup"], { debug: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[cgroup\] layout (v1|v2|hybrid):/);
    expect(r.stderr).toMatch(/\[cgroup\] --memory: wrote 67108864 to \/\S+\/gcr\/[0-9a-f]{64}\/memory\.(limit_in_bytes|max)/);
    expect(r.stderr).toMatch(/\[cgroup\] --cpu-shares: wrote (512|20) to \S+\/cpu\.(shares|weight)/);
    expect(r.stderr).toMatch(/\[cgroup\] --pids-limit: wrote 100 to \S+\/pids\.max/);
    expect(r.stderr).toMatch(/\[cgroup\] moved pid \d+ into \//);
    // cgroupns: every hierarchy gcr joined reads "/" inside.
    for (const line of r.stdout.trim().split("\n")) if (/:(cpu|memory|pids|cpuset)(,|:)|^0::/.test(line)) expect(line).toEndWith(":/");
  });

  test("/sys/fs/cgroup inside is the container's own, read-only", async () => {
    const r = await run(["--pids-limit", "10", rootfs, "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; mkdir /sys/fs/cgroup/pids/x 2>&1 || mkdir /sys/fs/cgroup/x 2>&1; true"]);
    expect(r.stdout).toMatch(/^10$/m);
    expect(r.stdout).toMatch(/Read-only file system/);
  });

  test("gcr killed by SIGKILL: the next gcr command removes the cgroup (and anything left in it)", async () => {
    const p = Bun.spawn([GCR, "--debug", "run", ...NET, rootfs, "sleep", "60"], { env: { PATH: process.env.PATH!, ...env }, stderr: "pipe", stdout: "ignore" });
    let text = "";
    const reader = p.stderr.getReader();
    while (!/\[exec\] \[/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const dirs = createdDirs(text);
    expect(dirs.length).toBeGreaterThan(0);
    p.kill("SIGKILL");
    await p.exited;
    for (const d of dirs) expect(existsSync(d)).toBe(true); // nobody cleaned up yet
    const next = await run([rootfs, "true"], { debug: true });
    expect(next.code).toBe(0);
    expect(next.stderr).toContain("[sweep] removing leftovers");
    for (const d of dirs) expect(existsSync(d)).toBe(false);
  });

  test("invalid values: exit 125, a clear message, nothing created", async () => {
    for (const [args, msg] of [
      [["--memory", "lots"], "invalid --memory 'lots'"],
      [["--cpus", "-1"], "invalid --cpus '-1'"],
      [["--cpuset-cpus", "999"], "invalid --cpuset-cpus '999': requested CPUs are not available"],
      [["--memory-swap", "1g"], "--memory-swap needs --memory"],
    ] as const) {
      const r = await run([...args, rootfs, "true"], { debug: true });
      expect(r.code).toBe(125);
      expect(r.stderr).toContain(`gcr: ${msg}`);
      expect(r.stderr).not.toContain("[cgroup] created");
      expect(r.stderr).not.toContain("[clone]");
    }
  });

  test("--cgroup-parent places the container under that parent", async () => {
    const r = await run(["--cgroup-parent", "/gcr-test-parent", rootfs, "true"], { debug: true });
    expect(r.code).toBe(0);
    const dirs = createdDirs(r.stderr);
    expect(dirs.length).toBeGreaterThan(0);
    for (const d of dirs) {
      expect(d).toMatch(/\/gcr-test-parent\/[0-9a-f]{64}$/);
      expect(existsSync(d)).toBe(false);
      try {
        Bun.spawnSync(["rmdir", join(d, "..")]);
      } catch {}
    }
  });
});

describe.if(skipReason(isRoot && v2Here, "cgroup v2 layout: needs root and a cgroup2 mount to remount privately"))("cgroup v2 only (private mount namespace)", () => {
  test("v2 is detected, the container gets /gcr/<id> there, sees 0::/ and a read-only cgroup2; removed after", async () => {
    const r = await inMountNs(`
      umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup
      "$GCR" --debug run --network none "$ROOTFS" sh -c 'cat /proc/self/cgroup | grep "^0::"; grep cgroup /proc/self/mountinfo'
      echo "left: $(ls /sys/fs/cgroup/gcr | tr '\\n' ' ')"`);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[cgroup\] layout v2: v2 \/sys\/fs\/cgroup/);
    expect(r.stdout).toMatch(/^0::\/$/m);
    expect(r.stdout).toMatch(/ \/sys\/fs\/cgroup ro,.* - cgroup2 /);
    const dir = createdDirs(r.stderr)[0]!;
    expect(dir).toMatch(/^\/sys\/fs\/cgroup\/gcr\/[0-9a-f]{64}$/);
    expect(r.stdout.split("\n").find((l) => l.startsWith("left: "))).not.toContain(dir.split("/").at(-1)!);
  });

  test("a limit whose controller v2 does not offer here is an error, before the container starts", async () => {
    const r = await inMountNs(`umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; "$GCR" run --network none --pids-limit 5 "$ROOTFS" true`);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("--pids-limit needs the pids controller");
  });

  test("SIGKILLed gcr on v2: the sweep kills the stragglers with cgroup.kill and removes the cgroup", async () => {
    const r = await inMountNs(`
      umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup
      "$GCR" --debug run --network none "$ROOTFS" sleep 60 2>err & pid=$!
      while ! grep -q "moved pid" err; do sleep 0.05; done
      dir=$(sed -n 's/.*created \\(\\/[^ ]*\\) .*/\\1/p' err | head -1)
      kill -9 $pid; wait $pid 2>/dev/null || true
      test -d "$dir"; echo "left=$dir"
      "$GCR" run --network none "$ROOTFS" true
      test ! -d "$dir" && echo swept`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^left=\/sys\/fs\/cgroup\/gcr\/[0-9a-f]{64}$/m);
    expect(r.stdout).toContain("swept");
  });
});

describe.if(skipReason(isRoot, "rootless cgroup tests: need root to switch to uid 65534 with setpriv"))("rootless (uid 65534)", () => {
  const asNobody = (args: string[]) => gcr(["run", ...NET, ...args], { env: userEnv, asUser: NOBODY, timeoutMs: 20_000 });

  test("asking for a limit without a writable cgroup: exit 125, says why and what to do", async () => {
    const r = await asNobody(["--memory", "64m", rootfs, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("gcr: --memory 64m: cannot limit resources: no cgroup is writable by uid 65534");
    expect(r.stderr).toMatch(/^hint: .*(cgroup v2|Delegate=yes)/m);
  });

  test("no limit flags: runs, silently", async () => {
    let r = await asNobody([rootfs, "echo", "ok"]);
    // Known race outside cgroups (child.c sets PR_SET_DUMPABLE 0 before gcr writes uid_map).
    for (let i = 0; i < 3 && /uid_map: EACCES/.test(r.stderr); i++) {
      console.log("retrying: uid_map EACCES race (not a cgroup issue)");
      r = await asNobody([rootfs, "echo", "ok"]);
    }
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "ok\n", err: "" });
  });

  test.if(v2Here)("a delegated cgroup v2 subtree is used: <delegated>/gcr/<id>, removed after", async () => {
    // Delegation as systemd does it for user@UID.service: the subtree is owned by the user,
    // and gcr runs in a cgroup below it.
    const r = await inMountNs(`
      umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup
      d=/sys/fs/cgroup/gcr-test-deleg-$$; mkdir -p $d/init; chown -R 65534:65534 $d
      echo $$ > $d/init/cgroup.procs
      ok=1
      for i in 1 2 3; do
        if setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp GCR_ROOT=$UROOT GCR_RUNROOT=$URUN \\
          "$GCR" --debug run --network none "$ROOTFS" sh -c 'grep "^0::" /proc/self/cgroup' 2>err; then ok=0; break; fi
        grep -q "uid_map: EACCES" err || break
      done
      cat err >&2
      leaf=$(sed -n 's/.*created \\(\\/[^ ]*\\) .*/\\1/p' err | head -1); echo "leaf=$leaf"
      test ! -d "$leaf" && echo removed
      echo $$ > /sys/fs/cgroup/cgroup.procs; rmdir $d/gcr $d/init $d
      exit $ok`.replace("$UROOT", userEnv.GCR_ROOT!).replace("$URUN", userEnv.GCR_RUNROOT!));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^0::\/$/m);
    expect(r.stdout).toMatch(/^leaf=\/sys\/fs\/cgroup\/gcr-test-deleg-\d+\/gcr\/[0-9a-f]{64}$/m);
    expect(r.stdout).toContain("removed");
  });
});

// Said once, when the v1 limit tests above do not run here.
if (!v1) console.log("skip: the v1 limit tests need root and the v1 pids and memory controllers mounted");
