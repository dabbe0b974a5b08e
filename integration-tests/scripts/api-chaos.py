#!/usr/bin/env python3
"""Chaos for the REST API: a VMM serving its API socket (`panamax serve`, no VM needed, so it runs on
any host) under STALLED connections that send half a request and then nothing, and CONNECTIONS
connections open at once, each sending GET / and reading the answer. Meanwhile, and after, a probe
asks GET / on a connection of its own every 0.1 s: the API must keep answering it.

    python3 integration-tests/scripts/api-chaos.py [CONNECTIONS] [STALLED]     (defaults 1000 100)

Prints how many of the concurrent requests were answered, the probe's answers and latencies (median
and worst) before, during and after, and ends with status 1 if the probe ever went unanswered or the
VMM died. Needs `./panamax build` first.
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from peer_common import panamax, wait_until  # noqa: E402

CONNECTIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
STALLED = int(sys.argv[2]) if len(sys.argv) > 2 else 100
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
HALF_REQUEST = b"GET / HTTP/1.1\r\nHost: loc"


def answered(s):
    """Whether the connection's answer, read up to the end of its headers, is a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.startswith(b"HTTP/1.1 200")


def get(path, timeout=10.0):
    """GET / on a new connection: (answered, seconds)."""
    start = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(REQUEST)
        return answered(s), time.monotonic() - start
    except OSError:
        return False, time.monotonic() - start
    finally:
        s.close()


class Probe:
    """GET / every 0.1 s, each answer's latency kept under the phase it fell in."""

    def __init__(self, path):
        self.path = path
        self.phase = "before"
        self.results = {}
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            ok, seconds = get(self.path)
            self.results.setdefault(self.phase, []).append((ok, seconds))
            time.sleep(0.1)

    def report(self):
        failed = 0
        for phase in ("before", "during", "after"):
            got = self.results.get(phase, [])
            answered = [s for ok, s in got if ok]
            failed += len(got) - len(answered)
            if answered:
                print(f"probe {phase}: {len(answered)} of {len(got)} answered, median {statistics.median(answered) * 1000:.1f} ms,"
                      f" worst {max(answered) * 1000:.1f} ms")
            else:
                print(f"probe {phase}: 0 of {len(got)} answered")
        return failed


def main():
    work = tempfile.mkdtemp(prefix="panamax-api-chaos-")
    sock = os.path.join(work, "api.sock")
    vmm = subprocess.Popen(panamax("serve", "--api-sock", sock), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL)
    try:
        wait_until("API socket", lambda: os.path.exists(sock) and get(sock)[0], timeout=60)
        probe = Probe(sock)
        time.sleep(1)
        probe.phase = "during"
        stalled = []
        for _ in range(STALLED):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            s.sendall(HALF_REQUEST)
            stalled.append(s)
        # CONNECTIONS connections open at once: all connect and send, then all read.
        conns = []
        refused = 0
        for _ in range(CONNECTIONS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            try:
                s.connect(sock)
                s.sendall(REQUEST)
                conns.append(s)
            except OSError:
                refused += 1
                s.close()
        answers = 0
        for s in conns:
            try:
                answers += answered(s)
            except OSError:
                pass
            finally:
                s.close()
        print(f"concurrent: {CONNECTIONS} connections, {answers} answered GET /, {refused} refused, with {STALLED} stalled"
              " half-requests open")
        time.sleep(2)
        stalled_open = 0
        for s in stalled:
            s.setblocking(False)
            try:
                s.recv(1)  # b"": the VMM closed it; bytes: it answered half a request
            except BlockingIOError:
                stalled_open += 1  # still open, nothing said: the VMM waits for the rest of the request
            except OSError:
                pass
        probe.phase = "after"
        for s in stalled:
            s.close()
        time.sleep(1)
        probe.stop = True
        probe.thread.join()
        failed = probe.report()
        print(f"stalled half-requests still open after the load: {stalled_open} of {STALLED}")
        alive = vmm.poll() is None
        print("the VMM is " + ("running" if alive else f"gone (status {vmm.returncode})"))
        ok = alive and failed == 0 and answers == CONNECTIONS
        print("result: " + ("the API kept answering" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        vmm.terminate()
        try:
            vmm.wait(10)
        except subprocess.TimeoutExpired:
            vmm.kill()


if __name__ == "__main__":
    sys.exit(main())
