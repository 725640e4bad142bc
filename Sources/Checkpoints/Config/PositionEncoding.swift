import Foundation

/// How one layer encodes positions.
public enum PositionEncoding: String, Sendable, Equatable {
    /// Rotary position embedding on q and k.
    case rope
    /// No position encoding (NoPE): position comes only from the causal mask.
    case none
}

/// A per-layer position-encoding pattern written as text, as the `--position` option and the
/// `nopekit_position` field of `config.json` take it:
///
/// - `none`: every layer is NoPE.
/// - `rope`: every layer uses RoPE.
/// - `every:N`: every N-th layer is NoPE (layers N-1, 2N-1, …, 0-based) and the rest RoPE,
///   the SmolLM3 / Llama 4 pattern (`every:4`).
/// - `layers:3,7,…`: the listed layers (0-based) are NoPE and the rest RoPE.
public struct PositionSpec: Equatable, Sendable, CustomStringConvertible {
    public enum Pattern: Equatable, Sendable {
        case all(PositionEncoding)
        case everyNth(Int)
        case nopeLayers([Int])
    }

    public let pattern: Pattern

    public init(pattern: Pattern) { self.pattern = pattern }

    /// Parses the text form; the error says which forms exist.
    public init(parsing text: String) throws {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        switch t {
        case "none", "nope": pattern = .all(.none)
        case "rope": pattern = .all(.rope)
        default:
            if t.hasPrefix("every:"), let n = Int(t.dropFirst(6)), n >= 1 {
                pattern = .everyNth(n)
            } else if t.hasPrefix("layers:") {
                let items = t.dropFirst(7).split(separator: ",", omittingEmptySubsequences: false)
                let layers = items.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !items.isEmpty, layers.count == items.count, layers.allSatisfy({ $0 >= 0 }) else {
                    throw PositionSpecError.invalid(text)
                }
                pattern = .nopeLayers(Array(Set(layers)).sorted())
            } else {
                throw PositionSpecError.invalid(text)
            }
        }
    }

    /// The encoding of each of `layerCount` layers. Fails if a listed layer does not exist.
    public func resolve(layerCount: Int) throws -> [PositionEncoding] {
        switch pattern {
        case .all(let e): return Array(repeating: e, count: layerCount)
        case .everyNth(let n): return (0..<layerCount).map { ($0 + 1) % n == 0 ? .none : .rope }
        case .nopeLayers(let list):
            if let bad = list.first(where: { $0 >= layerCount }) {
                throw PositionSpecError.layerOutOfRange(layer: bad, layerCount: layerCount)
            }
            let set = Set(list)
            return (0..<layerCount).map { set.contains($0) ? .none : .rope }
        }
    }

    public var description: String {
        switch pattern {
        case .all(let e): return e.rawValue
        case .everyNth(let n): return "every:\(n)"
        case .nopeLayers(let l): return "layers:" + l.map(String.init).joined(separator: ",")
        }
    }

    /// The shortest spec text describing `layers`.
    public static func describe(_ layers: [PositionEncoding]) -> String {
        if layers.allSatisfy({ $0 == .none }) { return "none" }
        if layers.allSatisfy({ $0 == .rope }) { return "rope" }
        for n in 2...max(2, layers.count) where (try? PositionSpec(pattern: .everyNth(n)).resolve(layerCount: layers.count)) == layers {
            return "every:\(n)"
        }
        return "layers:" + layers.indices.filter { layers[$0] == .none }.map(String.init).joined(separator: ",")
    }
}

public enum PositionSpecError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case layerOutOfRange(layer: Int, layerCount: Int)

    public var description: String {
        switch self {
        case .invalid(let t):
            return "invalid position pattern '\(t)': use none, rope, every:N (every N-th layer NoPE) or layers:3,7,… (these layers NoPE, 0-based)"
        case .layerOutOfRange(let l, let n):
            return "position pattern names layer \(l) but the model has \(n) layers (0…\(n - 1))"
        }
    }
}
