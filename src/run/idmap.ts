// User namespace id maps: which host ids the container's ids stand for.
//  - root, --userns=host (docker's default): no user namespace at all.
//  - root, --userns=private: container 0..65535 -> host 100000.. (or root's /etc/subuid range).
//  - rootless: container root -> the caller; with an /etc/subuid range and newuidmap (setuid
//    helper from the uidmap package) container 1..N -> that range too. Without them only one
//    id exists inside, and setgroups(2) must be denied before gid_map can be written.
import { GcrError, SyscallError } from "../errors.ts";
import { debug } from "../log.ts";
import { exists, readTextOrUndefined, writeFile } from "../sys/fs.ts";

export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

export interface IdMapping {
  uids: IdRange[];
  gids: IdRange[];
  /** newuidmap/newgidmap are needed to write more than our own id. */
  helper: boolean;
}

/** Parse /etc/subuid or /etc/subgid: "name-or-uid:start:count" lines. */
export function subordinateRange(text: string, user: string, uid: number): { start: number; count: number } | undefined {
  for (const line of text.split("\n")) {
    const [who, start, count] = line.trim().split(":");
    if ((who === user || who === String(uid)) && start && count && /^\d+$/.test(start) && /^\d+$/.test(count))
      return { start: Number(start), count: Number(count) };
  }
  return undefined;
}

/** The login name of `uid` in passwd(5) text. */
export function passwdName(text: string, uid: number): string | undefined {
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && f[2] === String(uid)) return f[0];
  }
  return undefined;
}

const readOr = (path: string): string => readTextOrUndefined(path) ?? "";

const NEWUIDMAP = ["/usr/bin/newuidmap", "/bin/newuidmap"];
const NEWGIDMAP = ["/usr/bin/newgidmap", "/bin/newgidmap"];

/** The mapping for this caller, or undefined for no user namespace. */
export function planIdMapping(rootless: boolean, userns: "host" | "private" | undefined): IdMapping | undefined {
  if (!rootless && userns !== "private") return undefined;
  const uid = process.getuid!();
  const gid = process.getgid!();
  // Ranges are keyed by user name or uid. The name comes from /etc/passwd (os.userInfo()
  // can answer "unknown", e.g. under setpriv).
  const name = passwdName(readOr("/etc/passwd"), uid) ?? String(uid);
  if (!rootless) {
    const su = subordinateRange(readOr("/etc/subuid"), name, uid) ?? { start: 100000, count: 65536 };
    const sg = subordinateRange(readOr("/etc/subgid"), name, uid) ?? { start: 100000, count: 65536 };
    return { uids: [{ inside: 0, outside: su.start, count: su.count }], gids: [{ inside: 0, outside: sg.start, count: sg.count }], helper: false };
  }
  const su = subordinateRange(readOr("/etc/subuid"), name, uid);
  const sg = subordinateRange(readOr("/etc/subgid"), name, uid);
  const helper = su !== undefined && sg !== undefined && NEWUIDMAP.some(exists) && NEWGIDMAP.some(exists);
  if (!helper) return { uids: [{ inside: 0, outside: uid, count: 1 }], gids: [{ inside: 0, outside: gid, count: 1 }], helper: false };
  return {
    uids: [{ inside: 0, outside: uid, count: 1 }, { inside: 1, outside: su.start, count: su.count }],
    gids: [{ inside: 0, outside: gid, count: 1 }, { inside: 1, outside: sg.start, count: sg.count }],
    helper: true,
  };
}

/** Whether a container id is mapped (e.g. gid 5 "tty" for devpts). */
export function isMapped(ranges: IdRange[] | undefined, id: number): boolean {
  if (!ranges) return true;
  return ranges.some((r) => id >= r.inside && id < r.inside + r.count);
}

export function mapLines(ranges: IdRange[]): string {
  return ranges.map((r) => `${r.inside} ${r.outside} ${r.count}`).join("\n") + "\n";
}

/** Write /proc/PID/{uid_map,setgroups,gid_map} (or run newuidmap/newgidmap). */
export function writeIdMaps(pid: number, m: IdMapping): void {
  if (m.helper) {
    for (const [tool, ranges] of [[NEWUIDMAP.find(exists)!, m.uids], [NEWGIDMAP.find(exists)!, m.gids]] as const) {
      const args = ranges.flatMap((r) => [String(r.inside), String(r.outside), String(r.count)]);
      const p = Bun.spawnSync([tool, String(pid), ...args], { stderr: "pipe" });
      if (p.exitCode !== 0) throw new GcrError(`${tool} ${pid} ${args.join(" ")}: ${p.stderr.toString().trim()}`);
    }
    debug("userns", `mapped uids ${mapLines(m.uids).trim().replace(/\n/g, "; ")} with newuidmap`);
    return;
  }
  const write = (file: string, text: string) => {
    try {
      writeFile(`/proc/${pid}/${file}`, text);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new SyscallError("write", Math.abs(err.errno ?? 1), `/proc/${pid}/${file}`);
    }
  };
  write("uid_map", mapLines(m.uids));
  // An unprivileged writer must deny setgroups before writing gid_map (user_namespaces(7)).
  if (process.getuid!() !== 0) write("setgroups", "deny");
  write("gid_map", mapLines(m.gids));
  debug("userns", `uid_map: ${mapLines(m.uids).trim().replace(/\n/g, "; ")}, gid_map: ${mapLines(m.gids).trim().replace(/\n/g, "; ")}`);
}
