// What a container must not be able to do, checked from inside with the static probe
// (test/fixtures/probe.c): privileges, seccomp, fds, TIOCSTI, masked and read-only kernel
// paths, device nodes, the host binary, a hostile rootfs, and dying with gcr.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gcr, GCR, isRoot, skipReason, treeSnapshot, type Result } from "../helpers/gcr.ts";
import { alive, entries, fixture, startGcr, until, type Fixture } from "../helpers/probe.ts";

setDefaultTimeout(60_000);

let fx: Fixture;
beforeAll(() => {
  fx = fixture("security");
});
afterAll(() => fx.cleanup());

const run = (args: string[]): Promise<Result> => gcr(["run", ...args], { env: fx.env });

async function out(args: string[]): Promise<string> {
  const r = await run(args);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
  return r.stdout;
}

/** Fields of /proc/self/status inside a container started with `flags`. */
async function status(flags: string[] = []): Promise<Record<string, string>> {
  const text = await out([...flags, fx.rootfs, "cat", "/proc/self/status"]);
  return Object.fromEntries(text.trim().split("\n").map((l) => l.split(/:\s*/, 2) as [string, string]));
}

describe("privileges", () => {
  test("docker's capability set, no_new_privs and a seccomp filter by default", async () => {
    const s = await status();
    expect(s).toMatchObject({ CapEff: "00000000a80425fb", CapPrm: "00000000a80425fb", CapBnd: "00000000a80425fb", CapInh: "0000000000000000", CapAmb: "0000000000000000", NoNewPrivs: "1", Seccomp: "2" });
  });

  test("--cap-drop ALL empties every set; --cap-add SYS_ADMIN sets bit 21", async () => {
    expect(await status(["--cap-drop", "ALL"])).toMatchObject({ CapEff: "0000000000000000", CapPrm: "0000000000000000", CapBnd: "0000000000000000" });
    const s = await status(["--cap-add", "SYS_ADMIN"]);
    expect(BigInt(`0x${s.CapEff}`)).toBe(0xa80425fbn | (1n << 21n));
    expect(await status(["--cap-drop", "ALL", "--cap-add", "NET_RAW"])).toMatchObject({ CapEff: "0000000000002000" });
  });
});

describe("seccomp", () => {
  const probes = ["keyctl", "bpf", "kexec_load", "unshare", "mount", "open_by_handle_at", "clone3"];
  // Capabilities that would let each call through if seccomp did not stop it.
  const caps = ["--cap-add", "SYS_ADMIN", "--cap-add", "SYS_BOOT", "--cap-add", "BPF", "--cap-add", "DAC_READ_SEARCH"];
  const script = probes.map((p) => `echo ${p}=$(probe try ${p})`).join("; ");
  const parse = (o: string) => Object.fromEntries(o.trim().split("\n").map((l) => l.split("=") as [string, string]));

  test("the default filter answers EPERM to keyctl, bpf, kexec_load, unshare, mount, open_by_handle_at and ENOSYS to clone3", async () => {
    const want = { keyctl: "EPERM", bpf: "EPERM", kexec_load: "EPERM", unshare: "EPERM", mount: "EPERM", open_by_handle_at: "EPERM", clone3: "ENOSYS" };
    expect(parse(await out([fx.rootfs, "sh", "-c", script]))).toEqual(want);
    // Even with the capabilities these calls need, the filter stops them.
    expect(parse(await out([...caps, fx.rootfs, "sh", "-c", script]))).toEqual(want);
  });

  test("--security-opt seccomp=unconfined lets them reach the kernel", async () => {
    const r = parse(await out(["--security-opt", "seccomp=unconfined", ...caps, fx.rootfs, "sh", "-c", `${script}; grep Seccomp: /proc/self/status`]));
    expect(r.keyctl).toBe("OK");
    expect(r.unshare).toBe("OK");
    expect(r.mount).toBe("OK");
    for (const p of ["bpf", "kexec_load", "open_by_handle_at"]) expect(`${p}=${r[p]}`).not.toBe(`${p}=EPERM`);
    expect(r.clone3).not.toBe("ENOSYS");
    expect(await out(["--security-opt", "seccomp=unconfined", fx.rootfs, "grep", "Seccomp:", "/proc/self/status"])).toBe("Seccomp:\t0\n");
  });
});

describe("file descriptors", () => {
  test("only 0 1 2 reach the command, even when gcr's caller had more open", async () => {
    const a = openSync("/etc/passwd", "r");
    const b = openSync("/etc/hostname", "r");
    try {
      const p = Bun.spawn([GCR, "run", fx.rootfs, "sh", "-c", "echo $(ls /proc/self/fd); probe fds"], {
        env: { ...fx.env, PATH: process.env.PATH ?? "/usr/bin:/bin" },
        stdio: ["ignore", "pipe", "pipe", a, b, a],
      });
      const [o, e, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      expect({ code, e }).toEqual({ code: 0, e: "" });
      const [ls, ...fds] = o.trim().split("\n");
      // `ls` shows its own directory fd as 3.
      expect(ls!.trim().split(/\s+/)).toEqual(["0", "1", "2", "3"]);
      expect(fds.map((l) => l.split(" ")[0])).toEqual(["0", "1", "2", "3"]);
      expect(fds[3]).toContain("(probe's own directory)");
      expect(o).not.toContain("/etc/passwd");
    } finally {
      closeSync(a);
      closeSync(b);
    }
  });

  test("a descriptor the calling shell leaked (exec 5</etc/passwd) is not inherited", async () => {
    const p = Bun.spawnSync(["bash", "-c", `exec 5</etc/passwd 9</etc/hostname; ls /proc/self/fd/5 >/dev/null && ${GCR} run ${fx.rootfs} probe fds`], {
      env: { ...fx.env, PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    expect(p.exitCode).toBe(0);
    const lines = p.stdout.toString().trim().split("\n");
    expect(lines.map((l) => l.split(" ")[0])).toEqual(["0", "1", "2", "3"]);
    expect(p.stdout.toString()).not.toContain("passwd");
  });
});

describe("terminal injection", () => {
  test("without -t the command cannot push keystrokes into the caller's terminal (TIOCSTI -> EPERM)", () => {
    const under = (flags: string) =>
      Bun.spawnSync(["script", "-qc", `${GCR} run ${flags} ${fx.rootfs} probe tiocsti`, "/dev/null"], {
        env: { ...fx.env, PATH: process.env.PATH ?? "/usr/bin:/bin", SHELL: "/bin/sh" },
        stdin: "ignore",
      }).stdout.toString().replace(/\r/g, "");
    // stdout and stderr are the caller's terminal; stdin is /dev/null without -i.
    expect(under("")).toBe("fd 0: ENOTTY\nfd 1: EPERM\nfd 2: EPERM\n");
    expect(under("-i")).toBe("fd 0: EPERM\nfd 1: EPERM\nfd 2: EPERM\n");
  });
});

describe("kernel interfaces", () => {
  // This kernel may lack some of them (no /proc/kcore or /proc/sysrq-trigger on a Firecracker
  // guest): a path the host lacks must be absent inside too, one it has must be masked.
  const hostHas = (p: string) => existsSync(p);

  test("/proc/kcore, /proc/keys, /proc/timer_list are masked", async () => {
    const paths = ["/proc/kcore", "/proc/keys", "/proc/timer_list"];
    expect(paths.some(hostHas)).toBe(true);
    const script = paths.map((f) => `if [ -e ${f} ]; then echo ${f} $(wc -c < ${f}) $(grep -c " ${f} " /proc/self/mountinfo); else echo ${f} absent; fi`).join("; ");
    const o = await out([fx.rootfs, "sh", "-c", script]);
    expect(o).toBe(paths.map((f) => (hostHas(f) ? `${f} 0 1\n` : `${f} absent\n`)).join(""));
  });

  test("/proc/sys, /proc/sysrq-trigger and /sys are read-only", async () => {
    // Opened for writing only (probe open-write writes nothing), so a failure here harms nothing.
    const paths = ["/proc/sys/kernel/hostname", "/proc/sysrq-trigger", "/sys/class/net/lo/mtu"];
    const o = await out([fx.rootfs, "sh", "-c", paths.map((p) => `echo ${p}=$(probe open-write ${p})`).join("; ")]);
    expect(o).toBe(paths.map((p) => `${p}=${p === "/proc/sysrq-trigger" && !hostHas(p) ? "ENOENT" : "EROFS"}\n`).join(""));
    expect(await out([fx.rootfs, "sh", "-c", "grep -E ' /sys (rw|ro),' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1"])).toBe("ro\n");
  });
});

describe("network isolation", () => {
  test("host-only services are out of reach: a TCP server on 127.0.0.1 and an abstract unix socket", async () => {
    const name = `gcr-xn-${process.pid}`;
    const unix = Bun.listen({ unix: `\0${name}`, socket: { data() {}, open(s) { s.end(); } } });
    const tcp = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, open(s) { s.end(); } } });
    try {
      const probe = (net: string[]) => out([...net, fx.rootfs, "sh", "-c", `probe connect-tcp 127.0.0.1 ${tcp.port}; probe connect-abstract ${name}`]);
      // The probe reaches both with the host's network, so the refusals below mean isolation.
      expect(await probe(["--network", "host"])).toBe("OK\nOK\n");
      expect(await probe(["--network", "none"])).toBe("ECONNREFUSED\nECONNREFUSED\n");
      if (isRoot) expect(await probe([])).toBe("ECONNREFUSED\nECONNREFUSED\n"); // the bridge, root's default
    } finally {
      unix.stop(true);
      tcp.stop(true);
    }
  });
});

describe.if(skipReason(isRoot, "device nodes, /proc/1/exe and hostile-rootfs tests need root (mknod, a root-owned gcr)"))("as root", () => {
  test("/dev's six devices are real 0666 character nodes (mknod, as runc), and they work", async () => {
    const o = await out([fx.rootfs, "sh", "-c", "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done; echo x > /dev/null && head -c 3 /dev/zero | wc -c; echo y > /dev/full 2>/dev/null || echo full-ENOSPC"]);
    expect(o).toBe(
      ["null 1:3", "zero 1:5", "full 1:7", "random 1:8", "urandom 1:9", "tty 5:0"].map((d) => {
        const [name, dev] = d.split(" ");
        const [ma, mi] = dev!.split(":").map((n) => Number(n).toString(16));
        return `/dev/${name} character special file ${ma}:${mi} 666`;
      }).join("\n") + "\n3\nfull-ENOSPC\n",
    );
  });

  test("--cap-add ALL gives what gcr's own bounding set holds, no more (prctl PR_CAPBSET_READ)", () => {
    // gcr started without CAP_SYS_RESOURCE (24) in its bounding set: the container gets every
    // other capability, and the run does not fail asking for one it cannot have.
    const p = Bun.spawnSync(["setpriv", "--bounding-set", "-sys_resource", GCR, "run", "--cap-add", "ALL", fx.rootfs, "grep", "CapEff", "/proc/self/status"], { env: { ...process.env, ...fx.env } });
    expect({ code: p.exitCode, stderr: p.stderr.toString() }).toEqual({ code: 0, stderr: "" });
    const eff = BigInt(`0x${p.stdout.toString().split(/\s+/)[1]}`);
    expect(eff & (1n << 24n)).toBe(0n);
    expect(eff & (1n << 21n)).toBe(1n << 21n); // SYS_ADMIN, in the set
  });

  test("a device node shipped in the rootfs cannot be opened (nodev)", async () => {
    const node = join(fx.rootfs, "mem-copy");
    expect(Bun.spawnSync(["mknod", node, "c", "1", "3"]).exitCode).toBe(0);
    try {
      expect(await out([fx.rootfs, "probe", "mknod-open", "/mem-copy"])).toBe("EACCES\n");
      // Not even with every capability gcr can give.
      expect(await out(["--cap-add", "SYS_ADMIN", "--cap-add", "MKNOD", fx.rootfs, "probe", "mknod-open", "/mem-copy"])).toBe("EACCES\n");
      // /dev/null inside is the real one, and it works.
      expect(await out([fx.rootfs, "probe", "mknod-open", "/dev/null"])).toBe("OK\n");
    } finally {
      unlinkSync(node);
    }
  });

  test("with --init, /proc/1/exe cannot be opened for writing and gcr is unchanged", async () => {
    const before = new Bun.CryptoHasher("sha256").update(readFileSync(GCR)).digest("hex");
    const o = await out(["--init", "--cap-add", "SYS_PTRACE", fx.rootfs, "sh", "-c", "probe exe-write /proc/1/exe; probe exe-write /proc/self/exe; { echo x >> /proc/1/exe; } 2>/dev/null && echo WROTE || echo refused"]);
    const [init, self, shell] = o.trim().split("\n");
    expect(init).not.toBe("OK");
    expect(self).not.toBe("OK");
    expect(shell).toBe("refused");
    expect(new Bun.CryptoHasher("sha256").update(readFileSync(GCR)).digest("hex")).toBe(before);
  });

  test("a hostile rootfs (/proc, /etc/hosts and a volume target are symlinks to host paths) leaves the host untouched", async () => {
    const victim = join(fx.base, "victim");
    mkdirSync(join(victim, "vol"), { recursive: true });
    writeFileSync(join(victim, "hosts"), "original\n");
    writeFileSync(join(victim, "vol", "keep"), "keep\n");
    const hostile = join(fx.base, "hostile");
    cpSync(fx.rootfs, hostile, { recursive: true, verbatimSymlinks: true });
    rmdirSync(join(hostile, "proc"));
    symlinkSync(victim, join(hostile, "proc"));
    symlinkSync(join(victim, "hosts"), join(hostile, "etc", "hosts"));
    symlinkSync(join(victim, "vol"), join(hostile, "data"));
    const src = join(fx.base, "volume-src");
    mkdirSync(src);
    copyFileSync("/etc/hostname", join(src, "from-host"));
    const before = treeSnapshot(victim);
    const o = await out(["-v", `${src}:/data`, hostile, "sh", "-c", "test -e /proc/1/status && echo proc-ok; grep -c localhost /etc/hosts; ls /data; echo pwned > /etc/hosts; touch /data/new /proc/x 2>/dev/null; true"]);
    expect(o).toBe("proc-ok\n2\nfrom-host\n");
    expect(treeSnapshot(victim)).toBe(before);
    expect(readFileSync(join(victim, "hosts"), "utf8")).toBe("original\n");
    expect(entries(join(victim, "vol"))).toEqual(["keep"]);
    expect(entries(src).sort()).toEqual(["from-host", "new"]);
  });

  test("if gcr is killed with SIGKILL the container dies with it, and the next gcr removes its directory", async () => {
    const g = startGcr(["--debug", "run", fx.rootfs, "sleep", "1000"], fx.env);
    const log = await g.waitFor(/\[exec\].*started/);
    const pid = Number(log.match(/container process is host pid (\d+)/)![1]);
    expect(alive(pid)).toBe(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\x001000\x00");
    expect(entries(fx.containers)).toHaveLength(1);
    g.proc.kill("SIGKILL");
    await g.done;
    expect(await until(() => !alive(pid), 1000)).toBe(true);
    expect(entries(fx.containers)).toHaveLength(1);
    expect((await run([fx.rootfs, "true"])).code).toBe(0);
    expect(entries(fx.containers)).toEqual([]);
  });
});
