// rtnetlink from gcr itself: links, addresses and routes without shelling out to ip(8).
//
// A netlink socket belongs to the network namespace of the thread that created it, for its
// whole life (BUN-FACTS §1). To configure a container's namespace, Netlink.open(pid) moves
// the main thread into /proc/PID/ns/net, creates the socket and moves straight back, all
// synchronously: nothing else runs on the main thread in between, and Bun's other threads
// never move. Requests are synchronous too: the kernel queues the reply (or the ack) before
// sendto() returns, so a blocking recv() never waits.
//
// The encoding half (nlmsg, attr, ifinfomsg, ...) is pure and unit-tested in netlink.test.ts.
import { close, open, O } from "./fs.ts";
import { check, setns, sys, SYS } from "./libc.ts";
import { SyscallError } from "../errors.ts";
import { printErr } from "../output.ts";


// <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if_addr.h>
const AF_NETLINK = 16;
const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const CLONE_NEWNET = 0x40000000;

export const NLM_F = { REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, DUMP: 0x300, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;
export const NLMSG = { ERROR: 2, DONE: 3 } as const;
export const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWADDR: 20, NEWROUTE: 24, GETROUTE: 26 } as const;
const IFLA = { IFNAME: 3, MTU: 4, MASTER: 10, LINKINFO: 18, NET_NS_PID: 19 } as const;
const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const IFA = { ADDRESS: 1, LOCAL: 2, BROADCAST: 4 } as const;
const RTA = { DST: 1, OIF: 4, GATEWAY: 5, TABLE: 15 } as const;
const IFF_UP = 1;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;

// ---- encoding (pure) ----

const align4 = (n: number) => (n + 3) & ~3;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + align4(p.length), 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += align4(p.length);
  }
  return out;
}

/** One rtattr: u16 length (header + payload, unpadded), u16 type, payload padded to 4. */
export function attr(type: number, payload: Uint8Array | string | number | Uint8Array[]): Uint8Array {
  let data: Uint8Array;
  if (typeof payload === "string") data = new TextEncoder().encode(`${payload}\0`);
  else if (typeof payload === "number") {
    data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, payload >>> 0, true);
  } else data = Array.isArray(payload) ? concat(payload) : payload;
  const out = new Uint8Array(align4(4 + data.length));
  const v = new DataView(out.buffer);
  v.setUint16(0, 4 + data.length, true);
  v.setUint16(2, type, true);
  out.set(data, 4);
  return out;
}

/** struct ifinfomsg (16 bytes). */
export function ifinfomsg(index = 0, flags = 0, change = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setInt32(4, index, true);
  v.setUint32(8, flags, true);
  v.setUint32(12, change, true);
  return b;
}

/** struct ifaddrmsg (8 bytes), IPv4. */
export function ifaddrmsg(index: number, prefixLen: number): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = AF_INET;
  b[1] = prefixLen;
  new DataView(b.buffer).setUint32(4, index, true);
  return b;
}

/** struct rtmsg (12 bytes), IPv4 unicast in the main table. */
export function rtmsg(dstLen: number): Uint8Array {
  return new Uint8Array([AF_INET, dstLen, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0, 0, 0, 0]);
}

/** struct nlmsghdr (16 bytes) + body. */
export function nlmsg(type: number, flags: number, seq: number, body: Uint8Array[]): Uint8Array {
  const payload = concat(body);
  const out = new Uint8Array(16 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, out.length, true);
  v.setUint16(4, type, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, seq, true);
  out.set(payload, 16);
  return out;
}

export function ipv4Bytes(ip: string): Uint8Array {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return new Uint8Array(parts);
}

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  /** The bytes after the 16-byte header. */
  body: Uint8Array;
}

/** Split a datagram into messages. */
export function parseMessages(buf: Uint8Array): NlMessage[] {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: NlMessage[] = [];
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = v.getUint32(off, true);
    if (len < 16 || off + len > buf.length) break;
    out.push({ type: v.getUint16(off + 4, true), flags: v.getUint16(off + 6, true), seq: v.getUint32(off + 8, true), body: buf.subarray(off + 16, off + len) });
    off += align4(len);
  }
  return out;
}

/** Attributes after a fixed-size header, as type -> payload (the first of each type). */
export function parseAttrs(body: Uint8Array, headerLen: number): Map<number, Uint8Array> {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out = new Map<number, Uint8Array>();
  let off = headerLen;
  while (off + 4 <= body.length) {
    const len = v.getUint16(off, true);
    if (len < 4 || off + len > body.length) break;
    const type = v.getUint16(off + 2, true) & 0x3fff; // without NLA_F_NESTED / NET_BYTEORDER
    if (!out.has(type)) out.set(type, body.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

const u32 = (b: Uint8Array | undefined) => (b && b.length >= 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) : undefined);
/** A NUL-terminated attribute (IFLA_IFNAME) as a string. */
const fromCstr = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b).replace(/\0.*$/s, "") : "");

export interface Route {
  /** "0.0.0.0" for the default route. */
  dst: string;
  prefixLen: number;
  oif?: number;
  gateway?: string;
  table: number;
}

export function parseRoute(body: Uint8Array): Route | undefined {
  if (body[0] !== AF_INET) return undefined;
  const a = parseAttrs(body, 12);
  const dst = a.get(RTA.DST);
  const gw = a.get(RTA.GATEWAY);
  return {
    dst: dst ? [...dst].join(".") : "0.0.0.0",
    prefixLen: body[1]!,
    oif: u32(a.get(RTA.OIF)),
    gateway: gw ? [...gw].join(".") : undefined,
    table: u32(a.get(RTA.TABLE)) ?? body[4]!,
  };
}

// ---- the socket ----

let seqCounter = 1;

/** An rtnetlink socket bound to one network namespace. */
export class Netlink {
  private readonly buf = new Uint8Array(65536);
  private constructor(readonly fd: number, readonly where: string) {}

  /** A socket in the caller's namespace, or in the one of process `pid`. */
  static open(pid?: number): Netlink {
    if (pid === undefined) return new Netlink(Netlink.socket(), "host");
    // The main thread's own namespace, to come back to (not /proc/self: that is the
    // thread-group leader's, the same thread here, but thread-self says what is meant).
    const home = open("/proc/thread-self/ns/net", O.RDONLY);
    let target = -1;
    try {
      target = open(`/proc/${pid}/ns/net`, O.RDONLY);
      setns(target, CLONE_NEWNET, `/proc/${pid}/ns/net`, "CLONE_NEWNET");
      try {
        return new Netlink(Netlink.socket(), `netns of pid ${pid}`);
      } finally {
        // Must not fail silently: gcr would go on with its main thread in the container's netns.
        const rc = sys(SYS.setns, home, CLONE_NEWNET);
        if (rc < 0) {
          printErr(`gcr: fatal: cannot return to the host network namespace: errno ${-rc}\n`);
          process.exit(125);
        }
      }
    } finally {
      if (target >= 0) close(target);
      close(home);
    }
  }

  private static socket(): number {
    const fd = sys(SYS.socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw new SyscallError("socket", -fd, undefined, "AF_NETLINK NETLINK_ROUTE");
    return fd;
  }

  close(): void {
    close(this.fd);
  }

  /** Send one request; return the reply messages (for a dump: all parts), throw on an error ack. */
  request(type: number, flags: number, body: Uint8Array[], what: string): NlMessage[] {
    const seq = seqCounter++;
    const msg = nlmsg(type, flags | NLM_F.REQUEST | NLM_F.ACK, seq, body);
    const addr = new Uint8Array(12); // sockaddr_nl { AF_NETLINK, pad, pid 0 (kernel), groups 0 }
    addr[0] = AF_NETLINK;
    const sent = sys(SYS.sendto, this.fd, msg, msg.length, 0, addr, addr.length);
    if (sent < 0) throw new SyscallError("sendto", -sent, undefined, `netlink ${what}`);
    // NLM_F_DUMP shares bits with NLM_F_EXCL; it means a dump only on a GET (type % 4 == 2).
    const dump = (flags & NLM_F.DUMP) === NLM_F.DUMP && type % 4 === 2;
    const out: NlMessage[] = [];
    for (;;) {
      const n = check(SYS.recvfrom, "recv", `netlink ${what}`, this.fd, this.buf, this.buf.length, 0, 0, 0);
      for (const m of parseMessages(this.buf.slice(0, n))) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG.DONE) return out;
        if (m.type === NLMSG.ERROR) {
          const err = new DataView(m.body.buffer, m.body.byteOffset).getInt32(0, true);
          if (err !== 0) throw new SyscallError("netlink", -err, undefined, what);
          // A plain ack ends a non-dump request; a dump ends with DONE.
          if (!dump) return out;
          continue;
        }
        out.push(m);
      }
    }
  }

  /** The index of a link by name, or undefined when there is none. */
  linkIndex(name: string): number | undefined {
    try {
      const [m] = this.request(RTM.GETLINK, 0, [ifinfomsg(), attr(IFLA.IFNAME, name)], `get link ${name}`);
      return m ? new DataView(m.body.buffer, m.body.byteOffset).getInt32(4, true) : undefined;
    } catch (e) {
      if (e instanceof SyscallError && e.code === "ENODEV") return undefined;
      throw e;
    }
  }

  /** Names of all links, by index. */
  links(): Map<number, string> {
    const out = new Map<number, string>();
    for (const m of this.request(RTM.GETLINK, NLM_F.DUMP, [ifinfomsg()], "list links")) {
      out.set(new DataView(m.body.buffer, m.body.byteOffset).getInt32(4, true), fromCstr(parseAttrs(m.body, 16).get(IFLA.IFNAME)));
    }
    return out;
  }

  addBridge(name: string): void {
    const linkinfo = attr(IFLA.LINKINFO, [attr(IFLA_INFO.KIND, "bridge")]);
    this.request(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, [ifinfomsg(), attr(IFLA.IFNAME, name), linkinfo], `create bridge ${name}`);
  }

  /** A veth pair: `name` here, `peer` created directly in the network namespace of `peerPid`. */
  addVeth(name: string, peer: string, peerPid: number, mtu?: number): void {
    const mtuAttr = mtu ? [attr(IFLA.MTU, mtu)] : [];
    const peerInfo = attr(VETH_INFO_PEER, [ifinfomsg(), attr(IFLA.IFNAME, peer), attr(IFLA.NET_NS_PID, peerPid), ...mtuAttr]);
    const linkinfo = attr(IFLA.LINKINFO, [attr(IFLA_INFO.KIND, "veth"), attr(IFLA_INFO.DATA, [peerInfo])]);
    this.request(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, [ifinfomsg(), attr(IFLA.IFNAME, name), ...mtuAttr, linkinfo], `create veth ${name}`);
  }

  /** Attach a link to a bridge and bring it up. */
  setMasterUp(index: number, master: number): void {
    this.request(RTM.NEWLINK, 0, [ifinfomsg(index, IFF_UP, IFF_UP), attr(IFLA.MASTER, master)], `attach link ${index} to ${master}`);
  }

  setUp(index: number): void {
    this.request(RTM.NEWLINK, 0, [ifinfomsg(index, IFF_UP, IFF_UP)], `set link ${index} up`);
  }

  /** Delete a link; false when it did not exist. */
  deleteLink(name: string): boolean {
    try {
      this.request(RTM.DELLINK, 0, [ifinfomsg(), attr(IFLA.IFNAME, name)], `delete link ${name}`);
      return true;
    } catch (e) {
      if (e instanceof SyscallError && e.code === "ENODEV") return false;
      throw e;
    }
  }

  addAddress(index: number, ip: string, prefixLen: number, broadcast?: string): void {
    const a = ipv4Bytes(ip);
    const attrs = [attr(IFA.LOCAL, a), attr(IFA.ADDRESS, a)];
    if (broadcast) attrs.push(attr(IFA.BROADCAST, ipv4Bytes(broadcast)));
    this.request(RTM.NEWADDR, NLM_F.CREATE | NLM_F.EXCL, [ifaddrmsg(index, prefixLen), ...attrs], `add address ${ip}/${prefixLen}`);
  }

  /** A route in the main table; without `dst` the default route. */
  addRoute(r: { dst?: string; prefixLen?: number; gateway?: string; oif: number }): void {
    const attrs = [attr(RTA.OIF, r.oif)];
    if (r.dst) attrs.push(attr(RTA.DST, ipv4Bytes(r.dst)));
    if (r.gateway) attrs.push(attr(RTA.GATEWAY, ipv4Bytes(r.gateway)));
    this.request(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.EXCL, [rtmsg(r.dst ? (r.prefixLen ?? 32) : 0), ...attrs], `add route ${r.dst ?? "default"}`);
  }

  /** IPv4 routes of every table. */
  routes(): Route[] {
    const body = new Uint8Array(12);
    body[0] = AF_INET;
    return this.request(RTM.GETROUTE, NLM_F.DUMP, [body], "list routes").flatMap((m) => parseRoute(m.body) ?? []);
  }
}
