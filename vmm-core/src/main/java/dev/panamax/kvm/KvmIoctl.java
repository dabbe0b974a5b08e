package dev.panamax.kvm;

import dev.panamax.sys.Libc;
import java.lang.foreign.MemorySegment;

/** KVM's ioctls, through libc's: a failure names the request as {@code <linux/kvm.h>} does. */
final class KvmIoctl {
    private KvmIoctl() {}

    static int call(int fd, long request) {
        return call(fd, request, 0L); // KVM rejects some requests (KVM_GET_API_VERSION) whose unused argument is not 0
    }

    static int call(int fd, long request, long arg) {
        return Libc.ioctl(fd, request, arg, KvmAbi.ioctlName(request));
    }

    static int call(int fd, long request, MemorySegment arg) {
        return Libc.ioctl(fd, request, arg, KvmAbi.ioctlName(request));
    }
}
