// The body of bench/pull (see there). Builds a ~100 MB, 4-layer image from host files,
// pushes it to a docker-registry on 127.0.0.1, then times cold pulls.
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildImage, pushImage } from "../test/helpers/images.ts";
import { startRegistry } from "../test/helpers/registry.ts";
import type { TarSpec } from "../test/helpers/tar.ts";

const ROOT = resolve(import.meta.dir, "..");
const GCR = join(ROOT, "gcr");
const RUNS = Number(process.env.RUNS ?? 5);

/** Host files under `dir` as tar entries, up to `budget` bytes. */
function hostLayer(dir: string, budget: number): TarSpec[] {
  const out: TarSpec[] = [];
  let used = 0;
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const n of names) {
      if (used >= budget) return;
      const p = join(d, n);
      const st = lstatSync(p);
      const name = p.slice(1);
      if (st.isDirectory()) {
        out.push({ name: `${name}/`, type: "dir", mode: st.mode & 0o7777 });
        walk(p);
      } else if (st.isSymbolicLink()) out.push({ name, type: "symlink", linkname: readlinkSync(p) });
      else if (st.isFile() && st.size < 20 << 20) {
        try {
          out.push({ name, body: readFileSync(p), mode: st.mode & 0o7777 });
          used += st.size;
        } catch {
          /* unreadable: skip */
        }
      }
    }
  };
  walk(dir);
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

// Peak RSS comes from GNU time (%M, KiB): a child forked straight from this (large) bun
// process would report the parent's pages in its ru_maxrss.
const TIME = Bun.which("time", { PATH: "/usr/bin:/bin" });

async function timed(argv: string[][], env: Record<string, string>): Promise<{ ms: number; rssKiB: number }> {
  const t0 = performance.now();
  let rssKiB = 0;
  for (const a of argv) {
    const cmd = TIME ? [TIME, "-f", "gcr-bench-rss %M", ...a] : a;
    const p = Bun.spawn(cmd, { env: { PATH: process.env.PATH!, ...env }, stdout: "ignore", stderr: "pipe" });
    const code = await p.exited;
    const err = await new Response(p.stderr).text();
    if (code !== 0) throw new Error(`${a.join(" ")}: exit ${code}: ${err}`);
    rssKiB = Math.max(rssKiB, Number(/gcr-bench-rss (\d+)/.exec(err)?.[1] ?? 0));
  }
  return { ms: performance.now() - t0, rssKiB };
}

const work = mkdtempSync(join(tmpdir(), "gcr-bench-pull-"));
const reg = await startRegistry();
try {
  const layers = [
    { entries: hostLayer("/usr/lib/x86_64-linux-gnu", 40 << 20), compression: "gzip" as const },
    { entries: hostLayer("/usr/share", 30 << 20), compression: "gzip" as const },
    { entries: hostLayer("/usr/bin", 20 << 20), compression: "gzip" as const },
    { entries: hostLayer("/usr/lib/python3", 15 << 20), compression: "gzip" as const },
  ];
  const img = buildImage(layers);
  await pushImage(reg, "bench/app", "v1", img);
  const tarMB = layers.reduce((a, l) => a + l.entries.reduce((b, e) => b + ((e.body as Uint8Array | undefined)?.byteLength ?? 0), 0), 0) / 2 ** 20;
  const gzMB = img.layers.reduce((a, l) => a + l.bytes.byteLength, 0) / 2 ** 20;
  console.log(`image: ${img.layers.length} layers, ${layers.reduce((a, l) => a + l.entries.length, 0)} entries, ${tarMB.toFixed(0)} MiB of files, ${gzMB.toFixed(0)} MiB compressed`);
  const ref = `${reg.host}/bench/app:v1`;
  const g: number[] = [];
  const s: number[] = [];
  let rss = 0;
  for (let i = 0; i < RUNS; i++) {
    const store = join(work, "store");
    rmSync(store, { recursive: true, force: true });
    const r = await timed([[GCR, "pull", "-q", ref, "app"]], { GCR_ROOT: store });
    g.push(r.ms);
    rss = Math.max(rss, r.rssKiB);
    const layout = join(work, "oci");
    const bundle = join(work, "bundle");
    rmSync(layout, { recursive: true, force: true });
    rmSync(bundle, { recursive: true, force: true });
    s.push((await timed([["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false", `docker://${ref}`, `oci:${layout}:v1`], ["umoci", "unpack", "--image", `${layout}:v1`, bundle]], {})).ms);
  }
  // Warm: blobs cached, a new name (extraction only), and the same name (up to date).
  const store = join(work, "store");
  const warm: number[] = [];
  const same: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    warm.push((await timed([[GCR, "pull", "-q", ref, `copy${i}`]], { GCR_ROOT: store })).ms);
    same.push((await timed([[GCR, "pull", "-q", ref, "app"]], { GCR_ROOT: store })).ms);
  }
  const mg = median(g);
  const ms = median(s);
  console.log(`cold pull, median of ${RUNS}: gcr ${(mg / 1000).toFixed(2)} s, skopeo+umoci ${(ms / 1000).toFixed(2)} s, ratio gcr/(skopeo+umoci) ${(mg / ms).toFixed(2)}`);
  console.log(`warm re-pull (blobs cached, new name): ${(median(warm) / 1000).toFixed(2)} s; same name, up to date: ${(median(same) / 1000).toFixed(3)} s`);
  console.log(TIME ? `gcr peak RSS (cold pull): ${(rss / 1024).toFixed(0)} MiB` : "gcr peak RSS: unknown (install GNU time)");
} finally {
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
}
