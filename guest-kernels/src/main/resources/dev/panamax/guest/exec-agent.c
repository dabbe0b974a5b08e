/*
 * panamax-agent: the guest side of `panamax exec`. Built on the host with `gcc -static -Os` when the
 * initramfs is built; installed as /bin/panamax-agent, which /init runs when the kernel command line
 * has panamax.exec=PORT.
 *
 *   panamax-agent vsock PORT [ROOT]   connect to the host (CID 2) on vsock PORT and serve one command
 *   panamax-agent unix PATH [ROOT]    the same over a Unix socket (for tests on the host)
 * With ROOT, the command runs with ROOT as its root directory (exec --rootfs host: /init's overlay of
 * the host's root); the agent itself stays where it is.
 *
 * The protocol (README.md, "panamax exec", is its one description): frames of an 8-byte header,
 * type (u8), stream (u8), reserved (u16, 0), payload length (u32, little-endian), then the payload.
 *   host -> guest  ARG 1 (stream 0, 0..65536 bytes without NUL, at most 1024 of them and 256 KiB in all),
 *                  DIR 6 (stream 0, 1..4095 bytes without NUL, at most one: the command's working
 *                  directory; without it, /), RUN 2 (empty; after at least one ARG),
 *                  DATA 3 stream 0 (stdin; an empty one ends it)
 *   guest -> host  DATA 3 stream 1 (stdout) or 2 (stderr), 1..65536 bytes, an empty one ends that stream;
 *                  EXIT 4 (2 bytes: 0 and the exit status, or 1 and the signal number), the last frame;
 *                  ERROR 5 (the agent itself failed: up to 4096 bytes of text), instead of EXIT
 * After EXIT the agent half-closes the connection and waits for the host to close it, so that the host
 * has everything before /init reboots the guest. The command runs in a session of its own with
 * stdin, stdout and stderr on pipes (what it leaves running in its process group is killed when it
 * ends); one it cannot start exits 127 (not found) or 126 with the reason (also a working
 * directory it cannot enter) on its stderr, as a shell does. Exit status of the agent: 0 once EXIT went out, 1 on an error
 * (one line on stderr, the console), 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "decimal.h"

#define HEADER_SIZE 8
#define MAX_PAYLOAD 65536
#define MAX_ARGS 1024
#define MAX_ARGV_BYTES (256 * 1024)
#define MAX_ERROR_TEXT 4096

enum { FRAME_ARG = 1, FRAME_RUN = 2, FRAME_DATA = 3, FRAME_EXIT = 4, FRAME_ERROR = 5, FRAME_DIR = 6 };
#define MAX_DIR 4095
enum { STREAM_STDIN = 0, STREAM_STDOUT = 1, STREAM_STDERR = 2 };

static int host = -1;

static int fail(const char *format, ...) {
    char line[512];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n >= 0) fprintf(stderr, "panamax-agent: %s\n", line);
    return 1;
}

static int send_all(const void *data, size_t length) {
    const char *p = data;
    while (length > 0) {
        ssize_t n = send(host, p, length, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

static int send_frame(int type, int stream, const void *payload, uint32_t length) {
    uint8_t header[HEADER_SIZE] = {(uint8_t)type, (uint8_t)stream, 0, 0,
        (uint8_t)length, (uint8_t)(length >> 8), (uint8_t)(length >> 16), (uint8_t)(length >> 24)};
    if (send_all(header, sizeof header) < 0 || send_all(payload, length) < 0) {
        return -fail("cannot send to the host: %s", strerror(errno));
    }
    return 0;
}

/* Tells the host the agent failed (best effort: the connection may be what failed), then fails. */
static int agent_error(const char *format, ...) {
    char text[MAX_ERROR_TEXT];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof text) n = sizeof text - 1;
    fprintf(stderr, "panamax-agent: %s\n", text);
    send_frame(FRAME_ERROR, 0, text, (uint32_t)n);
    return 1;
}

/* Reads exactly `length` bytes: 1 when done, 0 at end of stream before the first byte, -1 otherwise. */
static int read_full(void *buffer, size_t length) {
    char *p = buffer;
    size_t got = 0;
    while (got < length) {
        ssize_t n = read(host, p + got, length - got);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) {
            errno = EPIPE;
            return got == 0 ? 0 : -1;
        }
        got += (size_t)n;
    }
    return 1;
}

struct frame {
    int type, stream;
    uint32_t length;
    char payload[MAX_PAYLOAD];
};

/* Reads one frame from the host, checking its header: 1, 0 at a clean end, -1 after reporting. */
static int read_frame(struct frame *f) {
    uint8_t header[HEADER_SIZE];
    int r = read_full(header, sizeof header);
    if (r <= 0) return r < 0 ? -fail("cannot read from the host: %s", strerror(errno)) : 0;
    f->type = header[0];
    f->stream = header[1];
    f->length = (uint32_t)header[4] | (uint32_t)header[5] << 8 | (uint32_t)header[6] << 16 | (uint32_t)header[7] << 24;
    if (header[2] != 0 || header[3] != 0) return -agent_error("malformed frame from the host: reserved bytes not 0");
    if (f->length > MAX_PAYLOAD) return -agent_error("malformed frame from the host: %u bytes, more than %d", f->length, MAX_PAYLOAD);
    if (read_full(f->payload, f->length) != 1) return -fail("cannot read from the host: %s", strerror(errno));
    return 1;
}

static struct frame incoming;
static char *command[MAX_ARGS + 1];
/* The command's root directory (argv) and working directory (a DIR frame), or NULL. */
static const char *root_dir;
static char *work_dir;

/* Receives ARG frames up to RUN into `command`. Returns 0, or 1 after reporting. */
static int receive_command(void) {
    int count = 0;
    size_t total = 0;
    for (;;) {
        int r = read_frame(&incoming);
        if (r < 0) return 1;
        if (r == 0) return fail("the host closed the connection before RUN");
        if (incoming.type == FRAME_RUN && incoming.stream == 0 && incoming.length == 0) {
            if (count == 0) return agent_error("RUN without a command");
            command[count] = NULL;
            return 0;
        }
        if (incoming.type == FRAME_DIR && incoming.stream == 0) {
            if (work_dir != NULL) return agent_error("a second DIR");
            if (incoming.length == 0 || incoming.length > MAX_DIR) {
                return agent_error("DIR of %u bytes: a directory is 1 to %d bytes", incoming.length, MAX_DIR);
            }
            if (memchr(incoming.payload, 0, incoming.length) != NULL) return agent_error("DIR holds a NUL byte");
            work_dir = malloc(incoming.length + 1);
            if (work_dir == NULL) return agent_error("out of memory for the directory");
            memcpy(work_dir, incoming.payload, incoming.length);
            work_dir[incoming.length] = 0;
            continue;
        }
        if (incoming.type != FRAME_ARG || incoming.stream != 0) {
            return agent_error("unexpected frame type %d stream %d before RUN", incoming.type, incoming.stream);
        }
        if (count == MAX_ARGS) return agent_error("more than %d arguments", MAX_ARGS);
        total += incoming.length + 1;
        if (total > MAX_ARGV_BYTES) return agent_error("the arguments exceed %d bytes", MAX_ARGV_BYTES);
        if (memchr(incoming.payload, 0, incoming.length) != NULL) return agent_error("argument %d holds a NUL byte", count);
        command[count] = malloc(incoming.length + 1);
        if (command[count] == NULL) return agent_error("out of memory for the arguments");
        memcpy(command[count], incoming.payload, incoming.length);
        command[count][incoming.length] = 0;
        count++;
    }
}

static void start_command(int in, int out, int err) {
    if (signal(SIGCHLD, SIG_DFL) == SIG_ERR || signal(SIGPIPE, SIG_DFL) == SIG_ERR) _exit(126);
    if (setsid() < 0) _exit(126);
    if (dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0) _exit(126);
    if (root_dir != NULL && chroot(root_dir) < 0) {
        dprintf(STDERR_FILENO, "panamax-agent: cannot enter the root directory %s: %s\n", root_dir, strerror(errno));
        _exit(126);
    }
    const char *dir = work_dir != NULL ? work_dir : "/";
    if (chdir(dir) < 0) {
        dprintf(STDERR_FILENO, "panamax-agent: cannot change to the directory %s: %s\n", dir, strerror(errno));
        _exit(126);
    }
    execvp(command[0], command);
    int error = errno;
    dprintf(STDERR_FILENO, "panamax-agent: cannot run %s: %s\n", command[0], strerror(error));
    _exit(error == ENOENT || error == ENOTDIR ? 127 : 126);
}

static char output[MAX_PAYLOAD];

/* SIGCHLD's self-pipe (the tiny kernel has no signalfd): the handler writes a byte poll sees. */
static int child_exits[2] = {-1, -1};

static void on_child_exit(int signal) {
    (void)signal;
    int saved = errno;
    ssize_t ignored = write(child_exits[1], "", 1); /* a full pipe already says "look" */
    (void)ignored;
    errno = saved;
}

/* Forwards what pipe `*fd` holds as DATA on `stream`; at its end sends the empty frame and closes it.
   Returns 0, or -1 after reporting. */
static int forward_output(int *fd, int stream) {
    ssize_t n = read(*fd, output, sizeof output);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) return 0;
        return -fail("cannot read the command's output: %s", strerror(errno));
    }
    if (n == 0) {
        close(*fd);
        *fd = -1;
    }
    return send_frame(FRAME_DATA, stream, output, (uint32_t)n);
}

/* Forwards what is in the pipe now, up to a point where it is empty (or ended), without waiting. */
static int drain_output(int *fd, int stream) {
    while (*fd >= 0) {
        ssize_t n = read(*fd, output, sizeof output);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return 0; /* a background process keeps it open: what is there went */
        if (n < 0) return -fail("cannot read the command's output: %s", strerror(errno));
        if (n == 0) {
            close(*fd);
            *fd = -1;
        }
        if (send_frame(FRAME_DATA, stream, output, (uint32_t)n) < 0) return -1;
    }
    return 0;
}

static int serve(void) {
    if (receive_command() != 0) return 1;
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        return agent_error("cannot make pipes: %s", strerror(errno));
    }
    if (pipe2(child_exits, O_CLOEXEC | O_NONBLOCK) < 0) return agent_error("cannot make a pipe: %s", strerror(errno));
    struct sigaction action = {.sa_handler = on_child_exit, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGCHLD, &action, NULL) < 0) return agent_error("cannot handle SIGCHLD: %s", strerror(errno));
    pid_t child = fork();
    if (child < 0) return agent_error("cannot fork: %s", strerror(errno));
    if (child == 0) start_command(in[0], out[1], err[1]);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    int stdin_pipe = in[1], stdout_pipe = out[0], stderr_pipe = err[0];
    if (fcntl(stdin_pipe, F_SETFL, O_NONBLOCK) < 0 || fcntl(stdout_pipe, F_SETFL, O_NONBLOCK) < 0
            || fcntl(stderr_pipe, F_SETFL, O_NONBLOCK) < 0) {
        return agent_error("cannot make the pipes non-blocking: %s", strerror(errno));
    }
    size_t pending_start = 0, pending_end = 0; /* stdin bytes in incoming.payload not yet in the pipe */
    int stdin_ends = 0;                        /* the host ended stdin: close the pipe once pending is out */
    int status = -1;
    while (status < 0) {
        if (stdin_pipe >= 0 && stdin_ends && pending_start == pending_end) {
            close(stdin_pipe);
            stdin_pipe = -1;
        }
        struct pollfd fds[4];
        int n = 0, at_host = -1, at_stdin = -1, at_stdout = -1, at_stderr = -1;
        if (pending_start == pending_end) {
            at_host = n;
            fds[n++] = (struct pollfd){.fd = host, .events = POLLIN};
        } else {
            at_stdin = n;
            fds[n++] = (struct pollfd){.fd = stdin_pipe, .events = POLLOUT};
        }
        if (stdout_pipe >= 0) {
            at_stdout = n;
            fds[n++] = (struct pollfd){.fd = stdout_pipe, .events = POLLIN};
        }
        if (stderr_pipe >= 0) {
            at_stderr = n;
            fds[n++] = (struct pollfd){.fd = stderr_pipe, .events = POLLIN};
        }
        fds[n++] = (struct pollfd){.fd = child_exits[0], .events = POLLIN};
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            return agent_error("poll failed: %s", strerror(errno));
        }
        if (at_host >= 0 && fds[at_host].revents) {
            int r = read_frame(&incoming);
            if (r <= 0) { /* the host is gone: nobody waits for the command */
                kill(-child, SIGKILL);
                return r < 0 ? 1 : fail("the host closed the connection while the command ran");
            }
            if (incoming.type != FRAME_DATA || incoming.stream != STREAM_STDIN || stdin_ends) {
                kill(-child, SIGKILL);
                return agent_error("unexpected frame type %d stream %d while the command runs", incoming.type, incoming.stream);
            }
            if (incoming.length == 0) {
                stdin_ends = 1;
            } else if (stdin_pipe >= 0) { /* else the command closed its stdin: the bytes are dropped */
                pending_start = 0;
                pending_end = incoming.length;
            }
        }
        if (at_stdin >= 0 && fds[at_stdin].revents) {
            ssize_t w = write(stdin_pipe, incoming.payload + pending_start, pending_end - pending_start);
            if (w >= 0) {
                pending_start += (size_t)w;
            } else if (errno != EINTR && errno != EAGAIN) { /* EPIPE: the command no longer reads its stdin */
                close(stdin_pipe);
                stdin_pipe = -1;
                pending_start = pending_end = 0;
            }
        }
        if (at_stdout >= 0 && fds[at_stdout].revents && forward_output(&stdout_pipe, STREAM_STDOUT) < 0) return 1;
        if (at_stderr >= 0 && fds[at_stderr].revents && forward_output(&stderr_pipe, STREAM_STDERR) < 0) return 1;
        char drained[64];
        while (read(child_exits[0], drained, sizeof drained) > 0) {}
        int wait_status;
        pid_t done = waitpid(child, &wait_status, WNOHANG);
        if (done == child) status = wait_status;
        else if (done < 0 && errno != EINTR) return agent_error("waitpid failed: %s", strerror(errno));
    }
    /* The command has ended: what it wrote before is in the pipes; what it left running in its
       session (its process group) ends with it, as the VM would at its reboot. */
    kill(-child, SIGKILL);
    if (drain_output(&stdout_pipe, STREAM_STDOUT) < 0 || drain_output(&stderr_pipe, STREAM_STDERR) < 0) return 1;
    uint8_t result[2];
    if (WIFSIGNALED(status)) {
        result[0] = 1;
        result[1] = (uint8_t)WTERMSIG(status);
    } else {
        result[0] = 0;
        result[1] = (uint8_t)WEXITSTATUS(status);
    }
    if (send_frame(FRAME_EXIT, 0, result, sizeof result) < 0) return 1;
    if (shutdown(host, SHUT_WR) < 0) return fail("shutdown failed: %s", strerror(errno));
    /* The host closes the connection once it has the status; whatever else it sends is moot now. */
    for (;;) {
        ssize_t n = read(host, output, sizeof output);
        if (n == 0) return 0;
        if (n < 0 && errno != EINTR) return fail("reading the host's end failed: %s", strerror(errno));
    }
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: panamax-agent vsock PORT [ROOT] | panamax-agent unix PATH [ROOT]\n");
        return 2;
    }
    if (argc == 4) root_dir = argv[3];
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return fail("cannot ignore SIGPIPE: %s", strerror(errno));
    if (strcmp(argv[1], "vsock") == 0) {
        uint32_t port;
        if (parse_u32(argv[2], &port) < 0) {
            fprintf(stderr, "panamax-agent: PORT must be a decimal number below 4294967295\n");
            return 2;
        }
        host = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (host < 0) return fail("cannot create a vsock socket: %s", strerror(errno));
        struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
        if (connect(host, (struct sockaddr *)&address, sizeof address) < 0) {
            return fail("cannot connect to the host's vsock port %u: %s", port, strerror(errno));
        }
    } else if (strcmp(argv[1], "unix") == 0) {
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        if (strlen(argv[2]) >= sizeof address.sun_path) {
            fprintf(stderr, "panamax-agent: the socket path is too long\n");
            return 2;
        }
        strcpy(address.sun_path, argv[2]);
        host = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (host < 0) return fail("cannot create a Unix socket: %s", strerror(errno));
        if (connect(host, (struct sockaddr *)&address, sizeof address) < 0) {
            return fail("cannot connect to %s: %s", argv[2], strerror(errno));
        }
    } else {
        fprintf(stderr, "usage: panamax-agent vsock PORT [ROOT] | panamax-agent unix PATH [ROOT]\n");
        return 2;
    }
    return serve();
}
