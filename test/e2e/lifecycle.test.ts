// Containers that outlive the terminal (issue 5): run -d through gcr-monitor, ps, exec, logs,
// stop, kill, rm, start, prune, as a user drives them, with the compiled ./gcr.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GCR, gcr, hostMounts, isRoot, skipReason, type Result } from "../helpers/gcr.ts";
import { entries, fixture, type Fixture } from "../helpers/probe.ts";

setDefaultTimeout(60_000);

let fx: Fixture;
beforeAll(() => {
  fx = fixture("lifecycle");
});
afterAll(async () => {
  // Whatever a failed test left running.
  await g(["rm", "-f", ...(await g(["ps", "-aq"])).stdout.split("\n").filter(Boolean)]);
  fx.cleanup();
});

const g = (args: string[]): Promise<Result> => gcr(args, { env: fx.env });

async function ok(args: string[]): Promise<string> {
  const r = await g(args);
  expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: "" });
  return r.stdout;
}

type PsRow = { id: string; name: string; state: string; status: string; exitCode: number | null; pid: number; command: string };
async function ps(all = true): Promise<PsRow[]> {
  return JSON.parse(await ok(["ps", ...(all ? ["-a"] : []), "--format", "json"])) as PsRow[];
}

async function until(cond: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(50);
  }
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");

describe("detached containers", () => {
  test("run -d prints the id, ps shows it running, exec sees its hostname and pid namespace, logs show its output", async () => {
    const id = (await ok(["run", "-d", "--network", "none", "--name", "sleeper", fx.rootfs, "sh", "-c", "echo hello from $(hostname); exec sleep 1000"])).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const row = (await ps(false)).find((r) => r.id === id)!;
    expect(row).toMatchObject({ name: "sleeper", state: "running" });
    expect(row.status).toMatch(/^Up /);
    expect(alive(row.pid)).toBe(true);

    // exec joins the container: same hostname, same pid namespace (pid 1 is the sleep).
    expect(await ok(["exec", "sleeper", "hostname"])).toBe(`${id.slice(0, 12)}\n`);
    expect(await ok(["exec", "sleeper", "cat", "/proc/1/cmdline"])).toBe("sleep\u00001000\u0000");
    const exPs = await ok(["exec", "sleeper", "ps", "-o", "pid,comm"]);
    expect(exPs).toMatch(/^\s*1 sleep$/m);
    // Exit codes follow the run rules.
    expect((await g(["exec", "sleeper", "sh", "-c", "exit 7"])).code).toBe(7);
    const missing = await g(["exec", "sleeper", "nope"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('"nope": executable file not found');
    // exec -u and -e and -w
    expect(await ok(["exec", "-u", "app", "-e", "X=1", "-w", "/tmp", "sleeper", "sh", "-c", "id -u; echo $X; pwd"])).toBe("1000\n1\n/tmp\n");
    // The exec'd process gets the container's restrictions.
    expect(await ok(["exec", "sleeper", "sh", "-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"])).toBe(
      "CapEff:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\n",
    );

    await until(async () => (await ok(["logs", "sleeper"])).includes("hello from"));
    expect(await ok(["logs", "sleeper"])).toBe(`hello from ${id.slice(0, 12)}\n`);
    expect(await ok(["logs", "--tail", "1", id.slice(0, 12)])).toBe(`hello from ${id.slice(0, 12)}\n`);

    // A second container may not take the name.
    const dup = await g(["run", "-d", "--network", "none", "--name", "sleeper", fx.rootfs, "true"]);
    expect(dup.code).toBe(125);
    expect(dup.stderr).toContain('the container name "sleeper" is already in use');

    // stop: sleep as pid 1 ignores SIGTERM (no handler), so SIGKILL ends it after the grace period.
    const t0 = Date.now();
    expect(await ok(["stop", "-t", "1", "sleeper"])).toBe("sleeper\n");
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(8000);
    const stopped = (await ps()).find((r) => r.id === id)!;
    expect(stopped).toMatchObject({ state: "exited", exitCode: 137 });
    expect(alive(row.pid)).toBe(false);
    // Its files stay until rm (docker's rule for detached containers).
    expect(entries(fx.containers)).toContain(id);

    const before = hostMounts();
    expect(await ok(["rm", "sleeper"])).toBe("sleeper\n");
    expect(entries(fx.containers)).not.toContain(id);
    expect((await ps()).find((r) => r.id === id)).toBeUndefined();
    expect(hostMounts()).toEqual(before);
  });

  test("stop sends SIGTERM first: a container that handles it exits 0 within the grace period", async () => {
    const id = (await ok(["run", "-d", "--network", "none", fx.rootfs, "sh", "-c", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"])).trim();
    await until(async () => (await ps(false)).some((r) => r.id === id));
    const t0 = Date.now();
    await ok(["stop", "-t", "10", id]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await ps()).find((r) => r.id === id)).toMatchObject({ state: "exited", exitCode: 0 });
    expect(await ok(["logs", id])).toBe("bye\n");
    await ok(["rm", id]);
  });

  test("kill -s, start again with the same writable layer, rm -f of a running container", async () => {
    const id = (await ok(["run", "-d", "--network", "none", "--name", "again", fx.rootfs, "sh", "-c", "echo run >> /state; cat /state | wc -l; exec sleep 1000"])).trim();
    await until(async () => (await ok(["logs", id])).includes("1"));
    // As pid 1 with no handler, sleep ignores SIGUSR1 (the kernel shields a namespace's init) ...
    await ok(["kill", "-s", "USR1", "again"]);
    await Bun.sleep(200);
    expect((await ps(false)).find((r) => r.id === id)?.state).toBe("running");
    // ... but not SIGKILL, kill's default.
    await ok(["kill", "again"]);
    await until(async () => (await ps()).find((r) => r.id === id)?.state === "exited");
    expect((await ps()).find((r) => r.id === id)?.exitCode).toBe(137);
    expect((await g(["kill", "again"])).code).toBe(125); // not running

    await ok(["start", "again"]);
    await until(async () => (await ok(["logs", "again"])).trim().endsWith("2"));
    expect(await ok(["logs", "again"])).toBe("1\n2\n"); // /state survived: same upper layer
    expect((await ps(false)).find((r) => r.id === id)?.state).toBe("running");

    const notForced = await g(["rm", "again"]);
    expect(notForced.code).toBe(125);
    expect(notForced.stderr).toContain("is running");
    await ok(["rm", "-f", "again"]);
    expect(entries(fx.containers)).not.toContain(id);
  });

  test("logs -f follows the output until the container ends; exec -it gets a terminal inside", async () => {
    const id = (await ok(["run", "-d", "--network", "none", fx.rootfs, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done; sleep 1000"])).trim();
    const follow = Bun.spawn([GCR, "logs", "-f", id], { env: { ...fx.env, PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdout: "pipe" });
    let text = "";
    const reader = (async () => {
      for await (const c of follow.stdout) text += new TextDecoder().decode(c);
    })();
    await until(() => text.includes("line3"));
    // exec -it: a new pseudo-terminal in the container's own devpts.
    const p = Bun.spawn(["script", "-qec", `${GCR} exec -it ${id} sh -c 'tty; exit 4'; echo exec-rc=$?`, "/dev/null"], {
      env: { ...fx.env, PATH: process.env.PATH ?? "/usr/bin:/bin" },
      stdin: "ignore",
      stdout: "pipe",
    });
    // script(1) sends its terminal's EOF character when its own stdin ends; gcr relays it and
    // the pty echoes it as "^@": not gcr's output.
    const tty = (await new Response(p.stdout).text()).replace(/\r/g, "").replace(/\^@/g, "");
    expect(tty).toBe("/dev/pts/0\nexec-rc=4\n");
    expect(await Promise.race([follow.exited.then(() => "ended"), Bun.sleep(300).then(() => "following")])).toBe("following");
    await ok(["stop", "-t", "0", id]);
    expect(await Promise.race([follow.exited, Bun.sleep(5000).then(() => -1)])).toBe(0);
    await reader;
    expect(text).toBe("line1\nline2\nline3\n");
    await ok(["rm", id]);
  });

  test("logs of a large output reach a slow reader whole (every 64 KiB chunk, in order)", async () => {
    const id = (await ok(["run", "-d", "--network", "none", fx.rootfs, "seq", "1", "200000"])).trim();
    await until(async () => (await ps()).find((r) => r.id === id)?.state === "exited");
    const want = new Bun.CryptoHasher("sha256").update(Bun.spawnSync(["seq", "1", "200000"]).stdout).digest("hex");
    // The reader sleeps before reading, so gcr's writes queue up in its stdout stream.
    const p = Bun.spawnSync(["sh", "-c", `"${GCR}" logs ${id} | (sleep 0.3; sha256sum)`], { env: { ...process.env, ...fx.env } });
    expect(p.stdout.toString().split(" ")[0]).toBe(want);
    await ok(["rm", id]);
  });

  test("run -d --rm: the container is gone after it exits", async () => {
    const id = (await ok(["run", "-d", "--rm", "--network", "none", fx.rootfs, "true"])).trim();
    await until(async () => !(await ps()).some((r) => r.id === id));
    await ok(["ps", "-a"]); // the sweep removes its files
    expect(entries(fx.containers)).not.toContain(id);
  });

  test("a named foreground run keeps its state after exit; container prune removes stopped containers", async () => {
    const r = await g(["run", "--network", "none", "--name", "fg", fx.rootfs, "sh", "-c", "exit 3"]);
    expect(r.code).toBe(3);
    expect((await ps()).find((x) => x.name === "fg")).toMatchObject({ state: "exited", exitCode: 3 });
    const pruned = await ok(["container", "prune"]);
    expect(pruned).toMatch(/^[0-9a-f]{64}$/m);
    expect((await ps()).find((x) => x.name === "fg")).toBeUndefined();
  });

  test("20 detached containers started in parallel are all listed, each with its own pid", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => g(["run", "-d", "--network", "none", "--name", `par${i}`, fx.rootfs, "sleep", "1000"])),
    );
    for (const r of results) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const ids = results.map((r) => r.stdout.trim());
    const rows = (await ps(false)).filter((r) => ids.includes(r.id));
    expect(rows.length).toBe(20);
    expect(new Set(rows.map((r) => r.name))).toEqual(new Set(Array.from({ length: 20 }, (_, i) => `par${i}`)));
    expect(new Set(rows.map((r) => r.pid)).size).toBe(20);
    for (const r of rows) expect(alive(r.pid)).toBe(true);
    await ok(["rm", "-f", ...ids]);
    expect(entries(fx.containers).filter((e) => ids.includes(e))).toEqual([]);
  });

  test("SIGKILL of gcr-monitor: ps reports the container as exited, rm cleans every trace", async () => {
    const id = (await ok(["run", "-d", "--network", "none", fx.rootfs, "sleep", "1000"])).trim();
    const row = (await ps(false)).find((r) => r.id === id)!;
    // The monitor is the container's parent.
    const ppid = Number(readFileSync(`/proc/${row.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    expect(readFileSync(`/proc/${ppid}/cmdline`, "utf8")).toContain("gcr-monitor");
    process.kill(ppid, "SIGKILL");
    // The container dies with its monitor (PR_SET_PDEATHSIG) ...
    await until(() => !alive(row.pid));
    // ... and ps tells the truth: it is not running, and how it ended is unknown.
    const after = (await ps()).find((r) => r.id === id)!;
    expect(after.state).toBe("exited");
    expect(after.exitCode).toBeNull();
    await ok(["rm", id]);
    expect(entries(fx.containers)).not.toContain(id);
  });

  test.if(skipReason(isRoot, "cgroup cleanup after rm is checked as root (rootless has no cgroup here)"))("rm removes the container's cgroups", async () => {
    const id = (await ok(["run", "-d", "--network", "none", "--pids-limit", "50", fx.rootfs, "sleep", "1000"])).trim();
    const leaves = readFileSync(join(fx.containers, id, "cgroups"), "utf8").split("\n").filter(Boolean);
    expect(leaves.length).toBeGreaterThan(0);
    for (const l of leaves) expect(existsSync(l)).toBe(true);
    await ok(["rm", "-f", id]);
    for (const l of leaves) expect(existsSync(l)).toBe(false);
  });

  test.if(skipReason(isRoot, "published ports of a detached container use the root bridge"))(
    "run -d -p: the port answers on the host's 127.0.0.1 and from another container; rm removes the rules",
    async () => {
      const www = join(fx.base, "www");
      mkdirSync(www, { recursive: true });
      writeFileSync(join(www, "index.html"), "hello from a detached container\n");
      const id = (await ok(["run", "-d", "--name", "web", "-p", "127.0.0.1:18081:80", "-p", "18082:80", "-v", `${www}:/www:ro`, fx.rootfs, "httpd", "-f", "-p", "80", "-h", "/www"])).trim();
      const table = `gcr_p_${id.slice(0, 12)}`;
      const tables = () => Bun.spawnSync(["nft", "list", "tables"]).stdout.toString();
      expect(tables()).toContain(table);
      let body = "";
      await until(async () => {
        body = await fetch("http://127.0.0.1:18081/index.html").then((r) => r.text(), () => "");
        return body !== "";
      });
      expect(body).toBe("hello from a detached container\n");
      // Another container on the bridge reaches it through the gateway (the host).
      const r = await g(["run", "--rm", fx.rootfs, "wget", "-q", "-O", "-", "http://10.88.0.1:18082/index.html"]);
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: "hello from a detached container\n" });
      await ok(["rm", "-f", "web"]);
      expect(tables()).not.toContain(table);
    },
  );

  test("errors: unknown container, bad flags, -d with -t", async () => {
    const unknown = await g(["logs", "nosuch"]);
    expect(unknown.code).toBe(125);
    expect(unknown.stderr).toBe("gcr: no such container: nosuch\n");
    expect((await g(["stop", "-t", "x", "nosuch"])).code).toBe(125);
    const dt = await g(["run", "-d", "-t", fx.rootfs, "true"]);
    expect(dt.code).toBe(125);
    expect(dt.stderr).toContain("-d cannot be combined with -i or -t");
  });
});

test("gcr-monitor is small: its resident memory per detached container stays under 1 MiB", async () => {
  const id = (await ok(["run", "-d", "--network", "none", fx.rootfs, "sleep", "1000"])).trim();
  try {
    const row = (await ps(false)).find((r) => r.id === id)!;
    const ppid = Number(readFileSync(`/proc/${row.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${ppid}/status`, "utf8"))![1]);
    expect(rss).toBeLessThan(1024);
  } finally {
    await ok(["rm", "-f", id]);
  }
});
