// `npm run build`: compile every subcommand into the single executable ./gcr.
// Flags (see BUN-FACTS): --bytecode needs --format=esm for top-level await, and the two
// --no-compile-autoload-* flags stop the binary from reading .env / bunfig.toml in the cwd.
//
// The native container child (src/sys/child.c) is compiled here once with the system C
// compiler and embedded in the binary, so `gcr run` only writes and dlopens it (well under a
// millisecond) instead of compiling it with TinyCC on every start. Without a C compiler the
// binary still works: it falls back to TinyCC at run time.
import { $ } from "bun";
import { mkdirSync } from "node:fs";
import { JIT_POLICY } from "../src/jit.ts";

const out = process.argv[2] ?? "gcr";
const t0 = performance.now();
const defines: string[] = [];
mkdirSync(".cache", { recursive: true });
// The library gcr dlopens, and gcr-monitor, the static parent of detached containers
// (-nostdlib: child.c needs no libc, and the monitor stays ~20 KB on disk and in memory).
const lib = await $`gcc -O2 -fPIC -shared -s -Wall -o .cache/child.so src/sys/child.c`.nothrow().quiet();
const mon = await $`gcc -O2 -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin -s -Wall -DGCR_MONITOR -o .cache/gcr-monitor src/sys/child.c`.nothrow().quiet();
if (lib.exitCode === 0 && mon.exitCode === 0) {
  const so = new Uint8Array(await Bun.file(".cache/child.so").arrayBuffer());
  const monitor = new Uint8Array(await Bun.file(".cache/gcr-monitor").arrayBuffer());
  const id = new Bun.CryptoHasher("sha256").update(so).update(monitor).digest("hex").slice(0, 16);
  const b64 = (b: Uint8Array) => JSON.stringify(Buffer.from(b).toString("base64"));
  defines.push("--define", `GCR_NATIVE_ID=${JSON.stringify(id)}`, "--define", `GCR_NATIVE_SO=${b64(so)}`, "--define", `GCR_NATIVE_MONITOR=${b64(monitor)}`);
} else {
  console.warn(`gcc failed: the binary will compile the child with TinyCC at run time, and cannot run detached containers:\n${lib.stderr}${mon.stderr}`);
}
// --splitting: each subcommand is its own chunk, loaded (with the builtins it imports) only
// when that subcommand runs; `gcr --version` then costs what a hello-world does.
// GCR_NOMINIFY=1 keeps names readable for CPU profiles (BUN_OPTIONS=--cpu-prof-md ./gcr ...).
const minify = process.env.GCR_NOMINIFY ? [] : ["--minify"];
await $`bun build --compile --splitting ${minify} --bytecode --format=esm --compile-jit-policy=${JIT_POLICY} --no-compile-autoload-dotenv --no-compile-autoload-bunfig ${defines} --outfile ${out} src/main.ts`.quiet();
console.log(`built ./${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
