// Authentication against real registries: htpasswd Basic auth, and Bearer tokens issued by
// a token server whose JWTs the registry verifies (auth: token: with a cert bundle).
// Credentials come from DOCKER_CONFIG/config.json, written by `gcr login`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { gcr, skipReason, testDirs } from "../helpers/gcr.ts";
import { buildImage, pushImage } from "../helpers/images.ts";
import { type Registry, hasRegistry, startRegistry } from "../helpers/registry.ts";

const hasOpenssl = Bun.which("openssl") !== null;

function suite(kind: "basic" | "bearer") {
  const dirs = testDirs(`auth-${kind}`);
  const docker = join(dirs.base, "docker");
  const env = { GCR_ROOT: dirs.root, GCR_RUNROOT: dirs.runroot, DOCKER_CONFIG: docker };
  const user = "alice";
  const password = "s3cret:with:colons";
  let reg: Registry;

  beforeAll(async () => {
    reg = await startRegistry(kind === "basic" ? { basic: { user, password } } : { bearer: { user, password } });
    await pushImage(reg, "private/app", "v1", buildImage([{ entries: [{ name: "hello", body: "private\n" }] }]));
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dirs.base, { recursive: true, force: true });
  });

  test("anonymous pull is unauthorised (exit 125, clear message)", async () => {
    const r = await gcr(["pull", `${reg.host}/private/app:v1`, "app"], { env });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/unauthorized/);
    expect(r.stderr).toContain(`gcr login ${reg.host}`);
    expect(existsSync(join(dirs.root, "images/app"))).toBe(false);
  });

  test("login with a wrong password fails and saves nothing", async () => {
    const r = await gcr(["login", "-u", user, "--password-stdin", reg.host], { env, stdin: "wrong\n" });
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/unauthorized/);
    expect(existsSync(join(docker, "config.json"))).toBe(false);
  });

  test("login saves credentials (0600), pull uses them, logout forgets them", async () => {
    const login = await gcr(["login", "-u", user, "--password-stdin", reg.host], { env, stdin: `${password}\n` });
    expect(login.stderr).toBe("");
    expect(login.code).toBe(0);
    const cfgPath = join(docker, "config.json");
    expect(statSync(cfgPath).mode & 0o777).toBe(0o600);
    const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
    expect(Buffer.from(cfg.auths[reg.host].auth, "base64").toString()).toBe(`${user}:${password}`);
    const mark = reg.tokenRequests.length;
    const r = await gcr(["--debug", "pull", `${reg.host}/private/app:v1`, "app"], { env });
    expect(r.code).toBe(0);
    expect(readFileSync(join(dirs.root, "images/app/rootfs/hello"), "utf8")).toBe("private\n");
    // Secrets never reach the debug narration (I4).
    expect(r.stderr).not.toContain(password);
    expect(r.stderr).not.toContain(Buffer.from(`${user}:${password}`).toString("base64"));
    if (kind === "bearer") {
      expect(r.stderr).toContain("got bearer token");
      const seen = reg.tokenRequests.slice(mark).filter((t) => t.scope === "repository:private/app:pull");
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.every((t) => t.authorization?.startsWith("Basic "))).toBe(true);
    }
    const out = await gcr(["logout", reg.host], { env });
    expect(out.stdout).toContain(`Removed login credentials for ${reg.host}`);
    const cfg2 = JSON.parse(readFileSync(cfgPath, "utf8"));
    expect(cfg2.auths[reg.host]).toBeUndefined();
  });
}

describe.if(skipReason(hasRegistry, "docker-registry not installed"))("Basic auth (htpasswd)", () => suite("basic"));
describe.if(skipReason(hasRegistry && hasOpenssl, "docker-registry or openssl not installed"))("Bearer token auth", () => suite("bearer"));
