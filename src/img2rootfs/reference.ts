// Image references, normalised as docker does (distribution/reference):
//   ubuntu                      -> docker.io/library/ubuntu:latest
//   user/app:tag                -> docker.io/user/app:tag
//   host:port/path/name:tag     -> host:port/path/name:tag
//   name@sha256:<hex>           -> pinned: the manifest's digest must match
// Pure: no I/O.
import { UsageError } from "../errors.ts";
import { parseDigest } from "./digest.ts";

export interface Reference {
  /** Registry as written (docker.io for Docker Hub), e.g. "127.0.0.1:5000". */
  registry: string;
  /** Repository path inside the registry, e.g. "library/ubuntu". */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DOCKER_HUB = "docker.io";
const DOCKER_HUB_API = "registry-1.docker.io";

// One path component: lowercase alphanumerics joined by '.', '_', '__' or runs of '-'.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
// A registry host: DNS name or IPv4, optional port; or a bracketed IPv6 literal.
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;

/** Parse and normalise a reference; throws UsageError naming what is wrong. */
export function parseReference(input: string): Reference {
  const bad = (why: string) => new UsageError(`invalid reference '${input}': ${why}`);
  if (input.length === 0 || input.length > 4096) throw bad("empty or too long");
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(digest);
    } catch (e) {
      throw bad(`bad digest: ${(e as Error).message}`);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`bad tag '${tag}'`);
  }
  let registry = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("[")) {
      registry = first;
      path = rest.slice(slash + 1);
      if (!HOST.test(registry)) throw bad(`bad registry host '${registry}'`);
    }
  }
  if (registry === "index.docker.io" || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (path.length === 0) throw bad("no repository name");
  const components = path.split("/");
  for (const c of components) {
    if (!COMPONENT.test(c)) {
      throw bad(c.toLowerCase() !== c ? "repository names must be lowercase" : `bad path component '${c}'`);
    }
  }
  if (registry === DOCKER_HUB && components.length === 1) path = `library/${path}`;
  if (path.length > 255) throw bad("repository name too long");
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository: path, tag, digest };
}

/** The canonical string: docker.io/library/ubuntu:latest, host/x@sha256:... */
export function formatReference(ref: Reference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag) s += `:${ref.tag}`;
  if (ref.digest) s += `@${ref.digest}`;
  return s;
}

/** The host[:port] that serves the registry API (Docker Hub's is registry-1.docker.io). */
export function apiHost(ref: Reference): string {
  return ref.registry === DOCKER_HUB ? DOCKER_HUB_API : ref.registry;
}

/** The key under which docker config.json stores credentials for this registry. */
export function credentialKey(registry: string): string {
  return registry === DOCKER_HUB ? "https://index.docker.io/v1/" : registry;
}

/** Hostname without port or brackets. */
export function hostName(hostPort: string): string {
  if (hostPort.startsWith("[")) return hostPort.slice(1, hostPort.indexOf("]"));
  const i = hostPort.lastIndexOf(":");
  return i >= 0 ? hostPort.slice(0, i) : hostPort;
}

/** Plain HTTP is allowed only for loopback names and registries the user listed (R13). */
export function isLoopback(hostPort: string): boolean {
  const h = hostName(hostPort).toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::1";
}
