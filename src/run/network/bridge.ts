// --network bridge (root): one gcr0 bridge, a veth pair per container, an address leased from
// the subnet, a default route via the bridge, outbound NAT, published ports via proxy.ts.
//
//   host netns                                     container netns
//   gcr0 10.88.0.1/16 ── gcrv<id> (veth) ═══════ eth0 10.88.0.N/16, default via 10.88.0.1
//   nft table ip gcr_gcr0: masquerade 10.88.0.0/16 leaving the subnet
//
// Order in attach() (the child exists, waits, and has its netns): lease an address (under
// the state lock, making the bridge and NAT if this is the first container), then the veth
// pair with its far end created directly inside the container's netns, then address and
// routes in there through a netlink socket opened in that netns. release() deletes the veth
// and the lease; the bridge and its NAT table stay for the next container (see releaseLeases).
import { GcrError } from "../../errors.ts";
import { debug } from "../../log.ts";
import { Netlink } from "../../sys/netlink.ts";
import type { ContainerResource } from "../resources.ts";
import { leaseAlive, withBridgeState, type BridgeState, type Lease } from "./leases.ts";
import { addNat, removeNat } from "./nat.ts";
import type { PortMapping } from "./ports.ts";
import { startProxy, type Proxy } from "./proxy.ts";
import { broadcast, firstFree, formatSubnet, gateway, ipToNum, overlaps, parseSubnet, type Subnet } from "./subnet.ts";
import { addPortRules, removePortRules } from "./dnat.ts";
import { printErr } from "../../output.ts";
import { readText, writeFile } from "../../sys/fs.ts";

export const BRIDGE = "gcr0";
export const DEFAULT_SUBNET = "10.88.0.0/16";
const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

/** The configured subnet: GCR_SUBNET, else 10.88.0.0/16 (podman's default). */
export function configuredSubnet(env = process.env): Subnet {
  const s = env.GCR_SUBNET || DEFAULT_SUBNET;
  try {
    return parseSubnet(s);
  } catch (e) {
    throw new GcrError(`network: ${(e as Error).message}`, { hint: "set GCR_SUBNET to a free private range" });
  }
}

/** The host-side veth of a container: 15 characters at most (IFNAMSIZ). */
export function vethName(id: string): string {
  return `gcrv${id.slice(0, 11)}`;
}

export interface BridgeContext {
  id: string;
  /** The container's lock file, which names it as the owner of its lease. */
  lock: string;
  hostname: string;
  /** The host file bind-mounted on /etc/hosts: rewritten with the leased address. */
  hostsPath: string;
  hosts: (ip: string) => string;
  publish: PortMapping[];
  /** run -d: no gcr process stays to proxy, published ports become DNAT rules (dnat.ts). */
  detached?: boolean;
}

export class BridgeNetwork implements ContainerResource {
  readonly name = "network";
  private lease?: Lease;
  private proxy?: Proxy;
  constructor(private readonly ctx: BridgeContext, private readonly subnet = configuredSubnet()) {}

  async attach(pid: number): Promise<void> {
    const t0 = performance.now();
    const host = Netlink.open();
    try {
      const veth = vethName(this.ctx.id);
      const { ip, bridgeIndex } = withBridgeState(BRIDGE, (s) => {
        reclaim(s, host);
        const bridgeIndex = ensureBridge(s, host, this.subnet);
        const ip = firstFree(this.subnet, new Set(s.leases.map((l) => l.ip)));
        if (!ip) throw new GcrError(`network ${BRIDGE}: no free address left in ${formatSubnet(this.subnet)}`);
        this.lease = { ip, id: this.ctx.id, veth, lock: this.ctx.lock };
        s.leases.push(this.lease);
        return { ip, bridgeIndex };
      });
      debug("net", `lease ${ip}/${this.subnet.prefixLen} on ${BRIDGE} for ${this.ctx.id.slice(0, 12)}`);
      writeFile(this.ctx.hostsPath, this.ctx.hosts(ip));

      host.addVeth(veth, "eth0", pid);
      const vethIndex = host.linkIndex(veth)!;
      host.setMasterUp(vethIndex, bridgeIndex);
      debug("net", `link veth ${veth} (host) <-> eth0 (container pid ${pid}), ${veth} attached to ${BRIDGE}, up`);

      const inside = Netlink.open(pid);
      try {
        const eth0 = inside.linkIndex("eth0");
        if (eth0 === undefined) throw new GcrError("network: eth0 did not appear in the container's namespace");
        inside.addAddress(eth0, ip, this.subnet.prefixLen, broadcast(this.subnet));
        debug("net", `address ${ip}/${this.subnet.prefixLen} brd ${broadcast(this.subnet)} on eth0 (container)`);
        inside.setUp(eth0);
        debug("net", "link eth0 (container) up");
        inside.addRoute({ gateway: gateway(this.subnet), oif: eth0 });
        debug("net", `route default via ${gateway(this.subnet)} dev eth0 (container)`);
      } finally {
        inside.close();
      }
      if (this.ctx.publish.length > 0 && this.ctx.detached) {
        addPortRules(this.ctx.id, BRIDGE, ip, this.ctx.publish);
      } else if (this.ctx.publish.length > 0) {
        this.proxy = await startProxy(this.ctx.publish, ip);
        for (const m of this.proxy.mappings) if (m.hostPort && !this.ctx.publish.some((p) => p.hostPort === m.hostPort)) printErr(`gcr: published ${m.hostIp}:${m.hostPort} -> ${m.containerPort}/${m.proto}\n`);
      }
      debug("net", `bridge network ready in ${(performance.now() - t0).toFixed(1)} ms`);
    } finally {
      host.close();
    }
  }

  release(): void {
    this.proxy?.stop();
    if (this.ctx.detached && this.ctx.publish.length > 0) removePortRules(this.ctx.id);
    if (!this.lease) return;
    const lease = this.lease;
    this.lease = undefined;
    try {
      releaseLeases(new Set([lease.id]));
    } catch (e) {
      printErr(`gcr: warning: network cleanup: ${(e as Error).message}\n`);
    }
  }
}

function ipForward(): string {
  return readText(IP_FORWARD).trim();
}

/** Bridge, address, up, NAT, forwarding: made when missing, checked against host routes. */
function ensureBridge(s: BridgeState, nl: Netlink, subnet: Subnet): number {
  const cidr = formatSubnet(subnet);
  let index = nl.linkIndex(BRIDGE);
  if (index !== undefined && s.subnet === cidr) return index;
  // Refuse a subnet that would shadow a route the host already has (the LAN, a VPN, ...).
  for (const r of nl.routes()) {
    if (r.table !== 254 || r.prefixLen === 0 || (index !== undefined && r.oif === index)) continue;
    if (overlaps(subnet, { base: ipToNum(r.dst), prefixLen: r.prefixLen })) {
      throw new GcrError(`network: subnet ${cidr} overlaps the host route ${r.dst}/${r.prefixLen}`, { hint: "set GCR_SUBNET to a free private range, e.g. GCR_SUBNET=10.89.0.0/16" });
    }
  }
  if (s.subnet && s.subnet !== cidr && s.leases.length > 0) {
    throw new GcrError(`network ${BRIDGE} is in use with subnet ${s.subnet}, not ${cidr}`, { hint: "use the same GCR_SUBNET for every gcr, or stop the running containers" });
  }
  if (index !== undefined) {
    // Left by a gcr that died while making it, or made for another subnet: start clean.
    nl.deleteLink(BRIDGE);
    debug("net", `removed stale bridge ${BRIDGE}`);
  }
  nl.addBridge(BRIDGE);
  index = nl.linkIndex(BRIDGE)!;
  nl.addAddress(index, gateway(subnet), subnet.prefixLen, broadcast(subnet));
  nl.setUp(index);
  debug("net", `link bridge ${BRIDGE} created, address ${gateway(subnet)}/${subnet.prefixLen}, up`);
  if (s.nat && s.subnet) removeNat(s.nat, BRIDGE, s.subnet);
  s.subnet = cidr;
  s.nat = addNat(BRIDGE, cidr);
  const fwd = ipForward();
  if (fwd !== "1") {
    writeFile(IP_FORWARD, "1");
    debug("net", "sysctl net.ipv4.ip_forward=1 (was 0; restored when the bridge goes)");
  }
  s.ipForward ??= fwd;
  return index;
}

/** Drop the leases of dead gcr processes (and their veths, if the kernel has not yet). */
function reclaim(s: BridgeState, nl: Netlink): void {
  s.leases = s.leases.filter((l) => {
    if (leaseAlive(l)) return true;
    if (nl.deleteLink(l.veth)) debug("net", `removed stale link ${l.veth}`);
    debug("net", `reclaimed ${l.ip} of dead container ${l.id.slice(0, 12)}`);
    return false;
  });
}

/** Give back the leases of these containers; with `teardown`, the last one out removes bridge, NAT, ip_forward. */
export function releaseLeases(ids: Set<string>, teardown = process.env.GCR_NETWORK_TEARDOWN === "1"): void {
  const nl = Netlink.open();
  try {
    withBridgeState(BRIDGE, (s) => {
      if (s.leases.length === 0 && !s.subnet) return;
      for (const l of s.leases.filter((l) => ids.has(l.id))) {
        // The kernel removes the pair when the container's netns dies, but lazily (a
        // workqueue); deleting it here makes the cleanup synchronous.
        if (nl.deleteLink(l.veth)) debug("net", `link ${l.veth} deleted`);
        debug("net", `released ${l.ip}`);
      }
      s.leases = s.leases.filter((l) => !ids.has(l.id));
      reclaim(s, nl);
      // gcr0 and its NAT table stay for the next container, as docker0 does: making them
      // costs two nft runs (~30 ms each) per container otherwise. GCR_NETWORK_TEARDOWN=1
      // makes the last container out remove them (podman/netavark's behaviour).
      if (s.leases.length > 0 || !teardown) return;
      if (nl.deleteLink(BRIDGE)) debug("net", `link bridge ${BRIDGE} deleted (no container left on it)`);
      if (s.nat && s.subnet) removeNat(s.nat, BRIDGE, s.subnet);
      if (s.ipForward === "0") {
        writeFile(IP_FORWARD, "0");
        debug("net", "sysctl net.ipv4.ip_forward=0 restored");
      }
      s.subnet = s.nat = s.ipForward = undefined;
    });
  } finally {
    nl.close();
  }
}
