/*
 * The native half of `gcr run`: clone() the container process and, inside it, interpret a
 * small setup program (mounts, pivot_root, hostname, credentials, capabilities, seccomp)
 * before execve. Built by gcc at `npm run build` (bun:ffi's TinyCC when there is none); no
 * #include, no libc state.
 *
 * Why native: a Bun process is multi-threaded, so it can neither unshare(CLONE_NEWUSER) nor
 * run JavaScript in a forked child (JSC's JIT memory is MADV_DONTFORK: the child segfaults).
 * runc solves the same problem for Go with nsexec.c. All *policy* (what to mount, which
 * capabilities) lives in TypeScript (src/run/plan.ts); this file only executes ops, in order,
 * and reports the first failure as {op index, errno} on the sync socket.
 *
 * The child shares gcr's memory (CLONE_VM, no CLONE_VFORK): a fork-style clone of a Bun
 * process copies gigabytes of page tables and costs ~15 ms; sharing costs nothing. Hence the
 * rules for the child side: it reads the program from gcr's memory (which gcr keeps alive until
 * the child has exec'd or died) and writes nothing there but its own stack; it uses only raw
 * syscalls through sc() below, which return -errno and never touch glibc's errno (that lives
 * in the TLS of gcr's main thread) or any lock (no malloc, no stdio); and every failure is
 * reported, never ignored.
 *
 * Parent <-> child protocol over a SOCK_SEQPACKET socketpair (parent side: src/sys/child.ts):
 *   parent                          child
 *   clone() ----------------------> runs the ops before OP_GO (as root: the mounts;
 *   writes uid/gid maps, cgroups,     in a user namespace: none), then blocks in recvmsg
 *   network                         <- "E" {op, errno} if one of those fails, then _exit(125)
 *   send "G" ---------------------> runs the rest
 *                    <------------- "T" + pty master fd (SCM_RIGHTS), with -t
 *                    <------------- "E" {op, errno}  on failure, then _exit(125)
 *                    <------------- EOF when execve succeeded (the socket is CLOEXEC)
 */


/* sc(nr, a1..a6): the raw x86_64 syscall instruction; returns the result or -errno. */
__asm__(
	".text\n"
	".globl gcr_sc\n"
	".type gcr_sc, @function\n"
	"gcr_sc:\n"
	"	movq %rdi, %rax\n"
	"	movq %rsi, %rdi\n"
	"	movq %rdx, %rsi\n"
	"	movq %rcx, %rdx\n"
	"	movq %r8, %r10\n"
	"	movq %r9, %r8\n"
	"	movq 8(%rsp), %r9\n"
	"	syscall\n"
	"	ret\n");
long gcr_sc(long n, long a, long b, long c, long d, long e, long f);

/* gcr_clone(flags, stack_top, fn, arg): the raw clone syscall; the child runs fn(arg) on the
 * new stack and exits with its return value. Returns the child's pid or -errno. No libc
 * needed, so the same code runs in the dlopen'ed library and in the static gcr-monitor. */
__asm__(
	".text\n"
	".globl gcr_clone\n"
	".type gcr_clone, @function\n"
	"gcr_clone:\n"
	"	subq $16, %rsi\n"
	"	movq %rcx, 8(%rsi)\n"
	"	movq %rdx, (%rsi)\n"
	"	movq $56, %rax\n"
	"	xorl %edx, %edx\n"
	"	xorl %r10d, %r10d\n"
	"	xorl %r8d, %r8d\n"
	"	syscall\n"
	"	testq %rax, %rax\n"
	"	jnz 1f\n"
	"	popq %rax\n"
	"	popq %rdi\n"
	"	call *%rax\n"
	"	movq %rax, %rdi\n"
	"	movq $60, %rax\n"
	"	syscall\n"
	"1:	ret\n");
long gcr_clone(long flags, char *stack, int (*fn)(void *), void *arg);
#define sc0(n) gcr_sc(n, 0, 0, 0, 0, 0, 0)
#define sc1(n, a) gcr_sc(n, (long)(a), 0, 0, 0, 0, 0)
#define sc2(n, a, b) gcr_sc(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sc3(n, a, b, c) gcr_sc(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sc4(n, a, b, c, d) gcr_sc(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sc5(n, a, b, c, d, e) gcr_sc(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_ioctl 16
#define SYS_rt_sigaction 13
#define SYS_rt_sigprocmask 14
#define SYS_dup2 33
#define SYS_socket 41
#define SYS_sendmsg 46
#define SYS_recvmsg 47
#define SYS_clone 56
#define SYS_execve 59
#define SYS_exit 60
#define SYS_wait4 61
#define SYS_kill 62
#define SYS_chdir 80
#define SYS_mkdir 83
#define SYS_chmod 90
#define SYS_mknod 133
#define SYS_symlink 88
#define SYS_fchown 93
#define SYS_umask 95
#define SYS_setsid 112
#define SYS_setgroups 116
#define SYS_setresuid 117
#define SYS_setresgid 119
#define SYS_capset 126
#define SYS_rt_sigtimedwait 128
#define SYS_pivot_root 155
#define SYS_prctl 157
#define SYS_mount 165
#define SYS_umount2 166
#define SYS_sethostname 170
#define SYS_exit_group 231
#define SYS_unshare 272
#define SYS_setns 308
#define SYS_seccomp 317
#define SYS_open_tree 428
#define SYS_move_mount 429
#define SYS_close_range 436
#define SYS_mount_setattr 442

/* Op codes: keep in sync with OP in src/sys/child.ts. Each op is 8 longs: code + 7 args. */
#define OP_END 0
#define OP_MOUNT 1        /* src, dst, fstype, flags, data */
#define OP_MKDIR 2        /* path, mode (EEXIST is fine) */
#define OP_MKFILE 3       /* path, mode (an empty file to bind-mount onto) */
#define OP_SYMLINK 4      /* target, path */
#define OP_PIVOT 5        /* new root */
#define OP_CHDIR 6        /* path */
#define OP_HOSTNAME 7     /* name, length */
#define OP_LOOPBACK 8     /* bring "lo" up in this network namespace */
#define OP_UNSHARE 9      /* flags */
#define OP_SETGROUPS 10   /* count, gid_t array */
#define OP_SETID 11       /* uid, gid */
#define OP_BOUNDING 12    /* keep mask: drop every other capability from the bounding set */
#define OP_CAPSET 13      /* effective/permitted mask, inheritable mask */
#define OP_NNP 14         /* prctl(PR_SET_NO_NEW_PRIVS) */
#define OP_SECCOMP 15     /* struct sock_fprog * */
#define OP_STDIN_NULL 16  /* stdin from /dev/null */
#define OP_SETSID 17      /* new session: no controlling terminal (TIOCSTI protection) */
#define OP_TTY 18         /* rows, cols, uid, gid: new pty on /dev/ptmx, master sent to parent */
#define OP_CLOSEFDS 19    /* mark every fd above 2 close-on-exec */
#define OP_EXEC 20        /* candidate paths (NULL-terminated), argv, envp */
#define OP_INIT 21        /* fork: pid 1 stays as a minimal init, the child goes on */
#define OP_READONLY 23    /* path, recursive: mount_setattr(MOUNT_ATTR_RDONLY) */
#define OP_UMASK 24       /* mask */
#define OP_CAPAMBIENT 25  /* clear the ambient set */
#define OP_SETNS 26       /* fd, nstype: join a running container's namespace (gcr exec) */
#define OP_MOVE_MOUNT 27  /* path: attach the mount tree gcr passed with "G" (an idmapped image) */
#define OP_MKNOD 28       /* path, mode (type and permissions, exact: not trimmed by the umask), dev */
#define OP_WRITE 29       /* path, data, length: write data into an existing file (a cgroup's tasks) */
#define OP_GO 30          /* wait for gcr's "G" (and the fd that may come with it) */

#define SIGKILL 9
#define SIGCHLD 17

/* The program arrives as one relocatable blob: ops first (8 longs each, ending with OP_END),
 * then the strings and arrays they point at. Every pointer field holds an offset from the
 * start of the blob (0 = NULL), so the same bytes work in gcr's memory and, sent over a
 * socket, in the monitor's (gcr run -d). relocate() turns offsets into addresses in place. */
#define R(x) do { if (x) (x) = (long)(base + (x)); } while (0)
static void relocate_array(char *base, long *a)
{
	for (; *a; a++) R(*a);
}

static void relocate(long *prog)
{
	char *base = (char *)prog;
	long *op;
	for (op = prog; op[0] != OP_END; op += 8) {
		switch (op[0]) {
		case OP_MOUNT: R(op[1]); R(op[2]); R(op[3]); R(op[5]); break;
		case OP_MKDIR: case OP_MKFILE: case OP_MKNOD: case OP_PIVOT: case OP_CHDIR: case OP_HOSTNAME:
		case OP_READONLY: case OP_MOVE_MOUNT: R(op[1]); break;
		case OP_SYMLINK: case OP_WRITE: R(op[1]); R(op[2]); break;
		case OP_SETGROUPS: R(op[2]); break;
		case OP_SECCOMP: R(op[1]); R(((long *)op[1])[1]); break;
		case OP_EXEC:
			R(op[1]); R(op[2]); R(op[3]);
			relocate_array(base, (long *)op[1]);
			relocate_array(base, (long *)op[2]);
			relocate_array(base, (long *)op[3]);
			break;
		}
	}
}

struct child_args {
	long *prog;   /* ops, 8 longs each */
	long sock;    /* child's end of the sync socket */
	long peer;    /* parent's end: closed in the child */
};

static long sock_fd = -1;
static long passed_fd = -1; /* a mount tree gcr sent along with "G", for OP_MOVE_MOUNT */

/* Report {'E', op, errno} to the parent and leave. */
static void fail(long op, long e)
{
	int msg[3];
	msg[0] = 'E';
	msg[1] = (int)op;
	msg[2] = (int)e;
	sc3(SYS_write, sock_fd, msg, sizeof msg);
	for (;;) sc1(SYS_exit_group, 125);
}

/* sendmsg of `len` bytes, with `fd` attached (SCM_RIGHTS) when it is >= 0. x86_64 layouts:
 * msghdr is 7 longs; cmsghdr is len (8), level (4), type (4), then the int. Returns bytes sent
 * or -errno. Used by both sides of the sync socket (the pty master up, the image tree down). */
static long send_with_fd(long sock, void *buf, long len, long fd)
{
	long iov[2];
	long msg[7];
	long cbuf[3];
	int *ci = (int *)cbuf;
	long n;
	iov[0] = (long)buf; iov[1] = len;
	msg[0] = 0; msg[1] = 0; msg[2] = (long)iov; msg[3] = 1;
	msg[4] = 0; msg[5] = 0; msg[6] = 0;
	if (fd >= 0) {
		cbuf[0] = 16 + 4;    /* CMSG_LEN(sizeof(int)) */
		ci[2] = 1;           /* SOL_SOCKET */
		ci[3] = 1;           /* SCM_RIGHTS */
		ci[4] = (int)fd;
		msg[4] = (long)cbuf; msg[5] = 24; /* CMSG_SPACE(sizeof(int)) */
	}
	do {
		n = sc3(SYS_sendmsg, sock, msg, 0x4000 /* MSG_NOSIGNAL */);
	} while (n == -4 /* EINTR */);
	return n;
}

/* recvmsg of up to `len` bytes and at most one fd passed with SCM_RIGHTS (-1 when none).
 * x86_64 layouts: msghdr is 7 longs; cmsghdr is len (8), level (4), type (4), then the int.
 * Returns the byte count (0 at EOF) or -errno. Used by both sides of the sync socket. */
static long recv_fd(long sock, void *buf, long len, int *fd)
{
	long iov[2];
	long msg[7];
	long cbuf[4];
	int *ci = (int *)cbuf;
	long n, i;
	for (i = 0; i < 4; i++) cbuf[i] = 0;
	*fd = -1;
	iov[0] = (long)buf; iov[1] = len;
	msg[0] = 0; msg[1] = 0; msg[2] = (long)iov; msg[3] = 1;
	msg[4] = (long)cbuf; msg[5] = sizeof cbuf; msg[6] = 0;
	do {
		n = sc3(SYS_recvmsg, sock, msg, 0x40000000 /* MSG_CMSG_CLOEXEC */);
	} while (n == -4 /* EINTR */);
	if (n > 0 && msg[5] >= 20 && ci[2] == 1 && ci[3] == 1) *fd = ci[4];
	return n;
}

/* Receive the one-byte "G", and the fd that may come with it into passed_fd. */
static long recv_go(long sock, char *go)
{
	int fd;
	long n = recv_fd(sock, go, 1, &fd);
	if (n == 1) passed_fd = fd;
	return n;
}

/* ifreq for SIOCGIFFLAGS / SIOCSIFFLAGS: 16-byte name, then short flags (padded to 40). */
static long loopback_up(void)
{
	char ifr[40];
	long i, s, r;
	for (i = 0; i < 40; i++) ifr[i] = 0;
	ifr[0] = 'l'; ifr[1] = 'o';
	s = sc3(SYS_socket, 2 /* AF_INET */, 2 | 0x80000 /* SOCK_DGRAM|CLOEXEC */, 0);
	if (s < 0) return s;
	r = sc3(SYS_ioctl, s, 0x8913 /* SIOCGIFFLAGS */, ifr);
	if (r < 0) return r;
	*(short *)(ifr + 16) |= 1; /* IFF_UP */
	r = sc3(SYS_ioctl, s, 0x8914 /* SIOCSIFFLAGS */, ifr);
	sc1(SYS_close, s);
	return r;
}

/* pid 1 with --init: forward every signal to the child, reap every zombie, and exit with
 * the child's status (128+N if a signal killed it, as tini does). All signals stay blocked
 * and are taken synchronously with rt_sigtimedwait, so no handler ever runs. */
static void run_init(long child)
{
	long set = ~0L;
	int status = 0;
	long pid, sig, code = -1;
	char info[128];
	for (;;) {
		sig = sc4(SYS_rt_sigtimedwait, &set, info, 0, 8);
		if (sig < 0) continue;
		if (sig != SIGCHLD) { sc2(SYS_kill, child, sig); continue; }
		for (;;) {
			pid = sc4(SYS_wait4, -1, &status, 1 /* WNOHANG */, 0);
			if (pid <= 0) break;
			if (pid == child) {
				if ((status & 0x7f) == 0) code = (status >> 8) & 0xff;
				else code = 128 + (status & 0x7f);
			}
		}
		if (code >= 0) sc1(SYS_exit_group, code);
	}
}

/* As execvp: try each candidate path; keep looking past a missing file, remember a more
 * telling error (EACCES) for the report. Returns the errno to report. */
static long exec_candidates(long *paths, long argv, long envp)
{
	long i, e, best = 2; /* ENOENT */
	for (i = 0; paths[i]; i++) {
		e = -sc3(SYS_execve, paths[i], argv, envp);
		if (e != 2 && e != 20 /* ENOTDIR */) best = e;
		if (e != 2 && e != 20 && e != 13 /* EACCES */) break;
	}
	return best;
}

static long run_tty(long *op)
{
	int unlock = 0;
	unsigned short ws[4];
	long m, s, r;
	m = sc2(SYS_open, "/dev/ptmx", 02 | 0400 | 02000000 /* O_RDWR|O_NOCTTY|O_CLOEXEC */);
	if (m < 0) return m;
	r = sc3(SYS_ioctl, m, 0x40045431 /* TIOCSPTLCK */, &unlock);
	if (r < 0) return r;
	s = sc3(SYS_ioctl, m, 0x5441 /* TIOCGPTPEER */, 02 | 0400);
	if (s < 0) return s;
	ws[0] = (unsigned short)op[1]; ws[1] = (unsigned short)op[2]; ws[2] = 0; ws[3] = 0;
	sc3(SYS_ioctl, s, 0x5414 /* TIOCSWINSZ */, ws);
	r = sc3(SYS_fchown, s, op[3], op[4]);
	if (r < 0 && r != -22) return r; /* EINVAL: the owner is not mapped; keep root's */
	r = sc0(SYS_setsid);
	if (r < 0) return r;
	r = sc3(SYS_ioctl, s, 0x540E /* TIOCSCTTY */, 0);
	if (r < 0) return r;
	sc2(SYS_dup2, s, 0); sc2(SYS_dup2, s, 1); sc2(SYS_dup2, s, 2);
	if (s > 2) sc1(SYS_close, s);
	{
		int payload[3];
		payload[0] = 'T'; payload[1] = 0; payload[2] = 0;
		r = send_with_fd(sock_fd, payload, sizeof payload, m);
	}
	if (r < 0) return r;
	return sc1(SYS_close, m);
}

static int child_main(void *arg)
{
	struct child_args *a = arg;
	long *op;
	long empty[2] = { 0, 0 };
	long act[4] = { 0, 0, 0, 0 }; /* SIG_DFL, no flags */
	long i, r, idx;

	sock_fd = a->sock;
	/* Bun ignores SIGPIPE and SIGXFSZ; the container must start with default dispositions.
	 * The mask stays fully blocked (set by the parent around clone) until just before
	 * execve, so a signal sent during setup is delivered to the command, not lost. */
	for (i = 1; i < 65; i++) sc4(SYS_rt_sigaction, i, act, 0, 8);
	sc1(SYS_close, a->peer);
	/* Die with gcr. The check below closes the race where gcr died before this prctl:
	 * its end of the socket is then closed and read() returns 0. */
	sc5(SYS_prctl, 1 /* PR_SET_PDEATHSIG */, SIGKILL, 0, 0, 0);

	/* The program says when to wait for gcr's "G" (OP_GO): first thing in a user namespace,
	 * which needs its id maps; as root, after the mounts, which then overlap gcr's own work
	 * (cgroups, network) instead of following it. */
	for (op = a->prog; op[0] != OP_END; op += 8) {
		idx = (op - a->prog) / 8;
		r = 0;
		switch (op[0]) {
		case OP_MOUNT:
			r = sc5(SYS_mount, op[1], op[2], op[3], op[4], op[5]);
			break;
		case OP_MKDIR:
			r = sc2(SYS_mkdir, op[1], op[2]);
			if (r == -17 /* EEXIST */) r = 0;
			break;
		case OP_MKFILE:
			r = sc3(SYS_open, op[1], 0100 | 01 | 02000000 /* O_CREAT|O_WRONLY|O_CLOEXEC */, op[2]);
			if (r >= 0) r = sc1(SYS_close, r);
			break;
		case OP_MKNOD:
			r = sc3(SYS_mknod, op[1], op[2], op[3]);
			if (r == 0) r = sc2(SYS_chmod, op[1], op[2] & 07777);
			break;
		case OP_GO: {
			char go = 0;
			/* EOF instead: gcr died before PR_SET_PDEATHSIG, or gave up on this child. */
			if (recv_go(sock_fd, &go) != 1 || go != 'G') sc1(SYS_exit_group, 125);
			/* Until execve this process is an image of gcr: non-dumpable, so no process in the
			 * container can open its /proc/PID/exe or memory (CVE-2019-5736 class). execve
			 * resets it for the command; with --init, pid 1 stays non-dumpable for its whole
			 * life. Only after "G": a non-dumpable process's /proc/PID files belong to root, so
			 * a rootless parent could no longer write its uid_map/gid_map (EACCES). Until "G"
			 * no process of the container exists. */
			sc5(SYS_prctl, 4 /* PR_SET_DUMPABLE */, 0, 0, 0, 0);
			break;
		}
		case OP_WRITE:
			r = sc3(SYS_open, op[1], 01 | 02000000 /* O_WRONLY|O_CLOEXEC */, 0);
			if (r >= 0) {
				long fd = r;
				r = sc3(SYS_write, fd, op[2], op[3]);
				if (r >= 0) r = 0;
				sc1(SYS_close, fd);
			}
			break;
		case OP_SYMLINK:
			r = sc2(SYS_symlink, op[1], op[2]);
			break;
		case OP_PIVOT:
			/* crun's trick: pivot_root(".", ".") stacks the old root on the new one; unmounting
			 * "." with MNT_DETACH then drops the old root without needing a put_old directory. */
			r = sc1(SYS_chdir, op[1]);
			if (r == 0) r = sc2(SYS_pivot_root, ".", ".");
			if (r == 0) r = sc2(SYS_umount2, ".", 2 /* MNT_DETACH */);
			if (r == 0) r = sc1(SYS_chdir, "/");
			break;
		case OP_CHDIR:
			r = sc1(SYS_chdir, op[1]);
			break;
		case OP_HOSTNAME:
			r = sc2(SYS_sethostname, op[1], op[2]);
			break;
		case OP_LOOPBACK:
			r = loopback_up();
			break;
		case OP_UNSHARE:
			r = sc1(SYS_unshare, op[1]);
			break;
		case OP_SETGROUPS:
			r = sc2(SYS_setgroups, op[1], op[2]);
			break;
		case OP_SETID:
			r = sc3(SYS_setresgid, op[2], op[2], op[2]);
			if (r == 0) r = sc3(SYS_setresuid, op[1], op[1], op[1]);
			break;
		case OP_BOUNDING:
			for (i = 0; i < 64 && r == 0; i++) {
				if (op[1] & (1L << i)) continue;
				r = sc5(SYS_prctl, 24 /* PR_CAPBSET_DROP */, i, 0, 0, 0);
				if (r == -22) { r = 0; break; } /* EINVAL: no such capability on this kernel */
			}
			break;
		case OP_CAPSET: {
			int hdr[2];
			int data[6];
			hdr[0] = 0x20080522; /* _LINUX_CAPABILITY_VERSION_3 */
			hdr[1] = 0;
			data[0] = (int)op[1]; data[1] = (int)op[1]; data[2] = (int)op[2];
			data[3] = (int)(op[1] >> 32); data[4] = (int)(op[1] >> 32); data[5] = (int)(op[2] >> 32);
			r = sc2(SYS_capset, hdr, data);
			break;
		}
		case OP_CAPAMBIENT:
			r = sc5(SYS_prctl, 47 /* PR_CAP_AMBIENT */, 4 /* CLEAR_ALL */, 0, 0, 0);
			break;
		case OP_NNP:
			r = sc5(SYS_prctl, 38 /* PR_SET_NO_NEW_PRIVS */, 1, 0, 0, 0);
			break;
		case OP_SECCOMP:
			r = sc3(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, op[1]);
			break;
		case OP_STDIN_NULL:
			r = sc2(SYS_open, "/dev/null", 0 /* O_RDONLY */);
			if (r > 0) { sc2(SYS_dup2, r, 0); sc1(SYS_close, r); }
			if (r > 0) r = 0;
			break;
		case OP_SETSID:
			r = sc0(SYS_setsid);
			if (r > 0) r = 0;
			break;
		case OP_TTY:
			r = run_tty(op);
			break;
		case OP_CLOSEFDS:
			r = sc3(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
			break;
		case OP_READONLY: {
			long attr[4];
			attr[0] = 1; /* MOUNT_ATTR_RDONLY */
			attr[1] = 0; attr[2] = 0; attr[3] = 0;
			r = sc5(SYS_mount_setattr, -100 /* AT_FDCWD */, op[1], op[2] ? 0x8000 /* AT_RECURSIVE */ : 0, attr, 32);
			break;
		}
		case OP_UMASK:
			sc1(SYS_umask, op[1]);
			break;
		case OP_MOVE_MOUNT:
			r = passed_fd < 0 ? -9 /* EBADF */ : sc5(SYS_move_mount, passed_fd, "", -100, op[1], 4 /* MOVE_MOUNT_F_EMPTY_PATH */);
			if (r == 0) { sc1(SYS_close, passed_fd); passed_fd = -1; }
			break;
		case OP_SETNS:
			r = sc2(SYS_setns, op[1], op[2]);
			if (r == 0) sc1(SYS_close, op[1]);
			break;
		case OP_INIT: {
			/* A real fork (own memory): from here on neither process shares gcr's memory. */
			long child = sc5(SYS_clone, SIGCHLD, 0, 0, 0, 0);
			if (child < 0) { r = child; break; }
			if (child > 0) {
				/* pid 1: only the command reports on the socket from here on. */
				sc1(SYS_close, sock_fd);
				run_init(child);
			}
			/* The command's process: its own signal mask is reset just before execve. */
			break;
		}
		case OP_EXEC:
			sc4(SYS_rt_sigprocmask, 2 /* SIG_SETMASK */, empty, 0, 8);
			fail(idx, exec_candidates((long *)op[1], op[2], op[3]));
			break;
		default:
			fail(idx, 22);
		}
		if (r < 0) fail(idx, -r);
	}
	fail(-1, 22); /* a program must end with OP_EXEC */
	return 125;
}

/* Parent side. `mem` is gcr-owned memory for the child's arguments and stack, kept alive by
 * gcr until the child has exec'd or died. Returns the child's pid, or -errno. */
int gcr_spawn(long *prog, int flags, int sock, int peer, char *mem, long memsize)
{
	long all[2] = { -1L, -1L };
	long old[2] = { 0, 0 };
	struct child_args *a = (struct child_args *)mem;
	char *top = (char *)(((long)(mem + memsize)) & ~15L);
	int pid;
	relocate(prog);
	a->prog = prog; a->sock = sock; a->peer = peer;
	/* Block every signal across clone so the child cannot run a Bun signal handler before it
	 * resets the dispositions. The child inherits the blocked mask; the parent restores it. */
	sc4(SYS_rt_sigprocmask, 2, all, old, 8);
	pid = (int)gcr_clone(flags | 0x00000100 /* CLONE_VM */ | SIGCHLD, top, child_main, a);
	sc4(SYS_rt_sigprocmask, 2, old, 0, 8);
	return pid;
}

/* Parent side: send "G", with `fd` attached when it is >= 0. Returns bytes sent or -errno. */
int gcr_send_go(int sock, int fd)
{
	char go = 'G';
	return (int)send_with_fd(sock, &go, 1, fd);
}

/* Parent side, root with --userns=private: a detached copy of the mount tree at `path` whose
 * owners are shifted into the container's user namespace (an idmapped mount, Linux 5.12+), so
 * the image's root-owned files belong to the container's root. Returns the tree's fd or -errno. */
int gcr_idmap_tree(const char *path, int userns_fd)
{
	long attr[4];
	long fd, r;
	fd = sc3(SYS_open_tree, -100, path, 1 /* OPEN_TREE_CLONE */ | 02000000 /* OPEN_TREE_CLOEXEC */ | 0x8000 /* AT_RECURSIVE */);
	if (fd < 0) return (int)fd;
	attr[0] = 0x00100000; /* MOUNT_ATTR_IDMAP */
	attr[1] = 0; attr[2] = 0; attr[3] = userns_fd;
	r = sc5(SYS_mount_setattr, fd, "", 0x1000 /* AT_EMPTY_PATH */ | 0x8000 /* AT_RECURSIVE */, attr, 32);
	if (r < 0) { sc1(SYS_close, fd); return (int)r; }
	return (int)fd;
}

/* Parent side: receive one message. out[0..2] = the 3 ints, out[3] = a passed fd or -1.
 * Returns the byte count (0 at EOF), or -errno. Blocks: the child answers within its setup. */
int gcr_recv(int sock, int *out)
{
	out[0] = 0; out[1] = 0; out[2] = 0;
	return (int)recv_fd(sock, out, 12, &out[3]);
}

#ifdef GCR_MONITOR
/*
 * gcr-monitor: the parent of a detached container (gcr run -d), a small static program that
 * gcr writes next to the native library and starts in a new session. It costs a few hundred
 * KiB where a Bun process would cost tens of MiB (podman's conmon plays the same role).
 *
 *   gcr-monitor EXITFILE      fd 3: SOCK_SEQPACKET to gcr; fd 1, 2: the container's log
 *
 *   gcr                                  monitor                         container
 *   {flags, size} + program blob ----->  setsid, clone() ------------->  waits for "G" on fd 3
 *                 <--------------------  {'P', pid}, closes fd 3
 *   id maps, cgroup, network
 *   "G" ------------------------------------------------------------->  setup ops, execve
 *                 <---------------------------------------------------  EOF or {op, errno}
 *   writes the state, exits              wait4(pid), writes EXITFILE
 *                                        ("exited CODE" or "signaled N"), exits
 */
/* No libc in the monitor: its entry point, and the two functions the compiler may call. */
__asm__(
	".text\n"
	".globl _start\n"
	"_start:\n"
	"	movq (%rsp), %rdi\n"
	"	leaq 8(%rsp), %rsi\n"
	"	andq $-16, %rsp\n"
	"	call main\n"
	"	movl %eax, %edi\n"
	"	movq $231, %rax\n"
	"	syscall\n");
void *memset(void *d, int c, unsigned long n) { char *p = d; while (n--) *p++ = (char)c; return d; }
void *memcpy(void *d, const void *s, unsigned long n) { char *p = d; const char *q = s; while (n--) *p++ = *q++; return d; }

static char blob[1 << 20];
static char stack[256 * 1024] __attribute__((aligned(16)));

static long slen(const char *s) { long n = 0; while (s[n]) n++; return n; }

static void write_status(const char *path, int status)
{
	char tmp[4096], buf[32];
	long n = slen(path), i, fd, len = 0, v;
	const char *word = (status & 0x7f) == 0 ? "exited " : "signaled ";
	if (n + 5 > (long)sizeof tmp) return;
	for (i = 0; i < n; i++) tmp[i] = path[i];
	tmp[n] = '.'; tmp[n + 1] = 't'; tmp[n + 2] = 'm'; tmp[n + 3] = 'p'; tmp[n + 4] = 0;
	v = (status & 0x7f) == 0 ? (status >> 8) & 0xff : status & 0x7f;
	while (*word) buf[len++] = *word++;
	if (v >= 100) buf[len++] = '0' + v / 100;
	if (v >= 10) buf[len++] = '0' + (v / 10) % 10;
	buf[len++] = '0' + v % 10;
	buf[len++] = '\n';
	fd = sc3(SYS_open, tmp, 01 | 0100 | 01000 | 02000000 /* O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC */, 0600);
	if (fd < 0) return;
	sc3(SYS_write, fd, buf, len);
	sc1(SYS_close, fd);
	sc2(82 /* SYS_rename */, tmp, path);
}

int main(int argc, char **argv)
{
	long hdr[2], n, pid, wr;
	int msg[3], status = 0;
	struct child_args a;
	if (argc < 2) return 125;
	sc0(SYS_setsid);
	if (sc3(SYS_read, 3, hdr, sizeof hdr) != sizeof hdr || hdr[1] <= 0 || hdr[1] > (long)sizeof blob) return 125;
	n = sc3(SYS_read, 3, blob, hdr[1]);
	if (n != hdr[1]) return 125;
	relocate((long *)blob);
	a.prog = (long *)blob; a.sock = 3; a.peer = -1;
	pid = gcr_clone(hdr[0] | 0x00000100 /* CLONE_VM */ | SIGCHLD, stack + sizeof stack, child_main, &a);
	msg[0] = 'P'; msg[1] = pid < 0 ? -1 : (int)pid; msg[2] = pid < 0 ? (int)-pid : 0;
	sc3(SYS_write, 3, msg, sizeof msg);
	sc1(SYS_close, 3);
	if (pid < 0) return 125;
	for (;;) {
		wr = sc4(SYS_wait4, pid, &status, 0x40000000 /* __WALL */, 0);
		if (wr == pid) break;
		if (wr != -4 /* EINTR */) { status = 125 << 8; break; }
	}
	write_status(argv[1], status);
	return 0;
}
#endif
