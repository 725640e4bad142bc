import Testing
@testable import Checkpoints

@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("2G", 2_000_000_000), ("2GB", 2_000_000_000), ("500mb", 500_000_000), ("20K", 20_000),
        ("4GiB", 4 * 1024 * 1024 * 1024), ("1.5G", 1_500_000_000), ("123", 123), ("64KiB", 65536),
    ])
    func parses(_ text: String, _ bytes: Int) { #expect(ByteSize.parse(text) == bytes) }

    @Test(arguments: ["", "G", "-1G", "0", "two gigs", "1.5"])
    func rejects(_ text: String) { #expect(ByteSize.parse(text) == nil) }
}
