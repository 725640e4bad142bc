import Testing
@testable import Checkpoints

@Suite struct ElementConversionTests {
    @Test func bf16RoundsToNearestEven() {
        // 1 + 2^-8 is exactly halfway between two BF16 values: ties go to the even one (1.0).
        #expect(ElementConversion.f32ToBF16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        // Halfway above an odd mantissa rounds up.
        #expect(ElementConversion.f32ToBF16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        // Just above halfway rounds up.
        #expect(ElementConversion.f32ToBF16(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        // Overflow to infinity, infinities kept, NaN quiet with its sign.
        #expect(ElementConversion.f32ToBF16(Float(bitPattern: 0x7F7F_FFFF)) == 0x7F80)
        #expect(ElementConversion.f32ToBF16(-.infinity) == 0xFF80)
        #expect(ElementConversion.f32ToBF16(.nan) == 0x7FC0)
        #expect(ElementConversion.f32ToBF16(-Float.nan) == 0xFFC0)
        #expect(ElementConversion.f32ToBF16(Float(bitPattern: 0x7F80_0001)) == 0x7FC0)  // signalling NaN stays NaN
    }

    @Test func bf16WideningIsExactForEveryPattern() {
        for bits in 0...UInt16.max {
            let f = ElementConversion.bf16ToF32(bits)
            if f.isNaN { continue }
            #expect(ElementConversion.f32ToBF16(f) == bits)
        }
    }

    @Test func f16RoundTripsEveryNonNaNPattern() {
        for bits in 0...UInt16.max {
            let f = ElementConversion.f16ToF32(bits)
            if f.isNaN { #expect(Float16(bitPattern: bits).isNaN); continue }
            #expect(ElementConversion.f32ToF16(f) == bits)
        }
    }

    @Test func f8SpotValues() {
        #expect(ElementConversion.f8ToF32(.f8e4m3, 0x38) == 1.0)
        #expect(ElementConversion.f8ToF32(.f8e4m3, 0x7E) == 448)
        #expect(ElementConversion.f8ToF32(.f8e4m3, 0x7F).isNaN)
        #expect(ElementConversion.f8ToF32(.f8e4m3, 0x01) == 0.001953125)  // 2^-9, smallest subnormal
        #expect(ElementConversion.f8ToF32(.f8e5m2, 0x3C) == 1.0)
        #expect(ElementConversion.f8ToF32(.f8e5m2, 0x7C) == .infinity)
        #expect(ElementConversion.f8ToF32(.f8e8m0, 127) == 1.0)
        #expect(ElementConversion.f8ToF32(.f8e8m0, 0) == Float(sign: .plus, exponent: -127, significand: 1))
        #expect(ElementConversion.f8ToF32(.f8e8m0, 0xFF).isNaN)
        #expect(ElementConversion.f8ToF32(.f8e4m3fnuz, 0x80).isNaN)
        #expect(ElementConversion.f8ToF32(.f8e4m3fnuz, 0x40) == 1.0)
        #expect(ElementConversion.f8ToF32(.f8e5m2fnuz, 0x40) == 1.0)
        #expect(ElementConversion.f8ToF32(.f8e5m2fnuz, 0x7F) == 57344)
    }

    @Test func packedTypesAreRecognisedButNotDecoded() throws {
        var out = [Float](repeating: 0, count: 2)
        let bytes: [UInt8] = [0x12]
        for t in [DType.f4, .f6e2m3, .f6e3m2, .c64] {
            #expect(throws: ElementConversionError.notDecodable(t)) {
                try bytes.withUnsafeBytes { try ElementConversion.decode(t, from: $0.baseAddress!, count: 1, into: &out) }
            }
        }
        #expect(throws: ElementConversionError.notEncodable(.f8e4m3)) {
            try out.withUnsafeBufferPointer { try ElementConversion.encode($0.baseAddress!, count: 1, as: .f8e4m3, into: UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)) }
        }
    }
}
