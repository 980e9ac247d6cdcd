// The bridge's shared state, one JSON file per bridge under /run/gcr/network, changed only
// under an flock on its lock file: which container holds which address (and veth), which NAT
// backend made the rules, and the ip_forward value to restore. The bridge is a host-wide
// object, so this file is host-wide too (not under GCR_RUNROOT): two gcr processes with
// different state dirs still share one gcr0 and must never hand out the same address.
//
// A lease names the lock file of its container directory (container.ts). The owning gcr holds
// an flock on it for its whole life, so a lease whose lock can be taken belongs to a dead gcr
// and is reclaimed: a SIGKILLed gcr never keeps an address.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { flock, LOCK_EX, LOCK_NB } from "../../sys/libc.ts";
import type { NatBackend } from "./nat.ts";

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
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${bridge}.json`);
  const fd = openSync(join(dir, `${bridge}.lock`), "a", 0o600);
  try {
    flock(fd, LOCK_EX);
    let state: BridgeState = { leases: [] };
    try {
      state = JSON.parse(readFileSync(file, "utf8")) as BridgeState;
    } catch {
      // none yet, or torn by a crash mid-write (cannot happen: rename below); start empty
    }
    const before = JSON.stringify(state);
    const out = fn(state);
    const after = JSON.stringify(state);
    if (after !== before) {
      writeFileSync(`${file}.tmp`, after, { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
    }
    return out;
  } finally {
    closeSync(fd); // releases the flock
  }
}

/** Whether the gcr owning a lease is alive (holds its container's lock). */
export function leaseAlive(l: Lease): boolean {
  let fd: number;
  try {
    fd = openSync(l.lock, "r");
  } catch {
    return false;
  }
  try {
    return !flock(fd, LOCK_EX | LOCK_NB);
  } finally {
    closeSync(fd);
  }
}
