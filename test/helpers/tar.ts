// A tiny tar writer for tests: any name, type, linkname, PAX record (incl. binary xattrs),
// with no sanitising at all, so tests can build the hostile layers of security.md A1.
export type TarType = "file" | "dir" | "symlink" | "link" | "char" | "block" | "fifo";

export interface TarSpec {
  name: string;
  type?: TarType;
  body?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records; `path`/`linkpath` here override the ustar fields (E21). */
  pax?: Record<string, string | Uint8Array>;
}

const FLAG: Record<TarType, string> = { file: "0", link: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" };
const enc = new TextEncoder();

function octal(buf: Uint8Array, off: number, len: number, v: number): void {
  const s = v.toString(8).padStart(len - 1, "0");
  buf.set(enc.encode(s.slice(-(len - 1))), off);
}

function str(buf: Uint8Array, off: number, len: number, s: string): void {
  buf.set(enc.encode(s).subarray(0, len), off);
}

function header(name: string, flag: string, size: number, s: Partial<TarSpec>): Uint8Array {
  const h = new Uint8Array(512);
  str(h, 0, 100, name);
  octal(h, 100, 8, s.mode ?? (flag === "5" ? 0o755 : 0o644));
  octal(h, 108, 8, s.uid ?? 0);
  octal(h, 116, 8, s.gid ?? 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, s.mtime ?? 1_600_000_000);
  h[156] = flag.charCodeAt(0);
  str(h, 157, 100, s.linkname ?? "");
  str(h, 257, 6, "ustar");
  h[262] = 0;
  str(h, 263, 2, "00");
  str(h, 265, 32, "root");
  str(h, 297, 32, "root");
  octal(h, 329, 8, s.devmajor ?? 0);
  octal(h, 337, 8, s.devminor ?? 0);
  h.fill(32, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  str(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

function pad(n: number): Uint8Array {
  return new Uint8Array((512 - (n % 512)) % 512);
}

function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const body = [enc.encode(` ${key}=`), value, enc.encode("\n")];
  const rest = body.reduce((a, b) => a + b.byteLength, 0);
  let len = rest + 1;
  while (String(len).length + rest !== len) len = String(len).length + rest;
  return concat([enc.encode(String(len)), ...body]);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, b) => a + b.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

export function makeTar(entries: TarSpec[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const s of entries) {
    const type = s.type ?? "file";
    const body = typeof s.body === "string" ? enc.encode(s.body) : (s.body ?? new Uint8Array(0));
    const pax: Record<string, string | Uint8Array> = { ...(s.pax ?? {}) };
    if (enc.encode(s.name).byteLength > 99 && !pax.path) pax.path = s.name;
    if (s.linkname && enc.encode(s.linkname).byteLength > 99 && !pax.linkpath) pax.linkpath = s.linkname;
    if (Object.keys(pax).length) {
      const recs = concat(Object.entries(pax).map(([k, v]) => paxRecord(k, typeof v === "string" ? enc.encode(v) : v)));
      parts.push(header("PaxHeaders/x", "x", recs.byteLength, {}), recs, pad(recs.byteLength));
    }
    const size = type === "file" ? body.byteLength : 0;
    parts.push(header(s.name.slice(0, 99), FLAG[type], size, s));
    if (size) parts.push(body, pad(size));
  }
  parts.push(new Uint8Array(1024));
  return concat(parts);
}
