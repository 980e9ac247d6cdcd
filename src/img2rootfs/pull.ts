// Pull = resolve (reference -> manifest for our platform -> config) then unpack (download the
// layers concurrently, bounded, into the blob store; extract them in order into a directory
// while later ones still download). Both `gcr pull` and `gcr img2rootfs` use it; neither
// publishes anything until unpack has returned (the caller renames a staging dir into place).
import { existsSync, unlinkSync } from "node:fs";
import { DigestError, GcrError } from "../errors.ts";
import { debug, warn } from "../log.ts";
import { type Descriptor, type ImageConfigBlob, type Manifest, type Platform, layerCompression } from "../oci.ts";
import { blobPath, hasBlob, partialBlobPath, putBlob } from "../store.ts";
import { isRoot } from "../paths.ts";
import { loadCredentials } from "./auth.ts";
import { RootfsBuilder, type ExtractStats } from "./extract.ts";
import { Verifier } from "./digest.ts";
import { applyLayerBlob } from "./layer.ts";
import type { Progress } from "./progress.ts";
import { type Reference, formatReference, parseReference } from "./reference.ts";
import { RegistryClient } from "./registry.ts";
import { formatPlatform, hostPlatform, normalizePlatform, parseDocument, selectPlatform } from "./resolve.ts";

export interface PullOptions {
  platform?: Platform;
  insecure: string[];
  /** Largest uncompressed layer accepted (decompression bombs, E23). */
  maxLayerSize: number;
  /** Parallel layer downloads. */
  concurrency: number;
  progress: Progress;
  signal: AbortSignal;
}

export interface ResolvedImage {
  ref: Reference;
  client: RegistryClient;
  manifest: Manifest;
  manifestDigest: string;
  indexDigest?: string;
  platform: string;
  config: ImageConfigBlob;
  configDigest: string;
  /** Verified documents to keep as blobs (index, manifest, config). */
  documents: { digest: string; bytes: Uint8Array }[];
}

export const DEFAULT_MAX_LAYER = 64 * 2 ** 30;

/** Reference -> manifest for the platform -> config, every document verified. */
export async function resolveImage(refText: string, opts: Pick<PullOptions, "platform" | "insecure">): Promise<ResolvedImage> {
  const ref = parseReference(refText);
  const refStr = formatReference(ref);
  const credentials = loadCredentials(ref.registry);
  debug("pull", `${refText} -> ${refStr}${credentials ? ` (credentials for ${ref.registry} found)` : ""}`);
  const client = new RegistryClient(ref, { credentials, insecure: opts.insecure });
  await client.ping();
  const want = opts.platform ?? hostPlatform();
  const documents: { digest: string; bytes: Uint8Array }[] = [];

  // A pinned digest must match the bytes whatever the tag says (R02/R03).
  let doc = await client.manifest(ref.digest ?? ref.tag!, ref.digest);
  let parsed = parseDocument(doc.bytes, doc.mediaType);
  let indexDigest: string | undefined;
  let chosen: Descriptor | undefined;
  // An index may (rarely) point at another index; follow at most two levels.
  for (let depth = 0; parsed.kind === "index"; depth++) {
    if (depth >= 2) throw new GcrError(`${refStr}: image indexes nested too deeply`);
    documents.push({ digest: doc.digest, bytes: doc.bytes });
    indexDigest ??= doc.digest;
    chosen = selectPlatform(parsed.index, want, refStr);
    debug("pull", `platform ${formatPlatform(want)} -> ${chosen.digest}`);
    doc = await client.manifest(chosen.digest, chosen);
    parsed = parseDocument(doc.bytes, doc.mediaType);
  }
  documents.push({ digest: doc.digest, bytes: doc.bytes });
  const manifest = parsed.manifest;

  const configBytes = await client.smallBlob(manifest.config, "config");
  documents.push({ digest: manifest.config.digest, bytes: configBytes });
  let config: ImageConfigBlob;
  try {
    config = JSON.parse(new TextDecoder().decode(configBytes)) as ImageConfigBlob;
  } catch {
    throw new GcrError(`${refStr}: image config ${manifest.config.digest} is not JSON`);
  }
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new GcrError(`${refStr}: config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`, { hint: "the image is corrupt" });
  }
  for (const l of manifest.layers) {
    if (layerCompression(l.mediaType) === undefined) {
      throw new GcrError(`${refStr}: unsupported layer media type ${l.mediaType} (${l.digest})`, { hint: "this is not a container image, or uses a layer format gcr does not know" });
    }
  }
  const got = normalizePlatform({ os: config.os ?? "linux", architecture: config.architecture ?? "amd64", variant: config.variant });
  const platform = formatPlatform(got);
  if (!chosen && (got.os !== want.os || got.architecture !== want.architecture)) {
    if (opts.platform) throw new GcrError(`${refStr} is for ${platform}, not ${formatPlatform(want)}`);
    warn(`image ${refStr} is for ${platform}; this host is ${formatPlatform(want)}`);
  }
  return { ref, client, manifest, manifestDigest: doc.digest, indexDigest, platform, config, configDigest: manifest.config.digest, documents };
}

/** Re-hash a stored blob (after a failure: a decompressor may notice corruption before the hash does). */
async function blobIntact(path: string, desc: Descriptor): Promise<boolean> {
  const v = new Verifier(desc.digest, desc.size, "stored layer");
  try {
    for await (const chunk of Bun.file(path).stream()) v.update(chunk);
    v.check();
    return true;
  } catch {
    return false;
  }
}

/** A counting semaphore for the download pool. */
function limiter(n: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

export interface UnpackResult {
  /** Uncompressed bytes of all layers. */
  size: number;
  downloaded: number;
  downloadedBytes: number;
  stats: ExtractStats;
}

/** Download (what the store lacks) and extract every layer, in order, into `rootfs`. */
export async function unpackImage(img: ResolvedImage, rootfs: string, opts: PullOptions): Promise<UnpackResult> {
  const layers = img.manifest.layers;
  const diffIds = img.config.rootfs!.diff_ids;
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(opts.signal.reason);
  opts.signal.addEventListener("abort", onAbort, { once: true });
  const cached = layers.map((l) => hasBlob(l));
  opts.progress.begin(formatReference(img.ref), layers.map((l, i) => ({ digest: l.digest, size: l.size, cached: cached[i]! })));
  for (const d of img.documents) putBlob(d.digest, d.bytes);

  const pool = limiter(opts.concurrency);
  const byDigest = new Map<string, Promise<void>>();
  let downloaded = 0;
  let downloadedBytes = 0;
  const ready = layers.map((l, i) => {
    if (cached[i]) return Promise.resolve();
    let p = byDigest.get(l.digest);
    if (!p) {
      p = pool(async () => {
        if (ctl.signal.aborted) throw ctl.signal.reason;
        const partial = partialBlobPath(l.digest);
        try {
          await img.client.downloadBlob(l, partial, blobPath(l.digest), (n) => opts.progress.bytes(i, n), ctl.signal);
        } catch (err) {
          // Bad bytes must not be resumed from next time.
          if (err instanceof DigestError && existsSync(partial)) unlinkSync(partial);
          throw err;
        }
        downloaded++;
        downloadedBytes += l.size;
        opts.progress.downloaded(i);
      });
      byDigest.set(l.digest, p);
    }
    return p;
  });
  // Failures surface through the extraction loop below; never as unhandled rejections.
  for (const p of ready) p.catch(() => {});

  const builder = new RootfsBuilder(rootfs, isRoot());
  let size = 0;
  try {
    for (const [i, l] of layers.entries()) {
      await ready[i];
      if (opts.signal.aborted) throw opts.signal.reason;
      opts.progress.extracting(i);
      try {
        const r = await applyLayerBlob(blobPath(l.digest), l, diffIds[i], builder.layer(l.digest), opts.maxLayerSize);
        size += r.tarBytes;
      } catch (err) {
        // A stored blob that no longer hashes right (disk corruption, tampering) is dropped so
        // the next pull fetches it again (S03).
        if ((err instanceof DigestError && err.what === "stored layer") || !(await blobIntact(blobPath(l.digest), l))) {
          unlinkSync(blobPath(l.digest));
          throw new GcrError(`stored layer ${l.digest} was corrupt and has been removed`, { cause: err, hint: "pull again to download it afresh" });
        }
        throw err;
      }
      opts.progress.extracted(i);
    }
    builder.finish();
  } catch (err) {
    ctl.abort(err);
    await Promise.allSettled(ready);
    throw err;
  } finally {
    opts.signal.removeEventListener("abort", onAbort);
  }
  const s = builder.stats;
  if (s.skippedDevices) warn(`${s.skippedDevices} device node${s.skippedDevices === 1 ? "" : "s"} not created (needs root)`);
  if (s.skippedXattrs) debug("pull", `${s.skippedXattrs} xattrs not set (not permitted)`);
  return { size, downloaded, downloadedBytes, stats: s };
}
