import { describe, expect, test } from "bun:test";
import { helpText, parseOptions, type OptionSpec } from "./cli.ts";
import { parseRunArgs, parseTmpfs, parseVolume } from "./run/options.ts";

const specs: OptionSpec[] = [
  { name: "interactive", short: "i", type: "boolean", help: "" },
  { name: "tty", short: "t", type: "boolean", help: "" },
  { name: "env", short: "e", type: "list", help: "" },
  { name: "workdir", short: "w", type: "string", help: "" },
  { name: "network", type: "string", help: "", aliases: ["net"] },
];

describe("parseOptions", () => {
  test("combined short flags, attached values, --k=v, aliases; stops at the first positional", () => {
    const p = parseOptions("run", ["-it", "-eA=1", "--env=B=2", "-w", "/x", "--net", "host", "img", "sh", "-c", "--tty"], specs, { stopAtPositional: true });
    expect(p.values).toEqual({ interactive: true, tty: true, env: ["A=1", "B=2"], workdir: "/x", network: "host" });
    expect(p.rest).toEqual(["img", "sh", "-c", "--tty"]);
  });
  test("unknown flags and missing values are usage errors (exit 125)", () => {
    expect(() => parseOptions("run", ["--nope"], specs, { stopAtPositional: true })).toThrow(/unknown flag: --nope/);
    expect(() => parseOptions("run", ["-x"], specs, { stopAtPositional: true })).toThrow(/unknown shorthand flag/);
    expect(() => parseOptions("run", ["-w"], specs, { stopAtPositional: true })).toThrow(/needs an argument/);
    try {
      parseOptions("run", ["--nope"], specs, { stopAtPositional: true });
    } catch (e) {
      expect((e as { exitCode: number }).exitCode).toBe(125);
    }
  });
  test("help lists every flag", () => {
    expect(helpText("gcr run", "Run.", specs)).toContain("-w, --workdir");
  });
});

describe("gcr run options", () => {
  test("docker-style flags map onto RunOptions", () => {
    const o = parseRunArgs(["--rm", "-v", "/a:/b:ro", "--tmpfs", "/t:size=1m", "--security-opt", "seccomp=unconfined", "-e", "K", "img", "cmd"], { K: "v" });
    expect(o).toMatchObject({ image: "img", command: ["cmd"], volumes: [{ source: "/a", target: "/b", readonly: true }], tmpfs: [{ target: "/t", data: "mode=1777,size=1m", noexec: false, readonly: false }], seccomp: false, env: ["K=v"], noNewPrivileges: true });
  });
  test("bad values are refused", () => {
    expect(() => parseRunArgs([])).toThrow(/requires at least 1 argument/);
    expect(() => parseRunArgs(["-w", "rel", "img"])).toThrow(/not an absolute path/);
    expect(() => parseRunArgs(["--hostname", "-bad", "img"])).toThrow(/hostname/);
    expect(() => parseVolume("rel:/b")).toThrow(/absolute host path/);
    expect(() => parseVolume("/a:/b:rx")).toThrow(/SRC:DST/);
  });
});

describe("--tmpfs options", () => {
  test("size, mode, uid, gid as mount data; noexec and ro as flags; anything else is refused", () => {
    expect(parseTmpfs("/run")).toEqual({ target: "/run", data: "mode=1777", noexec: false, readonly: false });
    expect(parseTmpfs("/run:size=64m,mode=0755,uid=1000,noexec")).toEqual({ target: "/run", data: "mode=0755,size=64m,uid=1000", noexec: true, readonly: false });
    expect(parseTmpfs("/ro:ro")).toMatchObject({ readonly: true });
    expect(() => parseTmpfs("/x:size=1m,dev")).toThrow("invalid --tmpfs option 'dev'");
    expect(() => parseTmpfs("/x:size=1m,foo=a,b")).toThrow("invalid --tmpfs option 'foo=a'");
    expect(() => parseTmpfs("rel")).toThrow("the target must be an absolute path");
  });
});
