// Where gcr keeps things. Root: /var/lib/gcr (images, blobs) and /run/gcr (running state).
// Rootless: $XDG_DATA_HOME/gcr and $XDG_RUNTIME_DIR/gcr, as podman does.
// GCR_ROOT and GCR_RUNROOT override both (tests use them to stay out of the host's store).
import { join } from "./path.ts";

export function isRoot(): boolean {
  return process.geteuid?.() === 0;
}

export function dataDir(): string {
  if (process.env.GCR_ROOT) return process.env.GCR_ROOT;
  if (isRoot()) return "/var/lib/gcr";
  const xdg = process.env.XDG_DATA_HOME || join(process.env.HOME || homeFromPasswd(), ".local/share");
  return join(xdg, "gcr");
}

export function stateDir(): string {
  if (process.env.GCR_RUNROOT) return process.env.GCR_RUNROOT;
  if (isRoot()) return "/run/gcr";
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg) return join(xdg, "gcr");
  return join(process.env.TMPDIR || "/tmp", `gcr-${process.geteuid?.() ?? "user"}`);
}

/** $HOME is nearly always set; without it, node:os asks the passwd database (loaded only then). */
function homeFromPasswd(): string {
  return (require("node:os") as typeof import("node:os")).homedir();
}
