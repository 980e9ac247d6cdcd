// gcr's own output: command results on stdout, messages on stderr.
//
// Why not process.stdout / process.stderr: in Bun, the first touch of either builds Node's
// stream machinery, which costs more at start (~30 ms measured here) than everything `gcr run`
// does before its container execs. console.log / console.error write the same bytes through
// Bun's native writer and are flushed even when process.exit() follows at once.
// Raw bytes (logs, a terminal's output) go straight to fd 1: see writeStdout().
import { writeAll } from "./sys/libc.ts";

function emit(write: (fmt: string, s: string) => void, text: string): void {
  // console adds the final newline itself; "%s" keeps a '%' in the text from being a format.
  if (text === "") return;
  write("%s", text.endsWith("\n") ? text.slice(0, -1) : text);
}

/** Print a result on stdout. `text` normally ends with "\n" (one is written either way). */
export function printOut(text: string): void {
  emit(console.log, text);
}

/** Print a message on stderr. `text` normally ends with "\n" (one is written either way). */
export function printErr(text: string): void {
  emit(console.error, text);
}

/**
 * Raw bytes to stdout (a container's logs, its terminal's output), written through before
 * this returns. Not process.stdout: its writes queue in the process, and in Bun neither
 * writableLength nor writableNeedDrain tells that they did, so an exit right after would
 * drop them (a `gcr logs` piped into a slow reader got its first 64 KiB only).
 */
export function writeStdout(bytes: Uint8Array): void {
  writeAll(1, bytes);
}
