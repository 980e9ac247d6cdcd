// One layer blob on disk -> the rootfs: re-verify the compressed bytes (S03), decompress by
// magic bytes, count and hash the tar stream (diff_id, E25; size cap against bombs, E23),
// parse it and hand each entry to the LayerApplier. Streaming all the way: memory stays
// bounded by the stream buffers whatever the layer size.
import { closeSync, createReadStream, openSync, readSync } from "node:fs";
import type { TransformCallback } from "node:stream";
import { GcrError } from "../errors.ts";
import { debug } from "../log.ts";
import type { Compression, Descriptor } from "../oci.ts";
import { Verifier } from "./digest.ts";
import type { LayerApplier } from "./extract.ts";
import { tarSink } from "./untar.ts";

// Loaded with require(), not import: bun build hoists every node: import of the bundle to
// the binary's start, and these cost gcr run ~10 ms each although only pulls use them.
const { PassThrough, Transform } = require("node:stream") as typeof import("node:stream");
const { pipeline } = require("node:stream/promises") as typeof import("node:stream/promises");
const zlib = require("node:zlib") as typeof import("node:zlib");

/** Detect compression from the first bytes; the media type is only a claim (E24). */
export function sniffCompression(path: string): Compression {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(4);
    const n = readSync(fd, b, 0, 4, 0);
    if (n >= 2 && b[0] === 0x1f && b[1] === 0x8b) return "gzip";
    if (n >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return "zstd";
    return "none";
  } finally {
    closeSync(fd);
  }
}

class Tap extends Transform {
  constructor(private readonly onChunk: (c: Buffer) => void) {
    super({ highWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.onChunk(chunk);
      cb(null, chunk);
    } catch (e) {
      cb(e as Error);
    }
  }
}

export interface LayerResult {
  compression: Compression;
  /** Bytes of uncompressed tar. */
  tarBytes: number;
}

/**
 * Apply the layer in `blobPath` (already verified once when downloaded) through `applier`.
 * `diffId` (from the config) is checked on the uncompressed stream, read to its very end even
 * past the tar end marker. `maxBytes` caps the uncompressed size.
 */
export async function applyLayerBlob(blobPath: string, desc: Descriptor, diffId: string | undefined, applier: LayerApplier, maxBytes: number): Promise<LayerResult> {
  const compression = sniffCompression(blobPath);
  const blobCheck = new Verifier(desc.digest, desc.size, "stored layer");
  const tarCheck = diffId ? new Verifier(diffId, undefined, `uncompressed layer (diff_id) of`) : undefined;
  let tarBytes = 0;
  const src = createReadStream(blobPath, { highWaterMark: 1 << 20 });
  const decompress = compression === "gzip" ? zlib.createGunzip() : compression === "zstd" ? zlib.createZstdDecompress() : new PassThrough();
  const sink = tarSink((e) => applier.apply(e));
  try {
    await pipeline(
      src,
      new Tap((c) => blobCheck.update(c)),
      decompress,
      new Tap((c) => {
        tarBytes += c.byteLength;
        if (tarBytes > maxBytes) {
          throw new GcrError(`layer ${desc.digest}: uncompressed size exceeds the limit of ${maxBytes} bytes (decompression bomb?)`, {
            hint: "raise the limit with --max-layer-size or GCR_MAX_LAYER_SIZE if the image is genuine",
          });
        }
        tarCheck?.update(c);
      }),
      sink,
    );
  } catch (e) {
    if (e instanceof GcrError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOSPC" || err.code === "EDQUOT") {
      throw new GcrError(`disk full while extracting layer ${desc.digest}`, { cause: e, hint: "free some space in the store (gcr rmi, or GCR_ROOT elsewhere)" });
    }
    throw new GcrError(`layer ${desc.digest}`, { cause: e });
  }
  blobCheck.check();
  tarCheck?.check();
  debug("pull", `layer ${desc.digest} extracted (${compression}, ${tarBytes} bytes of tar${diffId ? ", diff_id verified" : ""})`);
  return { compression, tarBytes };
}
