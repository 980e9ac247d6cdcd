// Host resources a container owns besides its directory: its cgroup, its network links.
// Each is set up before the container's setup runs and released after it exits, by the
// same gcr process; leftovers of a gcr that died are released by sweepStale() (container.ts).
import type { WaitStatus } from "../sys/libc.ts";

export interface ContainerResource {
  /** For --debug and errors: "cgroup", "network". */
  name: string;
  /** After clone, before the child is released: the child waits, its host pid is known. */
  attach(pid: number): void | Promise<void>;
  /** After the container exited (or failed to start). Must not throw. */
  release(): void | Promise<void>;
  /** A one-line explanation of an exit status, e.g. an OOM kill; undefined if none. */
  explainExit?(status: WaitStatus): string | undefined;
}
