// `gcr run` end to end, as a user runs it: the compiled ./gcr, a busybox+probe rootfs, the
// real kernel. Isolation (the seed's demos; the user-namespace one is in rootless.test.ts), the filesystem, environment and user options,
// exit codes and signals, terminals, --debug narration, errors, and 200 runs leaving nothing.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { hostname as hostHostname } from "node:os";
import { join } from "node:path";
import { DEFAULT_PATH } from "../../src/run/plan.ts";
import { gcr, GCR, hostMounts, isRoot, skipReason, treeSnapshot, type Result } from "../helpers/gcr.ts";
import { entries, fixture, startGcr, zombies, type Fixture } from "../helpers/probe.ts";

setDefaultTimeout(60_000);

let fx: Fixture;
beforeAll(() => {
  fx = fixture("run");
  writeFileSync(join(fx.rootfs, "notexec"), "#!/bin/sh\necho never\n", { mode: 0o644 });
});
afterAll(() => fx.cleanup());

const run = (args: string[], o: { stdin?: string; env?: Record<string, string> } = {}): Promise<Result> =>
  gcr(["run", ...args], { env: { ...fx.env, ...o.env }, stdin: o.stdin });

/** Run and expect success; returns stdout. */
async function out(args: string[], o: { env?: Record<string, string> } = {}): Promise<string> {
  const r = await run(args, o);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  return r.stdout;
}

describe("isolation (the seed's five demos)", () => {
  test("pid: ps shows the command as pid 1 and nothing of the host", async () => {
    const lines = (await out([fx.rootfs, "ps", "-o", "pid,comm"])).trim().split("\n").slice(1);
    expect(lines.map((l) => l.trim())).toEqual(["1 ps"]);
    const sh = (await out([fx.rootfs, "sh", "-c", "ps -o pid,comm; echo $$"])).trim().split("\n");
    expect(sh.at(-1)).toBe("1");
    expect(sh.join("\n")).not.toMatch(/bun|gcr/);
  });

  test("uts: the hostname differs from the host's, and --hostname sets it", async () => {
    const h = (await out([fx.rootfs, "hostname"])).trim();
    expect(h).not.toBe(hostHostname());
    expect(h).toMatch(/^[0-9a-f]{12}$/);
    expect(await out(["--hostname", "box1", fx.rootfs, "sh", "-c", "hostname; cat /etc/hostname"])).toBe("box1\nbox1\n");
    expect(hostHostname()).not.toBe("box1");
  });

  test.if(skipReason(isRoot, "ipc: ipcmk creates a host segment only as root here"))("ipc: a host ipcmk segment is invisible inside", async () => {
    const mk = Bun.spawnSync(["ipcmk", "-M", "4096"]).stdout.toString();
    const id = mk.match(/id: (\d+)/)?.[1];
    expect(id).toBeDefined();
    try {
      // /proc/sysvipc/shm lists the segments of the reader's IPC namespace (busybox has no ipcs).
      const shmids = (text: string) => text.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/)[1]);
      expect(shmids(readFileSync("/proc/sysvipc/shm", "utf8"))).toContain(id!);
      expect(shmids(await out([fx.rootfs, "cat", "/proc/sysvipc/shm"]))).toEqual([]);
    } finally {
      Bun.spawnSync(["ipcrm", "-m", id!]);
    }
  });

  test("mount: the mount table has the container's mounts only", async () => {
    const info = (await out([fx.rootfs, "cat", "/proc/self/mountinfo"])).trim().split("\n");
    const points = info.map((l) => l.split(" ")[4]!);
    const types = info.map((l) => l.split(" - ")[1]!.split(" ")[0]!);
    expect(points[0]).toBe("/");
    expect(types[0]).toBe("overlay");
    for (const p of points) expect(p).toMatch(/^\/(proc(\/.*)?|dev(\/.*)?|sys(\/.*)?|etc\/(hostname|hosts|resolv\.conf))?$/);
    // Every host mount except the ones a container mounts afresh (its own /proc, /dev, /sys and
    // cgroup namespace views) is absent.
    const hostOnly = hostMounts().filter((m) => !/^\/(proc|dev|sys)?$/.test(m) && !/^\/(dev\/(pts|shm)|sys\/fs\/cgroup(\/.*)?)$/.test(m));
    expect(hostOnly.length).toBeGreaterThan(0);
    for (const m of hostOnly) expect(points).not.toContain(m);
  });

  test.if(skipReason(isRoot, "--userns=private is a root option (rootless always has a user namespace)"))(
    "user, as root: --userns=private maps the container's root to an unprivileged host range",
    async () => {
      const vol = join(fx.base, "userns-vol");
      mkdirSync(vol, { recursive: true });
      Bun.spawnSync(["chown", "100000:100000", vol]);
      const before = treeSnapshot(fx.rootfs);
      const o = await out(["--userns=private", "-v", `${vol}:/vol`, fx.rootfs, "sh", "-c",
        "id -u; cat /proc/self/uid_map; cat /etc/hostname; echo hi > /vol/f; stat -c %U /bin; echo w > /root/x && touch /bin/new && cat /root/x"]);
      const [uid, map, host, binOwner, wrote] = o.trim().split("\n");
      expect(uid).toBe("0");
      expect(map!.trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
      expect(host).toMatch(/^[0-9a-f]{12}$/);
      // The image is seen through an idmapped mount: host root's files belong to the
      // container's root, which may change them (in its own layer; the image stays as it was).
      expect(binOwner).toBe("root");
      expect(wrote).toBe("w");
      expect(treeSnapshot(fx.rootfs)).toBe(before);
      // What the container's root writes is owned by the mapped host uid, not by host root.
      expect(Bun.spawnSync(["stat", "-c", "%u", join(vol, "f")]).stdout.toString().trim()).toBe("100000");
      // Without the option, as docker: no user namespace.
      expect((await out([fx.rootfs, "cat", "/proc/self/uid_map"])).trim().split(/\s+/)).toEqual(["0", "0", "4294967295"]);
    },
  );
});

describe("standard input", () => {
  test("-i passes gcr's stdin to the command and EOF ends it (no hang); without -i stdin is /dev/null", async () => {
    const piped = await gcr(["run", "-i", "--network", "none", fx.rootfs, "sh", "-c", "cat; echo end"], { env: fx.env, stdin: "line one\nline two\n", timeoutMs: 10_000 });
    expect(piped).toEqual({ code: 0, stdout: "line one\nline two\nend\n", stderr: "" });
    const closed = await gcr(["run", "--network", "none", fx.rootfs, "sh", "-c", "cat; readlink /proc/self/fd/0"], { env: fx.env, stdin: "ignored\n" });
    expect(closed).toEqual({ code: 0, stdout: "/dev/null\n", stderr: "" });
  });
});

describe("filesystem", () => {
  test("writing inside leaves the image unchanged", async () => {
    const before = treeSnapshot(fx.rootfs);
    await out([fx.rootfs, "sh", "-c", "echo x > /etc/new && echo y >> /etc/passwd && rm /bin/ls && mkdir /root/d && chmod 700 /tmp && test ! -e /bin/ls"]);
    expect(treeSnapshot(fx.rootfs)).toBe(before);
    expect(readFileSync(join(fx.rootfs, "etc/passwd"), "utf8")).not.toContain("y\n");
    // The next container starts from the image again.
    expect(await out([fx.rootfs, "sh", "-c", "test -e /bin/ls && test ! -e /etc/new && echo clean"])).toBe("clean\n");
  });

  test("-v SRC:DST is shared with the host; :ro refuses writes with EROFS", async () => {
    const vol = join(fx.base, "vol");
    mkdirSync(vol, { recursive: true });
    writeFileSync(join(vol, "in"), "from host\n");
    expect(await out(["-v", `${vol}:/data`, fx.rootfs, "sh", "-c", "cat /data/in; echo from container > /data/out"])).toBe("from host\n");
    expect(readFileSync(join(vol, "out"), "utf8")).toBe("from container\n");
    expect(await out(["-v", `${vol}:/data:ro`, fx.rootfs, "sh", "-c", "cat /data/in; probe write /data/out2"])).toBe("from host\nEROFS\n");
    expect(existsSync(join(vol, "out2"))).toBe(false);
  });

  test("--read-only makes the root read-only; --tmpfs mounts a writable tmpfs", async () => {
    expect(await out([fx.rootfs, "probe", "write", "/etc/x"])).toBe("OK\n");
    expect(await out(["--read-only", fx.rootfs, "probe", "write", "/etc/x"])).toBe("EROFS\n");
    const o = await out(["--read-only", "--tmpfs", "/scratch", fx.rootfs, "sh", "-c", "probe write /scratch/x; stat -f -c %T /scratch; grep -c ' /scratch ' /proc/self/mountinfo"]);
    expect(o).toBe("OK\ntmpfs\n1\n");
    expect(existsSync(join(fx.rootfs, "scratch"))).toBe(false);
    // docker's tmpfs options: size and mode as mount data, noexec as a flag.
    const opts = await out(["--tmpfs", "/t:size=2m,mode=0700,noexec", fx.rootfs, "sh", "-c", "grep ' /t ' /proc/self/mounts; cp /bin/busybox /t/bb; /t/bb true 2>/dev/null || echo noexec-refused"]);
    expect(opts).toMatch(/^tmpfs \/t tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k,mode=700/);
    expect(opts).toContain("noexec-refused");
  });

  test("-w sets the working directory and creates it if missing (not in the image)", async () => {
    expect(await out(["-w", "/new/dir", fx.rootfs, "pwd"])).toBe("/new/dir\n");
    expect(await out(["-w", "/etc", fx.rootfs, "pwd"])).toBe("/etc\n");
    expect(existsSync(join(fx.rootfs, "new"))).toBe(false);
  });
});

describe("environment and user", () => {
  test("-e and --env-file set variables (later wins); the host's environment stays out", async () => {
    const file = join(fx.base, "env.list");
    writeFileSync(file, "# a comment\nFROM_FILE=1\nBOTH=file\n\nPASSED\n");
    const o = await out(["--env-file", file, "-e", "A=b c", "-e", "BOTH=flag", "-e", "PASSED", fx.rootfs, "env"], {
      env: { PASSED: "from-gcr", HOST_SECRET: "s3cret" },
    });
    const env = Object.fromEntries(o.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    expect(env).toMatchObject({ A: "b c", FROM_FILE: "1", BOTH: "flag", PASSED: "from-gcr", HOME: "/root", PATH: DEFAULT_PATH });
    expect(env.HOSTNAME).toMatch(/^[0-9a-f]{12}$/);
    expect(o).not.toContain("s3cret");
  });

  test("the default PATH finds commands in /usr/local/bin, /usr/bin and /bin", async () => {
    expect(await out([fx.rootfs, "sh", "-c", 'echo "$PATH"'])).toBe(`${DEFAULT_PATH}\n`);
    expect(DEFAULT_PATH).toBe("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  });

  test("-u NAME and -u UID:GID resolve through the image's /etc/passwd and /etc/group", async () => {
    expect(await out(["-u", "app", fx.rootfs, "sh", "-c", "id -u; id -g; id -G; echo $HOME"])).toBe("1000\n1000\n1000 2000\n/home/app\n");
    expect(await out(["-u", "1000:2000", fx.rootfs, "sh", "-c", "id -u; id -g"])).toBe("1000\n2000\n");
    expect(await out(["-u", "app:root", fx.rootfs, "id", "-g"])).toBe("0\n");
    // A non-root user keeps no capabilities.
    expect(await out(["-u", "app", fx.rootfs, "grep", "CapEff", "/proc/self/status"])).toBe("CapEff:\t0000000000000000\n");
    const bad = await run(["-u", "nosuchuser", fx.rootfs, "true"]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toStartWith("gcr: ");
  });
});

describe("exit codes", () => {
  test("0, the command's own code, 126 not executable, 127 not found", async () => {
    expect((await run([fx.rootfs, "true"])).code).toBe(0);
    expect((await run([fx.rootfs, "sh", "-c", "exit 3"])).code).toBe(3);
    const notExec = await run([fx.rootfs, "/notexec"]);
    expect(notExec.code).toBe(126);
    expect(notExec.stderr).toStartWith("gcr: ");
    expect((await run([fx.rootfs, "/etc"])).code).toBe(126);
    const missing = await run([fx.rootfs, "no-such-command"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("no-such-command");
  });

  /** Start a container, wait until it says "ready", send `sig` to gcr, return gcr's exit code. */
  async function signalled(args: string[], sig: NodeJS.Signals): Promise<number | null> {
    const g = startGcr(["run", ...args], fx.env);
    await g.waitFor(/ready/);
    g.proc.kill(sig);
    const r = await g.done;
    return r.code;
  }

  test("SIGINT / SIGTERM to gcr reach the command: 130 / 143 with --init", async () => {
    const cmd = ["--init", fx.rootfs, "sh", "-c", "echo ready; exec sleep 1000"];
    expect(await signalled(cmd, "SIGINT")).toBe(130);
    expect(await signalled(cmd, "SIGTERM")).toBe(143);
  });

  test("a pid-1 shell with a trap gets the signal", async () => {
    const trap = (sig: string, code: number) => [fx.rootfs, "sh", "-c", `trap 'exit ${code}' ${sig}; echo ready; sleep 1000 & wait`];
    expect(await signalled(trap("INT", 130), "SIGINT")).toBe(130);
    expect(await signalled(trap("TERM", 143), "SIGTERM")).toBe(143);
  });
});

describe("terminal", () => {
  const scriptEnv = () => ({ ...fx.env, PATH: process.env.PATH ?? "/usr/bin:/bin", SHELL: "/bin/sh" });

  test("-t gives the command a pseudo-terminal of the caller's size", async () => {
    const p = Bun.spawn(["script", "-qc", `stty rows 33 cols 97; ${GCR} run -t ${fx.rootfs} sh -c 'tty; stty size'`, "/dev/null"], {
      env: scriptEnv(),
      stdin: "ignore",
      stdout: "pipe",
    });
    const text = (await new Response(p.stdout).text()).replace(/\r/g, "");
    expect(await p.exited).toBe(0);
    expect(text).toBe("/dev/pts/0\n33 97\n");
    // Without -t there is no terminal.
    expect(await out([fx.rootfs, "sh", "-c", "tty || true"])).toBe("not a tty\n");
  });

  /** An interactive gcr under script(1): type into it, wait for what the terminal shows. */
  function session(args: string) {
    const p = Bun.spawn(["script", "-qc", `${GCR} run -it ${args}; echo "gcr-exit=$?"`, "/dev/null"], { env: scriptEnv(), stdin: "pipe", stdout: "pipe" });
    let text = "";
    const reader = (async () => {
      for await (const c of p.stdout) text += new TextDecoder().decode(c);
    })();
    return {
      text: () => text,
      async type(s: string) {
        p.stdin.write(s);
        await p.stdin.flush();
      },
      async waitFor(s: string) {
        for (let i = 0; i < 200 && !text.includes(s); i++) await Bun.sleep(25);
        expect(text).toContain(s);
      },
      async end() {
        await Promise.race([p.exited, Bun.sleep(10_000)]);
        p.stdin.end();
        await reader;
        return text;
      },
    };
  }

  test("-it: typed input reaches the shell and `exit 5` returns 5", async () => {
    const t = session(`${fx.rootfs} sh`);
    await t.waitFor("# ");
    await t.type("echo typed-$((2+3))\nexit 5\n");
    const text = await t.end();
    expect(text).toContain("typed-5");
    expect(text).toMatch(/gcr-exit=5/);
  });

  test("-it: resizing the caller's terminal resizes the container's (SIGWINCH forwarded)", async () => {
    const marker = `resize-${process.pid}`;
    const t = session(`--network none --hostname ${marker} ${fx.rootfs} sh`);
    await t.waitFor("# ");
    await t.type("stty size\n");
    await t.waitFor("24 80");
    // gcr's stdin is script's terminal: resize it as a terminal emulator would.
    const gcrPid = readdirSync("/proc").find((p) => /^\d+$/.test(p) && (() => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(`--hostname\0${marker}`);
      } catch {
        return false;
      }
    })());
    expect(gcrPid).toBeDefined();
    const tty = readlinkSync(`/proc/${gcrPid}/fd/0`);
    expect(Bun.spawnSync(["stty", "-F", tty, "rows", "41", "cols", "113"]).exitCode).toBe(0);
    await Bun.sleep(200);
    await t.type("stty size\n");
    await t.waitFor("41 113");
    await t.type("exit 0\n");
    expect(await t.end()).toMatch(/gcr-exit=0/);
  });

  test("-it: Ctrl-C interrupts the shell's foreground job, not gcr; job control works", async () => {
    const t = session(`--network none ${fx.rootfs} sh`);
    await t.waitFor("# ");
    // A background job, listed by the shell's job control.
    await t.type("sleep 300 &\njobs\n");
    await t.waitFor("Running");
    // A foreground sleep, then Ctrl-C (0x03): the pty's line discipline sends SIGINT to the
    // foreground job; gcr (raw mode) only passes the byte on and the shell survives.
    await t.type("sleep 300\n");
    await Bun.sleep(300);
    await t.type("\x03");
    await t.waitFor("^C");
    await t.type("echo alive-$?\n");
    await t.waitFor("alive-130");
    await t.type("kill %1; exit 6\n");
    expect(await t.end()).toMatch(/gcr-exit=6/);
  });
});

describe("the demo image", () => {
  test("is built from the host's busybox on first use, inside the 0700 store", async () => {
    const root = join(fx.base, "demo-store");
    const r = await gcr(["run", "--network", "none", "demo", "sh", "-c", "echo hi from $(busybox | head -1 | cut -d' ' -f1)"], { env: { ...fx.env, GCR_ROOT: root } });
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "hi from BusyBox\n", err: "" });
    expect(statSync(root).mode & 0o777).toBe(0o700);
  });
});

describe("output", () => {
  test("--debug narrates each isolation step", async () => {
    const r = await gcr(["--debug", "run", fx.rootfs, "true"], { env: fx.env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    for (const want of ["[run] as pid", "[fork] as pid 1", "namespaces ns,uts,ipc,pid,net", "[mount]", "pivot_root", "[seccomp]", "[caps]"])
      expect(r.stderr).toContain(want);
  });

  test("without --debug gcr prints nothing of its own on success", async () => {
    expect(await run([fx.rootfs, "true"])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(await run([fx.rootfs, "sh", "-c", "echo out; echo err >&2"])).toEqual({ code: 0, stdout: "out\n", stderr: "err\n" });
  });

  test("errors: unknown image, bad flag, missing rootfs -> one 'gcr: ' line, exit 125", async () => {
    for (const args of [["no-such-image", "true"], ["--no-such-flag", fx.rootfs, "true"], [join(fx.base, "missing-rootfs/"), "true"]]) {
      const r = await run(args);
      expect(r.code).toBe(125);
      expect(r.stdout).toBe("");
      const lines = r.stderr.trimEnd().split("\n");
      // One error line; at most a "hint:" line after it (STYLE: one line, plus a hint).
      expect(lines[0]).toStartWith("gcr: ");
      expect(lines.slice(1).every((l) => l.startsWith("hint: "))).toBe(true);
      expect(lines.filter((l) => l.startsWith("gcr: "))).toHaveLength(1);
    }
  });
});

describe("setup failures", () => {
  // As root the child mounts the container's filesystems while gcr makes its cgroups and its
  // network; a mount the kernel refuses (a tmpfs mode it cannot parse) ends the child before
  // gcr's go, and gcr's own work on the dead child may then fail too. What the user sees must
  // be the child's failure, and nothing may be left behind.
  test.each(["none", ...(isRoot ? ["bridge"] : [])])("a refused mount (--network %s): the mount, its path and errno; exit 125; nothing left", async (net) => {
    const r = await run(["--network", net, "--tmpfs", "/t:mode=zzz", fx.rootfs, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/^gcr: container setup: mount \S+\/merged\/t \(tmpfs MS_NOSUID\|MS_NODEV mode=zzz\): EINVAL \(Invalid argument\)\n$/);
    expect(entries(join(fx.env.GCR_RUNROOT!, "containers"))).toEqual([]);
  });
});

/** The cgroup directories gcr would create for container `id`: /sys/fs/cgroup/<controller>/gcr/<id> (v1, hybrid) or /sys/fs/cgroup/gcr/<id>. */
function cgroupDirsOf(id: string): string[] {
  const roots = ["/sys/fs/cgroup", ...entries("/sys/fs/cgroup").map((c) => `/sys/fs/cgroup/${c}`)];
  return roots.map((r) => `${r}/gcr/${id}`).filter(existsSync);
}

describe("churn", () => {
  test("200 runs in a row leave no mount, cgroup, container dir or zombie", async () => {
    // Other test files may run containers on this host at the same time: check what belongs to
    // these 200 runs (their ids, from --debug) rather than global counts.
    const zombiesBefore = zombies().length;
    const ids: string[] = [];
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) {
      const r = await gcr(["--debug", "run", fx.rootfs, "true"], { env: fx.env });
      if (r.code !== 0) throw new Error(`run ${i}: exit ${r.code}: ${r.stderr}`);
      const id = r.stderr.match(/removed \S+\/containers\/([0-9a-f]{64})/)?.[1];
      if (!id) throw new Error(`run ${i}: no container id in --debug output:\n${r.stderr}`);
      ids.push(id);
    }
    const ms = (performance.now() - t0) / 200;
    console.log(`200 runs: ${ms.toFixed(1)} ms per run`);
    expect(new Set(ids).size).toBe(200);
    const leakedMounts = hostMounts().filter((m) => m.startsWith(fx.base) || ids.some((id) => m.includes(id)));
    expect(leakedMounts).toEqual([]);
    expect(ids.flatMap(cgroupDirsOf)).toEqual([]);
    expect(entries(fx.containers)).toEqual([]);
    expect(zombies(process.pid)).toEqual([]);
    expect(zombies().length).toBeLessThanOrEqual(zombiesBefore);
  }, 120_000);
});
