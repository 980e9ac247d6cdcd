// Pure: the /etc/hosts and /etc/resolv.conf a container gets, per network mode, as docker
// and podman write them.

/** /etc/hosts: localhost, and the container's hostname on its own address (127.0.1.1 without one). */
export function hostsFile(hostname: string, ip?: string): string {
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${ip ?? "127.0.1.1"}\t${hostname}\n`;
}

/**
 * The host's resolver configuration, minus nameservers on the host's loopback (a resolver
 * such as systemd-resolved at 127.0.0.53 is unreachable from another network namespace).
 * With none left, docker's fallback. `override` replaces the nameservers (slirp4netns' 10.0.2.3).
 */
export function resolvConf(host: string, override?: string[]): string {
  const lines = host.split("\n");
  const isNs = (l: string) => /^\s*nameserver\s/.test(l);
  const kept = lines.filter((l) => !isNs(l) || !/^\s*nameserver\s+(127\.|::1\b)/.test(l));
  const rest = kept.filter((l) => !isNs(l) && l.trim() !== "");
  let servers = kept.filter(isNs).map((l) => l.trim().split(/\s+/)[1]!);
  if (override) servers = override;
  else if (servers.length === 0) servers = ["8.8.8.8", "8.8.4.4"];
  return [...rest, ...servers.map((s) => `nameserver ${s}`)].join("\n") + "\n";
}
