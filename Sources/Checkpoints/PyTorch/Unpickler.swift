/// A restricted pickle machine for `data.pkl`: it interprets the opcodes a protocol-2 state dict
/// uses and builds `PickleValue`s. Nothing is ever executed.
///
/// Python's unpickler is a program loader: GLOBAL imports any callable and REDUCE calls it,
/// which is how a `.bin` file runs `os.system` on `torch.load`. Here GLOBAL resolves only the
/// allowlisted names of `PickleGlobal` (anything else is `PyTorchError.forbiddenGlobal`, raised
/// at the GLOBAL itself), and "calling" one of them means building a tensor description or an
/// empty dict, according to rules written out below. Unknown opcodes are refused by byte and
/// offset (`forbiddenOpcode`).
///
/// Every resource is bounded: the stack, the mark stack, the memo, string lengths (by the input)
/// and the nesting depth of values (so that releasing a value cannot overflow the call stack).
struct Unpickler {
    static let maxStack = 1 << 20
    static let maxMarks = 1 << 12
    static let maxMemo = 1 << 22
    static let maxDepth = 64
    /// GLOBAL's module and name are newline-terminated; the longest allowed is 35 bytes.
    static let maxGlobalLength = 256

    let file: String
    /// Accept the legacy (non-zip) format's 6-element persistent ids, whose last element
    /// (storage view metadata) must be None.
    var legacyPersistentIDs = false

    init(file: String) { self.file = file }

    /// What one pickle left.
    struct Result {
        var value: PickleValue
        /// The offset just past STOP: where the next pickle of a legacy file begins.
        var end: Int
        /// Every persistent id loaded, in order (including storages of values a caller skips).
        var storages: [StorageRef]
    }

    /// Runs the pickle in `bytes` to its STOP and returns the value it leaves.
    func load(_ bytes: UnsafeRawBufferPointer) throws -> PickleValue {
        try load(bytes, from: 0).value
    }

    /// Runs the pickle starting at byte `start` to its STOP. Offsets in errors count from the
    /// start of `bytes`.
    func load(_ bytes: UnsafeRawBufferPointer, from start: Int) throws -> Result {
        var machine = Machine(file: file, bytes: bytes, legacy: legacyPersistentIDs)
        machine.pos = start
        let value = try machine.run()
        return Result(value: value, end: machine.pos, storages: machine.storages)
    }
}

private struct Machine {
    let file: String
    let bytes: UnsafeRawBufferPointer
    let legacy: Bool
    var pos = 0
    /// Offset of the opcode being executed, for messages.
    var opStart = 0
    var stack: [PickleValue] = []
    /// Stack heights at each MARK. Opcodes never reach below the innermost mark, as with
    /// Python's separate metastack.
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    var storages: [StorageRef] = []

    init(file: String, bytes: UnsafeRawBufferPointer, legacy: Bool) {
        self.file = file
        self.bytes = bytes
        self.legacy = legacy
    }

    // MARK: Errors

    func malformed(_ detail: String) -> PyTorchError { .invalidPickle(file: file, offset: opStart, detail: detail) }

    func refusedCall(_ callee: String, _ detail: String) -> PyTorchError {
        .forbiddenCall(file: file, callee: callee, offset: opStart, detail: detail)
    }

    // MARK: Reading

    mutating func read(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - pos else { throw malformed("truncated: needs \(n) more bytes, \(bytes.count - pos) left") }
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
    }

    mutating func byte() throws -> UInt8 { try read(1)[0] }

    mutating func uint(_ n: Int) throws -> UInt64 {
        let raw = try read(n)
        var v: UInt64 = 0
        for i in stride(from: n - 1, through: 0, by: -1) { v = v << 8 | UInt64(raw[i]) }
        return v
    }

    mutating func line() throws -> String {
        var end = pos
        while end < bytes.count, bytes[end] != 0x0a {
            end += 1
            guard end - pos <= Unpickler.maxGlobalLength else { throw malformed("GLOBAL name longer than \(Unpickler.maxGlobalLength) bytes") }
        }
        guard end < bytes.count else { throw malformed("truncated GLOBAL name") }
        guard let s = String(strictUTF8: UnsafeRawBufferPointer(rebasing: bytes[pos..<end])) else { throw malformed("GLOBAL name is not UTF-8") }
        pos = end + 1
        return s
    }

    mutating func string(length: Int) throws -> String {
        let raw = try read(length)
        guard let s = String(strictUTF8: raw) else { throw malformed("string is not valid UTF-8") }
        return s
    }

    // MARK: The stack

    var frameBase: Int { marks.last ?? 0 }

    mutating func push(_ v: PickleValue) throws {
        guard stack.count < Unpickler.maxStack else { throw malformed("stack deeper than \(Unpickler.maxStack) values") }
        stack.append(v)
    }

    mutating func pop() throws -> PickleValue {
        guard stack.count > frameBase else { throw malformed("stack underflow") }
        return stack.removeLast()
    }

    func top() throws -> PickleValue {
        guard stack.count > frameBase else { throw malformed("stack underflow") }
        return stack[stack.count - 1]
    }

    mutating func popMark() throws -> [PickleValue] {
        guard let base = marks.popLast() else { throw malformed("no MARK to pop to") }
        defer { stack.removeSubrange(base...) }
        return Array(stack[base...])
    }

    /// Puts `child` inside a container: seals it against later mutation and returns the
    /// container depth it implies.
    func nest(_ child: PickleValue) throws -> Int {
        switch child {
        case .list(let l): l.sealed = true
        case .dict(let d): d.sealed = true
        default: break
        }
        let depth = child.depth + 1
        guard depth <= Unpickler.maxDepth else { throw malformed("values nested deeper than \(Unpickler.maxDepth) levels") }
        return depth
    }

    func makeTuple(_ items: [PickleValue]) throws -> PickleValue {
        var depth = 1
        for item in items { depth = max(depth, try nest(item)) }
        return .tuple(PickleTuple(items: items, depth: depth))
    }

    // MARK: Running

    mutating func run() throws -> PickleValue {
        while true {
            opStart = pos
            let op = try byte()
            switch op {
            case PickleOpcode.proto:
                _ = try byte()  // torch only warns about protocols other than 2; opcodes decide
            case PickleOpcode.stop:
                return try pop()

            case PickleOpcode.global:
                let module = try line(), name = try line()
                guard let g = PickleGlobal.resolve(module: module, name: name) else {
                    throw PyTorchError.forbiddenGlobal(file: file, module: module, name: name)
                }
                try push(.global(g))
            case PickleOpcode.reduce:
                let args = try pop()
                let callee = try pop()
                guard case .tuple(let t) = args else { throw malformed("REDUCE arguments are a \(args.kindName), not a tuple") }
                try push(try call(callee, t.items))
            case PickleOpcode.newObj:
                let args = try pop()
                let cls = try pop()
                guard case .tuple(let t) = args else { throw malformed("NEWOBJ arguments are a \(args.kindName), not a tuple") }
                try push(try newObject(cls, t.items))
            case PickleOpcode.build:
                let state = try pop()
                let target = try top()
                try build(target, state)

            case PickleOpcode.mark:
                guard marks.count < Unpickler.maxMarks else { throw malformed("more than \(Unpickler.maxMarks) nested MARKs") }
                marks.append(stack.count)
            case PickleOpcode.tuple:
                try push(try makeTuple(try popMark()))
            case PickleOpcode.tuple1:
                let a = try pop()
                try push(try makeTuple([a]))
            case PickleOpcode.tuple2:
                let b = try pop(), a = try pop()
                try push(try makeTuple([a, b]))
            case PickleOpcode.tuple3:
                let c = try pop(), b = try pop(), a = try pop()
                try push(try makeTuple([a, b, c]))
            case PickleOpcode.emptyTuple:
                try push(.tuple(PickleTuple(items: [], depth: 1)))
            case PickleOpcode.emptyList:
                try push(.list(PickleList()))
            case PickleOpcode.emptyDict:
                try push(.dict(PickleDict(ordered: false)))
            case PickleOpcode.emptySet:
                try push(.emptySet)

            case PickleOpcode.append:
                let item = try pop()
                try appendItems([item])
            case PickleOpcode.appends:
                let items = try popMark()
                try appendItems(items)
            case PickleOpcode.setItem:
                let value = try pop(), key = try pop()
                try setItems([key, value])
            case PickleOpcode.setItems:
                try setItems(try popMark())

            case PickleOpcode.none: try push(.none)
            case PickleOpcode.newTrue: try push(.bool(true))
            case PickleOpcode.newFalse: try push(.bool(false))
            case PickleOpcode.binInt: try push(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))
            case PickleOpcode.binInt1: try push(.int(Int(try byte())))
            case PickleOpcode.binInt2: try push(.int(Int(try uint(2))))
            case PickleOpcode.long1:
                let n = Int(try byte())
                guard n <= 8 else { throw malformed("LONG1 integer of \(n) bytes does not fit 64 bits") }
                var v = try uint(n)
                if n > 0 && n < 8 && v & (1 << (8 * n - 1)) != 0 { v |= ~0 << (8 * n) }  // sign-extend
                try push(.int(Int(Int64(bitPattern: v))))
            case PickleOpcode.binFloat:
                let raw = try read(8)
                var bits: UInt64 = 0
                for b in raw { bits = bits << 8 | UInt64(b) }  // big-endian
                try push(.float(Double(bitPattern: bits)))
            case PickleOpcode.binUnicode:
                let n = try uint(4)
                try push(.string(try string(length: Int(n))))
            case PickleOpcode.shortBinString:
                let n = Int(try byte())
                try push(.string(try string(length: n)))

            case PickleOpcode.binPersId:
                let storage = try persistentLoad(try pop())
                storages.append(storage)
                try push(.storage(storage))
            case PickleOpcode.binGet, PickleOpcode.longBinGet:
                let index = Int(op == PickleOpcode.binGet ? UInt64(try byte()) : try uint(4))
                guard let v = memo[index] else { throw malformed("memo entry \(index) read before it was stored") }
                try push(v)
            case PickleOpcode.binPut, PickleOpcode.longBinPut:
                let index = Int(op == PickleOpcode.binPut ? UInt64(try byte()) : try uint(4))
                if memo[index] == nil && memo.count >= Unpickler.maxMemo {
                    throw malformed("more than \(Unpickler.maxMemo) memo entries")
                }
                memo[index] = try top()

            default:
                throw PyTorchError.forbiddenOpcode(file: file, opcode: op, offset: opStart)
            }
        }
    }

    // MARK: Containers

    mutating func appendItems(_ items: [PickleValue]) throws {
        guard case .list(let list) = try top() else { throw malformed("APPEND to a \(try top().kindName), not a list") }
        guard !list.sealed else { throw malformed("APPEND to a list already nested in another value (recursive structures are not supported)") }
        for item in items {
            list.depth = max(list.depth, try nest(item))
            // Nesting seals the child: if that sealed the list itself, it was appended to itself.
            guard !list.sealed else { throw malformed("a list appended to itself (recursive structures are not supported)") }
            list.items.append(item)
        }
    }

    mutating func setItems(_ items: [PickleValue]) throws {
        guard items.count % 2 == 0 else { throw malformed("SETITEMS with an odd number of values") }
        guard case .dict(let dict) = try top() else { throw malformed("SETITEM on a \(try top().kindName), not a dict") }
        guard !dict.sealed else { throw malformed("SETITEM on a dict already nested in another value (recursive structures are not supported)") }
        for i in stride(from: 0, to: items.count, by: 2) {
            let key = items[i], value = items[i + 1]
            dict.depth = max(dict.depth, try nest(key), try nest(value))
            guard !dict.sealed else { throw malformed("a dict stored in itself (recursive structures are not supported)") }
            dict.set(key, value)
        }
    }

    // MARK: The allowlisted "calls"

    /// REDUCE: `callee(*args)`, for the callables of `PickleGlobal` only.
    func call(_ callee: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        guard case .global(let g) = callee else {
            throw refusedCall(callee.kindName, "REDUCE can only call an allowlisted function")
        }
        switch g {
        case .orderedDict:
            guard args.isEmpty else { throw refusedCall(g.qualifiedName, "only OrderedDict() with no arguments is supported") }
            return .dict(PickleDict(ordered: true))
        case .rebuildTensor(let version):
            return .tensor(try rebuildTensor(version: version, args))
        case .rebuildParameter(let withState):
            // (data, requires_grad, backward_hooks[, state]): the parameter is its data.
            guard args.count == (withState ? 4 : 3), case .tensor(let t) = args[0] else {
                throw refusedCall(g.qualifiedName, "expected (tensor, requires_grad, hooks\(withState ? ", state" : "")), got \(args.map(\.kindName))")
            }
            return .tensor(t)
        case .rebuildFromType:
            // (func, new_type, args, state): func(*args) as new_type, with Python attributes
            // `state` that a weights reader has no use for.
            guard args.count == 4, case .global(let inner) = args[0], case .global(let type) = args[1],
                  case .tuple(let innerArgs) = args[2] else {
                throw refusedCall(g.qualifiedName, "expected (function, type, args, state), got \(args.map(\.kindName))")
            }
            guard type == .tensorClass || type == .parameterClass else {
                throw refusedCall(g.qualifiedName, "the type argument is \(type.qualifiedName), not torch.Tensor or torch.nn.parameter.Parameter")
            }
            switch inner {
            case .rebuildTensor, .rebuildParameter:
                let result = try call(.global(inner), innerArgs.items)
                guard case .tensor = result else { throw refusedCall(inner.qualifiedName, "did not produce a tensor") }
                return result
            default:
                throw refusedCall(g.qualifiedName, "its function argument is \(inner.qualifiedName), not a tensor rebuild function")
            }
        case .tensorClass, .parameterClass, .storageClass, .dtype:
            throw refusedCall(g.qualifiedName, "it is allowed as an argument, not as a function to call")
        }
    }

    /// `_rebuild_tensor(storage, offset, size, stride)`, `_v2(..., requires_grad, hooks[,
    /// metadata])`, `_v3(..., requires_grad, hooks, dtype[, metadata])`.
    func rebuildTensor(version: Int, _ args: [PickleValue]) throws -> TensorRef {
        let name = PickleGlobal.rebuildTensor(version: version).qualifiedName
        let counts: Set<Int> = version == 1 ? [4] : version == 2 ? [6, 7] : [7, 8]
        guard counts.contains(args.count) else {
            throw refusedCall(name, "expected \(counts.sorted().map(String.init).joined(separator: " or ")) arguments, got \(args.count)")
        }
        guard case .storage(let storage) = args[0] else { throw refusedCall(name, "argument 1 is a \(args[0].kindName), not a storage") }
        guard case .int(let offset) = args[1] else { throw refusedCall(name, "storage offset is a \(args[1].kindName), not an int") }
        let size = try intTuple(args[2], name, "size")
        let stride = try intTuple(args[3], name, "stride")
        guard size.count == stride.count else { throw refusedCall(name, "\(size.count) sizes but \(stride.count) strides") }
        if version >= 2 {
            guard case .bool = args[4] else { throw refusedCall(name, "requires_grad is a \(args[4].kindName), not a bool") }
            guard case .dict = args[5] else { throw refusedCall(name, "backward_hooks is a \(args[5].kindName), not a dict") }
        }
        let scalar: TorchScalarType
        if version == 3 {
            guard case .global(.dtype(let t)) = args[6] else { throw refusedCall(name, "dtype is a \(args[6].kindName), not a torch dtype") }
            scalar = t
        } else {
            guard let t = storage.scalar else {
                throw refusedCall(name, "an untyped storage needs _rebuild_tensor_v3, which names the dtype")
            }
            scalar = t
        }
        return TensorRef(storage: storage, scalar: scalar, storageOffset: offset, size: size, stride: stride)
    }

    func intTuple(_ v: PickleValue, _ callee: String, _ what: String) throws -> [Int] {
        guard case .tuple(let t) = v else { throw refusedCall(callee, "\(what) is a \(v.kindName), not a tuple") }
        return try t.items.map {
            guard case .int(let i) = $0 else { throw refusedCall(callee, "\(what) holds a \($0.kindName), not an int") }
            return i
        }
    }

    /// NEWOBJ: `cls.__new__(cls, *args)`, for `torch.nn.Parameter(data[, requires_grad])` only.
    func newObject(_ cls: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        guard case .global(.parameterClass) = cls else {
            throw refusedCall(cls.kindName, "NEWOBJ can only create a torch.nn.Parameter")
        }
        guard (1...2).contains(args.count), case .tensor = args[0] else {
            throw refusedCall(PickleGlobal.parameterClass.qualifiedName, "expected (tensor[, requires_grad]), got \(args.map(\.kindName))")
        }
        return args[0]
    }

    /// BUILD: `target.__setstate__(state)`. Only an (Ordered)dict's attributes, such as a
    /// state dict's `_metadata` (module versions), which a weights reader ignores.
    func build(_ target: PickleValue, _ state: PickleValue) throws {
        guard case .dict = target else {
            throw refusedCall("BUILD", "setting the state of a \(target.kindName) is not supported (only a dict's attributes)")
        }
        _ = try nest(state)
    }

    /// BINPERSID: only `('storage', storage class, key, location, numel)` (plus a None view
    /// field in the legacy format).
    func persistentLoad(_ pid: PickleValue) throws -> StorageRef {
        let shape = legacy
            ? "only ('storage', storage class, key, location, numel, None) persistent ids are allowed"
            : "only ('storage', storage class, key, location, numel) persistent ids are allowed"
        guard case .tuple(let t) = pid, t.items.count == (legacy ? 6 : 5), case .string("storage") = t.items[0] else {
            throw refusedCall("persistent_load", "\(shape), got a \(pid.kindName)")
        }
        if legacy, case .none = t.items[5] {} else if legacy {
            throw refusedCall("persistent_load", "a storage view (\(t.items[5].kindName)): re-save the checkpoint with a current torch.save")
        }
        guard case .global(.storageClass(let scalar)) = t.items[1], case .string(let key) = t.items[2],
              case .string(let location) = t.items[3], case .int(let numel) = t.items[4] else {
            throw refusedCall("persistent_load", "\(shape), got (\(t.items.map(\.kindName).joined(separator: ", ")))")
        }
        return StorageRef(key: key, scalar: scalar, numel: numel, location: location)
    }
}
