// `npm run build`: compile every subcommand into the single executable ./gcr.
// Flags (see BUN-FACTS): --bytecode needs --format=esm for top-level await, and the two
// --no-compile-autoload-* flags stop the binary from reading .env / bunfig.toml in the cwd.
import { $ } from "bun";

const out = process.argv[2] ?? "gcr";
const t0 = performance.now();
await $`bun build --compile --minify --bytecode --format=esm --no-compile-autoload-dotenv --no-compile-autoload-bunfig --outfile ${out} src/main.ts`.quiet();
console.log(`built ./${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
