// The registry HTTP client (distribution-spec): /v2/ ping, Bearer and Basic auth, manifests,
// blobs streamed to disk with verification and Range resume, retries with backoff.
//
// Security rules kept here (security.md A3):
//  - HTTPS always; plain HTTP only for loopback hosts and --insecure-registry names (R13).
//  - Redirects are followed by hand (fetch redirect:"manual"): only http(s), at most 10 hops,
//    no https->http downgrade, and the Authorization header goes only to the registry's own
//    origin, never to a blob CDN or anything a redirect points at (R11).
//  - Every body is read with a cap (manifests 4 MiB, tokens and error bodies 64 KiB; R06).
//  - Bytes are verified by the caller's Verifier while they stream (R01/R07).
import { closeSync, existsSync, fstatSync, openSync, readSync, renameSync, chmodSync, writeSync, ftruncateSync, fsyncSync } from "node:fs";
import { GcrError, RegistryError } from "../errors.ts";
import { debug } from "../log.ts";
import { MANIFEST_ACCEPT, type Descriptor } from "../oci.ts";
import { type Challenge, type Credentials, basicHeader, parseChallenges } from "./auth.ts";
import { Verifier, digestOf, verifyBytes } from "./digest.ts";
import { type Reference, apiHost, formatReference, hostName, isLoopback } from "./reference.ts";

export const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_SMALL_BODY = 64 << 10;
const MAX_REDIRECTS = 10;

export interface ClientOptions {
  credentials?: Credentials;
  /** Registries (host[:port]) that may be reached over plain HTTP. */
  insecure?: string[];
  /** Attempts per request for 408/429/5xx and network errors (default 5). */
  attempts?: number;
  /** Abort a body that sends nothing for this long (default 60 s; GCR_IDLE_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /** First backoff delay; doubled each retry (default 250 ms). */
  backoffMs?: number;
}

interface Token {
  value: string;
  expires: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A URL safe for messages: no userinfo, no query (which may hold tokens). */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "<bad url>";
  }
}

// Map the registry's error JSON codes to what a user understands.
function describe(status: number, codes: string[], ref: Reference, what: string): { msg: string; hint?: string } {
  const repo = `${ref.registry}/${ref.repository}`;
  if (codes.includes("NAME_UNKNOWN")) return { msg: `unknown image: repository ${repo} not found` };
  if (codes.includes("MANIFEST_UNKNOWN") || (status === 404 && what === "manifest")) {
    return {
      msg: `manifest unknown: ${ref.digest ? `digest ${ref.digest}` : `tag '${ref.tag}'`} not found in ${repo}`,
      hint: "check the image name and tag (unknown tag, or unknown image)",
    };
  }
  if (codes.includes("BLOB_UNKNOWN") || (status === 404 && what !== "manifest")) return { msg: `${what} not found in ${repo}` };
  if (status === 401 || codes.includes("UNAUTHORIZED")) {
    return { msg: `unauthorized: access to ${repo} denied`, hint: `the image may not exist, or it needs credentials: gcr login ${ref.registry}` };
  }
  if (status === 403 || codes.includes("DENIED")) return { msg: `denied: access to ${repo} forbidden` };
  if (status === 429 || codes.includes("TOOMANYREQUESTS")) return { msg: `too many requests to ${ref.registry} (rate limited)`, hint: "wait and try again, or gcr login to raise the limit" };
  if (status >= 500) return { msg: `registry ${ref.registry} failed (HTTP ${status})`, hint: "the registry is down or overloaded; try again later" };
  return { msg: `unexpected HTTP ${status} from ${ref.registry}` };
}

/** Read at most `max` bytes of a body; a longer one is an error, never an unbounded buffer. */
export async function readLimited(res: Response, max: number, what: string): Promise<Uint8Array> {
  const len = Number(res.headers.get("content-length") ?? "NaN");
  if (len > max) throw new RegistryError(`${what} too large: ${len} bytes (limit ${max})`);
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (!res.body) return new Uint8Array(0);
  for await (const chunk of res.body) {
    total += chunk.byteLength;
    if (total > max) {
      await res.body.cancel().catch(() => {});
      throw new RegistryError(`${what} too large: more than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function isRetryableStatus(s: number): boolean {
  return s === 408 || s === 429 || s === 500 || s === 502 || s === 503 || s === 504;
}

function networkMessage(err: unknown, host: string): RegistryError {
  const e = err as { code?: string; message?: string };
  const code = e.code ?? "";
  let msg = `cannot reach registry ${host}: ${e.message ?? String(err)}`;
  if (/ConnectionRefused|ECONNREFUSED/i.test(code + msg)) msg = `registry ${host} is down: connection refused`;
  else if (/ENOTFOUND|DNS|getaddrinfo/i.test(code + msg)) msg = `registry ${host} not found (DNS lookup failed)`;
  else if (/CERT|TLS|SSL/i.test(code + msg)) msg = `TLS error talking to ${host}: ${e.message}`;
  // Refused and unresolvable hosts fail at once; resets and timeouts are retried.
  return new RegistryError(msg, { retryable: !/CERT|TLS|SSL|ENOTFOUND|DNS|refused/i.test(code + msg) }, { hint: "check the registry address and your network" });
}

export class RegistryClient {
  readonly origin: string;
  private token?: Token;
  private basic?: string;
  private readonly attempts: number;
  private readonly idleMs: number;
  private readonly backoffMs: number;

  constructor(
    readonly ref: Reference,
    private readonly opts: ClientOptions = {},
  ) {
    const host = apiHost(ref);
    const plain = isLoopback(host) || (opts.insecure ?? []).some((h) => h === ref.registry || h === host || h === hostName(host));
    this.origin = `${plain ? "http" : "https"}://${host}`;
    this.attempts = opts.attempts ?? 5;
    this.idleMs = opts.idleTimeoutMs ?? (Number(process.env.GCR_IDLE_TIMEOUT_MS) || 60_000);
    this.backoffMs = opts.backoffMs ?? 250;
  }

  private isOwnOrigin(url: string): boolean {
    return new URL(url).origin === new URL(this.origin).origin;
  }

  private authHeader(): string | undefined {
    if (this.token && this.token.expires > Date.now()) return `Bearer ${this.token.value}`;
    return this.basic;
  }

  /**
   * One logical request: follows redirects by hand, retries 408/429/5xx and network errors
   * with backoff (honouring Retry-After up to 10 s), and answers one 401 challenge per call.
   * Returns the final response (any status) for the caller to interpret.
   */
  async request(path: string, init: { method?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const method = init.method ?? "GET";
    let reauthed = false;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await this.follow(`${this.origin}${path}`, method, init.headers ?? {}, init.signal);
      } catch (err) {
        if (err instanceof RegistryError && err.detail.retryable === false) throw err;
        const netErr = err instanceof RegistryError ? err : networkMessage(err, apiHost(this.ref));
        if (init.signal?.aborted || attempt >= this.attempts || netErr.detail.retryable === false) throw netErr;
        debug("pull", `${method} ${path}: ${(err as Error).message}; retry ${attempt}`);
        await sleep(this.backoffMs * 2 ** (attempt - 1));
        continue;
      }
      if (res.status === 401 && !reauthed && this.isOwnOrigin(res.url || this.origin)) {
        const header = res.headers.get("www-authenticate");
        await res.body?.cancel().catch(() => {});
        if (header) {
          reauthed = true;
          this.token = undefined;
          await this.authenticate(parseChallenges(header));
          attempt--;
          continue;
        }
        return new Response(null, { status: 401 });
      }
      if (isRetryableStatus(res.status) && attempt < this.attempts) {
        const ra = Number(res.headers.get("retry-after"));
        const wait = Number.isFinite(ra) && ra > 0 ? Math.min(ra * 1000, 10_000) : this.backoffMs * 2 ** (attempt - 1);
        debug("pull", `${method} ${path}: HTTP ${res.status}; retry ${attempt} in ${wait} ms`);
        await res.body?.cancel().catch(() => {});
        await sleep(wait);
        continue;
      }
      return res;
    }
  }

  // Follow redirects ourselves so credentials never cross to another origin.
  private async follow(url: string, method: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const h: Record<string, string> = { "User-Agent": "gcr/0.1", ...headers };
      const auth = this.isOwnOrigin(url) ? this.authHeader() : undefined;
      if (auth) h.Authorization = auth;
      debug("pull", `${method} ${redact(url)}${auth ? ` (${auth.split(" ")[0]} auth)` : ""}`);
      const res = await fetch(url, { method, headers: h, redirect: "manual", signal, decompress: true } as RequestInit);
      if (res.status < 300 || res.status >= 400 || res.status === 304) {
        Object.defineProperty(res, "url", { value: url });
        return res;
      }
      const loc = res.headers.get("location");
      await res.body?.cancel().catch(() => {});
      if (!loc) return res;
      const next = new URL(loc, url);
      if (next.protocol !== "https:" && next.protocol !== "http:") {
        throw new RegistryError(`refusing redirect to ${next.protocol} URL`, { method, url: redact(url), retryable: false });
      }
      if (new URL(url).protocol === "https:" && next.protocol === "http:") {
        throw new RegistryError(`refusing redirect from https to http (${redact(next.href)})`, { method, url: redact(url), retryable: false });
      }
      debug("pull", `redirect ${res.status} -> ${redact(next.href)}${this.isOwnOrigin(next.href) ? "" : " (other host: no credentials)"}`);
      url = next.href;
    }
    throw new RegistryError(`too many redirects (more than ${MAX_REDIRECTS})`, { method, url: redact(url), retryable: false });
  }

  /** Answer a challenge: Bearer -> fetch a token for repository:<repo>:pull; Basic -> send credentials. */
  private async authenticate(challenges: Challenge[]): Promise<void> {
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const creds = this.opts.credentials;
    if (bearer) {
      const realm = bearer.params.realm;
      if (!realm) throw new RegistryError(`registry ${this.ref.registry} sent a Bearer challenge without realm`);
      this.token = await this.fetchToken(realm, bearer.params.service, this.ref.repository ? `repository:${this.ref.repository}:pull` : "");
      return;
    }
    if (challenges.some((c) => c.scheme === "basic")) {
      if (!creds) {
        throw new RegistryError(`unauthorized: ${this.ref.registry} requires credentials`, { status: 401 }, { hint: `gcr login ${this.ref.registry}` });
      }
      debug("pull", `using Basic auth as ${creds.username}`);
      this.basic = basicHeader(creds);
      return;
    }
    throw new RegistryError(`unsupported auth challenge from ${this.ref.registry}: ${challenges.map((c) => c.scheme).join(", ") || "none"}`);
  }

  private checkRealm(realm: string): URL {
    let u: URL;
    try {
      u = new URL(realm);
    } catch {
      throw new RegistryError(`bad token realm '${realm}'`);
    }
    const plainOk = isLoopback(u.host) || (this.opts.insecure ?? []).includes(u.host);
    if (u.protocol !== "https:" && !(u.protocol === "http:" && plainOk)) {
      throw new RegistryError(`refusing token realm ${redact(realm)}: must be https`);
    }
    // SSRF guard (R12): link-local / unspecified addresses are never token servers.
    if (/^(169\.254\.|0\.0\.0\.0$|\[?fe80:)/i.test(u.hostname)) throw new RegistryError(`refusing token realm ${redact(realm)}`);
    return u;
  }

  private async fetchToken(realm: string, service: string | undefined, scope: string): Promise<Token> {
    const u = this.checkRealm(realm);
    if (service) u.searchParams.set("service", service);
    if (scope) u.searchParams.set("scope", scope);
    const creds = this.opts.credentials;
    const headers: Record<string, string> = { "User-Agent": "gcr/0.1" };
    if (creds && !creds.identityToken) headers.Authorization = basicHeader(creds);
    debug("pull", `token GET ${redact(u.href)} scope=${scope}${creds ? ` as ${creds.username}` : " (anonymous)"}`);
    let res: Response;
    for (let attempt = 1; ; attempt++) {
      try {
        res = await fetch(u.href, { headers, redirect: "error" });
      } catch (err) {
        if (attempt >= this.attempts) throw networkMessage(err, u.host);
        await sleep(this.backoffMs * 2 ** (attempt - 1));
        continue;
      }
      if (isRetryableStatus(res.status) && attempt < this.attempts) {
        await res.body?.cancel().catch(() => {});
        await sleep(this.backoffMs * 2 ** (attempt - 1));
        continue;
      }
      break;
    }
    const body = await readLimited(res, MAX_SMALL_BODY, "token response");
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError(`unauthorized: token server for ${this.ref.registry} refused ${creds ? `credentials of ${creds.username}` : "anonymous access"}`, { status: res.status }, { hint: creds ? "check the password (gcr login)" : `gcr login ${this.ref.registry}` });
    }
    if (!res.ok) throw new RegistryError(`token server ${u.host} answered HTTP ${res.status}`, { status: res.status });
    let json: { token?: string; access_token?: string; expires_in?: number };
    try {
      json = JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new RegistryError(`token server ${u.host} sent invalid JSON`);
    }
    const value = json.token || json.access_token;
    if (!value) throw new RegistryError(`token server ${u.host} sent no token`);
    const ttl = typeof json.expires_in === "number" && json.expires_in > 0 ? json.expires_in : 60;
    debug("pull", `got bearer token (expires in ${ttl} s)`);
    // Renew a little early so a long pull does not send an expired token.
    return { value, expires: Date.now() + Math.max(1, ttl - 5) * 1000 };
  }

  /** GET /v2/ to learn whether and how to authenticate (and whether the registry is up). */
  async ping(): Promise<void> {
    const res = await this.request("/v2/");
    await res.body?.cancel().catch(() => {});
    if (res.status === 401) throw this.httpError(res.status, [], "ping");
    if (!res.ok && res.status !== 404) throw this.httpError(res.status, [], "ping");
  }

  /** `gcr login`: /v2/ must answer 200 once the challenge is answered with the credentials. */
  async login(): Promise<void> {
    const res = await this.request("/v2/");
    await res.body?.cancel().catch(() => {});
    if (res.status === 401) {
      throw new RegistryError(`login to ${this.ref.registry} failed: unauthorized`, { status: 401 }, { hint: "check the username and password" });
    }
    if (!res.ok) throw this.httpError(res.status, [], "ping");
  }

  private async errorCodes(res: Response): Promise<string[]> {
    try {
      const body = await readLimited(res, MAX_SMALL_BODY, "error body");
      const json = JSON.parse(new TextDecoder().decode(body)) as { errors?: { code?: string }[] };
      return (json.errors ?? []).map((e) => String(e.code ?? "")).filter(Boolean);
    } catch {
      return [];
    }
  }

  private httpError(status: number, codes: string[], what: string, method = "GET", path = ""): RegistryError {
    const { msg, hint } = describe(status, codes, this.ref, what);
    return new RegistryError(msg, { method, url: `${this.origin}${path}`, status, codes }, { hint });
  }

  /**
   * Fetch a manifest or index by tag or digest. When `want` is given (a pinned reference or a
   * child descriptor) the body must hash to it (R02); a Docker-Content-Digest header is never
   * trusted, only compared (R03).
   */
  async manifest(tagOrDigest: string, want?: Descriptor | string): Promise<{ bytes: Uint8Array; digest: string; mediaType: string }> {
    const path = `/v2/${this.ref.repository}/manifests/${tagOrDigest}`;
    const res = await this.request(path, { headers: { Accept: MANIFEST_ACCEPT } });
    if (!res.ok) throw this.httpError(res.status, await this.errorCodes(res), "manifest", "GET", path);
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, "manifest");
    const wantDigest = typeof want === "string" ? want : want?.digest;
    const digest = wantDigest ? wantDigest.split(":")[0] === "sha512" ? digestOf(bytes, "sha512") : digestOf(bytes) : digestOf(bytes);
    if (wantDigest) verifyBytes(bytes, wantDigest, `manifest of ${formatReference(this.ref)}`, typeof want === "object" ? want.size : undefined);
    const header = res.headers.get("docker-content-digest");
    if (header && header.startsWith("sha256:") && !wantDigest && header !== digest) {
      throw new RegistryError(`registry sent manifest ${digest} but claimed Docker-Content-Digest ${header}`);
    }
    const mediaType = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
    debug("pull", `manifest ${tagOrDigest} -> ${digest} (${mediaType}, ${bytes.byteLength} bytes)`);
    return { bytes, digest, mediaType };
  }

  /** A small blob (the config) into memory, verified. */
  async smallBlob(desc: Descriptor, what: string, max = MAX_MANIFEST_BYTES): Promise<Uint8Array> {
    if (desc.size > max) throw new RegistryError(`${what} ${desc.digest} too large: ${desc.size} bytes (limit ${max})`);
    const path = `/v2/${this.ref.repository}/blobs/${desc.digest}`;
    const res = await this.request(path);
    if (!res.ok) throw this.httpError(res.status, await this.errorCodes(res), what, "GET", path);
    const bytes = await readLimited(res, max, what);
    verifyBytes(bytes, desc.digest, what, desc.size);
    debug("pull", `${what} ${desc.digest} verified`);
    return bytes;
  }

  /**
   * Stream a blob into `partial` (resuming from its current length with a Range request),
   * verify every byte against the descriptor, then rename it to `dest`. A network error
   * mid-body resumes from where it stopped; a 200 answer to a Range request restarts the hash.
   */
  async downloadBlob(desc: Descriptor, partial: string, dest: string, onBytes: (done: number) => void, signal?: AbortSignal): Promise<void> {
    const path = `/v2/${this.ref.repository}/blobs/${desc.digest}`;
    const fd = openSync(partial, existsSync(partial) ? "r+" : "w+", 0o600);
    try {
      let verifier = new Verifier(desc.digest, desc.size, `blob`);
      let have = fstatSync(fd).size;
      if (have > desc.size) {
        ftruncateSync(fd, 0);
        have = 0;
      }
      // Re-hash what an earlier, interrupted pull left, then ask only for the rest.
      if (have > 0) {
        const buf = Buffer.allocUnsafe(1 << 20);
        let off = 0;
        while (off < have) {
          const n = readSync(fd, buf, 0, Math.min(buf.length, have - off), off);
          if (n <= 0) break;
          verifier.update(buf.subarray(0, n));
          off += n;
        }
        debug("pull", `resuming ${desc.digest} at byte ${have}`);
      }
      for (let attempt = 1; ; attempt++) {
        try {
          if (have < desc.size || desc.size === 0) {
            const headers: Record<string, string> = { "Accept-Encoding": "identity" };
            if (have > 0) headers.Range = `bytes=${have}-`;
            const ctl = new AbortController();
            const onAbort = () => ctl.abort(signal?.reason);
            signal?.addEventListener("abort", onAbort, { once: true });
            let idle: ReturnType<typeof setTimeout> | undefined;
            const arm = () => {
              clearTimeout(idle);
              idle = setTimeout(() => ctl.abort(new Error(`no data for ${this.idleMs / 1000} s`)), this.idleMs);
            };
            try {
              arm();
              const res = await this.request(path, { headers, signal: ctl.signal });
              if (res.status === 416 && have > 0) {
                // Our partial is not a prefix the server recognises: start over.
                await res.body?.cancel().catch(() => {});
                ftruncateSync(fd, 0);
                have = 0;
                verifier = new Verifier(desc.digest, desc.size, "blob");
                continue;
              }
              if (!res.ok) throw this.httpError(res.status, await this.errorCodes(res), `blob`, "GET", path);
              if (have > 0 && res.status !== 206) {
                debug("pull", `server ignored Range for ${desc.digest}; restarting`);
                ftruncateSync(fd, 0);
                have = 0;
                verifier = new Verifier(desc.digest, desc.size, "blob");
              } else if (res.status === 206) {
                const cr = res.headers.get("content-range") ?? "";
                const m = /^bytes (\d+)-/.exec(cr);
                if (!m || Number(m[1]) !== have) throw new RegistryError(`bad Content-Range '${cr}' resuming at ${have}`, { retryable: false });
              }
              const len = Number(res.headers.get("content-length") ?? "NaN");
              if (!res.headers.get("content-encoding") && Number.isFinite(len) && have + len > desc.size) {
                throw new RegistryError(`blob ${desc.digest} is ${have + len} bytes, descriptor says ${desc.size}`, { retryable: false });
              }
              if (res.body) {
                for await (const chunk of res.body) {
                  arm();
                  verifier.update(chunk);
                  let off = 0;
                  while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off, have + off);
                  have += chunk.byteLength;
                  onBytes(have);
                }
              }
            } finally {
              clearTimeout(idle);
              signal?.removeEventListener("abort", onAbort);
            }
          }
          if (have < desc.size) throw new RegistryError(`blob ${desc.digest} ended after ${have} of ${desc.size} bytes`, { retryable: true });
          verifier.check();
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOSPC" || code === "EDQUOT") {
            throw new GcrError(`disk full while downloading ${desc.digest}`, { cause: err, hint: "free some space in the store (gcr rmi), or point GCR_ROOT elsewhere" });
          }
          const retryable = !(err instanceof RegistryError && err.detail.retryable === false) && !(err instanceof RegistryError && err.detail.status !== undefined && !isRetryableStatus(err.detail.status)) && !(err as Error).name?.includes("Digest");
          if (signal?.aborted || !retryable || attempt >= this.attempts) {
            if (err instanceof RegistryError || (err as Error).name === "DigestError") throw err;
            throw networkMessage(err, apiHost(this.ref));
          }
          debug("pull", `blob ${desc.digest}: ${(err as Error).message}; resuming at ${have} (attempt ${attempt + 1})`);
          await sleep(this.backoffMs * 2 ** (attempt - 1));
        }
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(partial, 0o444);
    renameSync(partial, dest);
    debug("pull", `blob ${desc.digest} verified (${desc.size} bytes)`);
  }
}
