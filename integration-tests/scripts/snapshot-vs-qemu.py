#!/usr/bin/env python3
"""Snapshot and restore of a running 256 MiB, 2-vCPU tiny guest: Panamax against QEMU, same kernel,
initramfs and command line, alternating rounds, medians and ratios. Where /dev/kvm is real KVM; here:

    ./panamax build && ./panamax run --timeout 1   (once: builds the guest and the rig's start-up cache)
    ./panamax rig -- python3 integration-tests/scripts/snapshot-vs-qemu.py [ROUNDS]

Measured per round, for each VMM:
  create   pause + write the snapshot, through the API (Panamax: PATCH /vm + PUT /snapshot/create;
           QEMU: QMP stop + migrate to a file, until query-migrate says completed)
  restore  process start to the guest's next console line (Panamax: run --restore;
           QEMU: the same command line with -incoming from the file, then QMP cont, since the
           guest was saved paused)
  load     an API call on a started, idle VMM to the guest's next console line (Panamax: serve and
           PUT /snapshot/load with resume_vm; QEMU: -incoming defer and QMP migrate-incoming)
and, for Panamax alone, the VMM's resident memory right after a lazy and after an eager restore.
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

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
GUEST = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"
CMDLINE = 'console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run="' + GUEST + '"'


QEMU = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", "microvm,rtc=on", "-device", "i8042", "-m", "256",
        "-smp", "2", "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
        "-kernel", KERNEL, "-initrd", INITRD, "-append", CMDLINE]


class Vmm:
    """A VMM process whose console lines are watched: wait_for() returns when one contains a text."""

    def __init__(self, argv):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode(errors="replace"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_for(self, text, after=0, timeout=300):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(after, len(self.lines)):
                    if self.lines[i] is None:
                        raise RuntimeError("the VMM ended before printing " + repr(text) + ":\n" + "".join(self.lines[:-1])[-3000:])
                    if text in self.lines[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no " + repr(text) + " after " + str(timeout) + " s:\n" + "".join(l for l in self.lines if l)[-3000:])
                self.cond.wait(left)

    def mark(self):
        with self.cond:
            return len(self.lines)

    def rss_mib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
        return -1

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def remove(*paths):
    """Leftovers of the round before: a VMM killed with SIGKILL leaves its socket behind."""
    for p in paths:
        if os.path.exists(p):
            os.remove(p)


def panamax_round(work):
    snap = os.path.join(work, "p-snap")
    shutil.rmtree(snap, ignore_errors=True)
    sock = os.path.join(work, "p.sock")
    sock2 = os.path.join(work, "p2.sock")
    remove(sock, sock2)
    vm = Vmm(panamax("run", "--no-rig", "--memory", "256M", "--cpus", "2", "--api-sock", sock, "--kernel", KERNEL,
                     "--initrd", INITRD, "--cmdline", 'quiet panamax.run="' + GUEST + '"'))
    try:
        vm.wait_for("tick 3")
        os.makedirs(snap)
        t0 = time.monotonic()
        api(sock, "PATCH", "/vm", {"state": "Paused"})
        api(sock, "PUT", "/snapshot/create", {"snapshot_type": "Full", "snapshot_path": snap + "/vm.state",
                                              "mem_file_path": snap + "/vm.mem"})
        create = time.monotonic() - t0
    finally:
        vm.kill()
    results = {"create": create}
    for name, extra in (("restore", []), ("restore-eager", ["--eager-memory"])):
        t0 = time.monotonic()
        vm = Vmm(panamax("run", "--no-rig", "--restore", snap, *extra))
        try:
            vm.wait_for("tick ")
            results[name] = time.monotonic() - t0
            results["rss-" + name] = vm.rss_mib()
        finally:
            vm.kill()
    vm = Vmm(panamax("serve", "--api-sock", sock2))
    try:
        wait_until(sock2, lambda: os.path.exists(sock2), 120)
        time.sleep(0.5)
        mark = vm.mark()
        t0 = time.monotonic()
        api(sock2, "PUT", "/snapshot/load", {"snapshot_path": snap + "/vm.state",
                                             "mem_backend": {"backend_type": "File", "backend_path": snap + "/vm.mem"},
                                             "resume_vm": True})
        vm.wait_for("tick ", after=mark)
        results["load"] = time.monotonic() - t0
    finally:
        vm.kill()
    return results


def continue_when_loaded(q):
    """The guest was paused when it was saved, and QEMU restores that run state: resume it once loaded."""
    while q.run("query-status")["status"] == "inmigrate":
        time.sleep(0.002)
    q.run("cont")


def qemu_round(work):
    image = os.path.join(work, "q.migration")
    qmp = os.path.join(work, "q.qmp")
    remove(image, qmp)
    vm = Vmm(QEMU + ["-qmp", "unix:" + qmp + ",server=on,wait=off"])
    try:
        vm.wait_for("tick 3")
        q = Qmp(qmp)
        t0 = time.monotonic()
        q.run("stop")
        q.run("migrate", uri="exec:cat > " + image)
        while q.run("query-migrate").get("status") not in ("completed", "failed"):
            time.sleep(0.002)
        create = time.monotonic() - t0
    finally:
        vm.kill()
    os.remove(qmp)
    t0 = time.monotonic()
    vm = Vmm(QEMU + ["-incoming", "exec:cat " + image, "-qmp", "unix:" + qmp + ",server=on,wait=off"])
    try:
        continue_when_loaded(Qmp(qmp))
        vm.wait_for("tick ")
        restore = time.monotonic() - t0
    finally:
        vm.kill()
    os.remove(qmp)
    vm = Vmm(QEMU + ["-incoming", "defer", "-qmp", "unix:" + qmp + ",server=on,wait=off"])
    try:
        q = Qmp(qmp)
        time.sleep(0.5)
        mark = vm.mark()
        t0 = time.monotonic()
        q.run("migrate-incoming", uri="exec:cat " + image)
        continue_when_loaded(q)
        vm.wait_for("tick ", after=mark)
        load = time.monotonic() - t0
    finally:
        vm.kill()
    return {"create": create, "restore": restore, "load": load}


def main():
    work = tempfile.mkdtemp(prefix="snapshot-vs-qemu-")
    p_all, q_all = [], []
    try:
        for i in range(1, ROUNDS + 1):
            if i % 2:
                p = panamax_round(work); q = qemu_round(work)
            else:
                q = qemu_round(work); p = panamax_round(work)
            p_all.append(p)
            q_all.append(q)
            print("round %d: Panamax %s | QEMU %s" % (i, fmt(p), fmt(q)), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("median of %d:" % ROUNDS)
    for key in ("create", "restore", "load"):
        pm = statistics.median(r[key] for r in p_all) * 1000
        qm = statistics.median(r[key] for r in q_all) * 1000
        print("  %-8s Panamax %7.0f ms, QEMU %7.0f ms, ratio Panamax/QEMU %.2f" % (key, pm, qm, pm / qm))
    pe = statistics.median(r["restore-eager"] for r in p_all) * 1000
    print("  Panamax eager restore %.0f ms; VMM RSS after the first console line: lazy %d MiB, eager %d MiB" % (
        pe, statistics.median(r["rss-restore"] for r in p_all), statistics.median(r["rss-restore-eager"] for r in p_all)))


def fmt(r):
    return ", ".join("%s %.0f%s" % (k, v * 1000 if not k.startswith("rss") else v, "" if k.startswith("rss") else " ms")
                     for k, v in r.items())


if __name__ == "__main__":
    main()
