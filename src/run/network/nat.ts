// Outbound NAT (masquerade) and forwarding for the bridge subnet, with nft where installed,
// else iptables. One set of rules per bridge, made with the bridge and removed with it.
import { debug, warn } from "../../log.ts";
import { exists } from "../../sys/fs.ts";

export type NatBackend = "nft" | "iptables" | "none";

// gcr may run with a PATH without the sbin directories (tests, sudo -E, su).
const SBIN = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

function tool(name: string): string | undefined {
  return Bun.which(name) ?? SBIN.map((d) => `${d}/${name}`).find((p) => exists(p));
}

export function natBackend(): NatBackend {
  if (tool("nft")) return "nft";
  if (tool("iptables")) return "iptables";
  return "none";
}

/** The nft binary, if installed. */
export function nftTool(): string | undefined {
  return tool("nft");
}

export function runTool(argv: string[], stdin?: string): { ok: boolean; err: string } {
  return run(argv, stdin);
}

function run(argv: string[], stdin?: string): { ok: boolean; err: string } {
  const p = Bun.spawnSync(argv, { stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin), stdout: "ignore", stderr: "pipe" });
  return { ok: p.exitCode === 0, err: p.stderr.toString().trim() };
}

/** The nft table of one bridge: gcr_<bridge name>. */
export function nftTable(bridge: string): string {
  return `gcr_${bridge.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

/** The nft script (pure, tested): masquerade what leaves the subnet, forward to and from the bridge. */
export function nftRules(bridge: string, subnet: string): string {
  const t = nftTable(bridge);
  // "add" then "delete" makes the definition idempotent: a leftover table is replaced whole.
  return `add table ip ${t}
delete table ip ${t}
table ip ${t} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${subnet} ip daddr != ${subnet} masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "${bridge}" accept
    oifname "${bridge}" ct state established,related accept
  }
}
`;
}

/** iptables rule specs (pure, tested), each used with -C / -I / -D. */
export function iptablesRules(bridge: string, subnet: string): string[][] {
  const c = ["-m", "comment", "--comment", `gcr ${bridge}`];
  return [
    ["-t", "nat", "POSTROUTING", "-s", subnet, "!", "-d", subnet, ...c, "-j", "MASQUERADE"],
    ["-t", "filter", "FORWARD", "-i", bridge, ...c, "-j", "ACCEPT"],
    ["-t", "filter", "FORWARD", "-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", ...c, "-j", "ACCEPT"],
  ];
}

const ipt = (op: string, spec: string[]) => [spec[0]!, spec[1]!, op, ...spec.slice(2)];

export function addNat(bridge: string, subnet: string): NatBackend {
  const backend = natBackend();
  if (backend === "nft") {
    const r = run([tool("nft")!, "-f", "-"], nftRules(bridge, subnet));
    if (!r.ok) throw new Error(`nft: ${r.err}`);
    debug("net", `nft: table ip ${nftTable(bridge)}: masquerade ${subnet} leaving the subnet, forward via ${bridge}`);
  } else if (backend === "iptables") {
    const bin = tool("iptables")!;
    for (const spec of iptablesRules(bridge, subnet)) {
      if (run([bin, "-w", ...ipt("-C", spec)]).ok) continue;
      const r = run([bin, "-w", ...ipt("-I", spec)]);
      if (!r.ok) throw new Error(`iptables: ${r.err}`);
      debug("net", `iptables ${ipt("-I", spec).join(" ")}`);
    }
  } else {
    warn(`neither nft nor iptables is installed: containers on ${bridge} can reach each other and the host, but not beyond (install nftables for outbound NAT)`);
  }
  return backend;
}

/** Never throws: called on cleanup paths. */
export function removeNat(backend: NatBackend, bridge: string, subnet: string): void {
  if (backend === "nft") {
    const bin = tool("nft");
    if (bin && run([bin, "delete", "table", "ip", nftTable(bridge)]).ok) debug("net", `nft: deleted table ip ${nftTable(bridge)}`);
  } else if (backend === "iptables") {
    const bin = tool("iptables");
    if (!bin) return;
    for (const spec of iptablesRules(bridge, subnet)) while (run([bin, "-w", ...ipt("-D", spec)]).ok);
    debug("net", `iptables: removed the rules of ${bridge}`);
  }
}
