"""Imported by the *-vs-qemu.py scripts, as the shell scripts source peer-common.sh: where the built
Panamax, the guest and a JDK 25 are, Panamax's CLI as the rig's JVMs run it, and clients of its REST
API and of QEMU's QMP, both on Unix sockets. Uses the newest kernel and initramfs in the cache unless
KERNEL and INITRD name others."""
import glob
import http.client
import json
import os
import socket
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("PANAMAX_CACHE", os.path.expanduser("~/.cache/panamax"))


def newest(pattern):
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    if not found:
        sys.exit(os.path.basename(sys.argv[0]) + ": nothing matches " + pattern + "; build first (see the script's comment)")
    return found[-1]


KERNEL = os.environ.get("KERNEL") or os.path.join(newest(CACHE + "/kernels/*/"), "vmlinux")
INITRD = os.environ.get("INITRD") or os.path.join(newest(CACHE + "/initramfs/*/"), "initramfs.cpio.gz")
JAVA = "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java"
CLI = newest(TOP + "/cli/target/cli-*.jar")
AOT = sorted(glob.glob(CACHE + "/aot/cli-*.aot"), key=os.path.getmtime)


def panamax(*args):
    """Panamax's CLI with these arguments, as the rig's JVMs run it (C1 only, the start-up cache 'panamax run' trained)."""
    aot = ["-XX:AOTCache=" + AOT[-1]] if AOT else []
    return [JAVA, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xms4m", *aot, "-Xlog:aot=off", "-Xlog:cds=off", "--enable-native-access=ALL-UNNAMED", "-cp",
            CLI + ":" + TOP + "/cli/target/lib/*", "dev.panamax.cli.Panamax", *args]


def wait_until(what, condition, timeout=300):
    """condition()'s first true value, polled; an error naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError("no " + what + " after " + str(timeout) + " s")
        time.sleep(0.01)


class UnixHttp(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(sock, method, path, body=None):
    """One request to Panamax's REST API on sock; its JSON answer, or None; an error for a status of 300 or more."""
    c = UnixHttp(sock)
    c.request(method, path, None if body is None else json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    if r.status >= 300:
        raise RuntimeError(method + " " + path + ": " + str(r.status) + " " + text)
    return json.loads(text) if text else None


class Qmp:
    """QEMU's monitor on a Unix socket: run() sends a command and returns its answer."""

    def __init__(self, path):
        wait_until(path, lambda: os.path.exists(path), 120)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.file.readline()  # greeting
        self.run("qmp_capabilities")

    def run(self, command, **arguments):
        self.file.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        self.file.flush()
        while True:
            answer = json.loads(self.file.readline())
            if "return" in answer:
                return answer["return"]
            if "error" in answer:
                raise RuntimeError(command + ": " + answer["error"]["desc"])
