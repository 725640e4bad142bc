import Foundation

/// AdamW with decoupled weight decay (Loshchilov & Hutter), global gradient-norm clipping and a
/// linear-warmup, cosine-decay learning rate, as `torch.optim.AdamW` and
/// `clip_grad_norm_` compute them:
///
///     g ← g · min(1, clip / ‖g‖)
///     p ← p − lr·wd·p                      (2-D weights only; norms are not decayed)
///     m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
///     p ← p − lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + ε)
public final class AdamW {
    public struct Settings: Sendable, Equatable {
        public var learningRate: Double = 2e-3
        public var beta1: Double = 0.9
        public var beta2: Double = 0.95
        public var epsilon: Double = 1e-8
        public var weightDecay: Double = 0.1
        public var clipNorm: Double = 1.0
        public var warmupSteps: Int = 100
        public var totalSteps: Int = 3000
        /// The cosine ends at this fraction of the peak rate.
        public var minimumFraction: Double = 0.1
        public init() {}
    }

    public let settings: Settings
    public private(set) var step = 0
    var m: Parameters
    var v: Parameters

    public init(like p: Parameters, settings: Settings) {
        self.settings = settings
        m = Parameters(zerosLike: p)
        v = Parameters(zerosLike: p)
    }

    /// The learning rate of (1-based) step `t`.
    public static func learningRate(step t: Int, _ s: Settings) -> Double {
        if t <= s.warmupSteps { return s.learningRate * Double(t) / Double(max(1, s.warmupSteps)) }
        let progress = min(1, Double(t - s.warmupSteps) / Double(max(1, s.totalSteps - s.warmupSteps)))
        let cosine = 0.5 * (1 + cos(Double.pi * progress))
        return s.learningRate * (s.minimumFraction + (1 - s.minimumFraction) * cosine)
    }

    /// Applies one update; returns the learning rate used and the gradient norm before clipping.
    @discardableResult
    public func update(_ p: inout Parameters, gradients g: Parameters) -> (learningRate: Double, gradientNorm: Double) {
        step += 1
        let s = settings
        let lr = Self.learningRate(step: step, s)
        let names = p.tensorList.map(\.name)
        var sumSquares = 0.0
        for name in names { for x in g.tensor(name) ?? [] { sumSquares += Double(x) * Double(x) } }
        let norm = sumSquares.squareRoot()
        let clip = Self.clipFactor(norm: norm, s)
        for (name, shape) in p.tensorList {
            guard let grad = g.tensor(name) else { continue }
            let decay = shape.count >= 2 ? lr * s.weightDecay : 0
            m.withTensor(name) { mt in
                v.withTensor(name) { vt in
                    p.withTensor(name) { pt in
                        Self.updateElements(&pt, grad, &mt, &vt, clip: clip, learningRate: lr, decay: decay, step: step, s)
                    }
                }
            }
        }
        return (lr, norm)
    }

    /// The update of one tensor (every optimiser in nopekit runs this loop):
    ///     m ← β1·m + (1−β1)·g·clip,  v ← β2·v + (1−β2)·(g·clip)²,
    ///     p ← p·(1 − decay) − lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + ε)
    public static func updateElements(_ p: inout [Float], _ g: [Float], _ m: inout [Float], _ v: inout [Float], clip: Double,
                                      learningRate lr: Double, decay: Double, step: Int, _ s: Settings) {
        let c1 = 1 - pow(s.beta1, Double(step)), c2 = 1 - pow(s.beta2, Double(step))
        for i in 0..<p.count {
            let gi = Double(g[i]) * clip
            let mi = s.beta1 * Double(m[i]) + (1 - s.beta1) * gi
            let vi = s.beta2 * Double(v[i]) + (1 - s.beta2) * gi * gi
            m[i] = Float(mi)
            v[i] = Float(vi)
            var w = Double(p[i]) * (1 - decay)
            w -= lr * (mi / c1) / ((vi / c2).squareRoot() + s.epsilon)
            p[i] = Float(w)
        }
    }

    /// The clipping factor torch's `clip_grad_norm_` applies for a gradient of norm `norm`.
    public static func clipFactor(norm: Double, _ s: Settings) -> Double { min(1, s.clipNorm / (norm + 1e-6)) }

    /// Optimiser state for a checkpoint: first and second moments, step.
    public var state: (step: Int, m: Parameters, v: Parameters) { (step, m, v) }

    public func restore(step: Int, m: Parameters, v: Parameters) {
        self.step = step
        self.m = m
        self.v = v
    }
}
