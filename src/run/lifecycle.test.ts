import { describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newContainerId } from "./container.ts";
import { ago, parseSignal, statusText, tailOffset } from "./lifecycle.ts";

describe("lifecycle helpers", () => {
  test("parseSignal takes names, SIG names and numbers", () => {
    expect(parseSignal("TERM")).toBe(15);
    expect(parseSignal("sigkill")).toBe(9);
    expect(parseSignal("10")).toBe(10);
    expect(() => parseSignal("NOPE")).toThrow("invalid signal");
    expect(() => parseSignal("0")).toThrow("invalid signal");
  });

  test("ago and statusText read like docker's", () => {
    const now = Date.parse("2026-01-01T00:10:00Z");
    expect(ago("2026-01-01T00:09:59Z", now)).toBe("1 second");
    expect(ago("2026-01-01T00:05:00Z", now)).toBe("5 minutes");
    expect(statusText({ state: "exited", code: 3, finishedAt: new Date(Date.now() - 2000).toISOString() })).toMatch(/^Exited \(3\) \d seconds ago$/);
    expect(statusText({ state: "exited", code: undefined })).toBe("Exited (unknown)");
    expect(statusText({ state: "running", pid: 5, startedAt: new Date().toISOString() })).toMatch(/^Up \d+ seconds?$/);
  });

  test("tailOffset finds the start of the last N lines", () => {
    const dir = mkdtempSync(join(tmpdir(), "gcr-tail-"));
    const file = join(dir, "log");
    const lines = Array.from({ length: 20000 }, (_, i) => `line ${i}`);
    writeFileSync(file, lines.join("\n") + "\n");
    const fd = openSync(file, "r");
    const text = lines.join("\n") + "\n";
    const size = Buffer.byteLength(text);
    try {
      expect(text.slice(tailOffset(fd, size, 1))).toBe("line 19999\n");
      expect(text.slice(tailOffset(fd, size, 3))).toBe("line 19997\nline 19998\nline 19999\n");
      expect(tailOffset(fd, size, 0)).toBe(size);
      expect(tailOffset(fd, size, 100000)).toBe(0);
    } finally {
      closeSync(fd);
    }
  });
});

describe("container ids", () => {
  test("64 hex digits; the short id (the default hostname) is never all digits", () => {
    for (let i = 0; i < 2000; i++) {
      const id = newContainerId();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      expect(id.slice(0, 12)).toMatch(/[a-f]/);
    }
  });
});
