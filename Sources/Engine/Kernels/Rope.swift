import Checkpoints
import Foundation

/// Rotary position embedding as Hugging Face applies it (`rotate_half`): within the first
/// `rotaryDim` dims of a head, dim i pairs with dim i + rotaryDim/2 at angle pos · invFreq[i];
/// the remaining dims pass through (partial rotary). The frequency formulas for the default,
/// `linear`, `llama3` and `yarn` scalings follow transformers' `modeling_rope_utils.py`, in
/// Double; YaRN's attention factor scales cos and sin.
public struct Rope: Sendable {
    public let rotaryDim: Int
    public let invFreq: [Double]
    /// Multiplies cos and sin (YaRN's mscale; 1 otherwise).
    public let attentionFactor: Double

    public init(config: ModelConfig) {
        let rp = config.rope
        let dim = Int(Double(config.headDim) * rp.partialRotaryFactor)
        rotaryDim = dim
        let base = rp.theta
        var inv = stride(from: 0, to: dim, by: 2).map { 1 / pow(base, Double($0) / Double(dim)) }
        var attention = 1.0
        let factor = rp.factor ?? 1
        switch rp.scalingType {
        case "linear":
            inv = inv.map { $0 / factor }
        case "llama3":
            let old = Double(rp.originalMaxPositionEmbeddings ?? 8192)
            let low = rp.lowFreqFactor ?? 1, high = rp.highFreqFactor ?? 4
            let lowWavelen = old / low, highWavelen = old / high
            inv = inv.map { f in
                let wavelen = 2 * Double.pi / f
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / factor }
                let smooth = (old / wavelen - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
        case "yarn":
            let original = Double(rp.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings ?? 2048)
            func mscale(_ s: Double) -> Double { s <= 1 ? 1 : 0.1 * log(s) + 1 }
            attention = rp.attentionFactor ?? mscale(factor)
            let betaFast = rp.betaFast ?? 32, betaSlow = rp.betaSlow ?? 1
            func correctionDim(_ rotations: Double) -> Double {
                Double(dim) * log(original / (rotations * 2 * Double.pi)) / (2 * log(base))
            }
            let low = max(floor(correctionDim(betaFast)), 0)
            var high = min(ceil(correctionDim(betaSlow)), Double(dim - 1))
            if low == high { high += 0.001 }
            inv = inv.enumerated().map { i, f in
                // transformers builds the ramp in float32.
                let ramp = Double(min(max(Float((Double(i) - low) / (high - low)), 0), 1))
                let extrapolation = 1 - ramp
                return (f / factor) * (1 - extrapolation) + f * extrapolation
            }
        default:
            break
        }
        invFreq = inv
        attentionFactor = attention
    }

    /// cos and sin tables for positions 0..<count: [count, rotaryDim/2] each.
    public func tables(count: Int) -> (cos: [Float], sin: [Float]) {
        let half = rotaryDim / 2
        var c = [Float](repeating: 0, count: count * half), s = c
        for p in 0..<count {
            for i in 0..<half {
                let angle = Double(p) * invFreq[i]
                c[p * half + i] = Float(cos(angle) * attentionFactor)
                s[p * half + i] = Float(sin(angle) * attentionFactor)
            }
        }
        return (c, s)
    }

    /// Rotates `heads` heads of width `headDim` for each of `rows` positions in place:
    /// x is [rows, heads, headDim], position of row r is `start + r`.
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headDim: Int, start: Int,
                      cos: [Float], sin: [Float]) {
        let half = rotaryDim / 2
        for r in 0..<rows {
            let p = start + r
            for h in 0..<heads {
                let v = x + (r * heads + h) * headDim
                for i in 0..<half {
                    let c = cos[p * half + i], s = sin[p * half + i]
                    let a = v[i], b = v[i + half]
                    v[i] = a * c - b * s
                    v[i + half] = b * c + a * s
                }
            }
        }
    }
}
