// Fault injection (security.md 0.3): a small Bun.serve proxy in front of the real registry
// answers 429s, cuts a blob in the middle, stalls, swaps a manifest, and redirects a blob to a
// "CDN" on 127.0.0.2 that records the headers it gets. The happy path stays the real registry.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { GCR, ensureBuilt, gcr, skipReason, testDirs } from "../helpers/gcr.ts";
import { type BuiltImage, buildImage, pushImage } from "../helpers/images.ts";
import { type Registry, hasRegistry, startRegistry } from "../helpers/registry.ts";

const dirs = testDirs("faults");
const env = { GCR_ROOT: dirs.root, GCR_RUNROOT: dirs.runroot, DOCKER_CONFIG: join(dirs.base, "docker") };
const BIG = 4 << 20;

type Fault = { kind: "none" } | { kind: "429"; left: number } | { kind: "cut" } | { kind: "stall" } | { kind: "redirect" } | { kind: "swap" };

let reg: Registry;
let img: BuiltImage;
let other: BuiltImage;
let fault: Fault = { kind: "none" };
const seen: { path: string; range: string | null; auth: string | null }[] = [];
const cdnSeen: { path: string; auth: string | null }[] = [];
let proxy: ReturnType<typeof Bun.serve>;
let cdn: ReturnType<typeof Bun.serve>;
const AUTH = `Basic ${Buffer.from("bob:pw").toString("base64")}`;
let proxyHost = "";

function halfThen(body: Uint8Array, end: "error" | "hang"): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(body.subarray(0, body.byteLength >> 1));
      if (end === "error") setTimeout(() => c.close(), 50);
    },
  });
}

async function forward(req: Request, path: string): Promise<Response> {
  const headers: Record<string, string> = {};
  for (const h of ["accept", "range"]) {
    const v = req.headers.get(h);
    if (v) headers[h] = v;
  }
  const res = await fetch(`http://${reg.host}${path}`, { method: req.method, headers, redirect: "manual" });
  const out = new Headers();
  for (const h of ["content-type", "content-length", "content-range", "docker-content-digest", "location"]) {
    const v = res.headers.get(h);
    if (v) out.set(h, v);
  }
  return new Response(res.body, { status: res.status, headers: out });
}

describe.if(skipReason(hasRegistry, "docker-registry not installed"))("registry faults", () => {
  beforeAll(async () => {
    ensureBuilt();
    reg = await startRegistry();
    const noise = new Uint8Array(BIG);
    for (let i = 0; i < BIG; i += 65536) crypto.getRandomValues(noise.subarray(i, i + 65536));
    img = buildImage([{ entries: [{ name: "noise", body: noise }], compression: "none" }, { entries: [{ name: "small", body: "s" }] }]);
    other = buildImage([{ entries: [{ name: "other", body: "o" }] }]);
    await pushImage(reg, "f/app", "v1", img);
    await pushImage(reg, "f/app", "other", other);
    cdn = Bun.serve({
      hostname: "127.0.0.2",
      port: 0,
      async fetch(req) {
        const path = new URL(req.url).pathname;
        cdnSeen.push({ path, auth: req.headers.get("authorization") });
        return forward(req, path.replace(/^\/cdn/, ""));
      },
    });
    proxy = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout: 0,
      async fetch(req) {
        const path = new URL(req.url).pathname;
        const auth = req.headers.get("authorization");
        seen.push({ path, range: req.headers.get("range"), auth });
        // The proxy demands Basic auth, so a leak to the CDN would be visible.
        if (auth !== AUTH) return new Response("{}", { status: 401, headers: { "WWW-Authenticate": 'Basic realm="faults"' } });
        const isBlob = path.includes("/blobs/") && path.endsWith(img.layers[0]!.digest);
        if (fault.kind === "429" && path.includes("/manifests/") && fault.left-- > 0) return new Response("slow down", { status: 429, headers: { "Retry-After": "1" } });
        if (fault.kind === "redirect" && isBlob) return new Response(null, { status: 307, headers: { Location: `http://127.0.0.2:${cdn.port}/cdn${path}` } });
        if ((fault.kind === "cut" || fault.kind === "stall") && isBlob && !req.headers.get("range")) {
          const end = fault.kind === "cut" ? "error" : "hang";
          if (fault.kind === "cut") fault = { kind: "none" };
          return new Response(halfThen(img.layers[0]!.bytes, end), { headers: { "Content-Length": String(img.layers[0]!.bytes.byteLength), "Content-Type": "application/octet-stream" } });
        }
        if (fault.kind === "swap" && path.endsWith(`/manifests/${img.manifest.digest}`)) {
          return new Response(other.manifest.bytes, { headers: { "Content-Type": other.manifest.mediaType } });
        }
        return forward(req, path);
      },
    });
    proxyHost = `127.0.0.1:${proxy.port}`;
    const login = await gcr(["login", "-u", "bob", "-p", "pw", proxyHost], { env });
    expect(login.code).toBe(0);
  });
  afterAll(async () => {
    await proxy?.stop(true);
    await cdn?.stop(true);
    await reg?.stop();
    rmSync(dirs.base, { recursive: true, force: true });
  });
  const reset = () => {
    rmSync(join(dirs.root, "blobs"), { recursive: true, force: true });
    seen.length = 0;
    cdnSeen.length = 0;
  };

  test("429 with Retry-After is retried", async () => {
    reset();
    fault = { kind: "429", left: 2 };
    const r = await gcr(["--debug", "pull", `${proxyHost}/f/app:v1`, "a429"], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("HTTP 429; retry 1 in 1000 ms");
  });

  test("a blob redirected to another host gets no Authorization header", async () => {
    reset();
    fault = { kind: "redirect" };
    const r = await gcr(["pull", "-q", `${proxyHost}/f/app:v1`, "redir"], { env });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(cdnSeen.length).toBeGreaterThan(0);
    expect(cdnSeen.every((s) => s.auth === null)).toBe(true);
    expect(seen.some((s) => s.auth === AUTH)).toBe(true);
  });

  test("a body cut mid-blob is resumed with a Range request", async () => {
    reset();
    fault = { kind: "cut" };
    const r = await gcr(["--debug", "pull", `${proxyHost}/f/app:v1`, "cut"], { env });
    expect(r.code).toBe(0);
    const ranges = seen.filter((s) => s.range);
    expect(ranges.length).toBe(1);
    expect(ranges[0]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(ranges[0]!.range!)![0])).toBeGreaterThan(0);
    expect(statSync(join(dirs.root, "images/cut/rootfs/noise")).size).toBe(BIG);
  });

  test("kill -9 mid-pull leaves no image; the next pull sweeps and resumes", async () => {
    reset();
    fault = { kind: "stall" };
    const p = Bun.spawn([GCR, "pull", `${proxyHost}/f/app:v1`, "killed"], { env: { ...env, PATH: process.env.PATH! }, stdout: "ignore", stderr: "ignore" });
    const partialDir = join(dirs.root, "blobs/partial");
    const deadline = Date.now() + 20_000;
    while (!(existsSync(partialDir) && readdirSync(partialDir).some((f) => statSync(join(partialDir, f)).size > 0)) && Date.now() < deadline) await Bun.sleep(20);
    p.kill("SIGKILL");
    await p.exited;
    expect(existsSync(join(dirs.root, "images/killed"))).toBe(false);
    expect(readdirSync(join(dirs.root, "tmp")).length).toBe(1); // the dead pull's staging dir
    fault = { kind: "none" };
    const r = await gcr(["--debug", "pull", `${proxyHost}/f/app:v1`, "killed"], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("swept 1 stale staging dir");
    expect(r.stderr).toMatch(/resuming sha256:[0-9a-f]{64} at byte [1-9]/);
    expect(readdirSync(join(dirs.root, "tmp"))).toEqual([]);
  });

  test("Ctrl-C aborts cleanly (exit 130, nothing left)", async () => {
    reset();
    fault = { kind: "stall" };
    const p = Bun.spawn([GCR, "pull", `${proxyHost}/f/app:v1`, "intr"], { env: { ...env, PATH: process.env.PATH! }, stdout: "pipe", stderr: "pipe" });
    const deadline = Date.now() + 20_000;
    while (!seen.some((s) => s.path.endsWith(img.layers[0]!.digest)) && Date.now() < deadline) await Bun.sleep(20);
    await Bun.sleep(100);
    p.kill("SIGINT");
    const code = await p.exited;
    fault = { kind: "none" };
    expect(code).toBe(130);
    expect(await new Response(p.stderr).text()).toContain("interrupted by SIGINT");
    expect(existsSync(join(dirs.root, "images/intr"))).toBe(false);
    expect(readdirSync(join(dirs.root, "tmp"))).toEqual([]);
  });

  test("a pinned digest whose bytes differ is refused", async () => {
    fault = { kind: "swap" };
    const r = await gcr(["pull", `${proxyHost}/f/app@${img.manifest.digest}`, "swapped"], { env });
    fault = { kind: "none" };
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`digest mismatch for manifest of ${proxyHost}/f/app@${img.manifest.digest}`);
  });
});
