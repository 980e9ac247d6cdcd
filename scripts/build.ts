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

const out = process.argv[2] ?? "gcr";
const t0 = performance.now();
const defines: string[] = [];
mkdirSync(".cache", { recursive: true });
const cc = await $`gcc -O2 -fPIC -shared -s -Wall -o .cache/child.so src/sys/child.c`.nothrow().quiet();
if (cc.exitCode === 0) {
  const so = new Uint8Array(await Bun.file(".cache/child.so").arrayBuffer());
  const id = new Bun.CryptoHasher("sha256").update(so).digest("hex").slice(0, 16);
  defines.push("--define", `GCR_NATIVE_CHILD=${JSON.stringify(JSON.stringify({ id, b64: Buffer.from(so).toString("base64") }))}`);
} else {
  console.warn(`gcc failed, the binary will compile the child with TinyCC at run time:\n${cc.stderr}`);
}
await $`bun build --compile --minify --bytecode --format=esm --no-compile-autoload-dotenv --no-compile-autoload-bunfig ${defines} --outfile ${out} src/main.ts`.quiet();
console.log(`built ./${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
