// `gcr run`: resolve the image, prepare the rootfs, build the plan, clone the container
// process, give it its id maps (and cgroup), let it run its setup, relay signals and the
// terminal, wait, clean up, and exit with the container's code.
import { EXIT, GcrError, SyscallError, UsageError, errnoName } from "../errors.ts";
import { steady } from "../jit.ts";
import { debug, isDebug } from "../log.ts";
import { printErr, printOut } from "../output.ts";
import { dirname, join } from "../path.ts";
import { isRoot, stateDir } from "../paths.ts";
import { Child, CLONE, describeOp, idmapTree, mountFlagNames, namespaceNames, type Op } from "../sys/child.ts";
import { O, chmod, chown, close, exists, mkdir, open, stat, writeFile } from "../sys/fs.ts";
import { inBoundingSet, kill, waitExit, waitpidNoHang, type WaitStatus } from "../sys/libc.ts";
import { prepareCgroup } from "./cgroups/resource.ts";
import { closeContainerDir, createContainerDir, newContainerId, removeContainerDir, type ContainerDir } from "./container.ts";
import { isMapped, planIdMapping, writeIdMaps, type IdMapping } from "./idmap.ts";
import { resolveImage, resolveUser, type ResolvedImage } from "./image.ts";
import { planNetwork } from "./network/index.ts";
import { parseRunArgs, runHelp, type RunOptions } from "./options.ts";
import { buildPlan, DEFAULT_PATH, type Plan } from "./plan.ts";
import type { ContainerResource } from "./resources.ts";
import { linkIntoUpper, overlayData, prepareMountPoint, type UpperOwner } from "./rootfs.ts";
import { capabilityMask, capNames, defaultSeccompFilter, withinBoundingSet } from "./security.ts";
import { listContainers, withStateLock, writeExit, type ContainerConfig, type ProcessConfig } from "./state.ts";
import { sweep } from "./sweep.ts";
import { startTerminal, terminalSize } from "./terminal.ts";

/** Signals gcr passes on to the container (SIGWINCH becomes a resize with -t). */
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"] as const;
const SIGNUM: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15, SIGWINCH: 28 };

export async function runCommand(argv: string[]): Promise<number> {
  const opts = parseRunArgs(argv);
  if (opts === "help") {
    printOut(runHelp());
    return EXIT.ok;
  }
  if (opts.detach && (opts.tty || opts.interactive)) throw new UsageError("-d cannot be combined with -i or -t: attach is not supported", "run");
  debug("run", `as pid ${process.pid} (${isRoot() ? "root" : `rootless, uid ${process.getuid!()}`})`);
  sweep();
  const image = resolveImage(opts.image);
  const argvToRun = containerArgv(opts, image);
  const id = newContainerId();
  // Detached and named containers are kept after exit, until `gcr rm` (docker's rule);
  // a plain foreground run is ephemeral: its writable layer goes when it exits.
  const persist = opts.detach || opts.name !== undefined;
  const config: ContainerConfig = {
    id,
    name: opts.name,
    image: opts.image,
    rootfs: image.rootfs,
    argv: argvToRun,
    created: new Date().toISOString(),
    persist,
    detached: opts.detach,
    autoRemove: opts.rm,
    hostname: opts.hostname ?? id.slice(0, 12),
    stopSignal: image.config.StopSignal,
    opts,
    process: processConfig(opts, image, id),
  };
  // The state lock makes "is the name free?" and "take it" one step; a container without a
  // name has a fresh id and needs no lock.
  const name = opts.name;
  const c =
    name === undefined
      ? createContainerDir(id, config)
      : withStateLock(() => {
          if (listContainers().some((x) => x.config.name === name))
            throw new GcrError(`the container name "${name}" is already in use`, { hint: `remove it with 'gcr rm ${name}', or choose another name` });
          return createContainerDir(id, config);
        });
  return launch(c, config, image);
}

/** Run a prepared container dir: `gcr run` and `gcr start` both come here. */
export async function launch(c: ContainerDir, config: ContainerConfig, image: ResolvedImage): Promise<number> {
  let keep = false;
  try {
    const code = await runContainer(c, config.opts, image, config.argv, config);
    keep = config.detached || (config.persist && !config.autoRemove);
    return code;
  } finally {
    if (keep) closeContainerDir(c);
    else {
      removeContainerDir(c);
      debug("run", `removed ${c.dir}`);
    }
  }
}

/** What a process of this container runs with: also what `gcr exec` repeats. */
function processConfig(opts: RunOptions, image: ResolvedImage, id: string): ProcessConfig {
  const user = resolveUser(image.rootfs, opts.user ?? (image.config.User || undefined));
  let caps: bigint;
  try {
    caps = withinBoundingSet(capabilityMask(opts.capAdd, opts.capDrop), inBoundingSet);
  } catch (e) {
    throw new UsageError((e as Error).message, "run");
  }
  return {
    env: containerEnv(opts, image, opts.hostname ?? id.slice(0, 12), user.home),
    cwd: opts.workdir ?? image.config.WorkingDir ?? "/",
    uid: user.uid,
    gid: user.gid,
    additionalGids: user.additionalGids,
    capabilities: `0x${caps.toString(16)}`,
    seccomp: opts.seccomp,
    noNewPrivileges: opts.noNewPrivileges,
  };
}

/** docker's rule: ENTRYPOINT (or --entrypoint) + (COMMAND or the image's CMD). */
export function containerArgv(opts: RunOptions, image: ResolvedImage): string[] {
  const entrypoint = opts.entrypoint !== undefined ? (opts.entrypoint === "" ? [] : [opts.entrypoint]) : (image.config.Entrypoint ?? []);
  const cmd = opts.command.length > 0 ? opts.command : opts.entrypoint !== undefined ? [] : (image.config.Cmd ?? []);
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) throw new UsageError(`no command given and ${image.ref} has no default command`, "run");
  return argv;
}

function containerEnv(opts: RunOptions, image: ResolvedImage, hostname: string, home: string | undefined): string[] {
  // Later entries win, as in docker: defaults, then the image's Env, then -e / --env-file.
  const env = new Map<string, string>();
  const put = (e: string) => {
    const eq = e.indexOf("=");
    if (eq > 0) env.set(e.slice(0, eq), e.slice(eq + 1));
  };
  put(`PATH=${DEFAULT_PATH}`);
  put(`HOSTNAME=${hostname}`);
  for (const e of image.config.Env ?? []) put(e);
  for (const e of opts.env) put(e);
  if (opts.tty && !env.has("TERM")) put("TERM=xterm");
  if (!env.has("HOME")) put(`HOME=${home || "/root"}`);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

async function runContainer(c: ContainerDir, opts: RunOptions, image: ResolvedImage, argv: string[], config: ContainerConfig): Promise<number> {
  const rootless = !isRoot();
  // Resource limits are validated and placed first, so bad flags fail before anything starts.
  const idmap = planIdMapping(rootless, opts.userns);
  const cgroup = prepareCgroup(c.id, opts.cgroup, rootless, { childJoins: !idmap });
  const hostname = config.hostname;
  const proc = config.process;
  const user = { uid: proc.uid, gid: proc.gid, additionalGids: proc.additionalGids };
  if (idmap && (!isMapped(idmap.uids, user.uid) || !isMapped(idmap.gids, user.gid)))
    throw new GcrError(`user ${user.uid}:${user.gid} does not exist in this container's user namespace, which maps only ids ${idmap.uids.map((r) => (r.count === 1 ? `${r.inside}` : `${r.inside}-${r.inside + r.count - 1}`)).join(", ")}`, {
      hint: rootless ? "run as -u 0, or give your user a range in /etc/subuid and /etc/subgid and install newuidmap (package uidmap)" : undefined,
    });
  const env = proc.env;
  const net = planNetwork({ ...opts, detach: config.detached }, c, hostname);
  const lower = image.rootfs;
  // root with --userns=private: the overlay's lower layer is an idmapped view of the image, in
  // which host root's files belong to the container's root (see attach()).
  const idmappedLower = idmap && !rootless ? join(c.dir, "lower") : undefined;
  debug("rootfs", `overlay: lower ${lower} (never written), upper ${c.upper}`);

  // Mount points, prepared in the upper layer (see rootfs.ts for why).
  // What gcr creates in the upper layer belongs to the container's root.
  const owner: UpperOwner = rootless ? "none" : idmap ? { uid: idmap.uids[0]!.outside, gid: idmap.gids[0]!.outside } : "copy";
  const system = (p: string) => prepareMountPoint(lower, c.upper, p, "dir", { followFinal: false, owner });
  for (const p of ["/proc", "/sys", "/dev"]) system(p);
  // The container's own /etc/hostname, hosts and resolv.conf, linked into its upper layer.
  for (const [target, content] of [
    ["/etc/hostname", `${hostname}\n`],
    ["/etc/hosts", net.hosts],
    ["/etc/resolv.conf", net.resolvConf],
  ] as const) {
    const source = join(c.dir, target.slice("/etc/".length));
    writeFile(source, content, { mode: 0o644 });
    linkIntoUpper(lower, c.upper, target, source, { owner });
  }
  const volumes = opts.volumes.map((v) => {
    let st;
    try {
      st = stat(v.source);
    } catch {
      throw new GcrError(`volume ${v.source}: no such file or directory on the host`);
    }
    const kind = st.isDirectory() ? "dir" : "file";
    return { ...v, target: prepareMountPoint(lower, c.upper, v.target, kind, { followFinal: true, owner }) };
  });
  const tmpfs = opts.tmpfs.map((t) => ({ ...t, target: prepareMountPoint(lower, c.upper, t.target, "dir", { followFinal: true, owner }) }));
  const workdir = proc.cwd;
  if (workdir !== "/") prepareMountPoint(lower, c.upper, workdir, "dir", { followFinal: true, owner });
  if (idmap && !rootless) {
    // root with --userns=private: the container's root owns its writable layer.
    // It must also reach its files: the container dir becomes traversable (not listable).
    const [uid, gid] = [idmap.uids[0]!.outside, idmap.gids[0]!.outside];
    for (const d of [stateDir(), dirname(c.dir), c.dir]) chmod(d, 0o711);
    mkdir(idmappedLower!, 0o755);
    for (const d of [c.upper, c.work, c.merged]) chown(d, uid, gid);
  }

  const tty = opts.tty ? terminalSize() : undefined;
  const caps = BigInt(proc.capabilities);

  const plan = buildPlan({
    lower,
    upper: c.upper,
    work: c.work,
    merged: c.merged,
    overlayData: overlayData(idmappedLower ?? lower, c.upper, c.work, idmap !== undefined),
    idmappedLower,
    idmap,
    // An unprivileged writer of a one-id map must deny setgroups first (idmap.ts).
    setgroupsDenied: rootless && !idmap?.helper,
    becomeRoot: idmap !== undefined && !rootless,
    hostname,
    volumes,
    tmpfs,
    readOnly: opts.readOnly,
    newNetwork: net.newNetwork,
    cgroupNamespace: true,
    cgroupMounts: cgroup.mounts,
    cgroupJoin: cgroup.join,
    workdir,
    uid: user.uid,
    gid: user.gid,
    additionalGids: user.additionalGids,
    capabilities: caps,
    seccomp: opts.seccomp ? defaultSeccompFilter() : undefined,
    noNewPrivileges: opts.noNewPrivileges,
    tty,
    interactive: opts.interactive,
    init: opts.init,
    argv,
    env,
    exists,
    isDir: (p) => {
      try {
        return stat(p).isDirectory();
      } catch {
        return false;
      }
    },
  });
  if (isDebug()) narratePlan(plan.ops, caps, opts, c.merged);

  // Host resources (cgroup, network): each module adds itself here, see resources.ts.
  const resources: ContainerResource[] = [];
  if (cgroup.resource) resources.push(cgroup.resource);
  if (net.resource) resources.push(net.resource);
  // A detached container's resources outlive this gcr: the sweep releases them after exit.
  let handedOver = false;
  try {
    if (config.detached) {
      await startDetached(c, plan, resources, idmap);
      handedOver = true;
      return EXIT.ok;
    }
    return await startAndWait(plan, resources, opts, argv, idmap, {
      started: (pid) => writeFile(join(c.dir, "pid"), `${pid}\n`),
      exited: (status) => config.persist && writeExit(c.dir, status),
    });
  } finally {
    if (!handedOver) for (const r of resources.reverse()) await r.release();
  }
}

/** Start through gcr-monitor, print the id, and leave the container running. */
async function startDetached(c: ContainerDir, plan: Plan, resources: ContainerResource[], idmap: IdMapping | undefined): Promise<void> {
  const logFd = open(join(c.dir, "ctr.log"), O.WRONLY | O.CREAT | O.APPEND, 0o600);
  let started;
  try {
    started = Child.viaMonitor(plan.ops, plan.cloneFlags, stateDir(), join(c.dir, "exit"), logFd, c.lockFd);
  } finally {
    close(logFd);
  }
  const { child, monitorPid } = started;
  debug("clone", `gcr-monitor (pid ${monitorPid}) cloned the container: host pid ${child.pid}, namespaces ${namespaceNames(plan.cloneFlags)}`);
  const tree = await attach(child, idmap, resources, plan);
  const result = releaseWith(child, tree);
  if (!result.ok) {
    const code = setupFailure(plan.ops, result.op, result.errno);
    throw new GcrError(`the container did not start (exit code ${code})`, { exitCode: code });
  }
  writeFile(join(c.dir, "pid"), `${child.pid}\n`);
  printOut(`${c.id}\n`);
}

/** Between clone and go: the id maps, the idmapped image (root with --userns=private), then
 * each host resource (cgroup, network). A failure abandons the child, which then exits
 * without running anything. Returns the idmapped tree's fd to pass with the go, or -1. */
async function attach(child: Child, idmap: IdMapping | undefined, resources: ContainerResource[], plan: Plan): Promise<number> {
  let tree = -1;
  try {
    if (idmap) writeIdMaps(child.pid, idmap);
    if (plan.idmapSource) {
      const userns = open(`/proc/${child.pid}/ns/user`, O.RDONLY);
      try {
        tree = idmapTree(plan.idmapSource, userns, stateDir());
      } finally {
        close(userns);
      }
      debug("userns", `idmapped view of ${plan.idmapSource}: host root's files belong to the container's root`);
    }
    for (const r of resources) await r.attach(child.pid);
    return tree;
  } catch (e) {
    if (tree >= 0) close(tree);
    // The child may have failed first, in the setup it runs before the go; that is the cause.
    const early = child.earlyFailure();
    child.abandon();
    if (early) throw setupError(plan.ops, early.op, early.errno);
    throw e instanceof GcrError ? e : new GcrError("set up the container", { cause: e });
  }
}

/** Send the go (with the idmapped tree, if any) and wait for the child's answer. */
function releaseWith(child: Child, tree: number): ReturnType<Child["release"]> {
  try {
    return child.release(tree);
  } finally {
    if (tree >= 0) close(tree);
  }
}

export interface StartHooks {
  started?: (pid: number) => void;
  exited?: (status: WaitStatus) => void;
}

/** Clone, attach resources, release the child, relay signals and the terminal, wait. */
export async function startAndWait(plan: Plan, resources: ContainerResource[], opts: { tty: boolean; interactive: boolean }, argv: string[], idmap: IdMapping | undefined, hooks: StartHooks = {}): Promise<number> {
  const child = Child.spawn(plan.ops, plan.cloneFlags, stateDir());
  if (plan.cloneFlags & CLONE.NEWPID) debug("clone", `namespaces ${namespaceNames(plan.cloneFlags)}: container process is host pid ${child.pid}, pid 1 inside`);
  else debug("clone", `exec process is host pid ${child.pid}; it joins the container's namespaces with setns`);
  if (plan.cloneFlags & CLONE.NEWPID)
    debug("fork", `as pid 1 (host pid ${child.pid}), ${plan.ops[0]?.op === "go" ? "waiting for the parent's go" : "mounting its filesystems while the parent makes cgroups and network, then waiting for the go"}`);

  // From here on the child exists: whatever happens, it must be reaped.
  const exit = waitForExit(child.pid);
  const relay = relaySignals(child.pid, opts.tty);
  let term: ReturnType<typeof startTerminal> | undefined;
  try {
    const tree = await attach(child, idmap, resources, plan);
    const t0 = performance.now();
    const result = releaseWith(child, tree);
    if (result.ttyMaster !== undefined) term = startTerminal(result.ttyMaster, opts.interactive);
    if (!result.ok) {
      await exit.promise;
      return setupFailure(plan.ops, result.op, result.errno);
    }
    debug("exec", `${JSON.stringify(argv)} started ${(performance.now() - t0).toFixed(1)} ms after the go`);
    // The start is over; what follows (a terminal or port relay) may run for hours.
    steady();
    hooks.started?.(child.pid);
    exit.brief(BRIEF_WAIT_MS);
    const status = await exit.promise;
    hooks.exited?.(status);
    if (term) await term.finished();
    for (const r of resources) {
      const why = r.explainExit?.(status);
      if (why) printErr(`gcr: ${why}\n`);
    }
    return exitCode(status);
  } finally {
    relay.stop();
    term?.restore();
    // The container's pid 1 has exited or will be killed: its mount namespace, and with it
    // every mount made inside, goes away with it. Make sure it is gone before we remove files.
    if (exit.pending()) {
      kill(child.pid, SIGNUM.SIGKILL!);
      await exit.promise;
    }
    exit.stop();
    child.exited();
  }
}

function exitCode(s: WaitStatus): number {
  const code = s.exited ? s.code : EXIT.signalBase + s.signal;
  debug("exit", s.exited ? `container exited with code ${s.code}` : `container killed by signal ${s.signal}: exit code ${code}`);
  return code;
}

function setupFailure(ops: Op[], index: number, errno: number): number {
  const op = ops[index];
  if (op?.op === "exec") {
    const cmd = op.argv[0]!;
    const code = errnoName(errno);
    if (code === "ENOENT") {
      printErr(`gcr: exec: "${cmd}": executable file not found in $PATH\n`);
      return EXIT.notFound;
    }
    printErr(`gcr: exec: "${cmd}": ${new SyscallError("execve", errno).message.replace(/^execve: /, "")}\n`);
    return EXIT.cannotExecute;
  }
  throw setupError(ops, index, errno);
}

/** A failed setup op as the error gcr reports: the syscall, its path and the errno. */
function setupError(ops: Op[], index: number, errno: number): GcrError {
  const op = ops[index];
  if (!op) return new GcrError(`container setup failed: ${errnoName(errno)}`);
  const d = describeOp(op);
  return new GcrError("container setup", { cause: new SyscallError(d.syscall, errno, d.path, d.detail) });
}

interface ExitWait {
  promise: Promise<WaitStatus>;
  pending: () => boolean;
  /** Block up to `ms` for the exit, so a short command is reaped at once. */
  brief: (ms: number) => void;
  stop: () => void;
}

/**
 * How long gcr blocks, once the command runs, for it to exit before it goes back to its event
 * loop. SIGCHLD reaches JavaScript 2-3 ms after the exit on this VM (README, "Start time");
 * a pidfd wakes gcr at once. Meanwhile signals, terminal input and output wait: 50 ms is not
 * felt, and most `gcr run IMAGE CMD` commands end well within it.
 */
const BRIEF_WAIT_MS = 50;

/** SIGCHLD + waitpid(WNOHANG), with a slow poll in case signals coalesce (BUN-FACTS §2). */
function waitForExit(pid: number): ExitWait {
  let done = false;
  let resolve!: (s: WaitStatus) => void;
  const promise = new Promise<WaitStatus>((r) => (resolve = r));
  const check = () => {
    if (done) return;
    const s = waitpidNoHang(pid);
    if (s) {
      done = true;
      stop();
      resolve(s);
    }
  };
  const timer = setInterval(check, 250);
  process.on("SIGCHLD", check);
  const stop = () => {
    clearInterval(timer);
    process.off("SIGCHLD", check);
  };
  const brief = (ms: number) => {
    if (waitExit(pid, ms)) check();
  };
  return { promise, pending: () => !done, brief, stop };
}

function relaySignals(pid: number, tty: boolean): { stop: () => void } {
  const handlers: [string, () => void][] = [];
  for (const sig of FORWARDED) {
    // With -t the terminal itself sends SIGWINCH to the container on resize (terminal.ts).
    if (tty && sig === "SIGWINCH") continue;
    const h = () => {
      debug("signal", `forwarding ${sig} to the container`);
      kill(pid, SIGNUM[sig]!);
    };
    process.on(sig, h);
    handlers.push([sig, h]);
  }
  return { stop: () => handlers.forEach(([s, h]) => process.off(s, h)) };
}

const STAGE: Partial<Record<Op["op"], string>> = {
  mount: "mount", mkdir: "mount", mkfile: "mount", mknod: "dev", write: "cgroup", symlink: "mount", readonly: "mount",
  pivot: "pivot_root", hostname: "uts", loopback: "net", unshare: "cgroup", chdir: "exec", tty: "tty",
  stdinNull: "exec", setsid: "exec", setgroups: "user", setid: "user", bounding: "caps", capset: "caps",
  capambient: "caps", nnp: "caps", seccomp: "seccomp", closefds: "exec", init: "init", umask: "exec", exec: "exec", go: "sync",
};

function narratePlan(ops: Op[], caps: bigint, opts: RunOptions, merged: string): void {
  // Paths as the container will see them: "<rootfs>/proc" rather than the long host path.
  const short = (t: string) => t.split(merged).join("<rootfs>");
  for (const o of ops) {
    const d = describeOp(o);
    let text = [d.syscall, d.path, d.detail].filter(Boolean).join(" ");
    if (o.op === "mount" && !o.src && !o.fstype) text = `make ${o.dst} and every mount below it private (${mountFlagNames(o.flags)}): nothing propagates to the host`;
    else if (o.op === "mount") text = `mount ${o.fstype ?? `--bind ${o.src}`} on ${o.dst} (${mountFlagNames(o.flags)}${o.data ? `, ${o.data}` : ""})`;
    if (o.op === "capset") text += ` (${capNames(caps).join(",") || "none"})`;
    if (o.op === "exec") text = `execve ${JSON.stringify(o.argv)} trying ${o.candidates.join(", ")}`;
    debug(STAGE[o.op] ?? "setup", `will ${short(text)}`);
  }
  if (!opts.seccomp) debug("seccomp", "unconfined (--security-opt seccomp=unconfined)");
}
