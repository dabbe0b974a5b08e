#!/usr/bin/env python3
"""Live migration of a running 256 MiB, 2-vCPU tiny guest to a second process on the same host, over a
Unix socket: Panamax against QEMU, same kernel, initramfs and command line, alternating rounds, medians
and ratios. Where /dev/kvm is real KVM; here:

    ./panamax build && ./panamax run --timeout 1   (once: builds the guest and the rig's start-up cache)
    ./panamax rig -- python3 integration-tests/scripts/migration-vs-qemu.py [ROUNDS]

Two workloads: idle (the guest prints a tick every 0.2 s) and dirtying (the same, while the guest
rewrites a 64 MiB file in its RAM-backed /tmp over and over). Measured per round, for each VMM:
  total     the migration command to the source's report that it completed (Panamax: PUT /migration/send,
            then GET /migration; QEMU: QMP migrate, then query-migrate), both with a 300 ms downtime target
  downtime  the guest's stop as the VMM reports it (Panamax: downtime_ms; QEMU: query-migrate's downtime)
  gap       the guest-visible stop: the longest time between two ticks reaching the host, from the source
            and then the destination, less the 0.2 s between ticks
  rounds    Panamax's rounds of dirty pages; QEMU's dirty-sync-count
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from peer_common import INITRD, KERNEL, Qmp, api, panamax, wait_until  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
TICKS = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"
WORKLOADS = {
    "idle": TICKS,
    "dirtying": "while true; do dd if=/dev/zero of=/tmp/dirt bs=1M count=64 2>/dev/null; done & " + TICKS,
}
TICK = 0.2


def qemu(cmdline, *extra):
    return ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", "microvm,rtc=on", "-device", "i8042", "-m", "256",
            "-smp", "2", "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-kernel", KERNEL, "-initrd", INITRD, "-append", cmdline, *extra]


class Ticks:
    """The tick lines of a VMM's console, each with the moment it reached the host."""

    def __init__(self, argv, name):
        self.name = name
        self.ticks = []
        self.text = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            with self.cond:
                self.text.append(line)
                if line.startswith("tick "):
                    self.ticks.append(time.monotonic())
                self.cond.notify_all()

    def wait_ticks(self, n, timeout=300):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.ticks) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(self.name + ": no " + str(n) + " ticks:\n" + "".join(self.text)[-3000:])
                self.cond.wait(min(left, 1))

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def gap(source, destination):
    times = sorted(source.ticks + destination.ticks)
    return max(b - a for a, b in zip(times, times[1:])) - TICK


def remove(*paths):
    for p in paths:
        if os.path.exists(p):
            os.remove(p)


def panamax_round(work, guest):
    sock, mig = os.path.join(work, "p.sock"), os.path.join(work, "p-mig.sock")
    remove(sock, mig)
    dest = Ticks(panamax("run", "--no-rig", "--incoming", "unix:" + mig), "Panamax destination")
    src = Ticks(panamax("run", "--no-rig", "--memory", "256M", "--cpus", "2", "--api-sock", sock, "--kernel", KERNEL,
                        "--initrd", INITRD, "--cmdline", 'quiet panamax.run="' + guest + '"'), "Panamax source")
    try:
        src.wait_ticks(10)
        wait_until(mig, lambda: os.path.exists(mig), 120)
        t0 = time.monotonic()
        try:
            api(sock, "PUT", "/migration/send", {"destination": "unix:" + mig, "downtime_ms": 300})
            status = wait_until("the end of the migration",
                                lambda: (lambda s: s if s["phase"] in ("completed", "failed", "cancelled") else None)(
                                    api(sock, "GET", "/migration")))
        except (OSError, RuntimeError) as e:
            raise RuntimeError("asking the Panamax source for its migration: %s\nthe source said:\n%s\nthe destination said:\n%s"
                               % (e, "".join(src.text)[-3000:], "".join(dest.text)[-3000:])) from e
        total = time.monotonic() - t0
        if status["phase"] != "completed":
            raise RuntimeError("Panamax's migration " + status["phase"] + ": " + str(status.get("error")))
        dest.wait_ticks(5)
        return {"total": total, "downtime": status["downtime_ms"] / 1000, "gap": gap(src, dest), "rounds": status["round"]}
    finally:
        src.kill()
        dest.kill()


def qemu_round(work, guest):
    qmp, mig = os.path.join(work, "q.qmp"), os.path.join(work, "q-mig.sock")
    remove(qmp, mig)
    cmdline = 'console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run="' + guest + '"'
    dest = Ticks(qemu(cmdline, "-incoming", "unix:" + mig), "QEMU destination")
    src = Ticks(qemu(cmdline, "-qmp", "unix:" + qmp + ",server=on,wait=off"), "QEMU source")
    try:
        src.wait_ticks(10)
        q = Qmp(qmp)
        q.run("migrate-set-parameters", **{"downtime-limit": 300})
        wait_until(mig, lambda: os.path.exists(mig), 120)
        t0 = time.monotonic()
        q.run("migrate", uri="unix:" + mig)
        while True:
            info = q.run("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.002)
        total = time.monotonic() - t0
        if info["status"] != "completed":
            raise RuntimeError("QEMU's migration " + info["status"])
        dest.wait_ticks(5)
        return {"total": total, "downtime": info.get("downtime", 0) / 1000, "gap": gap(src, dest),
                "rounds": info.get("ram", {}).get("dirty-sync-count", 0)}
    finally:
        src.kill()
        dest.kill()


def main():
    work = tempfile.mkdtemp(prefix="migration-vs-qemu-")
    results = {w: ([], []) for w in WORKLOADS}
    try:
        for i in range(1, ROUNDS + 1):
            for name, guest in WORKLOADS.items():
                if i % 2:
                    p = panamax_round(work, guest); q = qemu_round(work, guest)
                else:
                    q = qemu_round(work, guest); p = panamax_round(work, guest)
                results[name][0].append(p)
                results[name][1].append(q)
                print("round %d, %s: Panamax %s | QEMU %s" % (i, name, fmt(p), fmt(q)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("median of %d:" % ROUNDS)
    for name, (ps, qs) in results.items():
        for key in ("total", "downtime", "gap"):
            pm = statistics.median(r[key] for r in ps) * 1000
            qm = statistics.median(r[key] for r in qs) * 1000
            print("  %-8s %-8s Panamax %7.0f ms, QEMU %7.0f ms, ratio Panamax/QEMU %.2f" % (name, key, pm, qm, pm / qm if qm else float("nan")))
        print("  %-8s rounds   Panamax %d, QEMU %d" % (name, statistics.median(r["rounds"] for r in ps),
                                                       statistics.median(r["rounds"] for r in qs)))


def fmt(r):
    return ", ".join("%s %s" % (k, ("%.0f ms" % (v * 1000)) if k != "rounds" else v) for k, v in r.items())


if __name__ == "__main__":
    main()
