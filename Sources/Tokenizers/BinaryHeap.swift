/// Elements a `BinaryHeap` can order: `before` says which comes out first.
protocol HeapOrdered {
    static func before(_ a: Self, _ b: Self) -> Bool
}

/// An array-backed binary heap: the BPE merge queue (lowest rank first) and llama.cpp's
/// SentencePiece bigram queue (highest score first), both leftmost first on ties.
struct BinaryHeap<Element: HeapOrdered> {
    private var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Element.before(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Element.before(items[l], items[m]) { m = l }
                if r < items.count && Element.before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
