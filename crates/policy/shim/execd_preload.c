/*
 * libexecd_preload.so: loaded with LD_PRELOAD into processes started under
 * an execd exec policy. Before execve/execv runs, it asks execd over the
 * socket named by EXECD_ESCALATION_FD (the protocol is described in
 * crates/policy/src/escalation/mod.rs):
 *   1. a stream socketpair; on the tree's socket a datagram "XQ2" carrying
 *      the caller's stdin, stdout, stderr and one end of the pair;
 *   2. on the other end: a little-endian u64 length, then NUL-terminated
 *      fields path, cwd, argc, argv..., envc, env...;
 *   3. the 5-byte answer:
 *      'R' run: the real execve proceeds (the kernel guard lets it through);
 *      'D' deny: execve fails with the errno given;
 *      'X' exited / 'S' signaled: execd ran the command outside the
 *          sandbox; the caller ends the same way, as if it had exec'd it.
 * Closed stdio descriptors are stood in for by /dev/null while asking, so
 * the pair never takes their numbers.
 *
 * It may run in a vfork or posix_spawn child, on a small stack: no
 * allocation, a few KiB of stack (fields are written straight from argv
 * and envp through a small buffer). Anything unexpected falls back to the
 * real execve, which the kernel guard still holds for a decision.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

extern char **environ;

typedef int (*execve_fn)(const char *, char *const[], char *const[]);

#define STAGING_BYTES 2048
static const char FD_VARIABLE[] = "EXECD_ESCALATION_FD=";
static const char HEADER[] = "XQ2";

static execve_fn real_execve(void) {
    static execve_fn real;
    if (!real)
        real = (execve_fn)dlsym(RTLD_NEXT, "execve");
    return real;
}

/* The escalation socket named in envp, or -1. */
static int escalation_fd(char *const envp[]) {
    size_t prefix = sizeof(FD_VARIABLE) - 1;
    if (!envp)
        return -1;
    for (; *envp; envp++) {
        if (strncmp(*envp, FD_VARIABLE, prefix) != 0)
            continue;
        const char *digit = *envp + prefix;
        long fd = 0;
        if (!*digit)
            return -1;
        for (; *digit; digit++) {
            if (*digit < '0' || *digit > '9' || fd > 1000000)
                return -1;
            fd = fd * 10 + (*digit - '0');
        }
        return fcntl((int)fd, F_GETFD) >= 0 ? (int)fd : -1;
    }
    return -1;
}

/* Sending the request body through a small buffer. */
struct writer {
    int fd;
    char bytes[STAGING_BYTES];
    size_t len;
    int failed;
};

static void flush(struct writer *w) {
    size_t at = 0;
    while (!w->failed && at < w->len) {
        ssize_t n = send(w->fd, w->bytes + at, w->len - at, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            w->failed = 1;
        else
            at += (size_t)n;
    }
    w->len = 0;
}

static void put(struct writer *w, const char *data, size_t len) {
    while (len > 0 && !w->failed) {
        size_t room = STAGING_BYTES - w->len;
        size_t take = len < room ? len : room;
        memcpy(w->bytes + w->len, data, take);
        w->len += take;
        data += take;
        len -= take;
        if (w->len == STAGING_BYTES)
            flush(w);
    }
}

/* The digits of n, NUL-terminated, into digits[24]; their length with the NUL. */
static size_t format_number(char digits[24], unsigned long n) {
    char reversed[24];
    size_t len = 0;
    do {
        reversed[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < len; i++)
        digits[i] = reversed[len - 1 - i];
    digits[len] = '\0';
    return len + 1;
}

static unsigned long count(char *const list[]) {
    unsigned long n = 0;
    if (list)
        while (list[n])
            n++;
    return n;
}

/* Bytes of the fields of a list (count, then each entry), NULs included. */
static unsigned long long list_bytes(char *const list[], unsigned long n) {
    char digits[24];
    unsigned long long total = format_number(digits, n);
    for (unsigned long i = 0; i < n; i++)
        total += strlen(list[i]) + 1;
    return total;
}

static void put_field(struct writer *w, const char *text) {
    put(w, text, strlen(text) + 1);
}

static void put_list(struct writer *w, char *const list[], unsigned long n) {
    char digits[24];
    put(w, digits, format_number(digits, n));
    for (unsigned long i = 0; i < n; i++)
        put_field(w, list[i]);
}

/* Ask execd. Returns 1 with the answer in kind and value, or 0 if it could not be asked. */
static int ask(int sock, const char *path, char *const argv[], char *const envp[],
               char *kind, int32_t *value) {
    char cwd[4096];
    int pair[2] = {-1, -1};
    int fds[4];
    int opened[3] = {-1, -1, -1};
    int answered = 0;

    if (!getcwd(cwd, sizeof(cwd)))
        return 0;
    /* Closed stdio first: each lands on its own number, since every lower
     * one is open by then; the pair below can then not take 0-2. */
    for (int i = 0; i < 3; i++) {
        if (fcntl(i, F_GETFD) < 0)
            opened[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
        fds[i] = i;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        goto done;
    fds[3] = pair[1];

    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(fds))];
    } control;
    struct iovec iov = {.iov_base = (void *)HEADER, .iov_len = sizeof(HEADER) - 1};
    struct msghdr header;
    memset(&header, 0, sizeof(header));
    memset(&control, 0, sizeof(control));
    header.msg_iov = &iov;
    header.msg_iovlen = 1;
    header.msg_control = control.space;
    header.msg_controllen = sizeof(control.space);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&header);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
    if (sendmsg(sock, &header, MSG_NOSIGNAL) < 0)
        goto done;
    close(pair[1]);
    pair[1] = -1;

    {
        unsigned long argc = count(argv), envc = count(envp);
        unsigned long long total = strlen(path) + 1 + strlen(cwd) + 1 +
                                   list_bytes(argv, argc) + list_bytes(envp, envc);
        unsigned char length[8];
        struct writer w;
        w.fd = pair[0];
        w.len = 0;
        w.failed = 0;
        for (int i = 0; i < 8; i++)
            length[i] = (unsigned char)(total >> (8 * i));
        put(&w, (const char *)length, sizeof(length));
        put_field(&w, path);
        put_field(&w, cwd);
        put_list(&w, argv, argc);
        put_list(&w, envp, envc);
        flush(&w);
        /* Even if execd stopped reading (a refusal), its answer may be there. */
    }
    {
        unsigned char reply[5];
        size_t got = 0;
        while (got < sizeof(reply)) {
            ssize_t n = recv(pair[0], reply + got, sizeof(reply) - got, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got == sizeof(reply)) {
            *kind = (char)reply[0];
            *value = (int32_t)((uint32_t)reply[1] | (uint32_t)reply[2] << 8 |
                               (uint32_t)reply[3] << 16 | (uint32_t)reply[4] << 24);
            answered = 1;
        }
    }
done:
    for (int i = 0; i < 2; i++)
        if (pair[i] >= 0)
            close(pair[i]);
    for (int i = 0; i < 3; i++)
        if (opened[i] >= 0)
            close(opened[i]);
    return answered;
}

int execve(const char *path, char *const argv[], char *const envp[]) {
    execve_fn real = real_execve();
    char kind;
    int32_t value;
    int sock;

    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    sock = escalation_fd(envp);
    if (sock < 0 || !ask(sock, path, argv, envp, &kind, &value))
        return real(path, argv, envp);
    switch (kind) {
    case 'D':
        errno = value;
        return -1;
    case 'X':
        _exit(value);
    case 'S':
        signal(value, SIG_DFL);
        kill(getpid(), value);
        _exit(128 + value);
    default:
        /* Run, or an answer we do not know: the kernel guard still decides. */
        return real(path, argv, envp);
    }
}

int execv(const char *path, char *const argv[]) {
    return execve(path, argv, environ);
}
