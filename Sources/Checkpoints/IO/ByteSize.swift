import Foundation

/// Sizes written as text: `2G`, `500MB`, `1.5GiB`, `20K`, `123`.
///
/// As in huggingface_hub's `parse_size_to_int`: K/M/G/T (with or without a trailing B) are
/// powers of 1000, KiB/MiB/GiB/TiB powers of 1024. Case-insensitive.
public enum ByteSize {
    public static func parse(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [
            ("KIB", 1024), ("MIB", 1024 * 1024), ("GIB", 1024 * 1024 * 1024), ("TIB", 1024 * 1024 * 1024 * 1024),
            ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
            ("K", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("B", 1),
        ]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), v > 0 else { return nil }
            let bytes = v * scale
            return bytes < Double(Int.max) ? Int(bytes) : nil
        }
        guard let v = Int(t), v > 0 else { return nil }
        return v
    }

    /// `1234567` → `1.23 MB` (decimal units, as the parser reads them).
    public static func format(_ bytes: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var v = Double(bytes)
        var i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return i == 0 ? "\(bytes) B" : String(format: "%.2f %@", v, units[i])
    }
}
