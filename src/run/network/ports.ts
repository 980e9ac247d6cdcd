// Pure: `-p/--publish [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]` -> a typed port mapping.
import { UsageError } from "../../errors.ts";

export type Proto = "tcp" | "udp";

export interface PortMapping {
  /** The host address to listen on; "0.0.0.0" (every address) unless given, as in docker. */
  hostIp: string;
  /** 0: any free port, chosen when the listener opens. */
  hostPort: number;
  containerPort: number;
  proto: Proto;
}

function port(s: string, spec: string, what: string, allowZero: boolean): number {
  if (allowZero && s === "") return 0;
  const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
  if (!(n >= (allowZero ? 0 : 1) && n <= 65535)) throw new UsageError(`invalid --publish '${spec}': ${what} port '${s}' is not a number from 1 to 65535`, "run");
  return n;
}

export function parsePublish(spec: string): PortMapping {
  let rest = spec;
  let proto: Proto = "tcp";
  const slash = rest.lastIndexOf("/");
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p !== "tcp" && p !== "udp") throw new UsageError(`invalid --publish '${spec}': protocol must be tcp or udp, not '${p}'`, "run");
    proto = p;
    rest = rest.slice(0, slash);
  }
  let hostIp = "0.0.0.0";
  const bracket = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(rest);
  if (bracket) {
    hostIp = bracket[1]!;
    rest = bracket[2]!;
  }
  const parts = rest.split(":");
  if (parts.some((p) => p.includes("-"))) throw new UsageError(`invalid --publish '${spec}': port ranges are not supported`, "run");
  if (parts.length === 3 && !bracket) {
    hostIp = parts.shift()!;
    if (!isIpv4(hostIp)) throw new UsageError(`invalid --publish '${spec}': '${hostIp}' is not an IPv4 address`, "run");
  }
  if (parts.length === 1) return { hostIp, hostPort: 0, containerPort: port(parts[0]!, spec, "container", false), proto };
  if (parts.length !== 2) throw new UsageError(`invalid --publish '${spec}': use [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]`, "run");
  return { hostIp, hostPort: port(parts[0]!, spec, "host", true), containerPort: port(parts[1]!, spec, "container", false), proto };
}

export function isIpv4(s: string): boolean {
  const p = s.split(".");
  return p.length === 4 && p.every((x) => /^\d{1,3}$/.test(x) && Number(x) <= 255);
}

/** "127.0.0.1:8080->80/tcp", as docker ps shows it. */
export function describeMapping(m: PortMapping): string {
  return `${m.hostIp}:${m.hostPort || "*"}->${m.containerPort}/${m.proto}`;
}
