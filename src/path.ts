// POSIX path arithmetic for the modules `gcr run` loads: join, dirname, basename, resolve.
// node:path does the same, but loading it is a cost on every container start (README,
// "Start time"), and gcr only ever deals in POSIX paths. Semantics follow node:path.posix;
// path.test.ts checks them against it.

/** Collapse "//", "." and ".." (never above the root of an absolute path); "" becomes ".". */
export function normalize(p: string): string {
  if (p === "") return ".";
  const absolute = p.startsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
    } else out.push(part);
  }
  const body = out.join("/");
  const trailing = p.endsWith("/") && body !== "" ? "/" : "";
  if (absolute) return `/${body}${trailing}`;
  return body === "" ? "." : `${body}${trailing}`;
}

export function join(...parts: string[]): string {
  const joined = parts.filter((x) => x !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}

export function dirname(p: string): string {
  if (p === "") return ".";
  const trimmed = p.replace(/\/+$/, "");
  if (trimmed === "") return "/";
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return ".";
  const d = trimmed.slice(0, i);
  return d === "" ? "/" : d;
}

export function basename(p: string): string {
  const trimmed = p.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/** An absolute, normalized path: the last absolute part, then the rest, against the cwd. */
export function resolve(...parts: string[]): string {
  let out = "";
  for (let i = parts.length - 1; i >= 0 && !out.startsWith("/"); i--) if (parts[i]) out = out ? `${parts[i]}/${out}` : parts[i]!;
  if (!out.startsWith("/")) out = `${process.cwd()}/${out}`;
  const n = normalize(out);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}
