package dev.panamax.devices;

import dev.panamax.vm.AddressBus;
import dev.panamax.vm.InterruptLine;
import dev.panamax.vm.PortIoDevice;
import dev.panamax.vm.Vm;
import dev.panamax.vm.VmExit;
import java.io.OutputStream;
import java.util.function.Consumer;
import java.util.function.IntFunction;

/**
 * The legacy PC devices a Linux guest expects, at their standard ports: COM1 (0x3F8, IRQ 4), the
 * i8042 (0x60 and 0x64, IRQ 1), the CMOS RTC (0x70-0x71, no interrupts), the boot timer (0x440)
 * and a POST-code sink (0x80). The PIT and PIC ports are left to KVM's in-kernel devices.
 *
 * @param com1 the serial console
 * @param i8042 the PS/2 controller, for {@link I8042#sendCtrlAltDel()}
 * @param rtc the CMOS clock
 * @param bootTimer the guest's time-to-user-space mark
 * @param postCodes the last POST code written
 */
public record LegacyPlatform(Uart16550 com1, I8042 i8042, CmosRtc rtc, BootTimer bootTimer, PostCodePort postCodes) {

    /**
     * Registers the devices on {@code vm}, whose in-kernel irqchip must exist before the guest
     * runs. Console output is flushed when the VM closes.
     *
     * @param console where the guest's serial output goes, or null to discard it; not closed here
     */
    public static LegacyPlatform install(Vm vm, OutputStream console) {
        LegacyPlatform platform = install(vm.ports(), vm::interruptLine, vm::requestExit, console);
        vm.closeOnExit(platform.com1()::flush);
        return platform;
    }

    /**
     * Registers the devices on a port bus.
     *
     * @param irqs the interrupt line for an ISA IRQ number
     * @param exits receives the guest's reset request
     * @throws IllegalArgumentException when a port is already taken
     */
    public static LegacyPlatform install(AddressBus<PortIoDevice> ports, IntFunction<InterruptLine> irqs,
            Consumer<VmExit> exits, OutputStream console) {
        LegacyPlatform platform = new LegacyPlatform(
                new Uart16550(irqs.apply(Uart16550.COM1_IRQ), console),
                new I8042(irqs.apply(I8042.KEYBOARD_IRQ), exits),
                new CmosRtc(),
                new BootTimer(),
                new PostCodePort());
        ports.register(Uart16550.COM1_PORT, Uart16550.PORT_COUNT, platform.com1(), "COM1 (16550A UART)");
        ports.register(I8042.DATA_PORT, 1, platform.i8042().dataPort(), "i8042 data");
        ports.register(I8042.COMMAND_PORT, 1, platform.i8042().commandPort(), "i8042 command/status");
        ports.register(CmosRtc.PORT, CmosRtc.PORT_COUNT, platform.rtc(), "CMOS RTC");
        ports.register(BootTimer.PORT, BootTimer.PORT_COUNT, platform.bootTimer(), "boot timer");
        ports.register(PostCodePort.PORT, PostCodePort.PORT_COUNT, platform.postCodes(), "POST code port");
        return platform;
    }
}
