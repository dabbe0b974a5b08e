package dev.panamax.api;

/**
 * What guest memory is mapped from: ordinary pages (transparent huge pages where the host gives
 * them; the default) or the host's reserved hugetlb pages of one size, as Firecracker's {@code
 * huge_pages}. Huge pages must be reserved on the host beforehand ({@code echo N >
 * /proc/sys/vm/nr_hugepages} for 2 MiB pages), and the guest's memory must be a multiple of the
 * page size.
 */
public enum HugePages {
    /** Ordinary pages: Firecracker's {@code "None"}. */
    NONE("None"),
    /** 2 MiB hugetlb pages: Firecracker's {@code "2M"}. */
    SIZE_2M("2M"),
    /** 1 GiB hugetlb pages, where the host has them: a Panamax extension, {@code "1G"}. */
    SIZE_1G("1G");

    private final String label;

    HugePages(String label) {
        this.label = label;
    }

    /** As the config file and the API write it: {@code None}, {@code 2M}, {@code 1G}. */
    public String label() {
        return label;
    }
}
