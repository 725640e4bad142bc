/// Scaling one weight row by λ in place, by editing stored scale fields only.
///
/// This is how a per-head temperature is baked into an already-quantised `attn_q.weight`: a
/// ggml row is whole blocks, and every block's values are its scale fields times fixed codes,
/// so multiplying `d` (and the min term `m`/`dmin`, which scales with the values) by λ multiplies
/// every dequantised value of the row by λ, up to the fp16 rounding of the new fields
/// (formats.md §2.7). Codes are never touched, so no requantisation error is added.
public enum RowScaling {
    /// What a scaling did.
    public struct Report: Equatable, Sendable {
        /// Largest relative change the storage rounding introduced in any edited field (or
        /// element, for plain types): |stored − λ·old| / |λ·old|. 0 for exact cases (λ = 2^k
        /// within range).
        public var worstRelativeError: Double
        /// Fields (or elements) edited.
        public var edits: Int

        public static let none = Report(worstRelativeError: 0, edits: 0)

        public func merged(_ other: Report) -> Report {
            Report(worstRelativeError: max(worstRelativeError, other.worstRelativeError), edits: edits + other.edits)
        }
    }

    /// Byte offsets of the fp16 fields that scale with the values, per block.
    static func halfFields(_ type: GGMLType) -> [Int]? {
        switch type {
        case .q4_0, .q5_0, .q8_0, .iq2_XXS, .iq2_XS, .iq2_S, .iq3_XXS, .iq3_S, .iq1_S, .iq4_NL, .iq4_XS, .q1_0, .q2_0:
            return [0]
        case .q4_1, .q5_1, .q8_1, .q4_K, .q5_K: return [0, 2]
        case .q2_K: return [80, 82]
        case .q3_K: return [108]
        case .q6_K: return [208]
        case .tq1_0: return [52]
        case .tq2_0: return [64]
        default: return nil
        }
    }

    /// Multiplies every value of the row at `row` (`elements` values of `type`) by `lambda`.
    /// Throws, leaving the row unchanged, for the cases that are impossible without
    /// requantising: a field that would overflow fp16, or a non-power-of-two λ for MXFP4/NVFP4.
    @discardableResult
    public static func scaleRow(_ row: UnsafeMutableRawPointer, elements: Int, type: GGMLType, by lambda: Float) throws -> Report {
        guard lambda.isFinite, lambda > 0 else { throw QuantError.cannotScale(type: type, reason: "λ must be finite and positive, got \(lambda)") }
        guard let rowBytes = type.rowBytes(elements: elements) else { throw QuantError.partialBlock(type: type, elements: elements) }
        let blocks = rowBytes / type.blockBytes
        let l = Double(lambda)
        // Validate every edit before writing any, so a refusal leaves the row untouched.
        switch type {
        case .f32:
            var report = Report.none
            for i in 0..<elements {
                let old = Double(row.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
                let new = Float(old * l)
                guard new.isFinite || !old.isFinite else {
                    throw QuantError.cannotScale(type: type, reason: "element \(i) (\(old)) × \(lambda) overflows F32")
                }
                report = report.merged(Report(worstRelativeError: relative(Double(new), old * l), edits: 1))
            }
            // Validated above: now write (F32·λ rounds exactly as Float multiplication does).
            for i in 0..<elements {
                row.storeBytes(of: row.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) * lambda, toByteOffset: 4 * i, as: Float.self)
            }
            return report
        case .f64:
            for i in 0..<elements {
                let old = row.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
                row.storeBytes(of: old * l, toByteOffset: 8 * i, as: Double.self)
            }
            return Report(worstRelativeError: 0x1p-53, edits: elements)
        case .f16, .bf16:
            // The product in F32, then rounded to the stored type: what numpy's
            // (w.astype(float32) * s).astype(float16) and torch's bf16 cast compute.
            let half = type == .f16
            var updates = [UInt16](repeating: 0, count: elements)
            var worst = 0.0
            for i in 0..<elements {
                let bits = row.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                let old = half ? Float(Float16(bitPattern: bits)) : ElementConversion.bf16ToF32(bits)
                let product = old * lambda
                let newBits = half ? Float16(product).bitPattern : ElementConversion.f32ToBF16(product)
                let new = half ? Double(Float16(bitPattern: newBits)) : Double(ElementConversion.bf16ToF32(newBits))
                guard new.isFinite || !old.isFinite else {
                    throw QuantError.cannotScale(type: type, reason: "element \(i) (\(old)) × \(lambda) overflows \(type.name)")
                }
                updates[i] = newBits
                worst = max(worst, relative(new, Double(old) * l))
            }
            updates.withUnsafeBytes { row.copyMemory(from: $0.baseAddress!, byteCount: 2 * elements) }
            return Report(worstRelativeError: worst, edits: elements)
        case .q8_K:
            for b in 0..<blocks {
                let o = b * type.blockBytes
                row.storeBytes(of: Float(Double(row.loadUnaligned(fromByteOffset: o, as: Float.self)) * l), toByteOffset: o, as: Float.self)
            }
            return Report(worstRelativeError: 0x1p-24, edits: blocks)
        case .mxfp4:
            let k = try powerOfTwo(lambda, type)
            for b in 0..<blocks {
                let e = Int(row.load(fromByteOffset: b * type.blockBytes, as: UInt8.self)) + k
                guard (0...254).contains(e) else {
                    throw QuantError.cannotScale(type: type, reason: "block \(b): shared exponent would leave 0…254")
                }
            }
            for b in 0..<blocks {
                let o = b * type.blockBytes
                row.storeBytes(of: UInt8(Int(row.load(fromByteOffset: o, as: UInt8.self)) + k), toByteOffset: o, as: UInt8.self)
            }
            return Report(worstRelativeError: 0, edits: blocks)
        case .nvfp4:
            let k = try powerOfTwo(lambda, type)
            var edits = 0
            for pass in 0..<2 {
                for b in 0..<blocks {
                    for s in 0..<4 {
                        let o = b * type.blockBytes + s
                        let code = row.load(fromByteOffset: o, as: UInt8.self)
                        if code == 0 || code == 0x7F { continue }  // zero scale: stays zero
                        let exponent = Int((code >> 3) & 0xF) + k
                        guard (code >> 3) & 0xF != 0, (1...15).contains(exponent), !(exponent == 15 && code & 7 == 7) else {
                            throw QuantError.cannotScale(type: type, reason: "block \(b) scale \(s): E4M3 exponent leaves the normal range")
                        }
                        if pass == 1 {
                            row.storeBytes(of: (code & 0x87) | UInt8(exponent) << 3, toByteOffset: o, as: UInt8.self)
                            edits += 1
                        }
                    }
                }
            }
            return Report(worstRelativeError: 0, edits: edits)
        case .iq1_M:
            var halves: [UInt16] = []
            var report = Report.none
            for b in 0..<blocks {
                let sc = row + b * type.blockBytes + 48
                let s = (0..<4).map { sc.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self) }
                let old = (s[0] >> 12) | ((s[1] >> 8) & 0x00F0) | ((s[2] >> 4) & 0x0F00) | (s[3] & 0xF000)
                let (new, r) = try scaledHalf(old, l, type: type, block: b)
                halves.append(new)
                report = report.merged(r)
            }
            for (b, new) in halves.enumerated() {
                let sc = row + b * type.blockBytes + 48
                for i in 0..<4 {
                    let v = sc.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                    sc.storeBytes(of: (v & 0x0FFF) | ((new >> UInt16(4 * i)) & 0xF) << 12, toByteOffset: 2 * i, as: UInt16.self)
                }
            }
            return report
        case .i8, .i16, .i32, .i64:
            throw QuantError.cannotScale(type: type, reason: "integer tensors hold no weights to scale")
        default:
            guard let fields = halfFields(type) else { throw QuantError.cannotScale(type: type, reason: "no scale field known") }
            var updates: [(Int, UInt16)] = []
            var report = Report.none
            for b in 0..<blocks {
                for f in fields {
                    let o = b * type.blockBytes + f
                    let (new, r) = try scaledHalf(row.loadUnaligned(fromByteOffset: o, as: UInt16.self), l, type: type, block: b)
                    updates.append((o, new))
                    report = report.merged(r)
                }
            }
            for (o, v) in updates { row.storeBytes(of: v, toByteOffset: o, as: UInt16.self) }
            return report
        }
    }

    /// Why rows of `type` cannot be scaled by `lambda` whatever their contents, or nil. (A scale
    /// field that would overflow is found only while scaling.)
    public static func refusal(_ type: GGMLType, by lambda: Float) -> String? {
        switch type {
        case .f32, .f64, .f16, .bf16, .q8_K, .iq1_M: return nil
        case .mxfp4, .nvfp4:
            return lambda.significandBitPattern == 0 && lambda.isNormal ? nil
                : "\(type.name) stores power-of-two scales only; λ = \(lambda) would need requantising"
        case .i8, .i16, .i32, .i64: return "integer tensors hold no weights to scale"
        default: return halfFields(type) == nil ? "no scale field known for \(type.name)" : nil
        }
    }

    /// fp16(λ·old), refusing overflow; λ·old is exact in Double, so this rounds once.
    static func scaledHalf(_ bits: UInt16, _ lambda: Double, type: GGMLType, block: Int) throws -> (UInt16, Report) {
        let old = Double(Float16(bitPattern: bits))
        guard old.isFinite else { throw QuantError.cannotScale(type: type, reason: "block \(block) holds a non-finite scale") }
        let target = old * lambda
        let new = Float16(target)
        guard new.isFinite else {
            throw QuantError.cannotScale(type: type, reason: "block \(block): scale \(old) × \(lambda) overflows fp16 (max 65504)")
        }
        return (new.bitPattern, Report(worstRelativeError: relative(Double(new), target), edits: 1))
    }

    static func relative(_ stored: Double, _ exact: Double) -> Double {
        exact == 0 ? (stored == 0 ? 0 : .infinity) : abs(stored - exact) / abs(exact)
    }

    static func powerOfTwo(_ lambda: Float, _ type: GGMLType) throws -> Int {
        guard lambda.significandBitPattern == 0, lambda.isNormal else {
            throw QuantError.cannotScale(type: type, reason: "\(type.name) stores power-of-two scales only; λ = \(lambda) would need requantising")
        }
        return Int(lambda.exponent)
    }
}
