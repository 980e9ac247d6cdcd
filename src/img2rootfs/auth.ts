// Registry authentication: WWW-Authenticate challenges and docker's config.json credentials.
// Credentials are scoped by registry host: a token or password is only ever attached to a
// request whose origin is the registry it belongs to (see registry.ts, R11).
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { GcrError } from "../errors.ts";
import { DOCKER_HUB, credentialKey } from "./reference.ts";

export interface Challenge {
  scheme: string; // lowercased: "bearer", "basic"
  params: Record<string, string>;
}

/**
 * Parse a WWW-Authenticate header (RFC 7235): one or more challenges, each a scheme and
 * comma-separated auth-params whose values may be quoted strings containing commas.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => {
    while (i < n && (header[i] === " " || header[i] === "\t" || header[i] === ",")) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipWs();
    const start = i;
    const word = token();
    if (!word) {
      i++;
      continue;
    }
    let j = i;
    while (j < n && header[j] === " ") j++;
    if (header[j] === "=" && current) {
      // auth-param of the current challenge
      i = j + 1;
      while (i < n && header[i] === " ") i++;
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        const vs = i;
        while (i < n && header[i] !== ",") i++;
        value = header.slice(vs, i).trim();
      }
      current.params[word.toLowerCase()] = value;
    } else {
      // a new challenge scheme
      current = { scheme: header.slice(start, i).toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

export interface Credentials {
  username: string;
  password: string;
  /** docker config "identitytoken": an OAuth2 refresh token for the token endpoint. */
  identityToken?: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  [k: string]: unknown;
}

/** $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(): string {
  const dir = process.env.DOCKER_CONFIG || join(process.env.HOME || homedir(), ".docker");
  return join(dir, "config.json");
}

function readConfig(path: string): DockerConfig {
  if (!existsSync(path)) return {};
  try {
    return JSON.parse(readFileSync(path, "utf8")) as DockerConfig;
  } catch (cause) {
    throw new GcrError(`read credentials ${path}`, { cause, hint: "the file is not valid JSON" });
  }
}

// The keys docker may have used for a registry: "host", "https://host", "https://host/v1/", ...
function keysFor(registry: string): string[] {
  if (registry === DOCKER_HUB) {
    return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io", "https://registry-1.docker.io"];
  }
  return [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
}

/** The saved credentials for a registry (as written in a reference: docker.io, host:port), if any. */
export function loadCredentials(registry: string, path = dockerConfigPath()): Credentials | undefined {
  const cfg = readConfig(path);
  for (const key of keysFor(registry)) {
    const e = cfg.auths?.[key];
    if (!e) continue;
    if (e.auth) {
      const decoded = Buffer.from(e.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0) continue;
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), identityToken: e.identitytoken };
    }
    if (e.username !== undefined && e.password !== undefined) return { username: e.username, password: e.password };
    if (e.identitytoken) return { username: "<token>", password: "", identityToken: e.identitytoken };
  }
  return undefined;
}

// Write atomically, mode 0600: the file holds secrets.
function writeConfig(path: string, cfg: DockerConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.gcr-${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(cfg, null, "\t") + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function saveCredentials(registry: string, creds: Credentials, path = dockerConfigPath()): void {
  const cfg = readConfig(path);
  cfg.auths ??= {};
  cfg.auths[credentialKey(registry)] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString("base64") };
  writeConfig(path, cfg);
}

/** Remove saved credentials; returns false when there were none. */
export function removeCredentials(registry: string, path = dockerConfigPath()): boolean {
  const cfg = readConfig(path);
  let removed = false;
  for (const key of keysFor(registry)) {
    if (cfg.auths?.[key]) {
      delete cfg.auths[key];
      removed = true;
    }
  }
  if (removed) writeConfig(path, cfg);
  return removed;
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}
