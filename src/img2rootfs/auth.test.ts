import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCredentials, parseChallenges, removeCredentials, saveCredentials } from "./auth.ts";

test("parses Bearer challenges with quoted commas", () => {
  const c = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push"');
  expect(c).toEqual([{ scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:a/b:pull,push" } }]);
});

test("parses several challenges and unquoted values", () => {
  const c = parseChallenges('Basic realm="Registry Realm", Bearer realm=https://x/t, error="insufficient_scope"');
  expect(c.map((x) => x.scheme)).toEqual(["basic", "bearer"]);
  expect(c[1]!.params).toEqual({ realm: "https://x/t", error: "insufficient_scope" });
});

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "gcr-auth-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("credentials round-trip through config.json, 0600, per host", () => {
  const path = join(dir, "config.json");
  writeFileSync(path, JSON.stringify({ auths: { other: { auth: "eDp5" } }, credHelpers: {} }));
  saveCredentials("127.0.0.1:5000", { username: "u", password: "p:w" }, path);
  saveCredentials("docker.io", { username: "hub", password: "h" }, path);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(loadCredentials("127.0.0.1:5000", path)).toMatchObject({ username: "u", password: "p:w" });
  expect(loadCredentials("docker.io", path)).toMatchObject({ username: "hub" });
  expect(loadCredentials("127.0.0.1:5001", path)).toBeUndefined();
  const cfg = JSON.parse(readFileSync(path, "utf8"));
  expect(Object.keys(cfg.auths)).toContain("https://index.docker.io/v1/");
  expect(cfg.credHelpers).toEqual({});
  expect(removeCredentials("127.0.0.1:5000", path)).toBe(true);
  expect(loadCredentials("127.0.0.1:5000", path)).toBeUndefined();
  expect(removeCredentials("127.0.0.1:5000", path)).toBe(false);
});
