// Published ports of a detached container (run -d -p): no gcr process stays behind to proxy
// connections (proxy.ts serves foreground runs), so the kernel forwards them with DNAT rules,
// one nft table per container, made at start and deleted when the container is swept or
// removed. Connections from the host to 127.0.0.1 are DNATed in the output hook; for the
// rewritten packets to leave through gcr0 the bridge needs net.ipv4.conf.gcr0.route_localnet=1,
// and they are masqueraded so that the container answers the bridge address.
import { GcrError } from "../../errors.ts";
import { debug } from "../../log.ts";
import { containersDir } from "../container.ts";
import { natBackend, nftTool, runTool } from "./nat.ts";
import { describeMapping, type PortMapping } from "./ports.ts";
import { exists, unlinkIfExists, writeFile } from "../../sys/fs.ts";
import { join } from "../../path.ts";

/** The nft table of one container's published ports. */
export function portTable(id: string): string {
  return `gcr_p_${id.slice(0, 12)}`;
}

/** Pure (tested): the nft script that forwards each mapping to the container. */
export function dnatRules(id: string, bridge: string, containerIp: string, ports: PortMapping[]): string {
  const t = portTable(id);
  const match = (m: PortMapping) =>
    `${m.hostIp === "0.0.0.0" ? "fib daddr type local" : `ip daddr ${m.hostIp}`} ${m.proto} dport ${m.hostPort} dnat to ${containerIp}:${m.containerPort}`;
  const rules = ports.map(match).join("\n    ");
  return `add table ip ${t}
delete table ip ${t}
table ip ${t} {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ${rules}
  }
  chain output {
    type nat hook output priority -100; policy accept;
    ${rules}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 127.0.0.0/8 ip daddr ${containerIp} oifname "${bridge}" masquerade
  }
}
`;
}

/** Check before anything starts: what a detached container's -p needs. */
export function checkDetachedPorts(ports: PortMapping[]): void {
  if (ports.length === 0) return;
  if (natBackend() !== "nft") throw new GcrError("publishing ports of a detached container (run -d -p) needs nft", { hint: "apt-get install nftables, or run in the foreground" });
  for (const m of ports)
    if (m.hostPort === 0) throw new GcrError(`-p ${m.containerPort}: a detached container needs an explicit host port (HOSTPORT:${m.containerPort})`);
}

export function addPortRules(id: string, bridge: string, containerIp: string, ports: PortMapping[]): void {
  writeFile(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, "1");
  // Recorded first, so the sweep removes the table even if this gcr dies right after.
  writeFile(marker(id), portTable(id) + "\n");
  const r = runTool([nftTool()!, "-f", "-"], dnatRules(id, bridge, containerIp, ports));
  if (!r.ok) throw new GcrError(`nft: ${r.err}`);
  debug("net", `nft: table ip ${portTable(id)}: ${ports.map(describeMapping).join(", ")} DNAT to ${containerIp}`);
}

const marker = (id: string) => join(containersDir(), id, "ports");

/** Never throws: called on cleanup paths. Only containers that published ports have rules. */
export function removePortRules(id: string): void {
  if (!exists(marker(id))) return;
  const nft = nftTool();
  if (nft && runTool([nft, "delete", "table", "ip", portTable(id)]).ok) debug("net", `nft: deleted table ip ${portTable(id)}`);
  unlinkIfExists(marker(id));
}
