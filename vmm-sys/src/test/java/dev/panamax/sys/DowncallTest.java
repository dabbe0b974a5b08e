package dev.panamax.sys;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.FunctionDescriptor;
import java.util.NoSuchElementException;
import org.junit.jupiter.api.Test;

class DowncallTest {
    @Test
    void aFunctionIsLinkedOnceAtItsFirstUseAndCallsTheCFunction() throws Throwable {
        Downcall getpid = new Downcall("getpid", FunctionDescriptor.of(JAVA_INT));
        assertThat(getpid.available()).isTrue();
        assertThat(getpid.handle()).isSameAs(getpid.handle());
        assertThat((int) getpid.handle().invokeExact()).isEqualTo((int) ProcessHandle.current().pid());
    }

    @Test
    void aFunctionThisCLibraryLacksIsUnavailableAndLinkAllPassesOverIt() {
        Downcall missing = new Downcall("panamax_no_such_function", FunctionDescriptor.of(JAVA_INT));
        assertThat(missing.available()).isFalse();
        assertThatThrownBy(missing::handle).isInstanceOf(NoSuchElementException.class);
        Libc.linkAll();
    }
}
