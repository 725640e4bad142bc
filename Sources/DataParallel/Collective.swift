/// The ranks of a data-parallel job and the one collective nopekit needs: every rank's floats
/// gathered on every rank. The search's per-sequence gradients, verification's perplexity
/// batches, entropy batches and passkey prompts are all independent items: `map` deals them
/// out and hands every rank all results in item order, so each rank then reduces them in
/// exactly the order one process would, and the numbers do not depend on the rank count.
///
/// `SingleProcess` is the default everywhere: without `mpirun` nothing changes.
public protocol Collective: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// `local` of every rank, in rank order, on every rank.
    func allGather(_ local: [Float]) throws -> [[Float]]
    /// Prints `message` (naming this rank) and ends the whole job, so no other rank waits in
    /// a collective for this one (MPI_Abort). Only called with more than one rank.
    func abort(message: String) -> Never
}

extension Collective {
    /// Rank 0 writes outputs, prints progress and results.
    public var isLeader: Bool { rank == 0 }

    /// Ends the whole job after `error` on this rank.
    public func fail(_ error: any Error) -> Never { abort(message: "Error: \(error)") }

    /// `work(i)` for every i in 0..<count, item i on rank i % size, every result on every rank
    /// in item order. With one rank this is `(0..<count).map(work)`. A throw on any rank of
    /// several ends the job (`fail`): the others would otherwise wait for its items forever.
    public func map(_ count: Int, _ work: (Int) throws -> [Float]) throws -> [[Float]] {
        guard size > 1 else { return try (0..<count).map(work) }
        var results: [[Float]] = []
        results.reserveCapacity(count)
        for round in stride(from: 0, to: count, by: size) {
            let item = round + rank
            let local: [Float]
            do { local = item < count ? try work(item) : [] } catch { fail(error) }
            results += try allGather(local).prefix(min(size, count - round))
        }
        return results
    }
}

/// One process: rank 0 of 1.
public final class SingleProcess: Collective {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allGather(_ local: [Float]) throws -> [[Float]] { [local] }
    public func abort(message: String) -> Never { fatalError("SingleProcess.abort: \(message)") }
}

/// Doubles carried bit for bit through a Float collective (two Floats each: the high and low
/// 32 bits), so results gathered from ranks equal one process's to the last bit.
public enum FloatBits {
    public static func encode(_ values: [Double]) -> [Float] {
        values.flatMap { v -> [Float] in
            let bits = v.bitPattern
            return [Float(bitPattern: UInt32(truncatingIfNeeded: bits >> 32)), Float(bitPattern: UInt32(truncatingIfNeeded: bits))]
        }
    }

    public static func decode(_ floats: [Float]) -> [Double] {
        stride(from: 0, to: floats.count - 1, by: 2).map { i in
            Double(bitPattern: UInt64(floats[i].bitPattern) << 32 | UInt64(floats[i + 1].bitPattern))
        }
    }
}
