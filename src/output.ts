// gcr's own output: command results on stdout, messages on stderr.
//
// Why not process.stdout / process.stderr: in Bun, the first touch of either builds Node's
// stream machinery, which costs more at start (~30 ms measured here) than everything `gcr run`
// does before its container execs. console.log / console.error write the same bytes through
// Bun's native writer and are flushed even when process.exit() follows at once.
// Streams of raw bytes (logs, a terminal's relay) still use process.stdout: they are not
// on the start path.

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

let streamUsed = false;

/** process.stdout, for raw bytes (logs, a terminal). main() lets it drain before exit. */
export function stdoutStream(): NodeJS.WriteStream {
  streamUsed = true;
  return process.stdout;
}

/** Resolves once bytes written through stdoutStream() have left the process. */
export async function drainStdout(): Promise<void> {
  if (!streamUsed || !process.stdout.writableNeedDrain) return;
  await new Promise((r) => process.stdout.once("drain", r));
}
