// The only importer of tar-stream: a tar byte stream in, typed entries out.
//
// tar-stream already folds PAX `path`/`linkpath` and GNU long names into the header, so the
// name validated by extract.ts is the final one (E21). One patch: tar-stream decodes every PAX
// value as UTF-8, which mangles binary xattr values (security.capability); we decode
// SCHILY.xattr.* values as latin1 so each byte survives, and turn them back into bytes here.
import tar from "tar-stream";
// @ts-ignore -- not in the package's exports map; the same module instance extract.js uses.
import * as tarHeaders from "../../node_modules/tar-stream/headers.js";

const XATTR = "SCHILY.xattr.";

(function patchPaxDecoding() {
  const h = tarHeaders as { decodePax: (buf: Buffer) => Record<string, string>; __gcrPatched?: boolean };
  const target = (h as { default?: typeof h }).default ?? h;
  if (target.__gcrPatched) return;
  target.decodePax = function decodePax(buf: Buffer): Record<string, string> {
    const result: Record<string, string> = {};
    while (buf.length) {
      let i = 0;
      while (i < buf.length && buf[i] !== 32) i++;
      const len = parseInt(buf.subarray(0, i).toString("latin1"), 10);
      if (!len || len < i + 2 || len > buf.length) return result;
      const rec = buf.subarray(i + 1, len - 1);
      const eq = rec.indexOf(61); // '='
      if (eq === -1) return result;
      const key = rec.subarray(0, eq).toString("utf8");
      result[key] = rec.subarray(eq + 1).toString(key.startsWith(XATTR) ? "latin1" : "utf8");
      buf = buf.subarray(len);
    }
    return result;
  };
  target.__gcrPatched = true;
})();

export type EntryType = "file" | "directory" | "symlink" | "link" | "character-device" | "block-device" | "fifo" | "other";

export interface TarEntry {
  name: string;
  type: EntryType;
  /** Raw tar typeflag name, for messages about unsupported types. */
  rawType: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Uint8Array>;
  /** The entry's bytes; read them or leave them (the reader skips what is left). */
  body: AsyncIterable<Buffer>;
}

function toType(t: string | null | undefined): EntryType {
  switch (t) {
    case "file":
    case "contiguous-file":
      return "file";
    case "directory":
    case "symlink":
    case "link":
    case "character-device":
    case "block-device":
    case "fifo":
      return t;
    default:
      return "other";
  }
}

/**
 * A tar parser as a writable sink: each entry is handed to `onEntry`, and the parser waits
 * for it (backpressure all the way back to the file). An error from `onEntry` destroys the
 * sink, which fails the pipeline feeding it.
 */
export function tarSink(onEntry: (e: TarEntry) => Promise<void>): tar.Extract {
  const ex = tar.extract();
  ex.on("entry", (header, stream, next) => {
    const h = header as Omit<tar.Header, "type"> & { type?: string; pax?: Record<string, string> | null };
    const xattrs = new Map<string, Uint8Array>();
    for (const [k, v] of Object.entries(h.pax ?? {}) as [string, string][]) {
      if (k.startsWith(XATTR)) xattrs.set(k.slice(XATTR.length), Buffer.from(v, "latin1"));
    }
    const entry: TarEntry = {
      name: h.name,
      type: toType(h.type),
      rawType: String(h.type),
      mode: h.mode ?? 0o644,
      uid: h.uid ?? 0,
      gid: h.gid ?? 0,
      size: h.size ?? 0,
      mtime: h.mtime ?? new Date(0),
      linkname: h.linkname ?? "",
      devmajor: h.devmajor ?? 0,
      devminor: h.devminor ?? 0,
      xattrs,
      body: stream as AsyncIterable<Buffer>,
    };
    onEntry(entry).then(
      () => {
        // Discard whatever the handler did not read; the parser reads the next header only
        // after this entry's data has been pushed through.
        stream.resume();
        next();
      },
      (err) => next(err),
    );
  });
  return ex;
}
