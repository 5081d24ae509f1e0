/// How much of a symbol may be damaged and still read (ISO/IEC 18004 §6.5.1).
public enum QRErrorCorrection: Sendable, CaseIterable, Hashable {
    /// About 7% of codewords can be restored.
    case low
    /// About 15%; the default.
    case medium
    /// About 25%.
    case quartile
    /// About 30%.
    case high

    /// The two format-information bits for this level (Table 12): L=01, M=00, Q=11, H=10.
    var formatBits: Int {
        switch self {
        case .low: 1
        case .medium: 0
        case .quartile: 3
        case .high: 2
        }
    }

    var tableIndex: Int {
        switch self {
        case .low: 0
        case .medium: 1
        case .quartile: 2
        case .high: 3
        }
    }
}

/// Why a symbol could not be made.
public struct QRCodeError: Error, Hashable, CustomStringConvertible, Sendable {
    /// What kind of problem it is.
    public enum Code: Hashable, Sendable {
        case dataTooLong
        case invalidVersion
        case invalidMask
    }

    /// The kind of problem.
    public let code: Code
    /// What is wrong, for a person.
    public let reason: String
    public var description: String { "QRCodeError.\(code): \(reason)" }
}
