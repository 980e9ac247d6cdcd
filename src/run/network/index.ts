// `--network` and `-p` for `gcr run`: pick the mode, write what /etc/hosts and
// /etc/resolv.conf say, and hand command.ts the host resource (ContainerResource) that
// connects the container's network namespace once it exists.
//
//   none        own netns, lo only (the child brings lo up: the "loopback" op in plan.ts)
//   host        the host's netns
//   bridge      root's default: gcr0 + veth + NAT (bridge.ts), -p via a proxy in gcr
//   slirp4netns rootless default when installed, else pasta, else none (rootless.ts)
import { UsageError } from "../../errors.ts";
import { debug, warn } from "../../log.ts";
import { isRoot, stateDir } from "../../paths.ts";
import { onSweep } from "../container.ts";
import type { ContainerResource } from "../resources.ts";
import { BRIDGE, BridgeNetwork, configuredSubnet, releaseLeases } from "./bridge.ts";
import { hostsFile, resolvConf } from "./etc.ts";
import { NETWORK_STATE_DIR } from "./leases.ts";
import { parsePublish, type PortMapping } from "./ports.ts";
import { findDriver, PastaNetwork, SLIRP, SlirpNetwork, type RootlessDriver } from "./rootless.ts";
import { checkDetachedPorts, removePortRules } from "./dnat.ts";
import { R_OK, W_OK, access, exists, mkdirp, readTextOrUndefined, writeFile } from "../../sys/fs.ts";
import { join } from "../../path.ts";

export type NetworkMode = "none" | "host" | "bridge" | RootlessDriver;

export interface NetworkRequest {
  mode: NetworkMode;
  /** slirp4netns:allow_host_loopback=true / pasta:allow_host_loopback=true */
  allowHostLoopback: boolean;
  publish: PortMapping[];
}

/** Pure: `--network` + `-p` -> what was asked for; `undefined` network means the default. */
export function parseNetwork(
  network: string | undefined,
  publish: string[],
  root: boolean,
  installed: (d: RootlessDriver) => boolean,
  tunOk: () => boolean = () => true,
): NetworkRequest {
  const ports = publish.map(parsePublish);
  const [name = "", ...optList] = (network ?? "").split(":");
  let allowHostLoopback = false;
  for (const o of optList.join(":").split(",").filter(Boolean)) {
    if (o === "allow_host_loopback=true") allowHostLoopback = true;
    else if (o !== "allow_host_loopback=false") throw new UsageError(`invalid --network option '${o}': only allow_host_loopback=true|false`, "run");
  }
  let mode: NetworkMode;
  if (network === undefined || name === "default") {
    if (root) mode = "bridge";
    else if (!tunOk()) {
      notice("rootless networking needs /dev/net/tun to be readable and writable by you (it is not here); containers get --network none (loopback only)");
      mode = "none";
    } else if (installed("slirp4netns")) mode = "slirp4netns";
    else if (installed("pasta")) mode = "pasta";
    else {
      notice("rootless networking needs slirp4netns or pasta (apt install slirp4netns); containers get --network none (loopback only)");
      mode = "none";
    }
  } else if (name === "none" || name === "host" || name === "bridge" || name === "slirp4netns" || name === "pasta") mode = name;
  else throw new UsageError(`invalid --network '${network}': use none, host, bridge, slirp4netns or pasta`, "run");
  if (optList.length > 0 && mode !== "slirp4netns" && mode !== "pasta") throw new UsageError(`--network ${name} takes no options`, "run");
  if (mode === "bridge" && !root) throw new UsageError("--network bridge needs root (gcr0 and veth links are host objects); rootless containers use slirp4netns or pasta", "run");
  if ((mode === "slirp4netns" || mode === "pasta") && !installed(mode)) throw new UsageError(`--network ${mode}: ${mode} is not installed (apt install ${mode === "pasta" ? "passt" : mode})`, "run");
  if (ports.length > 0 && (mode === "none" || mode === "host")) {
    warn(`published ports are discarded with --network ${mode}${mode === "host" ? " (the container uses the host's ports directly)" : ""}`);
    return { mode, allowHostLoopback, publish: [] };
  }
  return { mode, allowHostLoopback, publish: ports };
}

export interface NetworkPlan {
  mode: NetworkMode;
  /** A network namespace of its own (everything but host). */
  newNetwork: boolean;
  /** Contents for /etc/hosts and /etc/resolv.conf (the bridge rewrites hosts once it has an address). */
  hosts: string;
  resolvConf: string;
  resource?: ContainerResource;
}

/** A warning given once per state directory (a marker file), then only narrated with --debug. */
function notice(msg: string): void {
  const marker = join(stateDir(), "network-notice");
  debug("net", msg);
  if (exists(marker)) return;
  warn(msg);
  try {
    mkdirp(stateDir(), 0o700);
    writeFile(marker, `${msg}\n`);
  } catch {
    // shown again next time; harmless
  }
}

/** slirp4netns and pasta both open /dev/net/tun as the calling user (some hosts make it 0600). */
export function tunUsable(): boolean {
  try {
    access("/dev/net/tun", R_OK | W_OK);
    return true;
  } catch {
    return false;
  }
}

const readHost = (path: string): string => readTextOrUndefined(path) ?? "";

/** For command.ts: the container's network. `dir` is its container directory (container.ts). */
export function planNetwork(opts: { network?: string; publish: string[]; detach?: boolean }, c: { id: string; dir: string }, hostname: string): NetworkPlan {
  const req = parseNetwork(opts.network, opts.publish, isRoot(), (d) => findDriver(d) !== undefined, tunUsable);
  debug("net", `network mode ${req.mode}${req.publish.length ? `, publishing ${opts.publish.join(" ")}` : ""}`);
  const hostResolv = readHost("/etc/resolv.conf");
  switch (req.mode) {
    case "host":
      return { mode: "host", newNetwork: false, hosts: readHost("/etc/hosts") || hostsFile(hostname), resolvConf: hostResolv };
    case "none":
      return { mode: "none", newNetwork: true, hosts: hostsFile(hostname), resolvConf: hostResolv };
    case "bridge": {
      configuredSubnet(); // a bad GCR_SUBNET fails before anything is made
      if (opts.detach) checkDetachedPorts(req.publish);
      const resource = new BridgeNetwork({ id: c.id, lock: join(c.dir, "lock"), hostname, hostsPath: join(c.dir, "hosts"), hosts: (ip) => hostsFile(hostname, ip), publish: req.publish, detached: opts.detach });
      return { mode: "bridge", newNetwork: true, hosts: hostsFile(hostname), resolvConf: resolvConf(hostResolv), resource };
    }
    case "slirp4netns":
    case "pasta": {
      const ctx = { apiSocket: join(stateDir(), `net-${c.id.slice(0, 12)}.sock`), publish: req.publish, allowHostLoopback: req.allowHostLoopback };
      if (req.mode === "slirp4netns") {
        return { mode: req.mode, newNetwork: true, hosts: hostsFile(hostname, SLIRP.address), resolvConf: resolvConf(hostResolv, [SLIRP.dns]), resource: new SlirpNetwork(findDriver("slirp4netns")!, ctx) };
      }
      return { mode: req.mode, newNetwork: true, hosts: hostsFile(hostname), resolvConf: hostResolv, resource: new PastaNetwork(findDriver("pasta")!, ctx) };
    }
  }
}

// A gcr that died (even by SIGKILL) leaves its lease and veth: give them back at the next
// sweep. The lease table also reclaims dead owners by itself whenever a container starts.
onSweep((id) => {
  if (!isRoot() || !exists(join(NETWORK_STATE_DIR, `${BRIDGE}.json`))) return;
  removePortRules(id);
  try {
    releaseLeases(new Set([id]));
  } catch (e) {
    warn(`network sweep: ${(e as Error).message}`);
  }
});
