import { expect, test } from "bun:test";
import { MediaType, type Index } from "../oci.ts";
import { parseDocument, parsePlatform, selectPlatform } from "./resolve.ts";

const d = (n: number, platform?: object, extra: object = {}) => ({ mediaType: MediaType.ociManifest, digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, size: 1, platform, ...extra }) as Index["manifests"][number];

const index: Index = {
  schemaVersion: 2,
  manifests: [
    d(1, { os: "unknown", architecture: "unknown" }, { annotations: { "vnd.docker.reference.type": "attestation-manifest" } }),
    { ...d(2, { os: "linux", architecture: "amd64" }), mediaType: "application/vnd.example.unknown" },
    d(3, { os: "linux", architecture: "amd64" }),
    d(4, { os: "linux", architecture: "arm64", variant: "v8" }),
    d(5, { os: "linux", architecture: "arm", variant: "v6" }),
    d(6, { os: "linux", architecture: "arm", variant: "v7" }),
  ],
};

test("selects by normalised platform, skipping attestations and unknown entries", () => {
  expect(selectPlatform(index, parsePlatform("linux/amd64"), "x").digest).toStartWith("sha256:3");
  expect(selectPlatform(index, parsePlatform("linux/x86_64"), "x").digest).toStartWith("sha256:3");
  expect(selectPlatform(index, parsePlatform("linux/arm64"), "x").digest).toStartWith("sha256:4");
  expect(selectPlatform(index, parsePlatform("linux/aarch64/v8"), "x").digest).toStartWith("sha256:4");
  expect(selectPlatform(index, parsePlatform("linux/arm/v6"), "x").digest).toStartWith("sha256:5");
  expect(selectPlatform(index, parsePlatform("linux/arm"), "x").digest).toStartWith("sha256:6");
});

test("no match lists what exists", () => {
  try {
    selectPlatform(index, parsePlatform("linux/s390x"), "r");
    throw new Error("no error");
  } catch (e) {
    expect((e as Error).message).toBe("no matching manifest for linux/s390x in r");
    expect((e as { hint?: string }).hint).toBe("available platforms: linux/amd64, linux/arm64, linux/arm/v6, linux/arm/v7 (choose with --platform)");
  }
});

test("bad --platform is a usage error", () => {
  expect(() => parsePlatform("linux")).toThrow(/invalid platform/);
});

test("documents: schema1 and ambiguous ones are refused", () => {
  const enc = (o: object) => new TextEncoder().encode(JSON.stringify(o));
  expect(() => parseDocument(enc({ schemaVersion: 1, fsLayers: [] }), "")).toThrow(/schema 1/);
  expect(() => parseDocument(enc({ schemaVersion: 2, manifests: [], layers: [] }), "")).toThrow(/ambiguous/);
  expect(() => parseDocument(new TextEncoder().encode("<html>"), "text/html")).toThrow(/not JSON/);
  expect(parseDocument(enc({ schemaVersion: 2, manifests: [] }), MediaType.dockerList).kind).toBe("index");
});
