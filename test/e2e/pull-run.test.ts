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
    // An image that stops on SIGUSR1 (its StopSignal) and ignores SIGTERM, as pid 1 does.
    const stopper = buildImage(distroLayers(false), {
      config: { ...DISTRO_CONFIG, User: "0", Cmd: ["trap 'echo got-usr1; exit 0' USR1; echo ready; while true; do sleep 0.1; done"], StopSignal: "SIGUSR1" },
    });
    await pushImage(reg, "test/stopper", "v1", stopper);
    const q = await gcr(["pull", "-q", `${reg.host}/test/stopper:v1`, "stopper"], { env, timeoutMs: 60_000 });
    expect({ code: q.code, stderr: q.stderr }).toEqual({ code: 0, stderr: "" });
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

  test("gcr stop sends the image's StopSignal first", async () => {
    const id = (await gcr(["run", "-d", "--network", "none", "stopper"], { env })).stdout.trim();
    for (let i = 0; i < 100 && !(await gcr(["logs", id], { env })).stdout.includes("ready"); i++) await Bun.sleep(50);
    const t0 = Date.now();
    expect((await gcr(["stop", "-t", "10", id], { env })).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000); // not the 10 s grace period
    expect((await gcr(["logs", id], { env })).stdout).toBe("ready\ngot-usr1\n");
    const state = JSON.parse((await gcr(["inspect", id], { env })).stdout)[0].State;
    expect(state).toMatchObject({ state: "exited", code: 0 });
    expect((await gcr(["rm", id], { env })).code).toBe(0);
  });

  test("containers never modify the pulled rootfs", async () => {
    const root = join(dirs.root, "images", "distro", "rootfs");
    const before = treeSnapshot(root);
    const r = await run("-u", "0", "distro", "rm -rf /etc /home/app; echo x > /bin/new; echo ok");
    expect(r.stdout).toBe("ok\n");
    expect(treeSnapshot(root)).toBe(before);
  });
});
