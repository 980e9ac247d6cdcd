// `gcr exec`: a new process in a running container. The native child joins the container's
// namespaces with setns(2) (user first, then mount, uts, ipc, net, cgroup, pid), forks once
// so that its child is really inside the pid namespace (setns on a pid namespace only moves
// future children), and then takes the same path as the container's own command: working
// directory, standard streams, user, capabilities, no_new_privs, seccomp, execve.
import { helpText, parseOptions, type OptionSpec } from "../cli.ts";
import { EXIT, GcrError, UsageError } from "../errors.ts";
import { debug } from "../log.ts";
import { CLONE, type Op } from "../sys/child.ts";
import { startAndWait } from "./command.ts";
import { resolveUser } from "./image.ts";
import { expandEnv, parseEnvFile } from "./options.ts";
import { execCandidates } from "./plan.ts";
import type { ContainerResource } from "./resources.ts";
import { defaultSeccompFilter } from "./security.ts";
import { findContainer } from "./state.ts";
import { recordedCgroups } from "./cgroups/resource.ts";
import { printOut } from "../output.ts";
import { terminalSize } from "./terminal.ts";
import { close, O, open, readText, stat, writeFile } from "../sys/fs.ts";
import { join } from "../path.ts";

const EXEC_SPECS: OptionSpec[] = [
  { name: "interactive", short: "i", type: "boolean", help: "keep stdin open" },
  { name: "tty", short: "t", type: "boolean", help: "allocate a pseudo-terminal" },
  { name: "env", short: "e", type: "list", arg: "K=V", help: "set an environment variable" },
  { name: "env-file", type: "list", arg: "FILE", help: "read K=V lines from a file" },
  { name: "workdir", short: "w", type: "string", arg: "DIR", help: "working directory inside the container" },
  { name: "user", short: "u", type: "string", arg: "USER[:GROUP]", help: "user to run as" },
];

/** The namespaces to join, in the order setns needs them: user first (it grants the rights
 * for the others), pid last (it applies to children, hence the fork after it). */
const NAMESPACES: [file: string, flag: number][] = [
  ["user", CLONE.NEWUSER], ["mnt", CLONE.NEWNS], ["uts", CLONE.NEWUTS], ["ipc", CLONE.NEWIPC],
  ["net", CLONE.NEWNET], ["cgroup", CLONE.NEWCGROUP], ["pid", CLONE.NEWPID],
];

function sameNamespace(a: string, b: string): boolean {
  try {
    const x = stat(a);
    const y = stat(b);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}

export async function execCommand(argv: string[]): Promise<number> {
  const p = parseOptions("exec", argv, EXEC_SPECS, { stopAtPositional: true });
  if (p.help) {
    printOut(helpText("gcr exec [OPTIONS] ID|NAME COMMAND [ARG...]", "Run a command in a running container.", EXEC_SPECS));
    return EXIT.ok;
  }
  const [ref, ...cmd] = p.rest;
  if (!ref || cmd.length === 0) throw new UsageError("requires at least 2 arguments: ID|NAME COMMAND", "exec");
  const c = findContainer(ref);
  if (c.status.state !== "running") throw new GcrError(`container ${ref} is not running`);
  const pid = c.status.pid;
  const proc = c.config.process;
  const v = p.values;

  const env = new Map(proc.env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
  const extra = [...((v["env-file"] as string[] | undefined) ?? []).flatMap((f) => parseEnvFile(f, process.env)), ...((v.env as string[] | undefined) ?? []).flatMap((e) => expandEnv(e, process.env))];
  for (const e of extra) env.set(e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1));
  if (v.tty && !env.has("TERM")) env.set("TERM", "xterm");
  const envList = [...env].map(([k, val]) => `${k}=${val}`);

  // Users are looked up in the container's own /etc/passwd, as it is now.
  const root = `/proc/${pid}/root`;
  const user = v.user !== undefined ? resolveUser(root, v.user as string) : { uid: proc.uid, gid: proc.gid, additionalGids: proc.additionalGids };
  const cwd = (v.workdir as string | undefined) ?? proc.cwd;

  // The exec'd process waits for gcr's go (its cgroups) before anything else.
  const ops: Op[] = [{ op: "go" }];
  const fds: number[] = [];
  try {
    for (const [file, flag] of NAMESPACES) {
      const target = `/proc/${pid}/ns/${file}`;
      if (sameNamespace(target, `/proc/self/ns/${file}`)) continue;
      const fd = open(target, O.RDONLY);
      fds.push(fd);
      ops.push({ op: "setns", fd, nstype: flag });
    }
    debug("exec", `joining the namespaces of host pid ${pid}: ${ops.map((o) => (o.op === "setns" ? NAMESPACES.find(([, f]) => f === o.nstype)![0] : "")).join(", ")}`);
    ops.push({ op: "init" });
    ops.push({ op: "chdir", path: cwd });
    const tty = v.tty ? terminalSize() : undefined;
    if (tty) ops.push({ op: "tty", ...tty, uid: user.uid, gid: user.gid });
    else {
      if (!v.interactive) ops.push({ op: "stdinNull" });
      ops.push({ op: "setsid" });
    }
    // A rootless one-id namespace has setgroups(2) denied; the kernel says so in /proc.
    if (readText(`/proc/${pid}/setgroups`).trim() !== "deny") ops.push({ op: "setgroups", gids: user.additionalGids });
    const caps = BigInt(proc.capabilities);
    ops.push({ op: "bounding", keep: caps });
    ops.push({ op: "setid", uid: user.uid, gid: user.gid });
    ops.push({ op: "capset", effective: user.uid === 0 ? caps : 0n, inheritable: 0n });
    ops.push({ op: "capambient" });
    if (proc.noNewPrivileges) ops.push({ op: "nnp" });
    ops.push({ op: "closefds" });
    if (proc.seccomp) ops.push({ op: "seccomp", filter: defaultSeccompFilter() });
    ops.push({ op: "exec", candidates: execCandidates(cmd[0]!, envList), argv: cmd, env: envList });

    const resources: ContainerResource[] = [joinCgroups(c.config.id)];
    return await startAndWait({ cloneFlags: 0, ops }, resources, { tty: v.tty === true, interactive: v.interactive === true }, cmd, undefined);
  } finally {
    // The child closes its copies after setns; these are gcr's.
    for (const fd of fds) close(fd);
  }
}

/** Put the exec'd process into the container's cgroups (recorded by the cgroup module). */
function joinCgroups(id: string): ContainerResource {
  return {
    name: "cgroup",
    attach(pid: number) {
      const leaves = recordedCgroups(id);
      for (const leaf of leaves) {
        try {
          writeFile(join(leaf, "cgroup.procs"), `${pid}\n`);
        } catch (e) {
          throw new GcrError(`join the container's cgroup ${leaf}`, { cause: e });
        }
      }
      debug("cgroup", `exec process ${pid} joined ${leaves.length} cgroup(s) of ${id.slice(0, 12)}`);
    },
    release() {},
  };
}
