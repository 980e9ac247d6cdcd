// `gcr run` flags, as docker names them, parsed into a typed RunOptions. No I/O except
// --env-file reading.
import { helpText, parseOptions, type OptionSpec } from "../cli.ts";
import { UsageError } from "../errors.ts";
import { readText } from "../sys/fs.ts";

export const RUN_SPECS: OptionSpec[] = [
  { name: "interactive", short: "i", type: "boolean", help: "keep stdin open (without it, stdin is /dev/null)" },
  { name: "tty", short: "t", type: "boolean", help: "run the command on a new pseudo-terminal" },
  { name: "detach", short: "d", type: "boolean", help: "run in the background and print the container id" },
  { name: "rm", type: "boolean", help: "remove the container when it exits" },
  { name: "name", type: "string", arg: "NAME", help: "name the container" },
  { name: "env", short: "e", type: "list", arg: "K=V", help: "set an environment variable (K alone copies it from gcr's environment)" },
  { name: "env-file", type: "list", arg: "FILE", help: "read K=V lines from a file" },
  { name: "workdir", short: "w", type: "string", arg: "DIR", help: "working directory inside the container" },
  { name: "user", short: "u", type: "string", arg: "USER[:GROUP]", help: "user (name or uid) and group to run as" },
  { name: "hostname", short: "h", type: "string", arg: "NAME", help: "container hostname (default: the short container id)" },
  { name: "entrypoint", type: "string", arg: "CMD", help: "override the image's entrypoint" },
  { name: "volume", short: "v", type: "list", arg: "SRC:DST[:ro]", help: "bind-mount a host path" },
  { name: "tmpfs", type: "list", arg: "DST[:OPTS]", help: "mount a tmpfs (OPTS: size=64m,mode=1777,uid=,gid=,noexec,ro)" },
  { name: "read-only", type: "boolean", help: "mount the container's root filesystem read-only" },
  { name: "init", type: "boolean", help: "run a minimal init as pid 1 that forwards signals and reaps zombies" },
  { name: "userns", type: "string", arg: "host|private", help: "user namespace (root default: host; rootless: always private)" },
  { name: "cap-add", type: "list", arg: "CAP", help: "add a capability (or ALL)" },
  { name: "cap-drop", type: "list", arg: "CAP", help: "drop a capability (or ALL)" },
  { name: "security-opt", type: "list", arg: "OPT", help: "seccomp=unconfined, no-new-privileges[=false]" },
  { name: "network", type: "string", arg: "MODE", help: "none, host or bridge", aliases: ["net"] },
  { name: "publish", short: "p", type: "list", arg: "[IP:]HOST:CTR[/proto]", help: "publish a container port" },
  { name: "memory", short: "m", type: "string", arg: "BYTES", help: "memory limit (k, m, g suffixes)" },
  { name: "memory-swap", type: "string", arg: "BYTES", help: "memory+swap limit (-1: unlimited)" },
  { name: "cpus", type: "string", arg: "N", help: "number of CPUs (fractional)" },
  { name: "cpu-shares", short: "c", type: "string", arg: "N", help: "relative CPU weight" },
  { name: "cpuset-cpus", type: "string", arg: "LIST", help: "CPUs to run on (0-3, 0,1)" },
  { name: "pids-limit", type: "string", arg: "N", help: "maximum number of processes" },
  { name: "cgroup-parent", type: "string", arg: "PATH", help: "parent cgroup for the container" },
];

export const RUN_USAGE = "gcr run [OPTIONS] IMAGE|ROOTFS [COMMAND [ARG...]]";

export function runHelp(): string {
  return helpText(
    RUN_USAGE,
    "Run a command in a new container. IMAGE is a name from 'gcr pull', a directory under ./rootfs,\n" +
      "a path to a root filesystem, or 'demo' (a busybox rootfs built from the host's busybox-static).",
    RUN_SPECS,
  );
}

export interface Volume {
  source: string;
  target: string;
  readonly: boolean;
}

export interface Tmpfs {
  target: string;
  /** mount(2) data, e.g. "mode=1777,size=64m". */
  data: string;
  noexec: boolean;
  readonly: boolean;
}

const TMPFS_DATA = /^(size|mode|uid|gid|nr_inodes|nr_blocks)=[0-9a-zA-Z%]+$/;

/** docker's --tmpfs DST[:OPTS]: size, mode, uid, gid, nr_inodes as data; noexec, ro as flags. */
export function parseTmpfs(spec: string): Tmpfs {
  const colon = spec.indexOf(":");
  const target = colon < 0 ? spec : spec.slice(0, colon);
  if (!target.startsWith("/")) throw new UsageError(`invalid --tmpfs '${spec}': the target must be an absolute path`, "run");
  const data = ["mode=1777"];
  let noexec = false;
  let readonly = false;
  for (const o of colon < 0 ? [] : spec.slice(colon + 1).split(",").filter(Boolean)) {
    if (o === "noexec") noexec = true;
    else if (o === "exec" || o === "rw" || o === "nosuid" || o === "nodev") continue; // nosuid,nodev are always set
    else if (o === "ro") readonly = true;
    else if (TMPFS_DATA.test(o)) {
      if (o.startsWith("mode=")) data[0] = o;
      else data.push(o);
    } else throw new UsageError(`invalid --tmpfs option '${o}' in '${spec}': use size=, mode=, uid=, gid=, nr_inodes=, noexec, ro`, "run");
  }
  return { target, data: data.join(","), noexec, readonly };
}

export interface CgroupOptions {
  memory?: string;
  memorySwap?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  parent?: string;
}

export interface RunOptions {
  image: string;
  command: string[];
  interactive: boolean;
  tty: boolean;
  detach: boolean;
  rm: boolean;
  name?: string;
  env: string[];
  workdir?: string;
  user?: string;
  hostname?: string;
  entrypoint?: string;
  volumes: Volume[];
  tmpfs: Tmpfs[];
  readOnly: boolean;
  init: boolean;
  userns: "host" | "private" | undefined;
  capAdd: string[];
  capDrop: string[];
  seccomp: boolean;
  noNewPrivileges: boolean;
  network: string | undefined;
  publish: string[];
  cgroup: CgroupOptions;
}

const list = (v: unknown): string[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** Parse `gcr run` argv. Returns "help" for --help. */
export function parseRunArgs(argv: string[], hostEnv: Record<string, string | undefined> = process.env): RunOptions | "help" {
  const { values: v, rest, help } = parseOptions("run", argv, RUN_SPECS, { stopAtPositional: true });
  if (help) return "help";
  const [image, ...command] = rest;
  if (!image) throw new UsageError("requires at least 1 argument: IMAGE|ROOTFS", "run");

  const env: string[] = [];
  for (const file of list(v["env-file"])) env.push(...parseEnvFile(file, hostEnv));
  for (const e of list(v.env)) env.push(...expandEnv(e, hostEnv));

  const userns = str(v.userns);
  if (userns !== undefined && userns !== "host" && userns !== "private")
    throw new UsageError(`invalid --userns '${userns}': use host or private`, "run");

  let seccomp = true;
  let noNewPrivileges = true;
  for (const o of list(v["security-opt"])) {
    if (o === "seccomp=unconfined" || o === "seccomp:unconfined") seccomp = false;
    else if (o === "no-new-privileges" || o === "no-new-privileges=true" || o === "no-new-privileges:true") noNewPrivileges = true;
    else if (o === "no-new-privileges=false" || o === "no-new-privileges:false") noNewPrivileges = false;
    else throw new UsageError(`unsupported --security-opt '${o}'`, "run");
  }

  const workdir = str(v.workdir);
  if (workdir !== undefined && !workdir.startsWith("/")) throw new UsageError(`the working directory '${workdir}' is not an absolute path`, "run");
  const hostname = str(v.hostname);
  if (hostname !== undefined && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/.test(hostname))
    throw new UsageError(`invalid hostname '${hostname}'`, "run");
  const name = str(v.name);
  if (name !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(name))
    throw new UsageError(`invalid container name '${name}': use letters, digits, '_', '.', '-'`, "run");

  return {
    image,
    command,
    interactive: v.interactive === true,
    tty: v.tty === true,
    detach: v.detach === true,
    rm: v.rm === true,
    name,
    env,
    workdir,
    user: str(v.user),
    hostname,
    entrypoint: str(v.entrypoint),
    volumes: list(v.volume).map(parseVolume),
    tmpfs: list(v.tmpfs).map(parseTmpfs),
    readOnly: v["read-only"] === true,
    init: v.init === true,
    userns,
    capAdd: list(v["cap-add"]),
    capDrop: list(v["cap-drop"]),
    seccomp,
    noNewPrivileges,
    network: str(v.network),
    publish: list(v.publish),
    cgroup: {
      memory: str(v.memory),
      memorySwap: str(v["memory-swap"]),
      cpus: str(v.cpus),
      cpuShares: str(v["cpu-shares"]),
      cpusetCpus: str(v["cpuset-cpus"]),
      pidsLimit: str(v["pids-limit"]),
      parent: str(v["cgroup-parent"]),
    },
  };
}

export function parseVolume(spec: string): Volume {
  const parts = spec.split(":");
  const [source, target, mode, ...extra] = parts;
  if (!source || !target || extra.length > 0 || (mode !== undefined && mode !== "ro" && mode !== "rw"))
    throw new UsageError(`invalid volume '${spec}': use SRC:DST[:ro]`, "run");
  if (!source.startsWith("/")) throw new UsageError(`invalid volume '${spec}': the source must be an absolute host path`, "run");
  if (!target.startsWith("/")) throw new UsageError(`invalid volume '${spec}': the target must be an absolute path`, "run");
  return { source, target, readonly: mode === "ro" };
}

/** docker's -e: K=V sets, a bare K copies K from gcr's environment if set. */
export function expandEnv(e: string, hostEnv: Record<string, string | undefined>): string[] {
  const eq = e.indexOf("=");
  if (eq === 0) throw new UsageError(`invalid environment variable '${e}'`, "run");
  if (eq > 0) return [e];
  const val = hostEnv[e];
  return val === undefined ? [] : [`${e}=${val}`];
}

export function parseEnvFile(file: string, hostEnv: Record<string, string | undefined>): string[] {
  let text: string;
  try {
    text = readText(file);
  } catch (e) {
    throw new UsageError(`cannot read --env-file ${file}: ${(e as Error).message}`, "run");
  }
  return text
    .split("\n")
    .map((l) => l.replace(/\r$/, ""))
    .filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"))
    .flatMap((l) => expandEnv(l, hostEnv));
}
