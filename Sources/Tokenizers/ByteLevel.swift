/// GPT-2's reversible byte ↔ character map (`bytes_to_unicode`): printable bytes stand for
/// themselves, the other 68 bytes are shifted to U+0100 and up, so every byte sequence is a
/// string of visible characters that BPE can merge.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    static let scalarToByte: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s] = UInt8(b) }
        return map
    }()

    /// The UTF-8 bytes of `text`, each as its stand-in character.
    static func encode(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for b in text.utf8 { out.append(byteToScalar[Int(b)]) }
        return String(out)
    }

    /// Stand-in characters back to bytes (characters outside the map are kept as UTF-8).
    static func decode(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for s in text.unicodeScalars {
            if let b = scalarToByte[s] { bytes.append(b) } else { bytes.append(contentsOf: Array(String(s).utf8)) }
        }
        return bytes
    }
}
