#!/usr/bin/env python3
"""The VMM's resident memory before and after its balloon takes half of a 256 MiB, 1-vCPU tiny
guest's memory: Panamax's virtio-balloon against QEMU's virtio-balloon-pci, same kernel, initramfs
and guest program, alternating rounds, medians and ratios. Where /dev/kvm is real KVM; here:

    ./panamax build && ./panamax run --timeout 1   (once: builds the guest and the rig's start-up cache)
    ./panamax rig -- python3 integration-tests/scripts/balloon-vs-qemu.py [ROUNDS]

Per round and VMM: the guest writes 160 MiB to its RAM-backed root and deletes it (so that its free
pages are resident in the VMM, as in a guest that ran a while), then idles; the VMM's VmRSS
(/proc/PID/status) is read ("before"); the balloon is set to 128 MiB (Panamax: PATCH /balloon
{"amount_mib": 128}; QEMU: QMP balloon to 128 MiB of guest memory) and followed until the guest's
driver reports it full (Panamax: GET /balloon/statistics actual_mib; QEMU: query-balloon), which is
the inflate time; VmRSS is read again ("after") two seconds later. "freed" is before - after.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

from peer_common import INITRD, KERNEL, Qmp, api, panamax, wait_until  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
GUEST_MIB = 256
BALLOON_MIB = 128
GUEST = "dd if=/dev/zero of=/fill bs=1M count=160 2>/dev/null; rm /fill; echo guest-filled; sleep 600"
CMDLINE = 'console=ttyS0 reboot=k panic=-1 tsc=reliable quiet panamax.run="' + GUEST + '"'


def panamax_argv(sock, log):
    return panamax("run", "--no-rig", "--memory", str(GUEST_MIB) + "M", "--cpus", "1", "--balloon", "0,stats=1", "--api-sock", sock,
                   "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", 'quiet panamax.run="' + GUEST + '"')


def qemu_argv(qmp, log):
    return ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", "pc", "-m", str(GUEST_MIB), "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-vga", "none", "-no-reboot", "-serial", "file:" + log, "-kernel", KERNEL,
            "-initrd", INITRD, "-append", CMDLINE, "-device", "virtio-balloon-pci", "-qmp", "unix:" + qmp + ",server=on,wait=off"]


def console_has(log, text):
    try:
        with open(log, errors="replace") as f:
            return text in f.read()
    except FileNotFoundError:
        return False


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS for process " + str(pid))


def measure(argv, log, inflate, inflated):
    """Starts a VMM, waits for the guest to have filled and freed its memory, inflates: (before, after, seconds)."""
    proc = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until("guest-filled on the console", lambda: console_has(log, "guest-filled"), 300)
        time.sleep(2)
        before = rss_mib(proc.pid)
        start = time.monotonic()
        inflate()
        wait_until("a full balloon", inflated, 300)
        seconds = time.monotonic() - start
        time.sleep(2)
        return before, rss_mib(proc.pid), seconds
    finally:
        proc.kill()
        proc.wait()


def panamax_round(work):
    sock = os.path.join(work, "p.sock")
    log = os.path.join(work, "p.log")
    for p in (sock, log):
        if os.path.exists(p):
            os.remove(p)
    return measure(panamax_argv(sock, log), log,
                   lambda: api(sock, "PATCH", "/balloon", {"amount_mib": BALLOON_MIB}),
                   lambda: api(sock, "GET", "/balloon/statistics")["actual_mib"] >= BALLOON_MIB)


def qemu_round(work):
    qmp_path = os.path.join(work, "q.qmp")
    log = os.path.join(work, "q.log")
    for p in (qmp_path, log):
        if os.path.exists(p):
            os.remove(p)
    qmp = []

    def inflate():
        qmp.append(Qmp(qmp_path))
        # QEMU's value is the guest's memory left, not the balloon's size.
        qmp[0].run("balloon", value=(GUEST_MIB - BALLOON_MIB) << 20)

    return measure(qemu_argv(qmp_path, log), log, inflate,
                   lambda: qmp[0].run("query-balloon")["actual"] <= (GUEST_MIB - BALLOON_MIB) << 20)


def main():
    work = tempfile.mkdtemp(prefix="balloon-vs-qemu-")
    results = {"Panamax": [], "QEMU": []}
    for i in range(1, ROUNDS + 1):
        order = [("Panamax", panamax_round), ("QEMU", qemu_round)]
        if i % 2 == 0:
            order.reverse()
        for name, round_ in order:
            before, after, seconds = round_(work)
            results[name].append((before, after, seconds))
            print("round %d %s: VmRSS before %.0f MiB, after %.0f MiB, freed %.0f MiB, inflate %.2f s"
                  % (i, name, before, after, before - after, seconds), flush=True)
    medians = {}
    for name, rows in results.items():
        medians[name] = [statistics.median(r[k] for r in rows) for k in range(3)]
        m = medians[name]
        print("median of %d, %s: VmRSS before %.0f MiB, after %.0f MiB, freed %.0f MiB, inflate %.2f s"
              % (ROUNDS, name, m[0], m[1], m[0] - m[1], m[2]))
    p, q = medians["Panamax"], medians["QEMU"]
    print("Panamax/QEMU: VmRSS after %.2f, freed %.2f, inflate time %.2f" % (p[1] / q[1], (p[0] - p[1]) / (q[0] - q[1]), p[2] / q[2]))


if __name__ == "__main__":
    main()
