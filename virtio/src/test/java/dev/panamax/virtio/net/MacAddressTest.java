package dev.panamax.virtio.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class MacAddressTest {

    @Test
    void readsAndWritesColonSeparatedHex() {
        MacAddress mac = MacAddress.parse("52:54:00:12:34:5E");
        assertThat(mac.bits()).isEqualTo(0x52540012345eL);
        assertThat(mac.toString()).isEqualTo("52:54:00:12:34:5e");
        assertThat(mac.bytes()).containsExactly(0x52, 0x54, 0x00, 0x12, 0x34, 0x5e);
        assertThat(mac.locallyAdministered()).isTrue();
        assertThat(MacAddress.parse("00:1b:21:0a:0b:0c").locallyAdministered()).isFalse();
        assertThat(MacAddress.parse(mac.toString())).isEqualTo(mac);
    }

    @Test
    void refusesWhatIsNotSixPairsOfHexDigits() {
        for (String bad : new String[] {"", "52:54:00:12:34", "52:54:00:12:34:56:78", "52-54-00-12-34-56", "5254.0012.3456",
                "52:54:00:12:34:5", "52:54:00:12:34:567", "52:54:00:12:34:5g", "52:54:00:12::56", " 52:54:00:12:34:56"}) {
            assertThatThrownBy(() -> MacAddress.parse(bad)).as(bad).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("'" + bad + "' is not six pairs of hex digits");
        }
    }

    @Test
    void refusesMulticastAndZeroAddresses() {
        assertThatThrownBy(() -> MacAddress.parse("01:00:5e:00:00:01")).hasMessageContaining("is a multicast address");
        assertThatThrownBy(() -> MacAddress.parse("ff:ff:ff:ff:ff:ff")).hasMessageContaining("is a multicast address");
        assertThatThrownBy(() -> MacAddress.parse("00:00:00:00:00:00")).hasMessageContaining("not a usable address");
        assertThatThrownBy(() -> new MacAddress(1L << 48)).hasMessageContaining("48 bits");
    }

    @Test
    void randomAddressesAreLocallyAdministeredUnicastAndDiffer() {
        MacAddress first = MacAddress.random();
        for (int i = 0; i < 1000; i++) {
            MacAddress mac = MacAddress.random();
            assertThat(mac.locallyAdministered()).isTrue();
            assertThat(mac.bytes()[0] & 1).as("unicast").isZero();
        }
        assertThat(MacAddress.random()).isNotEqualTo(first); // equal once in 2^46
    }
}
