// A real registry for e2e tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1,
// always with our own config (the packaged one binds every interface), filesystem storage in
// a temp dir; optionally htpasswd Basic auth or Bearer tokens from a small token server.
// Images are pushed over the registry's HTTP API (monolithic POST+PUT, manifest PUT).
import { type Subprocess } from "bun";
import { createSign, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const REGISTRY_BIN = ["/usr/bin/docker-registry", "/usr/local/bin/docker-registry"].find(existsSync);
export const hasRegistry = REGISTRY_BIN !== undefined;

export interface RegistryAuth {
  basic?: { user: string; password: string };
  /** Bearer tokens: a Bun.serve token server signs JWTs the registry verifies with a cert. */
  bearer?: { user: string; password: string };
}

export interface Registry {
  host: string; // 127.0.0.1:PORT
  dir: string;
  /** Authorization header for pushes (null when the registry is open). */
  pushAuth: (repo: string) => Promise<string | undefined>;
  /** Requests the token server saw (for asserting credentials were sent). */
  tokenRequests: { authorization: string | null; scope: string | null }[];
  stop: () => Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = s.port!;
  await s.stop(true);
  return port;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString("base64url");
}

/** A self-signed cert + key for signing registry tokens (openssl CLI). */
function makeSigningCert(dir: string): { key: string; certDer: Buffer; certPath: string } {
  const keyPath = join(dir, "token.key");
  const certPath = join(dir, "token.crt");
  const p = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", "/CN=gcr-test-token"], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`openssl: ${p.stderr.toString()}`);
  const pem = readFileSync(certPath, "utf8");
  const certDer = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  return { key: readFileSync(keyPath, "utf8"), certDer, certPath };
}

function signToken(key: string, certDer: Buffer, claims: object): string {
  const header = { alg: "RS256", typ: "JWT", x5c: [certDer.toString("base64")] };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = createSign("RSA-SHA256").update(input).sign(key);
  return `${input}.${b64url(sig)}`;
}

export async function startRegistry(auth: RegistryAuth = {}): Promise<Registry> {
  if (!REGISTRY_BIN) throw new Error("docker-registry is not installed (apt-get install docker-registry)");
  const dir = mkdtempSync(join(tmpdir(), "gcr-registry-"));
  mkdirSync(join(dir, "storage"));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let authYaml = "";
  let pushAuth: Registry["pushAuth"] = async () => undefined;
  const tokenRequests: Registry["tokenRequests"] = [];
  let tokenServer: ReturnType<typeof Bun.serve> | undefined;
  if (auth.basic) {
    const hash = await Bun.password.hash(auth.basic.password, { algorithm: "bcrypt", cost: 4 });
    writeFileSync(join(dir, "htpasswd"), `${auth.basic.user}:${hash}\n`);
    authYaml = `auth:\n  htpasswd:\n    realm: gcr-test\n    path: ${join(dir, "htpasswd")}\n`;
    const h = `Basic ${Buffer.from(`${auth.basic.user}:${auth.basic.password}`).toString("base64")}`;
    pushAuth = async () => h;
  } else if (auth.bearer) {
    const { key, certDer, certPath } = makeSigningCert(dir);
    const { user, password } = auth.bearer;
    const service = "gcr-test-registry";
    const issuer = "gcr-test-issuer";
    const expected = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    const issue = (scope: string | null) => {
      const now = Math.floor(Date.now() / 1000);
      const access = [] as { type: string; name: string; actions: string[] }[];
      for (const s of (scope ?? "").split(" ").filter(Boolean)) {
        const [type, name, actions] = s.split(":");
        access.push({ type: type!, name: name!, actions: actions!.split(",") });
      }
      return signToken(key, certDer, { iss: issuer, sub: user, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access });
    };
    tokenServer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        const authorization = req.headers.get("authorization");
        tokenRequests.push({ authorization, scope: url.searchParams.get("scope") });
        if (authorization !== expected) return new Response("denied", { status: 401 });
        return Response.json({ token: issue(url.searchParams.get("scope")), expires_in: 300 });
      },
    });
    authYaml = `auth:\n  token:\n    realm: http://127.0.0.1:${tokenServer.port}/token\n    service: ${service}\n    issuer: ${issuer}\n    rootcertbundle: ${certPath}\n`;
    pushAuth = async (repo) => `Bearer ${issue(`repository:${repo}:pull,push`)}`;
  }
  const cfg = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, "storage")}
  delete:
    enabled: true
http:
  addr: ${host}
${authYaml}`;
  writeFileSync(join(dir, "config.yml"), cfg);
  const proc: Subprocess = Bun.spawn([REGISTRY_BIN, "serve", join(dir, "config.yml")], { stdout: "ignore", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const r = await fetch(`http://${host}/v2/`);
      await r.body?.cancel();
      break;
    } catch {
      if (Date.now() > deadline || proc.exitCode !== null) {
        proc.kill();
        throw new Error(`docker-registry did not start on ${host}: ${await new Response(proc.stderr as ReadableStream).text()}`);
      }
      await Bun.sleep(50);
    }
  }
  return {
    host,
    dir,
    pushAuth,
    tokenRequests,
    stop: async () => {
      proc.kill();
      await proc.exited;
      await tokenServer?.stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Path of a blob's data file inside the registry's storage (for tampering tests). */
export function registryBlobFile(reg: Registry, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(reg.dir, "storage/docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
}

async function check(res: Response, what: string): Promise<Response> {
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  return res;
}

/** Monolithic upload: POST to open an upload session, PUT the bytes with ?digest=. */
export async function pushBlob(reg: Registry, repo: string, digest: string, bytes: Uint8Array): Promise<void> {
  const auth = await reg.pushAuth(repo);
  const h: Record<string, string> = auth ? { Authorization: auth } : {};
  const head = await fetch(`http://${reg.host}/v2/${repo}/blobs/${digest}`, { method: "HEAD", headers: h });
  if (head.ok) return;
  const post = await check(await fetch(`http://${reg.host}/v2/${repo}/blobs/uploads/`, { method: "POST", headers: h }), `POST upload ${repo}`);
  await post.body?.cancel();
  const loc = new URL(post.headers.get("location")!, `http://${reg.host}`);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, { method: "PUT", headers: { ...h, "Content-Type": "application/octet-stream", "Content-Length": String(bytes.byteLength) }, body: bytes });
  await check(put, `PUT blob ${digest}`);
  await put.body?.cancel();
}

export async function pushManifest(reg: Registry, repo: string, ref: string, bytes: Uint8Array, mediaType: string): Promise<void> {
  const auth = await reg.pushAuth(repo);
  const res = await fetch(`http://${reg.host}/v2/${repo}/manifests/${ref}`, {
    method: "PUT",
    headers: { "Content-Type": mediaType, ...(auth ? { Authorization: auth } : {}) },
    body: bytes,
  });
  await check(res, `PUT manifest ${repo}:${ref}`);
  await res.body?.cancel();
}
