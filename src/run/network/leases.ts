// The bridge's shared state, one JSON file per bridge under /run/gcr/network, changed only
// under an flock on its lock file: which container holds which address (and veth), which NAT
// backend made the rules, and the ip_forward value to restore. The bridge is a host-wide
// object, so this file is host-wide too (not under GCR_RUNROOT): two gcr processes with
// different state dirs still share one gcr0 and must never hand out the same address.
//
// A lease names the lock file of its container directory (container.ts). The owning gcr holds
// an flock on it for its whole life, so a lease whose lock can be taken belongs to a dead gcr
// and is reclaimed: a SIGKILLed gcr never keeps an address.
import { flock, LOCK_EX, LOCK_NB } from "../../sys/libc.ts";
import type { NatBackend } from "./nat.ts";
import { O, close, mkdirp, open, readText, rename, writeFile } from "../../sys/fs.ts";
import { join } from "../../path.ts";

export interface Lease {
  ip: string;
  /** Container id. */
  id: string;
  /** The host-side veth. */
  veth: string;
  /** The container's lock file (see above). */
  lock: string;
}

export interface BridgeState {
  subnet?: string;
  nat?: NatBackend;
  /** /proc/sys/net/ipv4/ip_forward before gcr set it, restored with the bridge's removal. */
  ipForward?: string;
  leases: Lease[];
}

export const NETWORK_STATE_DIR = "/run/gcr/network";

/** Run `fn` with the bridge's state, holding its lock; the state `fn` leaves is saved. */
export function withBridgeState<T>(bridge: string, fn: (s: BridgeState) => T, dir = NETWORK_STATE_DIR): T {
  mkdirp(dir, 0o700);
  const file = join(dir, `${bridge}.json`);
  const fd = open(join(dir, `${bridge}.lock`), O.WRONLY | O.CREAT | O.APPEND, 0o600);
  try {
    flock(fd, LOCK_EX);
    let state: BridgeState = { leases: [] };
    try {
      state = JSON.parse(readText(file)) as BridgeState;
    } catch {
      // none yet, or torn by a crash mid-write (cannot happen: rename below); start empty
    }
    const before = JSON.stringify(state);
    const out = fn(state);
    const after = JSON.stringify(state);
    if (after !== before) {
      writeFile(`${file}.tmp`, after, { mode: 0o600 });
      rename(`${file}.tmp`, file);
    }
    return out;
  } finally {
    close(fd); // releases the flock
  }
}

/** Whether the gcr owning a lease is alive (holds its container's lock). */
export function leaseAlive(l: Lease): boolean {
  let fd: number;
  try {
    fd = open(l.lock, O.RDONLY);
  } catch {
    return false;
  }
  try {
    return !flock(fd, LOCK_EX | LOCK_NB);
  } finally {
    close(fd);
  }
}
