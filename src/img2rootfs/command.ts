// The image commands: pull, img2rootfs, images, rmi, login, logout. Each parses its own argv
// (node:util parseArgs, strict) and returns an exit code; errors are thrown to main().
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type { ParseArgsConfig } from "node:util";
import { EXIT, GcrError, UsageError } from "../errors.ts";
import { debug, setQuiet } from "../log.ts";
import {
  type ImageRecord,
  collectGarbage,
  ensureStore,
  imageDir,
  listImages,
  lockName,
  pidAlive,
  publish,
  readRecord,
  removeImage,
  stagingDir,
  sweepStale,
  validateName,
} from "../store.ts";
import { removeCredentials, saveCredentials } from "./auth.ts";
import { formatBytes, makeProgress } from "./progress.ts";
import { DEFAULT_MAX_LAYER, type PullOptions, resolveImage, unpackImage } from "./pull.ts";
import { DOCKER_HUB, formatReference, parseReference } from "./reference.ts";
import { RegistryClient } from "./registry.ts";
import { parsePlatform } from "./resolve.ts";
import { printErr, printOut } from "../output.ts";
import { steady } from "../jit.ts";
import { removeTree } from "../sys/fs.ts";

// Loaded with require(), not import: bun build hoists every node: import of the bundle to
// the binary's start, and these cost gcr run ~10 ms each although only pulls use them.
const { parseArgs } = require("node:util") as typeof import("node:util");

type Spec = NonNullable<ParseArgsConfig["options"]>;
const HELP = { help: { type: "boolean", short: "h" } } as const;

function parse<O extends Spec>(command: string, args: string[], options: O, usage: string) {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, ...HELP }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0]!.replace(/^TypeError \[[A-Z_]+\]: /, ""), command);
  }
  if ((parsed.values as { help?: boolean }).help) {
    printOut(usage);
    return undefined;
  }
  return parsed;
}

const PULL_FLAGS = {
  platform: { type: "string" },
  "insecure-registry": { type: "string", multiple: true },
  quiet: { type: "boolean", short: "q" },
  "max-layer-size": { type: "string" },
} as const satisfies Spec;

const PULL_FLAG_HELP = `  --platform OS/ARCH[/VARIANT]   image for this platform (default: the host's)
  --insecure-registry HOST[:PORT] allow plain HTTP to this registry (repeatable;
                                  loopback registries always may use HTTP)
  --max-layer-size BYTES          refuse layers that unpack to more (default 64G;
                                  env GCR_MAX_LAYER_SIZE); suffixes k, M, G
  -q, --quiet                     no progress; print only the manifest digest
  -h, --help`;

const PULL_USAGE = `Usage: gcr pull [OPTIONS] REFERENCE [NAME]

Pull an image from an OCI / Docker v2 registry and unpack it into the image store as NAME
(default: the last component of the repository), for 'gcr run NAME'.

REFERENCE is as docker takes it: ubuntu, ubuntu:22.04, user/app:tag,
host:port/path/name:tag, name@sha256:DIGEST (the manifest must match the digest).

Options:
${PULL_FLAG_HELP}
`;

function parseSize(s: string | undefined): number | undefined {
  if (s === undefined || s === "") return undefined;
  const m = /^(\d+)([kKmMgGtT]?)i?[bB]?$/.exec(s.trim());
  if (!m) throw new UsageError(`invalid size '${s}'`, "pull");
  const mult = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase()]!;
  return Number(m[1]) * mult;
}

function pullOptions(values: { platform?: string; "insecure-registry"?: string[]; quiet?: boolean; "max-layer-size"?: string }, signal: AbortSignal): PullOptions {
  const insecure = [...(values["insecure-registry"] ?? []), ...(process.env.GCR_INSECURE_REGISTRIES ?? "").split(",").filter(Boolean)];
  return {
    platform: values.platform ? parsePlatform(values.platform) : undefined,
    insecure,
    maxLayerSize: parseSize(values["max-layer-size"]) ?? parseSize(process.env.GCR_MAX_LAYER_SIZE) ?? DEFAULT_MAX_LAYER,
    concurrency: 3,
    progress: makeProgress(!!values.quiet),
    signal,
  };
}

/**
 * Ctrl-C / SIGTERM abort the pull; cleanup runs in the callers' `finally`, then we exit 130/143.
 * The abort reason is a GcrError so the message is "interrupted", not a stack.
 */
function interruptible(): { signal: AbortSignal; dispose: () => void; code: () => number | undefined } {
  const ctl = new AbortController();
  let code: number | undefined;
  const on = (sig: "SIGINT" | "SIGTERM", n: number) => () => {
    code = EXIT.signalBase + n;
    ctl.abort(new GcrError(`interrupted by ${sig}`, { exitCode: code }));
  };
  const int = on("SIGINT", 2);
  const term = on("SIGTERM", 15);
  process.on("SIGINT", int);
  process.on("SIGTERM", term);
  return {
    signal: ctl.signal,
    code: () => code,
    dispose: () => {
      process.off("SIGINT", int);
      process.off("SIGTERM", term);
    },
  };
}

function defaultName(refText: string): string {
  const ref = parseReference(refText);
  const last = ref.repository.split("/").pop()!;
  return last.replace(/[^a-z0-9_.-]/g, "-");
}

export async function pullCommand(args: string[]): Promise<number> {
  steady(); // hashing and untarring are long hot loops: the normal JIT pays off
  const p = parse("pull", args, PULL_FLAGS, PULL_USAGE);
  if (!p) return EXIT.ok;
  const [refText, nameArg, ...extra] = p.positionals;
  if (!refText) throw new UsageError("pull needs a REFERENCE", "pull");
  if (extra.length) throw new UsageError(`unexpected argument '${extra[0]}'`, "pull");
  const name = nameArg ?? defaultName(refText);
  validateName(name);
  const intr = interruptible();
  const opts = pullOptions(p.values, intr.signal);
  setQuiet(!!p.values.quiet);
  const t0 = performance.now();
  ensureStore();
  const swept = sweepStale();
  if (swept) debug("pull", `swept ${swept} stale staging dir(s)`);
  const release = await lockName(name, (pid) => {
    if (!p.values.quiet) printErr(`waiting for another pull of ${name} (pid ${pid})\n`);
  });
  let staging: string | undefined;
  try {
    const img = await resolveImage(refText, opts);
    const refStr = formatReference(img.ref);
    const old = readRecord(name);
    if (old && old.manifestDigest === img.manifestDigest && existsSync(join(imageDir(name), "rootfs"))) {
      opts.progress.end();
      if (p.values.quiet) printOut(`${img.manifestDigest}\n`);
      else printOut(`${name}: image is up to date for ${refStr} (${img.manifestDigest})\n`);
      return EXIT.ok;
    }
    staging = stagingDir("pull");
    const rootfs = join(staging, "rootfs");
    mkdirSync(rootfs, { mode: 0o755 });
    const r = await unpackImage(img, rootfs, opts);
    const record: ImageRecord = {
      name,
      reference: refStr,
      manifestDigest: img.manifestDigest,
      indexDigest: img.indexDigest,
      platform: img.platform,
      configDigest: img.configDigest,
      config: img.config,
      layers: img.manifest.layers,
      blobs: [...img.documents.map((d) => d.digest), ...img.manifest.layers.map((l) => l.digest)],
      size: r.size,
      pulled: new Date().toISOString(),
    };
    writeFileSync(join(staging, "image.json"), JSON.stringify(record, null, 2) + "\n");
    if (intr.signal.aborted) throw intr.signal.reason;
    publish(name, staging);
    staging = undefined;
    opts.progress.end();
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    if (p.values.quiet) printOut(`${img.manifestDigest}\n`);
    else {
      printOut(
        `pulled ${refStr} as ${name}: ${img.manifestDigest}, ${img.manifest.layers.length} layers, ` +
          `${formatBytes(r.size)} unpacked, ${r.downloaded} downloaded (${formatBytes(r.downloadedBytes)}) in ${secs} s\n`,
      );
    }
    return EXIT.ok;
  } catch (err) {
    opts.progress.end();
    throw intr.signal.aborted ? intr.signal.reason : err;
  } finally {
    if (staging) removeTree(staging);
    release();
    intr.dispose();
  }
}

const IMG2ROOTFS_USAGE = `Usage: gcr img2rootfs -image REFERENCE -output DIR [OPTIONS]

Pull an image and unpack its root filesystem into DIR (which must not exist, or be empty).
Blobs are cached in gcr's store like 'gcr pull'. Flags take one dash or two.

Options:
  -image, --image REFERENCE
  -output, --output DIR
${PULL_FLAG_HELP}
`;

export async function img2rootfsCommand(args: string[]): Promise<number> {
  steady();
  // The seed's flags were Go-style single-dash longs; accept both spellings.
  const longs = ["image", "output", "platform", "insecure-registry", "max-layer-size", "quiet", "help"];
  const norm = args.map((a) => (longs.some((l) => a === `-${l}` || a.startsWith(`-${l}=`)) ? `-${a}` : a));
  const p = parse("img2rootfs", norm, { ...PULL_FLAGS, image: { type: "string" }, output: { type: "string" } }, IMG2ROOTFS_USAGE);
  if (!p) return EXIT.ok;
  const refText = p.values.image ?? p.positionals[0];
  const outArg = p.values.output ?? p.positionals[1];
  if (!refText || !outArg) throw new UsageError("img2rootfs needs -image REFERENCE and -output DIR", "img2rootfs");
  const output = resolve(outArg);
  if (existsSync(output) && readdirSync(output).length > 0) {
    throw new GcrError(`output ${output} exists and is not empty`, { hint: "remove it or choose another -output" });
  }
  const intr = interruptible();
  const opts = pullOptions(p.values, intr.signal);
  setQuiet(!!p.values.quiet);
  ensureStore();
  // Stage next to the output (same file system, so the final rename is atomic); sweep what
  // earlier, killed runs left there.
  const parent = dirname(output);
  mkdirSync(parent, { recursive: true });
  const prefix = `.${basename(output)}.gcr-tmp-`;
  for (const n of readdirSync(parent)) {
    const pid = Number(n.startsWith(prefix) ? n.slice(prefix.length).split("-")[0] : NaN);
    if (pid && pid !== process.pid && !pidAlive(pid)) removeTree(join(parent, n));
  }
  const staging = join(parent, `${prefix}${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(staging, { mode: 0o755 });
  try {
    const img = await resolveImage(refText, opts);
    const r = await unpackImage(img, staging, opts);
    if (existsSync(output)) rmdirSync(output);
    renameSync(staging, output);
    opts.progress.end();
    if (p.values.quiet) printOut(`${img.manifestDigest}\n`);
    else printOut(`unpacked ${formatReference(img.ref)} (${img.manifestDigest}, ${formatBytes(r.size)}) into ${output}\n`);
    return EXIT.ok;
  } catch (err) {
    opts.progress.end();
    throw intr.signal.aborted ? intr.signal.reason : err;
  } finally {
    removeTree(staging);
    intr.dispose();
  }
}

const IMAGES_USAGE = `Usage: gcr images [OPTIONS]

List the images in the store (${"$"}GCR_ROOT, /var/lib/gcr as root, ~/.local/share/gcr rootless).

Options:
  -q, --quiet   names only
  --json        one JSON record per line
  -h, --help
`;

function ago(iso: string): string {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} seconds ago`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} hours ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

export async function imagesCommand(args: string[]): Promise<number> {
  const p = parse("images", args, { quiet: { type: "boolean", short: "q" }, json: { type: "boolean" } }, IMAGES_USAGE);
  if (!p) return EXIT.ok;
  if (p.positionals.length) throw new UsageError(`unexpected argument '${p.positionals[0]}'`, "images");
  const images = listImages();
  if (p.values.quiet) {
    for (const r of images) printOut(`${r.name}\n`);
    return EXIT.ok;
  }
  if (p.values.json) {
    for (const r of images) printOut(JSON.stringify({ name: r.name, reference: r.reference, digest: r.manifestDigest, platform: r.platform, size: r.size, pulled: r.pulled }) + "\n");
    return EXIT.ok;
  }
  const rows = [["NAME", "REFERENCE", "DIGEST", "SIZE", "PULLED"], ...images.map((r) => [r.name, r.reference, r.manifestDigest.slice(0, 19), formatBytes(r.size), ago(r.pulled)])];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  for (const row of rows) printOut(row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join("   ") + "\n");
  return EXIT.ok;
}

const RMI_USAGE = `Usage: gcr rmi NAME [NAME...]

Remove images from the store; blobs no remaining image uses are deleted.

Options:
  -h, --help
`;

export async function rmiCommand(args: string[]): Promise<number> {
  const p = parse("rmi", args, {}, RMI_USAGE);
  if (!p) return EXIT.ok;
  if (!p.positionals.length) throw new UsageError("rmi needs at least one NAME", "rmi");
  for (const n of p.positionals) validateName(n);
  ensureStore();
  let missing = 0;
  for (const name of p.positionals) {
    const release = await lockName(name);
    try {
      if (removeImage(name)) printOut(`removed ${name}\n`);
      else {
        printErr(`gcr: no such image: ${name}\n`);
        missing++;
      }
    } finally {
      release();
    }
  }
  const gc = collectGarbage();
  if (gc.deferred) debug("pull", "blob cleanup deferred: a pull is running");
  else if (gc.removed) printOut(`deleted ${gc.removed} unused blob${gc.removed === 1 ? "" : "s"} (${formatBytes(gc.bytes)})\n`);
  return missing ? EXIT.gcr : EXIT.ok;
}

const LOGIN_USAGE = `Usage: gcr login [OPTIONS] [REGISTRY]

Check credentials against REGISTRY (default: Docker Hub) and save them in
${"$"}DOCKER_CONFIG/config.json (default ~/.docker/config.json), as docker does.

Options:
  -u, --username USER
  -p, --password PASS      (visible in 'ps'; prefer --password-stdin)
  --password-stdin         read the password from standard input
  --insecure-registry HOST allow plain HTTP to this registry
  -h, --help
`;

function registryArg(s: string | undefined): string {
  if (!s) return DOCKER_HUB;
  const host = s.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
  return parseReference(`${host}/x`).registry;
}

export async function loginCommand(args: string[]): Promise<number> {
  const p = parse(
    "login",
    args,
    { username: { type: "string", short: "u" }, password: { type: "string", short: "p" }, "password-stdin": { type: "boolean" }, "insecure-registry": { type: "string", multiple: true } },
    LOGIN_USAGE,
  );
  if (!p) return EXIT.ok;
  const registry = registryArg(p.positionals[0]);
  const username = p.values.username;
  if (!username) throw new UsageError("login needs --username", "login");
  let password = p.values.password;
  if (p.values["password-stdin"]) password = (await new Response(Bun.stdin.stream()).text()).replace(/\r?\n$/, "");
  if (password === undefined) throw new UsageError("login needs --password-stdin or --password", "login");
  const creds = { username, password };
  // Prove the credentials work before saving them: /v2/ with the challenge answered.
  const client = new RegistryClient({ registry, repository: "" }, { credentials: creds, insecure: p.values["insecure-registry"] });
  await client.login();
  saveCredentials(registry, creds);
  printOut(`Login Succeeded (${registry})\n`);
  return EXIT.ok;
}

export async function logoutCommand(args: string[]): Promise<number> {
  const p = parse("logout", args, {}, `Usage: gcr logout [REGISTRY]\n\nForget the saved credentials for REGISTRY (default: Docker Hub).\n`);
  if (!p) return EXIT.ok;
  const registry = registryArg(p.positionals[0]);
  if (removeCredentials(registry)) printOut(`Removed login credentials for ${registry}\n`);
  else printOut(`Not logged in to ${registry}\n`);
  return EXIT.ok;
}
