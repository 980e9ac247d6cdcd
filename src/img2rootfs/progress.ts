// What `gcr pull` shows while it works: on a terminal one live bar per layer and a summary;
// off a terminal plain lines (one per layer event); with -q nothing. All on stderr, so stdout
// carries only the result line.

export interface LayerInfo {
  digest: string;
  size: number;
  cached: boolean;
}

export interface Progress {
  begin(ref: string, layers: LayerInfo[]): void;
  bytes(i: number, done: number): void;
  downloaded(i: number): void;
  extracting(i: number): void;
  extracted(i: number): void;
  /** Stop drawing (before the result or an error is printed). */
  end(): void;
}

export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}

const short = (d: string) => d.replace(/^sha256:/, "").slice(0, 12);

type State = "waiting" | "cached" | "downloading" | "downloaded" | "extracting" | "done";

export function quietProgress(): Progress {
  return { begin() {}, bytes() {}, downloaded() {}, extracting() {}, extracted() {}, end() {} };
}

/** One line per event, for logs and pipes. */
export function plainProgress(out: NodeJS.WritableStream = process.stderr): Progress {
  let layers: LayerInfo[] = [];
  const line = (i: number, what: string) => out.write(`layer ${i + 1}/${layers.length} ${short(layers[i]!.digest)}: ${what}\n`);
  return {
    begin(ref, ls) {
      layers = ls;
      out.write(`pulling ${ref}: ${ls.length} layer${ls.length === 1 ? "" : "s"}, ${formatBytes(ls.reduce((a, l) => a + l.size, 0))}\n`);
      ls.forEach((l, i) => l.cached && line(i, "already present"));
    },
    bytes() {},
    downloaded: (i) => line(i, `downloaded ${formatBytes(layers[i]!.size)}, verified`),
    extracting() {},
    extracted: (i) => line(i, "extracted"),
    end() {},
  };
}

/** Live bars, redrawn at most every 100 ms. */
export function ttyProgress(out: NodeJS.WriteStream = process.stderr): Progress {
  let layers: LayerInfo[] = [];
  let state: State[] = [];
  let done: number[] = [];
  let drawn = 0;
  let last = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const width = () => Math.max(10, Math.min(30, (out.columns ?? 80) - 50));
  const render = () => {
    timer = undefined;
    last = Date.now();
    let s = drawn ? `\x1b[${drawn}A` : "";
    for (let i = 0; i < layers.length; i++) {
      const l = layers[i]!;
      const frac = l.size ? Math.min(1, done[i]! / l.size) : 1;
      const w = width();
      const fill = Math.round(frac * w);
      const bar = state[i] === "cached" || state[i] === "done" ? "=".repeat(w) : "=".repeat(fill) + (fill < w ? ">" + " ".repeat(w - fill - 1) : "");
      const label = state[i] === "downloading" ? `${formatBytes(done[i]!)}/${formatBytes(l.size)}` : state[i]!;
      s += `\x1b[2K${short(l.digest)} [${bar}] ${label}\n`;
    }
    drawn = layers.length;
    out.write(s);
  };
  const schedule = (now = false) => {
    if (now) {
      clearTimeout(timer);
      render();
    } else if (!timer) timer = setTimeout(render, Math.max(0, 100 - (Date.now() - last)));
  };
  return {
    begin(ref, ls) {
      layers = ls;
      state = ls.map((l) => (l.cached ? "cached" : "waiting"));
      done = ls.map((l) => (l.cached ? l.size : 0));
      out.write(`pulling ${ref}\n`);
      schedule(true);
    },
    bytes(i, n) {
      state[i] = "downloading";
      done[i] = n;
      schedule();
    },
    downloaded(i) {
      state[i] = "downloaded";
      done[i] = layers[i]!.size;
      schedule();
    },
    extracting(i) {
      state[i] = "extracting";
      schedule();
    },
    extracted(i) {
      state[i] = "done";
      schedule();
    },
    end() {
      if (layers.length) schedule(true);
      clearTimeout(timer);
    },
  };
}

export function makeProgress(quiet: boolean): Progress {
  if (quiet) return quietProgress();
  return process.stderr.isTTY ? ttyProgress() : plainProgress();
}
