/*
 * vsock: AF_VSOCK for the tiny guest's shell scripts (busybox has no vsock applet).
 * Built on the host with `gcc -static -Os` when the initramfs is built; installed as /bin/vsock.
 *
 *   vsock connect CID PORT              connect (the host is CID 2) and relay stdin/stdout
 *   vsock listen PORT                   accept one connection, relay it, exit
 *   vsock listen -k PORT -- CMD ARGS... accept connections forever; each runs CMD (forked) with the
 *                                       connection as its stdin and stdout
 *   vsock cid                           print this machine's own CID
 *
 * The relay copies both ways at once. End of stdin half-closes the connection (shutdown SHUT_WR);
 * end of the connection's data closes stdout; the relay ends when both directions have ended.
 * Exit status: 0 on a clean end, 1 on an error (one line on stderr), 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include "decimal.h"

#define USAGE "usage: vsock connect CID PORT | vsock listen PORT | vsock listen -k PORT -- CMD [ARGS...] | vsock cid"
#define RELAY_BUFFER (64 * 1024)

/* Prints "vsock: MESSAGE" as one line on stderr and returns 1 (the status of a failed run). */
static int fail(const char *format, ...) {
    char line[512];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    /* When stderr itself fails nothing more can be done; the exit status still tells. */
    if (n >= 0) fprintf(stderr, "vsock: %s\n", line);
    return 1;
}

static int usage_error(const char *problem) {
    /* As in fail(): a failing stderr leaves the exit status to tell. */
    fprintf(stderr, "vsock: %s; " USAGE "\n", problem);
    return 2;
}

static int set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* One direction of the relay: bytes read from `from` wait in `buffer` until `to` takes them. */
struct pump {
    const char *name;   /* for messages: "stdin to the connection" */
    int from, to;
    int to_is_socket;   /* the connection: send() with MSG_NOSIGNAL, end with shutdown(SHUT_WR) */
    char buffer[RELAY_BUFFER];
    size_t start, end;  /* pending bytes are buffer[start..end) */
    int eof;            /* `from` has ended */
    int done;           /* ... and everything went out and `to` was ended */
};

/* Reads when the buffer is empty. Returns -1 after reporting an error. */
static int pump_read(struct pump *p) {
    ssize_t n = read(p->from, p->buffer, sizeof p->buffer);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -fail("%s: read failed: %s", p->name, strerror(errno));
    }
    if (n == 0) p->eof = 1;
    p->start = 0;
    p->end = (size_t)n;
    return 0;
}

/* Writes what it can of the pending bytes (partial writes stay pending). Returns -1 after reporting an error. */
static int pump_write(struct pump *p) {
    size_t length = p->end - p->start;
    ssize_t n;
    if (p->to_is_socket) {
        n = send(p->to, p->buffer + p->start, length, MSG_NOSIGNAL);
    } else {
        /* stdout stays blocking (it may be shared with other processes); poll said it can take
           something, and a pipe with room for anything has room for PIPE_BUF bytes. */
        if (length > PIPE_BUF) length = PIPE_BUF;
        n = write(p->to, p->buffer + p->start, length);
    }
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -fail("%s: write failed: %s", p->name, strerror(errno));
    }
    p->start += (size_t)n;
    return 0;
}

/* Passes the end on: half-closes the connection, or closes stdout. Returns -1 after reporting an error. */
static int pump_finish(struct pump *p) {
    p->done = 1;
    if (p->to_is_socket) {
        if (shutdown(p->to, SHUT_WR) < 0) return -fail("%s: shutdown failed: %s", p->name, strerror(errno));
        return 0;
    }
    /* stdout may itself be a socket (vsock listen -k runs us with one): then only half-close it. */
    if (shutdown(p->to, SHUT_WR) == 0) return 0;
    if (errno != ENOTSOCK) return -fail("%s: shutdown failed: %s", p->name, strerror(errno));
    if (close(p->to) < 0 && errno != EINTR) return -fail("%s: close failed: %s", p->name, strerror(errno));
    return 0;
}

/* Adds the poll entry `p` needs now (reading or writing), returning its index or -1 when it waits for nothing. */
static int pump_poll_entry(const struct pump *p, struct pollfd *fds, int *count) {
    if (p->done) return -1;
    if (p->start < p->end) {
        fds[*count] = (struct pollfd){.fd = p->to, .events = POLLOUT};
    } else if (!p->eof) {
        fds[*count] = (struct pollfd){.fd = p->from, .events = POLLIN};
    } else {
        return -1;
    }
    return (*count)++;
}

static int pump_step(struct pump *p, const struct pollfd *entry) {
    if (entry->revents & POLLNVAL) return -fail("%s: file descriptor %d is not open", p->name, entry->fd);
    if (entry->revents == 0) return 0;
    /* POLLHUP/POLLERR are reported through the read or write they make fail or end. */
    return p->start < p->end ? pump_write(p) : pump_read(p);
}

static struct pump to_connection, to_stdout;

/* Relays stdin to `connection` and `connection` to stdout until both have ended. Returns the exit status. */
static int relay(int connection) {
    if (set_nonblocking(connection) < 0) return fail("cannot make the connection non-blocking: %s", strerror(errno));
    to_connection = (struct pump){.name = "stdin to the connection", .from = STDIN_FILENO, .to = connection, .to_is_socket = 1};
    to_stdout = (struct pump){.name = "the connection to stdout", .from = connection, .to = STDOUT_FILENO};
    struct pump *pumps[2] = {&to_connection, &to_stdout};
    while (!(to_connection.done && to_stdout.done)) {
        for (int i = 0; i < 2; i++) {
            struct pump *p = pumps[i];
            if (!p->done && p->eof && p->start == p->end && pump_finish(p) < 0) return 1;
        }
        if (to_connection.done && to_stdout.done) break;
        struct pollfd fds[2];
        int count = 0;
        int index[2];
        for (int i = 0; i < 2; i++) index[i] = pump_poll_entry(pumps[i], fds, &count);
        if (poll(fds, (nfds_t)count, -1) < 0) {
            if (errno == EINTR) continue;
            return fail("poll failed: %s", strerror(errno));
        }
        for (int i = 0; i < 2; i++) {
            if (index[i] >= 0 && pump_step(pumps[i], &fds[index[i]]) < 0) return 1;
        }
    }
    return 0;
}

static int vsock_socket(void) {
    return socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static int connect_and_relay(uint32_t cid, uint32_t port) {
    int fd = vsock_socket();
    if (fd < 0) return fail("cannot create a vsock socket: %s", strerror(errno));
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        if (errno != EINTR) return fail("cannot connect to CID %u port %u: %s", cid, port, strerror(errno));
        /* Interrupted: the connection goes on in the background; wait for its outcome. */
        struct pollfd entry = {.fd = fd, .events = POLLOUT};
        while (poll(&entry, 1, -1) < 0) {
            if (errno != EINTR) return fail("poll failed: %s", strerror(errno));
        }
        int error = 0;
        socklen_t length = sizeof error;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0) return fail("getsockopt failed: %s", strerror(errno));
        if (error != 0) return fail("cannot connect to CID %u port %u: %s", cid, port, strerror(error));
    }
    return relay(fd);
}

static int listening_socket(uint32_t port, int backlog) {
    int fd = vsock_socket();
    if (fd < 0) return -fail("cannot create a vsock socket: %s", strerror(errno));
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) return -fail("cannot bind port %u: %s", port, strerror(errno));
    if (listen(fd, backlog) < 0) return -fail("cannot listen on port %u: %s", port, strerror(errno));
    return fd;
}

/* accept(2) errors that concern one incoming connection only (the man page's list for Linux) or a signal. */
static int accept_may_retry(int error) {
    switch (error) {
    case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN:
    case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EAGAIN:
        return 1;
    default:
        return 0;
    }
}

static int listen_once(uint32_t port) {
    int listener = listening_socket(port, 1);
    if (listener < 0) return 1;
    int connection;
    while ((connection = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        if (!accept_may_retry(errno)) return fail("accept on port %u failed: %s", port, strerror(errno));
    }
    if (close(listener) < 0 && errno != EINTR) return fail("close failed: %s", strerror(errno));
    return relay(connection);
}

static void run_command(int connection, char **command) {
    if (signal(SIGCHLD, SIG_DFL) == SIG_ERR || signal(SIGPIPE, SIG_DFL) == SIG_ERR) {
        fail("cannot reset signal handlers: %s", strerror(errno));
        _exit(127);
    }
    if (dup2(connection, STDIN_FILENO) < 0 || dup2(connection, STDOUT_FILENO) < 0) {
        fail("dup2 failed: %s", strerror(errno));
        _exit(127);
    }
    if (connection > STDOUT_FILENO && close(connection) < 0) {
        fail("close failed: %s", strerror(errno));
        _exit(127);
    }
    execvp(command[0], command);
    fail("cannot run %s: %s", command[0], strerror(errno));
    _exit(127);
}

static int listen_forever(uint32_t port, char **command) {
    /* Children are reaped by the kernel; run_command restores the default for the command. */
    if (signal(SIGCHLD, SIG_IGN) == SIG_ERR) return fail("cannot ignore SIGCHLD: %s", strerror(errno));
    int listener = listening_socket(port, 16);
    if (listener < 0) return 1;
    for (;;) {
        int connection = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (connection < 0) {
            if (accept_may_retry(errno)) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                fail("accept on port %u failed: %s; trying again in a second", port, strerror(errno));
                sleep(1);
                continue;
            }
            return fail("accept on port %u failed: %s", port, strerror(errno));
        }
        pid_t child = fork();
        if (child == 0) run_command(connection, command);
        /* A failed fork costs this one connection only; the next may find resources again. */
        if (child < 0) fail("cannot start %s for a connection: %s", command[0], strerror(errno));
        if (close(connection) < 0 && errno != EINTR) return fail("close failed: %s", strerror(errno));
    }
}

static int print_cid(void) {
    int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("cannot open /dev/vsock: %s", strerror(errno));
    uint32_t cid = 0;
    if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0) return fail("IOCTL_VM_SOCKETS_GET_LOCAL_CID failed: %s", strerror(errno));
    if (close(fd) < 0 && errno != EINTR) return fail("close failed: %s", strerror(errno));
    if (cid == VMADDR_CID_ANY) return fail("no vsock transport has a CID here (no virtio-vsock device?)");
    if (printf("%u\n", cid) < 0 || fflush(stdout) != 0) return fail("cannot write to stdout: %s", strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage_error("no command");
    const char *command = argv[1];
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0) {
        return printf(USAGE "\n") < 0 || fflush(stdout) != 0 ? 1 : 0;
    }
    if (strcmp(command, "cid") == 0) {
        if (argc != 2) return usage_error("cid takes no arguments");
        return print_cid();
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return fail("cannot ignore SIGPIPE: %s", strerror(errno));
    uint32_t cid, port;
    if (strcmp(command, "connect") == 0) {
        if (argc != 4) return usage_error("connect takes CID and PORT");
        if (parse_u32(argv[2], &cid) < 0) return usage_error("CID must be a decimal number below 4294967295");
        if (parse_u32(argv[3], &port) < 0) return usage_error("PORT must be a decimal number below 4294967295");
        return connect_and_relay(cid, port);
    }
    if (strcmp(command, "listen") == 0) {
        if (argc >= 3 && strcmp(argv[2], "-k") == 0) {
            if (argc < 6 || strcmp(argv[4], "--") != 0) return usage_error("listen -k takes PORT, --, and a command");
            if (parse_u32(argv[3], &port) < 0) return usage_error("PORT must be a decimal number below 4294967295");
            return listen_forever(port, argv + 5);
        }
        if (argc != 3) return usage_error("listen takes PORT (or -k PORT -- CMD ARGS...)");
        if (parse_u32(argv[2], &port) < 0) return usage_error("PORT must be a decimal number below 4294967295");
        return listen_once(port);
    }
    return usage_error("unknown command");
}
