// Pure parts of container networking: -p parsing, subnet arithmetic, /etc files, NAT rule
// text, --network parsing, and the rtnetlink encoding.
import { describe, expect, test } from "bun:test";
import { attr, ifinfomsg, nlmsg, parseAttrs, parseMessages, parseRoute, rtmsg } from "../../sys/netlink.ts";
import { vethName } from "./bridge.ts";
import { dnatRules, portTable } from "./dnat.ts";
import { hostsFile, resolvConf } from "./etc.ts";
import { parseNetwork } from "./index.ts";
import { iptablesRules, nftRules } from "./nat.ts";
import { parsePublish } from "./ports.ts";
import { broadcast, firstFree, gateway, overlaps, parseSubnet } from "./subnet.ts";

describe("parsePublish", () => {
  test.each([
    ["8080:80", { hostIp: "0.0.0.0", hostPort: 8080, containerPort: 80, proto: "tcp" }],
    ["127.0.0.1:8080:80", { hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80, proto: "tcp" }],
    ["5353:53/udp", { hostIp: "0.0.0.0", hostPort: 5353, containerPort: 53, proto: "udp" }],
    ["127.0.0.1::80/TCP", { hostIp: "127.0.0.1", hostPort: 0, containerPort: 80, proto: "tcp" }],
    ["80", { hostIp: "0.0.0.0", hostPort: 0, containerPort: 80, proto: "tcp" }],
  ])("%s", (spec, want) => expect(parsePublish(spec)).toEqual(want as never));
  test.each(["80:http", "1.2.3:80:80", "8080:80/sctp", "70000:80", "8000-8001:80-81", "0:0", "a:b:c:d"])("rejects %s", (spec) => {
    expect(() => parsePublish(spec)).toThrow(/invalid --publish/);
  });
});

describe("subnet", () => {
  const s = parseSubnet("10.88.0.0/16");
  test("gateway, broadcast, first free", () => {
    expect(gateway(s)).toBe("10.88.0.1");
    expect(broadcast(s)).toBe("10.88.255.255");
    expect(firstFree(s, new Set())).toBe("10.88.0.2");
    expect(firstFree(s, new Set(["10.88.0.2", "10.88.0.4"]))).toBe("10.88.0.3");
    expect(firstFree(parseSubnet("10.0.0.0/30"), new Set(["10.0.0.2"]))).toBeUndefined();
  });
  test("overlap", () => {
    expect(overlaps(s, parseSubnet("10.88.5.0/24"))).toBe(true);
    expect(overlaps(s, parseSubnet("10.0.0.0/8"))).toBe(true);
    expect(overlaps(s, parseSubnet("10.89.0.0/16"))).toBe(false);
    expect(overlaps(s, parseSubnet("192.168.0.0/16"))).toBe(false);
  });
  test("bad subnets", () => {
    expect(() => parseSubnet("10.88.0.1/16")).toThrow(/host bits/);
    expect(() => parseSubnet("10.88.0.0/31")).toThrow(/invalid subnet/);
    expect(() => parseSubnet("nope")).toThrow(/invalid subnet/);
  });
  test("veth names fit IFNAMSIZ", () => expect(vethName("ab".repeat(32)).length).toBeLessThanOrEqual(15));
});

describe("/etc files", () => {
  test("hosts names the container on its address", () => {
    expect(hostsFile("web", "10.88.0.2")).toContain("10.88.0.2\tweb\n");
    expect(hostsFile("web")).toContain("127.0.1.1\tweb\n");
  });
  test("resolv.conf drops loopback resolvers, keeps search, falls back as docker", () => {
    expect(resolvConf("search lan\nnameserver 127.0.0.53\nnameserver 192.168.1.1\n")).toBe("search lan\nnameserver 192.168.1.1\n");
    expect(resolvConf("nameserver 127.0.0.53\n")).toBe("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    expect(resolvConf("nameserver 1.1.1.1\n", ["10.0.2.3"])).toBe("nameserver 10.0.2.3\n");
  });
});

describe("NAT rules", () => {
  test("nft: one table per bridge, replaced whole", () => {
    const r = nftRules("gcr0", "10.88.0.0/16");
    expect(r).toStartWith("add table ip gcr_gcr0\ndelete table ip gcr_gcr0\ntable ip gcr_gcr0 {");
    expect(r).toContain("ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 masquerade");
    expect(r).toContain('iifname "gcr0" accept');
  });
  test("iptables: masquerade and forward, tagged with a comment", () => {
    const r = iptablesRules("gcr0", "10.88.0.0/16").map((x) => x.join(" "));
    expect(r[0]).toBe('-t nat POSTROUTING -s 10.88.0.0/16 ! -d 10.88.0.0/16 -m comment --comment gcr gcr0 -j MASQUERADE');
    expect(r).toHaveLength(3);
  });
});

describe("parseNetwork", () => {
  const all = () => true;
  test("defaults: bridge as root, slirp4netns rootless", () => {
    expect(parseNetwork(undefined, [], true, all).mode).toBe("bridge");
    expect(parseNetwork(undefined, [], false, all).mode).toBe("slirp4netns");
    expect(parseNetwork(undefined, [], false, (d) => d === "pasta").mode).toBe("pasta");
  });
  test("options and errors", () => {
    expect(parseNetwork("slirp4netns:allow_host_loopback=true", [], false, all).allowHostLoopback).toBe(true);
    expect(() => parseNetwork("bridge", [], false, all)).toThrow(/needs root/);
    expect(() => parseNetwork("weird", [], true, all)).toThrow(/invalid --network/);
    expect(() => parseNetwork("none:allow_host_loopback=true", [], true, all)).toThrow(/takes no options/);
    expect(() => parseNetwork("slirp4netns", [], false, () => false)).toThrow(/not installed/);
    expect(parseNetwork("bridge", ["8080:80"], true, all).publish).toHaveLength(1);
  });
});

describe("rtnetlink encoding", () => {
  test("attributes are length-prefixed and padded to 4", () => {
    const a = attr(3, "eth0");
    expect([...a]).toEqual([9, 0, 3, 0, 101, 116, 104, 48, 0, 0, 0, 0]);
    expect(attr(10, 7).length).toBe(8);
  });
  test("a message round-trips through the parser", () => {
    const m = nlmsg(16, 0x5, 42, [ifinfomsg(4, 1, 1), attr(3, "gcr0")]);
    const [p] = parseMessages(m);
    expect(p!.type).toBe(16);
    expect(p!.seq).toBe(42);
    expect(new TextDecoder().decode(parseAttrs(p!.body, 16).get(3)!)).toBe("gcr0\0");
  });
  test("routes parse back", () => {
    const body = new Uint8Array([...rtmsg(16), ...attr(1, new Uint8Array([10, 88, 0, 0])), ...attr(4, 7)]);
    expect(parseRoute(body)).toEqual({ dst: "10.88.0.0", prefixLen: 16, oif: 7, gateway: undefined, table: 254 });
  });
});

describe("DNAT rules of a detached container's published ports", () => {
  test("one table per container; 0.0.0.0 means every local address; 127.0.0.1 sources are masqueraded", () => {
    const id = "0123456789abcdef".repeat(4);
    const text = dnatRules(id, "gcr0", "10.88.0.7", [
      { hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80, proto: "tcp" },
      { hostIp: "0.0.0.0", hostPort: 5353, containerPort: 53, proto: "udp" },
    ]);
    expect(portTable(id)).toBe("gcr_p_0123456789ab");
    expect(text).toContain("table ip gcr_p_0123456789ab {");
    expect(text).toContain("ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.88.0.7:80");
    expect(text).toContain("fib daddr type local udp dport 5353 dnat to 10.88.0.7:53");
    expect(text).toContain('ip saddr 127.0.0.0/8 ip daddr 10.88.0.7 oifname "gcr0" masquerade');
    // Both the packets arriving from outside (prerouting) and the host's own (output) are forwarded.
    expect(text.match(/dnat to 10\.88\.0\.7:80/g)?.length).toBe(2);
  });
});
