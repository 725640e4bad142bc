/// SentencePiece-style BPE by piece scores, as llama.cpp tokenizes GGUF vocabularies of type
/// `llama` (`llm_tokenizer_spm`): the text is split into UTF-8 characters; the adjacent pair
/// whose concatenation is a vocabulary piece with the highest score is merged (leftmost on
/// ties) until none is left; a final symbol that is not a piece is re-split along the merges
/// that built it, and characters that are no piece become their `<0xNN>` byte tokens.
final class SentencePieceModel {
    /// Pieces by their UTF-8 bytes (slices compare byte for byte and cost no allocation).
    let pieceToID: [ArraySlice<UInt8>: Int]
    let scores: [Float]
    let byteIDs: [Int]?
    let unknownID: Int?
    /// The longest piece in bytes: no merge can produce anything longer.
    let maxPieceBytes: Int

    init(pieces: [String], scores: [Float], unknownID: Int?) {
        var map: [ArraySlice<UInt8>: Int] = [:]
        for (i, p) in pieces.enumerated() where map[ArraySlice(p.utf8)] == nil { map[ArraySlice(p.utf8)] = i }
        pieceToID = map
        maxPieceBytes = pieces.map(\.utf8.count).max() ?? 0
        self.scores = scores
        self.unknownID = unknownID
        let bytes = (0..<256).map { map[ArraySlice(String(format: "<0x%02X>", $0).utf8)] }
        byteIDs = bytes.allSatisfy { $0 != nil } ? bytes.map { $0! } : nil
    }

    private struct Symbol { var start: Int, length: Int, prev: Int, next: Int }
    /// A candidate merge: highest score first, leftmost on ties (llama.cpp's comparator).
    private struct Bigram: HeapOrdered {
        let left: Int, right: Int, score: Float, size: Int
        static func before(_ a: Bigram, _ b: Bigram) -> Bool { a.score > b.score || (a.score == b.score && a.left < b.left) }
    }

    /// Token ids of `text` (already whitespace-escaped to ▁ by the caller).
    func encode(_ input: String) -> [Int] {
        let bytes = Array(input.utf8)
        guard !bytes.isEmpty else { return [] }
        var symbols: [Symbol] = []
        var offset = 0
        while offset < bytes.count {
            let length = min(Self.utf8Length(bytes[offset]), bytes.count - offset)
            symbols.append(Symbol(start: offset, length: length, prev: symbols.count - 1,
                                  next: offset + length == bytes.count ? -1 : symbols.count + 1))
            offset += length
        }
        var queue = BinaryHeap<Bigram>()
        var reverseMerge: [ArraySlice<UInt8>: (Int, Int)] = [:]
        func text(_ start: Int, _ length: Int) -> ArraySlice<UInt8> { bytes[start..<(start + length)] }
        func tryAdd(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0, symbols[left].length + symbols[right].length <= maxPieceBytes else { return }
            let piece = text(symbols[left].start, symbols[left].length + symbols[right].length)
            guard let id = pieceToID[piece], id < scores.count else { return }
            queue.push(.init(left: left, right: right, score: scores[id], size: piece.count))
            reverseMerge[piece] = (left, right)
        }
        for i in 1..<symbols.count { tryAdd(i - 1, i) }
        while let top = queue.pop() {
            let l = top.left, r = top.right
            guard symbols[l].length > 0, symbols[r].length > 0, symbols[l].length + symbols[r].length == top.size else { continue }
            symbols[l].length += symbols[r].length
            symbols[r].length = 0
            symbols[l].next = symbols[r].next
            if symbols[r].next >= 0 { symbols[symbols[r].next].prev = l }
            tryAdd(symbols[l].prev, l)
            tryAdd(l, symbols[l].next)
        }
        var out: [Int] = []
        // As llama.cpp: a symbol that is a piece is emitted; one built by a merge whose text is
        // no piece is re-split into the two symbols that formed it; otherwise, bytes.
        func resegment(_ index: Int) {
            let symbol = symbols[index]
            let piece = text(symbol.start, symbol.length)
            if let id = pieceToID[piece] { out.append(id); return }
            if let (l, r) = reverseMerge[piece] { resegment(l); resegment(r); return }
            for b in bytes[symbol.start..<(symbol.start + symbol.length)] {
                if let ids = byteIDs { out.append(ids[Int(b)]) } else if let unk = unknownID { out.append(unk) }
            }
        }
        var i = 0
        while i != -1 {
            resegment(i)
            i = symbols[i].next
        }
        return out
    }

    static func utf8Length(_ lead: UInt8) -> Int {
        switch lead {
        case 0..<0x80: return 1
        case 0xC0..<0xE0: return 2
        case 0xE0..<0xF0: return 3
        case 0xF0...: return 4
        default: return 1
        }
    }
}
