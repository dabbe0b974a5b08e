/*
 * vsock.c's relay over an AF_UNIX connection to the path argv[1]: the host running the tests has no
 * vsock peer of its own, so the test plays the other end of the relay through a Unix socket.
 */
#define main vsock_main
#include "vsock.c"
#undef main
#include <sys/un.h>

int main(int argc, char **argv) {
    if (argc != 2) return usage_error("the harness takes a Unix socket path");
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) return fail("cannot ignore SIGPIPE: %s", strerror(errno));
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof address.sun_path) return fail("socket path too long");
    memcpy(address.sun_path, argv[1], strlen(argv[1]) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("socket failed: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) return fail("connect failed: %s", strerror(errno));
    return relay(fd);
}
