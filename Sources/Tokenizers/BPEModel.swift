/// Byte-pair encoding of one pre-tokenized word (HF tokenizers `models/bpe/word.rs`).
///
/// The word starts as its characters (Unicode scalars); a character missing from the vocabulary
/// becomes its `<0xNN>` byte tokens when `byteFallback` is set, or the unknown token (runs of
/// unknowns fused into one when `fuseUnknown` is set). Then the adjacent pair with the lowest
/// merge rank is merged, leftmost first on ties, until no pair has a rank: a binary heap of
/// candidate merges, each checked for staleness when popped.
final class BPEModel {
    let vocab: [ExactKey: Int]
    let idToToken: [String]
    /// Merge rank of a pair of token ids, and the id the merge produces.
    let merges: [Pair: (rank: Int, id: Int)]
    let unknownID: Int?
    let byteFallback: Bool
    let fuseUnknown: Bool
    let ignoreMerges: Bool
    /// `<0xNN>` ids, when byte fallback is possible.
    let byteIDs: [Int]?
    /// Ids of the single-scalar tokens, by scalar value (the hot lookup of every word).
    let scalarIDs: [UInt32: Int]
    private var cache: [ExactKey: [Int]] = [:]

    struct Pair: Hashable { let a: Int, b: Int }

    /// `vocab` lists (token, id) pairs; the first id of a token wins if it repeats.
    init(vocab entries: [(String, Int)], merges: [(String, String)], unknown: String?, byteFallback: Bool,
         fuseUnknown: Bool, ignoreMerges: Bool, file: String) throws {
        self.vocab = Dictionary(entries.map { (ExactKey($0.0), $0.1) }, uniquingKeysWith: { a, _ in a })
        let vocab = self.vocab
        var ids = [String](repeating: "", count: (vocab.values.max() ?? -1) + 1)
        for (t, i) in vocab { ids[i] = t.text }
        idToToken = ids
        var table: [Pair: (Int, Int)] = [:]
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[ExactKey(a)], let ib = vocab[ExactKey(b)] else {
                throw TokenizerError.invalid(file: file, detail: "merge \"\(a) \(b)\" uses a token missing from the vocabulary")
            }
            guard let merged = vocab[ExactKey(a + b)] else {
                throw TokenizerError.invalid(file: file, detail: "merge \"\(a) \(b)\" produces \"\(a + b)\", missing from the vocabulary")
            }
            if table[Pair(a: ia, b: ib)] == nil { table[Pair(a: ia, b: ib)] = (rank, merged) }
        }
        self.merges = table
        unknownID = unknown.flatMap { vocab[ExactKey($0)] }
        self.byteFallback = byteFallback
        self.fuseUnknown = fuseUnknown
        self.ignoreMerges = ignoreMerges
        var single: [UInt32: Int] = [:]
        for (key, id) in vocab {
            var it = key.text.unicodeScalars.makeIterator()
            if let first = it.next(), it.next() == nil, single[first.value] == nil { single[first.value] = id }
        }
        scalarIDs = single
        let bytes = (0..<256).map { vocab[ExactKey(String(format: "<0x%02X>", $0))] }
        byteIDs = bytes.allSatisfy { $0 != nil } ? bytes.map { $0! } : nil
    }

    /// Token ids of one word (cached: real text repeats words constantly).
    func encode(_ word: String) -> [Int] {
        let key = ExactKey(word)
        if let hit = cache[key] { return hit }
        let ids = encodeUncached(word)
        if cache.count < 100_000 { cache[key] = ids }
        return ids
    }

    func encodeUncached(_ word: String) -> [Int] {
        if ignoreMerges, let id = vocab[ExactKey(word)] { return [id] }
        var symbols: [Int] = []
        var lastWasUnknown = false
        for scalar in word.unicodeScalars {
            if let id = scalarIDs[scalar.value] {
                symbols.append(id)
                lastWasUnknown = false
            } else if byteFallback, let bytes = byteIDs {
                for b in String(scalar).utf8 { symbols.append(bytes[Int(b)]) }
                lastWasUnknown = false
            } else if let unk = unknownID {
                if !(fuseUnknown && lastWasUnknown) { symbols.append(unk) }
                lastWasUnknown = true
            }
        }
        return mergeAll(symbols)
    }

    /// Repeatedly applies the lowest-rank merge (leftmost on ties).
    func mergeAll(_ initial: [Int]) -> [Int] {
        guard initial.count > 1 else { return initial }
        // Doubly linked list over positions; `id[p] == -1` marks a consumed symbol.
        var id = initial
        var prev = Array(-1..<(initial.count - 1))
        var next = Array(1...initial.count)
        next[initial.count - 1] = -1
        var heap = BinaryHeap<MergeCandidate>()
        for p in 0..<(initial.count - 1) {
            if let m = merges[Pair(a: id[p], b: id[p + 1])] { heap.push(MergeCandidate(rank: m.rank, pos: p, left: id[p], right: id[p + 1])) }
        }
        while let top = heap.pop() {
            let p = top.pos
            let q = next.indices.contains(p) ? next[p] : -1
            // Stale: the left symbol was merged away or changed, or the right one changed.
            guard id[p] == top.left, q >= 0, id[q] == top.right, let m = merges[Pair(a: top.left, b: top.right)] else { continue }
            id[p] = m.id
            id[q] = -1
            next[p] = next[q]
            if next[q] >= 0 { prev[next[q]] = p }
            if prev[p] >= 0, let left = merges[Pair(a: id[prev[p]], b: id[p])] {
                heap.push(MergeCandidate(rank: left.rank, pos: prev[p], left: id[prev[p]], right: id[p]))
            }
            if next[p] >= 0, let right = merges[Pair(a: id[p], b: id[next[p]])] {
                heap.push(MergeCandidate(rank: right.rank, pos: p, left: id[p], right: id[next[p]]))
            }
        }
        return id.filter { $0 >= 0 }
    }
}

/// A candidate merge: lowest rank first, leftmost on ties.
struct MergeCandidate: HeapOrdered {
    let rank: Int, pos: Int, left: Int, right: Int
    static func before(_ a: MergeCandidate, _ b: MergeCandidate) -> Bool { (a.rank, a.pos) < (b.rank, b.pos) }
}
