import { expect, test } from "bun:test";
import { parseReference } from "./reference.ts";
import { RegistryClient, redact } from "./registry.ts";

test("HTTPS always; plain HTTP only for loopback and --insecure-registry", () => {
  const origin = (ref: string, insecure: string[] = []) => new RegistryClient(parseReference(ref), { insecure }).origin;
  expect(origin("ubuntu")).toBe("https://registry-1.docker.io");
  expect(origin("127.0.0.1:5000/x")).toBe("http://127.0.0.1:5000");
  expect(origin("localhost:5000/x")).toBe("http://localhost:5000");
  expect(origin("registry.example.com:5000/x")).toBe("https://registry.example.com:5000");
  expect(origin("registry.example.com:5000/x", ["registry.example.com:5000"])).toBe("http://registry.example.com:5000");
  expect(origin("10.1.2.3/x")).toBe("https://10.1.2.3");
});

test("URLs in messages lose credentials and query strings", () => {
  expect(redact("https://u:p@host/v2/x/blobs/sha256:1?X-Amz-Signature=secret")).toBe("https://host/v2/x/blobs/sha256:1");
});
