/*
 * libexecd_preload.so: loaded with LD_PRELOAD into processes started under
 * an execd exec policy. Before execve/execv runs, it asks execd over the
 * socket named by EXECD_ESCALATION_FD, passing the caller's stdin, stdout
 * and stderr (SCM_RIGHTS) and a socket for the answer:
 *   'R' run: the real execve proceeds (the kernel guard lets it through);
 *   'D' deny: execve fails with the errno given;
 *   'X' exited / 'S' signaled: execd ran the command outside the sandbox;
 *       the caller ends the same way, as if it had exec'd it.
 * Request: NUL-separated fields "XQ1", pid, path, cwd, argc, argv..., envc,
 * env... (crates/core/src/escalation.rs reads it).
 *
 * It may run in a vfork child: no allocation, stack buffers only. Anything
 * unexpected falls back to the real execve, which the kernel guard still
 * holds for a decision.
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

#define MESSAGE_BYTES (64 * 1024)
static const char FD_VARIABLE[] = "EXECD_ESCALATION_FD=";

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

struct message {
    char bytes[MESSAGE_BYTES];
    size_t len;
    int overflow;
};

static void push(struct message *m, const char *text, size_t len) {
    if (m->len + len + 1 > MESSAGE_BYTES) {
        m->overflow = 1;
        return;
    }
    memcpy(m->bytes + m->len, text, len);
    m->bytes[m->len + len] = '\0';
    m->len += len + 1;
}

static void push_text(struct message *m, const char *text) {
    push(m, text ? text : "", text ? strlen(text) : 0);
}

static void push_number(struct message *m, unsigned long n) {
    char digits[24];
    size_t at = sizeof(digits);
    do {
        digits[--at] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    push(m, digits + at, sizeof(digits) - at);
}

static void push_list(struct message *m, char *const list[]) {
    unsigned long count = 0;
    if (list)
        while (list[count])
            count++;
    push_number(m, count);
    for (unsigned long i = 0; i < count; i++)
        push_text(m, list[i]);
}

/* Ask execd. Returns 1 with *kind/*value set, or 0 if it could not be asked. */
static int ask(int sock, const char *path, char *const argv[], char *const envp[],
               char *kind, int32_t *value) {
    struct message m;
    char cwd[4096];
    int pair[2] = {-1, -1};
    int fds[4];
    int opened[3] = {-1, -1, -1};
    int answered = 0;

    m.len = 0;
    m.overflow = 0;
    push_text(&m, "XQ1");
    push_number(&m, (unsigned long)getpid());
    push_text(&m, path);
    if (!getcwd(cwd, sizeof(cwd)))
        return 0;
    push_text(&m, cwd);
    push_list(&m, argv);
    push_list(&m, envp);
    if (m.overflow)
        return 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
        return 0;
    for (int i = 0; i < 3; i++) {
        if (fcntl(i, F_GETFD) >= 0) {
            fds[i] = i;
        } else {
            opened[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
            fds[i] = opened[i];
        }
    }
    fds[3] = pair[1];

    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(fds))];
    } control;
    struct iovec iov = {.iov_base = m.bytes, .iov_len = m.len};
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

    if (sendmsg(sock, &header, MSG_NOSIGNAL) >= 0) {
        unsigned char reply[5];
        ssize_t n;
        close(pair[1]);
        pair[1] = -1;
        do {
            n = recv(pair[0], reply, sizeof(reply), 0);
        } while (n < 0 && errno == EINTR);
        if (n == 5) {
            *kind = (char)reply[0];
            *value = (int32_t)((uint32_t)reply[1] | (uint32_t)reply[2] << 8 |
                               (uint32_t)reply[3] << 16 | (uint32_t)reply[4] << 24);
            answered = 1;
        }
    }
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
