import { expect, test } from "bun:test";
import { apiHost, formatReference, isLoopback, parseReference } from "./reference.ts";

const D = "sha256:" + "a".repeat(64);

test.each([
  ["ubuntu", "docker.io/library/ubuntu:latest"],
  ["ubuntu:22.04", "docker.io/library/ubuntu:22.04"],
  ["user/app:tag", "docker.io/user/app:tag"],
  ["docker.io/ubuntu", "docker.io/library/ubuntu:latest"],
  ["index.docker.io/library/busybox:1", "docker.io/library/busybox:1"],
  ["localhost/x", "localhost/x:latest"],
  ["localhost:5000/a/b", "localhost:5000/a/b:latest"],
  ["127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"],
  [`127.0.0.1:5000/a/b:t@${D}`, `127.0.0.1:5000/a/b:t@${D}`],
  [`busybox@${D}`, `docker.io/library/busybox@${D}`],
  ["ghcr.io/o/r/s:v1.2-rc", "ghcr.io/o/r/s:v1.2-rc"],
])("%s -> %s", (input, want) => {
  expect(formatReference(parseReference(input))).toBe(want);
});

test.each(["", "Ubuntu", "a/../b", "ubuntu:", "ubuntu:bad tag", "x@sha256:123", `x@sha256:${"A".repeat(64)}`, "x@md5:abc", "/x", "a//b"])("rejects %p", (input) => {
  expect(() => parseReference(input)).toThrow(/invalid reference/);
});

test("Docker Hub API host and loopback rules", () => {
  expect(apiHost(parseReference("ubuntu"))).toBe("registry-1.docker.io");
  expect(apiHost(parseReference("127.0.0.1:5000/x"))).toBe("127.0.0.1:5000");
  expect(isLoopback("127.0.0.1:5000")).toBe(true);
  expect(isLoopback("localhost")).toBe(true);
  expect(isLoopback("foo.localhost:1")).toBe(true);
  expect(isLoopback("[::1]:5000")).toBe(true);
  expect(isLoopback("example.com")).toBe(false);
  expect(isLoopback("10.0.0.1:5000")).toBe(false);
  expect(isLoopback("foo.local")).toBe(false);
});
