// gcr run on a pulled image: the image's config (Entrypoint, Cmd, Env, WorkingDir, User) is
// applied as docker applies it, and the pulled rootfs is never modified by a container.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { gcr, isRoot, skipReason, testDirs, treeSnapshot } from "../helpers/gcr.ts";
import { DISTRO_CONFIG, buildImage, distroLayers, pushImage } from "../helpers/images.ts";
import { type Registry, hasRegistry, startRegistry } from "../helpers/registry.ts";

setDefaultTimeout(60_000);

const dirs = testDirs("pull-run");
const env = { GCR_ROOT: dirs.root, GCR_RUNROOT: dirs.runroot };
let reg: Registry;
const run = (...args: string[]) => gcr(["run", "--network", "none", ...args], { env });

describe.if(skipReason(hasRegistry && isRoot, "needs docker-registry and root (the image's files keep their owners)"))("gcr run on a pulled image", () => {
  beforeAll(async () => {
    reg = await startRegistry();
    await pushImage(reg, "test/distro", "v1", buildImage(distroLayers(false), { config: DISTRO_CONFIG }));
    const p = await gcr(["pull", "-q", `${reg.host}/test/distro:v1`, "distro"], { env, timeoutMs: 60_000 });
    expect({ code: p.code, stderr: p.stderr }).toEqual({ code: 0, stderr: "" });
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(dirs.base, { recursive: true, force: true });
  });

  test("no COMMAND: the image's Entrypoint + Cmd run as its User, in its WorkingDir, with its Env", async () => {
    const r = await run("distro");
    expect({ code: r.code, out: r.stdout, err: r.stderr }).toEqual({ code: 0, out: "hello\n", err: "" });
    const c = await run("distro", 'echo "$LANG $HOME"; pwd; id -u; id -g');
    expect({ code: c.code, err: c.stderr }).toEqual({ code: 0, err: "" });
    expect(c.stdout).toBe("C.UTF-8 /home/app\n/home/app\n1000\n1000\n");
  });

  test("COMMAND replaces Cmd and keeps Entrypoint; --entrypoint, -u, -w and -e override the config", async () => {
    expect((await run("distro", "echo replaced")).stdout).toBe("replaced\n");
    const o = await run("--entrypoint", "/bin/id", "-u", "0", "distro", "-u");
    expect(o.stdout).toBe("0\n");
    const w = await run("-w", "/tmp", "-e", "LANG=C", "distro", 'echo "$LANG"; pwd');
    expect(w.stdout).toBe("C\n/tmp\n");
  });

  test("containers never modify the pulled rootfs", async () => {
    const root = join(dirs.root, "images", "distro", "rootfs");
    const before = treeSnapshot(root);
    const r = await run("-u", "0", "distro", "rm -rf /etc /home/app; echo x > /bin/new; echo ok");
    expect(r.stdout).toBe("ok\n");
    expect(treeSnapshot(root)).toBe(before);
  });
});
