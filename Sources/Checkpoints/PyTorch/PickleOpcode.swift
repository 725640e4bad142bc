/// Pickle opcode bytes (CPython `Lib/pickle.py`), and the names of all of them for messages.
///
/// Only the first group is executed by `Unpickler`: exactly the opcodes torch's `weights_only`
/// unpickler accepts (PT `_weights_only_unpickler.py`), which are all that protocol 2, the
/// protocol `torch.save` uses, emits for a state dict. In particular there is no FRAME, MEMOIZE,
/// SHORT_BINUNICODE or STACK_GLOBAL: torch 2.x does not write them (checked with pickletools on
/// torch.save output), and torch would refuse them too.
enum PickleOpcode {
    static let proto: UInt8 = 0x80
    static let stop = UInt8(ascii: ".")
    static let global = UInt8(ascii: "c")
    static let reduce = UInt8(ascii: "R")
    static let newObj: UInt8 = 0x81
    static let build = UInt8(ascii: "b")
    static let mark = UInt8(ascii: "(")
    static let tuple = UInt8(ascii: "t")
    static let tuple1: UInt8 = 0x85
    static let tuple2: UInt8 = 0x86
    static let tuple3: UInt8 = 0x87
    static let emptyTuple = UInt8(ascii: ")")
    static let emptyList = UInt8(ascii: "]")
    static let emptyDict = UInt8(ascii: "}")
    static let emptySet: UInt8 = 0x8f
    static let append = UInt8(ascii: "a")
    static let appends = UInt8(ascii: "e")
    static let setItem = UInt8(ascii: "s")
    static let setItems = UInt8(ascii: "u")
    static let none = UInt8(ascii: "N")
    static let newTrue: UInt8 = 0x88
    static let newFalse: UInt8 = 0x89
    static let binInt = UInt8(ascii: "J")
    static let binInt1 = UInt8(ascii: "K")
    static let binInt2 = UInt8(ascii: "M")
    static let long1: UInt8 = 0x8a
    static let binFloat = UInt8(ascii: "G")
    static let binUnicode = UInt8(ascii: "X")
    static let shortBinString = UInt8(ascii: "U")
    static let binPersId = UInt8(ascii: "Q")
    static let binGet = UInt8(ascii: "h")
    static let longBinGet = UInt8(ascii: "j")
    static let binPut = UInt8(ascii: "q")
    static let longBinPut = UInt8(ascii: "r")

    /// The pickletools name of any opcode byte, allowed or not.
    static func name(_ op: UInt8) -> String? {
        names[op]
    }

    private static let names: [UInt8: String] = [
        0x80: "PROTO", 0x2e: "STOP", 0x63: "GLOBAL", 0x52: "REDUCE", 0x81: "NEWOBJ", 0x62: "BUILD",
        0x28: "MARK", 0x74: "TUPLE", 0x85: "TUPLE1", 0x86: "TUPLE2", 0x87: "TUPLE3",
        0x29: "EMPTY_TUPLE", 0x5d: "EMPTY_LIST", 0x7d: "EMPTY_DICT", 0x8f: "EMPTY_SET",
        0x61: "APPEND", 0x65: "APPENDS", 0x73: "SETITEM", 0x75: "SETITEMS", 0x4e: "NONE",
        0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x4a: "BININT", 0x4b: "BININT1", 0x4d: "BININT2",
        0x8a: "LONG1", 0x47: "BINFLOAT", 0x58: "BINUNICODE", 0x55: "SHORT_BINSTRING",
        0x51: "BINPERSID", 0x68: "BINGET", 0x6a: "LONG_BINGET", 0x71: "BINPUT", 0x72: "LONG_BINPUT",
        // Not allowed:
        0x49: "INT", 0x4c: "LONG", 0x53: "STRING", 0x54: "BINSTRING", 0x56: "UNICODE", 0x46: "FLOAT",
        0x6c: "LIST", 0x64: "DICT", 0x69: "INST", 0x6f: "OBJ", 0x70: "PUT", 0x67: "GET", 0x32: "DUP",
        0x30: "POP", 0x31: "POP_MARK", 0x50: "PERSID", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
        0x8b: "LONG4", 0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8c: "SHORT_BINUNICODE",
        0x8d: "BINUNICODE8", 0x8e: "BINBYTES8", 0x90: "ADDITEMS", 0x91: "FROZENSET",
        0x92: "NEWOBJ_EX", 0x93: "STACK_GLOBAL", 0x94: "MEMOIZE", 0x95: "FRAME",
        0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
    ]
}
