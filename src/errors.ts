// Every error gcr reports, and the one table of exit codes.
//
// Context is added by wrapping (`new GcrError("prepare rootfs", { cause })`), never by
// string building; formatError() walks the chain into one line, as crun and umoci do:
//   gcr: run: prepare rootfs: mount /proc: EPERM (Operation not permitted)
/** docker's exit codes: gcr's own failure, cannot execute, not found; 128+N for signal N. */
export const EXIT = {
  ok: 0,
  gcr: 125,
  cannotExecute: 126,
  notFound: 127,
  signalBase: 128,
} as const;

export class GcrError extends Error {
  readonly exitCode: number;
  readonly hint?: string;
  constructor(message: string, opts: { cause?: unknown; exitCode?: number; hint?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "GcrError";
    this.exitCode = opts.exitCode ?? innerExitCode(opts.cause) ?? EXIT.gcr;
    this.hint = opts.hint ?? innerHint(opts.cause);
  }
}

/** Bad flags or arguments: one line plus a pointer to --help. */
export class UsageError extends GcrError {
  constructor(message: string, readonly command = "") {
    super(message, { exitCode: EXIT.gcr, hint: `see 'gcr ${command ? command + " " : ""}--help'` });
    this.name = "UsageError";
  }
}

// Linux's errno numbers (asm-generic, as on x86_64 and arm64), index = number. A table here
// rather than node:os's: loading node:os costs more at start than gcr run's own work.
const ERRNO_NAMES = (
  "_ EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM EACCES EFAULT " +
  "ENOTBLK EBUSY EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE EMFILE ENOTTY ETXTBSY EFBIG " +
  "ENOSPC ESPIPE EROFS EMLINK EPIPE EDOM ERANGE EDEADLK ENAMETOOLONG ENOLCK ENOSYS ENOTEMPTY " +
  "ELOOP _ ENOMSG EIDRM ECHRNG EL2NSYNC EL3HLT EL3RST ELNRNG EUNATCH ENOCSI EL2HLT EBADE EBADR " +
  "EXFULL ENOANO EBADRQC EBADSLT _ EBFONT ENOSTR ENODATA ETIME ENOSR ENONET ENOPKG EREMOTE " +
  "ENOLINK EADV ESRMNT ECOMM EPROTO EMULTIHOP EDOTDOT EBADMSG EOVERFLOW ENOTUNIQ EBADFD EREMCHG " +
  "ELIBACC ELIBBAD ELIBSCN ELIBMAX ELIBEXEC EILSEQ ERESTART ESTRPIPE EUSERS ENOTSOCK EDESTADDRREQ " +
  "EMSGSIZE EPROTOTYPE ENOPROTOOPT EPROTONOSUPPORT ESOCKTNOSUPPORT EOPNOTSUPP EPFNOSUPPORT " +
  "EAFNOSUPPORT EADDRINUSE EADDRNOTAVAIL ENETDOWN ENETUNREACH ENETRESET ECONNABORTED ECONNRESET " +
  "ENOBUFS EISCONN ENOTCONN ESHUTDOWN ETOOMANYREFS ETIMEDOUT ECONNREFUSED EHOSTDOWN EHOSTUNREACH " +
  "EALREADY EINPROGRESS ESTALE EUCLEAN ENOTNAM ENAVAIL EISNAM EREMOTEIO EDQUOT ENOMEDIUM " +
  "EMEDIUMTYPE ECANCELED ENOKEY EKEYEXPIRED EKEYREVOKED EKEYREJECTED EOWNERDEAD ENOTRECOVERABLE " +
  "ERFKILL EHWPOISON"
).split(" ");

/** The name of an errno value ("EPERM"), or "errno N" when unknown. */
export function errnoName(errno: number): string {
  const name = ERRNO_NAMES[errno];
  return name && name !== "_" ? name : `errno ${errno}`;
}


const errnoText: Record<string, string> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  ESRCH: "No such process",
  EINTR: "Interrupted system call",
  EIO: "Input/output error",
  E2BIG: "Argument list too long",
  ENOEXEC: "Exec format error",
  EBADF: "Bad file descriptor",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EACCES: "Permission denied",
  EFAULT: "Bad address",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  EXDEV: "Invalid cross-device link",
  ENODEV: "No such device",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EINVAL: "Invalid argument",
  ENFILE: "Too many open files in system",
  EMFILE: "Too many open files",
  ENOSPC: "No space left on device",
  EROFS: "Read-only file system",
  ELOOP: "Too many levels of symbolic links",
  ENAMETOOLONG: "File name too long",
  ENOSYS: "Function not implemented",
  ENOTEMPTY: "Directory not empty",
  EOPNOTSUPP: "Operation not supported",
  ETXTBSY: "Text file busy",
};

/** A failed system call: names the call, the path it acted on and the errno. */
export class SyscallError extends GcrError {
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
    readonly path?: string,
    readonly detail?: string,
  ) {
    const code = errnoName(errno);
    const text = errnoText[code];
    const what = [syscall, path, detail ? `(${detail})` : undefined].filter(Boolean).join(" ");
    super(`${what}: ${code}${text ? ` (${text})` : ""}`, { hint: hintFor(syscall, code) });
    this.code = code;
    this.name = "SyscallError";
  }
}

// Known causes, in the spirit of bubblewrap's mount_strerror().
function hintFor(syscall: string, code: string): string | undefined {
  if (code === "ENOSPC" && syscall === "mount") return "the kernel's mount limit may be reached (fs.mount-max)";
  if (code === "EPERM" && (syscall === "clone" || syscall === "unshare"))
    return "unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, or AppArmor's apparmor_restrict_unprivileged_userns)";
  if (code === "ENOSPC" && syscall === "clone") return "the user namespace limit may be reached (user.max_user_namespaces)";
  return undefined;
}

function innerExitCode(cause: unknown): number | undefined {
  return cause instanceof GcrError ? cause.exitCode : undefined;
}
function innerHint(cause: unknown): string | undefined {
  return cause instanceof GcrError ? cause.hint : undefined;
}

/** One line for the user: "gcr: step: step: cause", plus an optional hint line. */
export function formatError(err: unknown, opts: { debug?: boolean } = {}): string {
  const parts: string[] = [];
  let hint: string | undefined;
  let e: unknown = err;
  for (let depth = 0; e !== undefined && depth < 20; depth++) {
    if (e instanceof Error) {
      // Node's system errors already say "ENOENT: no such file or directory, open 'x'".
      parts.push(e.message);
      hint ??= e instanceof GcrError ? e.hint : undefined;
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  let line = `gcr: ${parts.join(": ")}`;
  if (hint) line += `\nhint: ${hint}`;
  if (opts.debug && err instanceof Error && err.stack) line += `\n${err.stack}`;
  return line;
}

/** The exit code for an error that reached main(). */
export function exitCodeOf(err: unknown): number {
  return err instanceof GcrError ? err.exitCode : EXIT.gcr;
}

/**
 * A registry said no, or could not be reached. Carries the method, the URL (never with
 * credentials), the HTTP status and the registry's error codes (MANIFEST_UNKNOWN, ...).
 */
export class RegistryError extends GcrError {
  constructor(
    message: string,
    readonly detail: { method?: string; url?: string; status?: number; codes?: string[]; retryable?: boolean } = {},
    opts: { cause?: unknown; hint?: string } = {},
  ) {
    super(message, { ...opts, exitCode: EXIT.gcr });
    this.name = "RegistryError";
  }
}

/** Content did not match its digest or descriptor size; names the blob, algorithm, want, got, bytes. */
export class DigestError extends GcrError {
  constructor(
    readonly what: string,
    readonly want: string,
    readonly got: string | undefined,
    readonly bytes: number,
    reason?: string,
  ) {
    super(
      `digest mismatch for ${what} ${want}: ${reason ?? `got ${got}`} (${bytes} bytes read)`,
      { exitCode: EXIT.gcr, hint: "the registry or the network corrupted the data; nothing was installed" },
    );
    this.name = "DigestError";
  }
}
