// Debug narration: with --debug, gcr tells what it does, one "[stage] text" line per step,
// on stderr (stdout belongs to the container and to command output). Silent otherwise.
import { printErr } from "./output.ts";

export type LogEvent =
  | { kind: "step"; stage: string; msg: string; ms: number }
  | { kind: "warn"; msg: string };

type Sink = (e: LogEvent) => void;

const started = performance.now();
let debugOn = false;
let quiet = false;

function defaultSink(e: LogEvent): void {
  if (e.kind === "warn") {
    if (!quiet) printErr(`gcr: warning: ${e.msg}\n`);
    return;
  }
  printErr(`[${e.stage}] ${e.msg} (+${e.ms.toFixed(1)} ms)\n`);
}

let sink: Sink = defaultSink;

export function setDebug(on: boolean): void {
  debugOn = on;
}
export function isDebug(): boolean {
  return debugOn;
}
/** Suppress warnings (e.g. `-q`). Errors are never suppressed. */
export function setQuiet(on: boolean): void {
  quiet = on;
}
/** Tests and embedders may capture events instead of printing them. */
export function setSink(s: Sink | undefined): void {
  sink = s ?? defaultSink;
}

/** Narrate one step. `msg` may be a function so that costly strings are built only with --debug. */
export function debug(stage: string, msg: string | (() => string)): void {
  if (!debugOn) return;
  sink({ kind: "step", stage, msg: typeof msg === "function" ? msg() : msg, ms: performance.now() - started });
}

export function warn(msg: string): void {
  sink({ kind: "warn", msg });
}
