// Pure IPv4 arithmetic for the bridge network: CIDR parsing, overlap with host routes, the
// gateway and the lowest free address.
export interface Subnet {
  /** The network address as a 32-bit unsigned number. */
  base: number;
  prefixLen: number;
}

export function ipToNum(ip: string): number {
  const p = ip.split(".").map(Number);
  return (((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!) >>> 0;
}

export function numToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

const mask = (prefixLen: number) => (prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0);

/** "10.88.0.0/16"; host bits must be zero; /8 to /30 (room for a gateway and a container). */
export function parseSubnet(cidr: string): Subnet {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(cidr.trim());
  const octets = m?.[1]!.split(".").map(Number);
  const prefixLen = Number(m?.[2]);
  if (!m || octets!.some((o) => o > 255) || prefixLen < 8 || prefixLen > 30) throw new Error(`invalid subnet '${cidr}': want an IPv4 CIDR from /8 to /30, e.g. 10.88.0.0/16`);
  const base = ipToNum(m[1]!);
  if ((base & mask(prefixLen)) >>> 0 !== base) throw new Error(`invalid subnet '${cidr}': host bits are set (did you mean ${numToIp((base & mask(prefixLen)) >>> 0)}/${prefixLen}?)`);
  return { base, prefixLen };
}

export function formatSubnet(s: Subnet): string {
  return `${numToIp(s.base)}/${s.prefixLen}`;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const m = mask(Math.min(a.prefixLen, b.prefixLen));
  return ((a.base & m) >>> 0) === ((b.base & m) >>> 0);
}

/** The first host address: the bridge's own, the containers' default gateway. */
export function gateway(s: Subnet): string {
  return numToIp(s.base + 1);
}

export function broadcast(s: Subnet): string {
  return numToIp((s.base | ~mask(s.prefixLen)) >>> 0);
}

/** The lowest address after the gateway that is not in `used`; undefined when the subnet is full. */
export function firstFree(s: Subnet, used: Set<string>): string | undefined {
  const last = (s.base | ~mask(s.prefixLen)) >>> 0;
  for (let n = s.base + 2; n < last; n++) {
    const ip = numToIp(n);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}
