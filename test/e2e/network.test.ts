// Container networking against the real kernel: --network none/host/bridge, -p, the gcr0
// bridge's leases under concurrency and after SIGKILL, and rootless slirp4netns. Traffic goes
// only to 127.0.0.1 and to the namespaces gcr makes (10.88.0.0/16 on gcr0, slirp's 10.0.2.0/24).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { removeTree } from "../../src/sys/fs.ts";
import { busyboxRootfs, ensureBuilt, GCR, gcr, isRoot, skipReason, testDirs } from "../helpers/gcr.ts";

setDefaultTimeout(30_000);

let dirs: ReturnType<typeof testDirs>;
let rootfs: string;
let env: Record<string, string>;

beforeAll(() => {
  ensureBuilt();
  dirs = testDirs("network");
  rootfs = busyboxRootfs(join(dirs.base, "rootfs"), { "www/index.html": "hello from the container\n" });
  chmodSync(join(dirs.base, "rootfs"), 0o755);
  env = { GCR_ROOT: dirs.root, GCR_RUNROOT: dirs.runroot };
});
// Long-running containers a failed test may leave behind: SIGKILL their gcr (the container
// dies with it) before the test dirs go.
const started: Bun.Subprocess[] = [];
afterAll(async () => {
  for (const p of started) p.kill("SIGKILL");
  await Promise.all(started.map((p) => p.exited));
  removeTree(dirs.base);
});

const run = (args: string[], o: { env?: Record<string, string>; stdin?: string } = {}) => gcr(["run", ...args], { env: { ...env, ...o.env }, stdin: o.stdin });

/** A long-running container: resolves with its first stdout line (e.g. its address). */
function start(args: string[], extraEnv: Record<string, string> = {}) {
  const p = Bun.spawn([GCR, "run", ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env, ...extraEnv }, stdout: "pipe", stderr: "pipe" });
  started.push(p);
  const reader = p.stdout.getReader();
  let out = "";
  const firstLine = (async () => {
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    return out.split("\n")[0]!;
  })();
  const rest = async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return out;
      out += new TextDecoder().decode(value);
    }
  };
  return { p, firstLine, rest };
}

const hostLinks = () =>
  Bun.spawnSync(["ip", "-o", "link", "show"]).stdout.toString().split("\n").map((l) => l.split(":")[1]?.trim().split("@")[0] ?? "").filter(Boolean);
const nftRules = () => (existsSync("/usr/sbin/nft") ? Bun.spawnSync(["/usr/sbin/nft", "list", "ruleset"]).stdout.toString() : "");
const leases = (): { ip: string; id: string; lock: string }[] => {
  try {
    return JSON.parse(readFileSync("/run/gcr/network/gcr0.json", "utf8")).leases;
  } catch {
    return [];
  }
};
const ownLeases = () => leases().filter((l) => l.lock.startsWith(dirs.runroot));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("--network none (XN01)", () => {
  test("only lo, and lo is up", async () => {
    const r = await run(["--network", "none", rootfs, "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags"]);
    expect(r.stderr).toBe("");
    const [ifaces, , flags] = [r.stdout.split("\n").slice(0, -3), r.stdout.split("\n").at(-3), r.stdout.split("\n").at(-2)];
    expect(ifaces).toEqual(["lo"]);
    expect(Number(flags) & 1).toBe(1); // IFF_UP
  });
});

describe.if(skipReason(isRoot, "bridge networking makes host links (gcr0, veth) and needs root"))("--network bridge (root's default)", () => {
  test("eth0 with an address from 10.88.0.0/16, default route via gcr0, /etc/hosts names it", async () => {
    const r = await run(["--hostname", "web", rootfs, "sh", "-c", "ip -o -4 addr show eth0; ip route; cat /etc/hosts"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/eth0\s+inet 10\.88\.\d+\.\d+\/16/);
    expect(r.stdout).toContain("default via 10.88.0.1 dev eth0");
    const ip = /inet (10\.88\.\d+\.\d+)/.exec(r.stdout)![1];
    expect(r.stdout).toContain(`${ip}\tweb`);
  });

  test("two containers reach each other by address over TCP", async () => {
    const server = start([rootfs, "sh", "-c", "hostname -i; nc -l -p 8080"]);
    const ip = (await server.firstLine).trim();
    expect(ip).toMatch(/^10\.88\.\d+\.\d+$/);
    // The listener needs a moment after `hostname -i`; retry until it answers.
    let r;
    for (let i = 0; i < 40; i++) {
      r = await run([rootfs, "sh", "-c", `echo hello-over-gcr0 | nc -w 2 ${ip} 8080`]);
      if (r.code === 0) break;
      await sleep(100);
    }
    expect(r!.code).toBe(0);
    expect(await server.rest()).toContain("hello-over-gcr0");
    expect(await server.p.exited).toBe(0);
  });

  test("-p publishes a port: HTTP from the host on 127.0.0.1, and from another container via the gateway", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const server = start(["--init", "-p", `${port}:80`, rootfs, "sh", "-c", "echo up; exec httpd -f -p 80 -h /www"]);
    await server.firstLine;
    let body = "";
    for (let i = 0; i < 50 && !body; i++) {
      body = await fetch(`http://127.0.0.1:${port}/index.html`).then((r) => r.text(), () => "");
      if (!body) await sleep(100);
    }
    expect(body).toBe("hello from the container\n");
    const other = await run([rootfs, "sh", "-c", `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 10.88.0.1 ${port}`]);
    expect(other.stdout).toContain("hello from the container");
    server.p.kill("SIGTERM");
    await server.p.exited;
    // The proxy went with the container: nothing listens any more.
    expect(await fetch(`http://127.0.0.1:${port}/`).then(() => "open", () => "closed")).toBe("closed");
  });

  test("parallel starts get distinct addresses", async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, () => run([rootfs, "sh", "-c", "hostname -i; sleep 1"])));
    for (const r of rs) expect(r.code).toBe(0);
    const ips = rs.map((r) => r.stdout.trim());
    for (const ip of ips) expect(ip).toMatch(/^10\.88\.\d+\.\d+$/);
    expect(new Set(ips).size).toBe(8);
  });

  test("no leftover links, leases or rules after 50 runs", async () => {
    expect((await run([rootfs, "true"])).code).toBe(0); // gcr0 and its NAT table exist from here on
    const links = hostLinks().filter((l) => !l.startsWith("gcrv")).sort();
    const rules = nftRules();
    for (let i = 0; i < 10; i++) {
      const rs = await Promise.all(Array.from({ length: 5 }, () => run([rootfs, "true"])));
      for (const r of rs) expect(r.code).toBe(0);
    }
    const mine = (await run([rootfs, "true"])).code; // and one more, for the count
    expect(mine).toBe(0);
    expect(hostLinks().filter((l) => !l.startsWith("gcrv")).sort()).toEqual(links);
    // Other test files may run containers right now: a veth without a lease is a leak only
    // if it is still there (and still without a lease) a moment later.
    const orphans = () => {
      const links = hostLinks().filter((l) => l.startsWith("gcrv"));
      const leased = new Set(leases().map((l) => `gcrv${l.id.slice(0, 11)}`));
      return links.filter((l) => !leased.has(l));
    };
    const first = orphans();
    if (first.length > 0) await sleep(1000);
    expect(orphans().filter((l) => first.includes(l))).toEqual([]);
    expect(ownLeases()).toEqual([]);
    expect(nftRules()).toBe(rules);
  });

  test("a SIGKILLed gcr: its lease and veth are gone after the next gcr command", async () => {
    const c = start([rootfs, "sh", "-c", "hostname -i; sleep 30"]);
    const ip = (await c.firstLine).trim();
    const lease = leases().find((l) => l.ip === ip)!;
    expect(lease).toBeDefined();
    const veth = `gcrv${lease.id.slice(0, 11)}`;
    expect(hostLinks()).toContain(veth);
    c.p.kill("SIGKILL");
    await c.p.exited;
    expect((await run(["--network", "none", rootfs, "true"])).code).toBe(0); // sweeps
    // The container itself dies with gcr (PDEATHSIG) and its netns with it.
    for (let i = 0; i < 50 && hostLinks().includes(veth); i++) await sleep(100);
    expect(hostLinks()).not.toContain(veth);
    expect(leases().map((l) => l.id)).not.toContain(lease.id);
  });

  test("a subnet overlapping a host route is refused", async () => {
    const route = Bun.spawnSync(["ip", "-4", "route", "show", "table", "main"]).stdout.toString().split("\n")
      .map((l) => l.split(" ")[0]!).find((d) => /^\d+\.\d+\.\d+\.\d+\/(1[6-9]|2\d|30)$/.test(d) && !d.startsWith("10.88."));
    if (!route) return console.log("skip: the host has no /16-/30 route to overlap");
    const r = await run([rootfs, "true"], { env: { GCR_SUBNET: route } });
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`overlaps the host route ${route}`);
  });

  test("--debug narrates links, addresses and routes", async () => {
    const r = await gcr(["--debug", "run", rootfs, "true"], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[net\] lease 10\.88\.\d+\.\d+\/16 on gcr0/);
    expect(r.stderr).toMatch(/\[net\] link veth gcrv\w+ \(host\) <-> eth0/);
    expect(r.stderr).toMatch(/\[net\] address 10\.88\.\d+\.\d+\/16 .* on eth0/);
    expect(r.stderr).toContain("[net] route default via 10.88.0.1 dev eth0");
  });

  test("--network host shares the host's interfaces", async () => {
    const r = await run(["--network", "host", rootfs, "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"]);
    expect(r.stdout.trim().split("\n").sort()).toEqual(hostLinks().sort());
  });

  test("bad -p specs are usage errors", async () => {
    for (const spec of ["80:http", "1.2.3:80:80", "8080:80/sctp", "70000:80"]) {
      const r = await run(["-p", spec, rootfs, "true"]);
      expect(r.code).toBe(125);
      expect(r.stderr).toContain("invalid --publish");
    }
  });
});

// slirp4netns opens /dev/net/tun as the caller. Hosts that make it 0600 (this CI VM does) get
// a private mount namespace with a 0666 node for the same device bound over it.
const SLIRP = "/usr/bin/slirp4netns";
describe.if(skipReason(isRoot && existsSync(SLIRP), "rootless slirp4netns tests switch to nobody with setpriv (needs root) and need slirp4netns"))("rootless slirp4netns (XN03)", () => {
  let server: ReturnType<typeof Bun.serve>;
  let script: string;
  beforeAll(() => {
    server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("host-loopback-reached\n") });
    const home = join(dirs.base, "nobody");
    mkdirSync(home, { recursive: true });
    chownSync(home, 65534, 65534);
    const tun = join(dirs.base, "tun");
    mkdirSync(tun);
    script = join(dirs.base, "rootless.sh");
    writeFileSync(script, `set -e
if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -w /dev/net/tun; then
  mount -t tmpfs tmpfs ${tun}; mknod -m 666 ${tun}/tun c 10 200; mount --bind ${tun}/tun /dev/net/tun
fi
exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=${home} GCR_ROOT=${home}/root GCR_RUNROOT=${home}/run "$@"
`);
  });
  afterAll(() => server?.stop(true));
  // Async: the host server runs in this process and must keep answering.
  const rootless = async (args: string[]) => {
    const p = Bun.spawn(["unshare", "-m", "--propagation", "private", "sh", script, GCR, "run", ...args], { timeout: 20_000, stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, stdout, stderr };
  };
  const get = () => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 10.0.2.2 ${server.port}`;

  test("the default: tap0 10.0.2.100, DNS 10.0.2.3, host loopback blocked", async () => {
    const r = await rootless([rootfs, "sh", "-c", `ip -o -4 addr show tap0; cat /etc/resolv.conf; ${get()} || echo blocked`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("inet 10.0.2.100/24");
    expect(r.stdout).toContain("nameserver 10.0.2.3");
    expect(r.stdout).toContain("blocked");
    expect(r.stdout).not.toContain("host-loopback-reached");
  });

  test("allow_host_loopback=true reaches a server on the host's 127.0.0.1 via 10.0.2.2", async () => {
    const r = await rootless(["--network", "slirp4netns:allow_host_loopback=true", rootfs, "sh", "-c", get()]);
    expect(r.stdout).toContain("host-loopback-reached");
  });
});
