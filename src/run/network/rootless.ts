// Rootless networking: gcr cannot make links on the host without root, so a user-mode
// network stack joins the container's (user-owned) namespaces from outside and gives it a
// tap device with outbound access: slirp4netns (podman's classic default) or pasta.
//
//   slirp4netns: tap0 10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3. The gateway reaches the
//   host's loopback only with --network slirp4netns:allow_host_loopback=true (XN03: blocked
//   by default). -p uses slirp4netns' API socket (add_hostfwd).
//   pasta: copies the host's addresses and routes; -p becomes pasta's -t/-u.
//
// Lifetime: slirp4netns gets an --exit-fd whose other end only gcr holds, so it exits with
// gcr even after SIGKILL; pasta exits when the container's namespace goes. release() kills
// both at once anyway. Neither needs a sweep.
import { GcrError } from "../../errors.ts";
import { debug } from "../../log.ts";
import { kill } from "../../sys/libc.ts";
import type { ContainerResource } from "../resources.ts";
import { describeMapping, type PortMapping } from "./ports.ts";
import { close, exists, read, readText, unlinkIfExists } from "../../sys/fs.ts";

export type RootlessDriver = "slirp4netns" | "pasta";

const BIN_DIRS = ["/usr/bin", "/bin", "/usr/local/bin"];

export function findDriver(name: RootlessDriver): string | undefined {
  return Bun.which(name) ?? BIN_DIRS.map((d) => `${d}/${name}`).find((p) => exists(p));
}

export const SLIRP = { address: "10.0.2.100", gateway: "10.0.2.2", dns: "10.0.2.3" } as const;

export interface RootlessContext {
  /** A short path (sun_path holds 108 bytes) for slirp4netns' API socket. */
  apiSocket: string;
  publish: PortMapping[];
  allowHostLoopback: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SlirpNetwork implements ContainerResource {
  readonly name = "network";
  private proc?: ReturnType<typeof Bun.spawn>;
  private exitFd?: number;
  constructor(private readonly bin: string, private readonly ctx: RootlessContext) {}

  async attach(pid: number): Promise<void> {
    const t0 = performance.now();
    const argv = [this.bin, "--configure", "--mtu=65520", "--ready-fd=3", "--exit-fd=4"];
    if (!this.ctx.allowHostLoopback) argv.push("--disable-host-loopback");
    if (this.ctx.publish.length > 0) argv.push(`--api-socket=${this.ctx.apiSocket}`);
    argv.push(String(pid), "tap0");
    debug("net", `spawn ${argv.join(" ")}`);
    const p = Bun.spawn(argv, { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
    this.proc = p;
    const ready = p.stdio[3] as number;
    this.exitFd = p.stdio[4] as number;
    // slirp4netns writes "1" to the ready fd once tap0 is up with its address and route.
    const buf = new Uint8Array(1);
    for (;;) {
      let n = -1;
      try {
        n = read(ready, buf);
      } catch (e) {
        if ((e as { code?: string }).code !== "EAGAIN") throw e;
      }
      if (n > 0) break;
      if (n === 0 || p.exitCode !== null) {
        const err = (await new Response(p.stderr as ReadableStream).text()).trim().split("\n").join("; ");
        const hint = err.includes("/dev/net/tun") ? "slirp4netns opens /dev/net/tun as you: it must be mode 0666 (chmod 0666 /dev/net/tun), or use --network none" : undefined;
        throw new GcrError(`network: slirp4netns failed: ${err || "exited"}`, { hint });
      }
      if (performance.now() - t0 > 10_000) throw new GcrError("network: slirp4netns did not get ready within 10 s");
      await sleep(2);
    }
    close(ready);
    debug("net", `slirp4netns (pid ${p.pid}): tap0 ${SLIRP.address}/24 up, default via ${SLIRP.gateway}, dns ${SLIRP.dns}, mtu 65520, host loopback ${this.ctx.allowHostLoopback ? "reachable at 10.0.2.2" : "blocked"} (${(performance.now() - t0).toFixed(1)} ms)`);
    for (const m of this.ctx.publish) await this.hostfwd(m);
  }

  private async hostfwd(m: PortMapping): Promise<void> {
    if (m.hostPort === 0) throw new GcrError(`publish ${describeMapping(m)}: rootless networking needs an explicit host port`);
    const req = { execute: "add_hostfwd", arguments: { proto: m.proto, host_addr: m.hostIp, host_port: m.hostPort, guest_port: m.containerPort } };
    const reply = await apiCall(this.ctx.apiSocket, JSON.stringify(req));
    if (reply.error) throw new GcrError(`publish ${describeMapping(m)}: slirp4netns: ${JSON.stringify(reply.error)}`, { hint: "is the port already in use?" });
    debug("net", `publish ${describeMapping(m)} via slirp4netns to ${SLIRP.address}:${m.containerPort}`);
  }

  release(): void {
    if (this.proc && this.proc.exitCode === null) kill(this.proc.pid, 15);
    if (this.exitFd !== undefined) close(this.exitFd);
    unlinkIfExists(this.ctx.apiSocket);
    this.proc = undefined;
    this.exitFd = undefined;
  }
}

/** One request on slirp4netns' API socket: it answers one JSON object and closes. */
async function apiCall(path: string, body: string): Promise<{ return?: unknown; error?: unknown }> {
  let text = "";
  const done = Promise.withResolvers<void>();
  const sock = await Bun.connect({
    unix: path,
    socket: {
      data: (_s, d) => void (text += new TextDecoder().decode(d)),
      close: () => done.resolve(),
      error: (_s, e) => done.reject(e),
    },
  });
  sock.write(body);
  sock.shutdown();
  await done.promise;
  return JSON.parse(text) as { return?: unknown; error?: unknown };
}

/** pasta: attaches to the container's namespaces by pid, -t/-u for published ports. */
export class PastaNetwork implements ContainerResource {
  readonly name = "network";
  private pid?: number;
  constructor(private readonly bin: string, private readonly ctx: RootlessContext) {}

  async attach(pid: number): Promise<void> {
    const t0 = performance.now();
    const pidFile = `${this.ctx.apiSocket}.pid`;
    const argv = [this.bin, "--config-net", "--quiet", "--pid", pidFile, "--ipv4-only"];
    if (!this.ctx.allowHostLoopback) argv.push("--no-map-gw");
    const spec = (m: PortMapping) => `${m.hostIp === "0.0.0.0" ? "" : `${m.hostIp}/`}${m.hostPort}:${m.containerPort}`;
    for (const m of this.ctx.publish) argv.push(m.proto === "tcp" ? "-t" : "-u", spec(m));
    argv.push(String(pid));
    debug("net", `spawn ${argv.join(" ")}`);
    // pasta configures the namespace, then forks into the background and writes its pid.
    const p = Bun.spawn(argv, { stdio: ["ignore", "ignore", "pipe"] });
    const code = await p.exited;
    if (code !== 0) throw new GcrError(`network: pasta failed (exit ${code}): ${(await new Response(p.stderr).text()).trim()}`);
    try {
      this.pid = Number(readText(pidFile).trim()) || undefined;
    } catch {
      // older pasta without a pid file: it exits by itself when the namespace goes
    }
    unlinkIfExists(pidFile);
    debug("net", `pasta (pid ${this.pid ?? "?"}) configured the container's network (${(performance.now() - t0).toFixed(1)} ms)`);
  }

  release(): void {
    if (this.pid) kill(this.pid, 15);
    this.pid = undefined;
  }
}
