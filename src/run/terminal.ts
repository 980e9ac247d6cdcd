// `gcr run -t`: the container's pseudo-terminal (created inside the container, its master
// handed over by child.c) wired to the user's terminal, which is put in raw mode so that
// Ctrl-C, Ctrl-Z and friends reach the container's line discipline, not gcr.
import { debug } from "../log.ts";
import { writeStdout } from "../output.ts";
import { setWindowSize, windowSize } from "../sys/libc.ts";
import { close, write } from "../sys/fs.ts";

export function startTerminal(master: number, interactive: boolean): { finished: () => Promise<void>; restore: () => void } {
  const stdin = process.stdin;
  const raw = interactive && stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  debug("tty", `pty master fd ${master}${raw ? ", host terminal in raw mode" : ""}`);

  const resize = () => {
    const size = windowSize(1);
    if (size) setWindowSize(master, size.rows, size.cols);
  };
  process.on("SIGWINCH", resize);

  const onInput = (d: Buffer) => {
    try {
      write(master, d);
    } catch {
      // the container is gone
    }
  };
  if (interactive) {
    stdin.on("data", onInput);
    stdin.resume();
  }

  // Reading the master ends with EIO once the last process holding the slave exits.
  // node:tty is required here, not imported: bun build would load it at every gcr start
  // (about 10 ms), and only -t needs it.
  const tty = require("node:tty") as typeof import("node:tty");
  const out = new tty.ReadStream(master);
  const finished = new Promise<void>((resolve) => {
    out.on("data", (d: Buffer) => writeStdout(d));
    out.on("error", () => resolve());
    out.on("end", () => resolve());
    out.on("close", () => resolve());
  });

  let restored = false;
  return {
    // Output still in the pty buffer after exit is drained; never wait forever.
    finished: () => Promise.race([finished, new Promise<void>((r) => setTimeout(r, 2000))]),
    restore: () => {
      if (restored) return;
      restored = true;
      process.off("SIGWINCH", resize);
      if (interactive) {
        stdin.off("data", onInput);
        stdin.pause();
      }
      if (raw) stdin.setRawMode(false);
      out.destroy();
      try {
        close(master);
      } catch {
        // tty.ReadStream closed it
      }
    },
  };
}

/** The size for a new pseudo-terminal: the caller's terminal's, or docker's 24x80 when stdout
 * is no terminal or reports 0x0 (e.g. under script(1) without one). */
export function terminalSize(): { rows: number; cols: number } {
  const size = windowSize(1);
  return { rows: size?.rows || 24, cols: size?.cols || 80 };
}
