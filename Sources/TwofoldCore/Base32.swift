import ExtrasBase64

/// A base32 text that could not be decoded.
public struct Base32Error: Error, Hashable, CustomStringConvertible, Sendable {
    /// What kind of problem it is.
    public enum Code: Hashable, Sendable {
        /// A character outside A–Z, 2–7 (spaces, hyphens and `=` padding are allowed).
        case invalidCharacter
        /// A number of characters no base32 encoding produces.
        case invalidLength
    }

    /// The kind of problem.
    public let code: Code
    /// What is wrong, for a person.
    public let reason: String
    public var description: String { "Base32Error.\(code): \(reason)" }
}

/// RFC 4648 base32, as authenticator apps use it for keys.
public enum Base32 {
    static let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    /// Encodes bytes in upper-case base32 without padding, the form key URIs use.
    /// - Parameter bytes: the bytes to encode.
    /// - Returns: the base32 text.
    public static func encode<C: Collection<UInt8>>(_ bytes: C) -> String {
        ExtrasBase64.Base32.encodeToString(bytes: Array(bytes), options: .omitPaddingCharacter)
    }

    /// Decodes base32 as people type it: any case, with or without padding, spaces and hyphens ignored.
    /// - Parameter text: the base32 text.
    /// - Returns: the decoded bytes.
    /// - Throws: ``Base32Error`` naming the first bad character, or a length no encoding produces.
    public static func decode(_ text: String) throws -> [UInt8] {
        var cleaned = ""
        var position = 0
        var seenPadding = false
        for character in text {
            position += 1
            if character == " " || character == "-" { continue }
            if character == "=" {
                seenPadding = true
                continue
            }
            let upper = Character(character.uppercased())
            guard !seenPadding, alphabet.contains(upper) else {
                let what = seenPadding ? "after the padding" : "'\(character)'"
                throw Base32Error(
                    code: .invalidCharacter,
                    reason: "Base32 allows only the letters A–Z and the digits 2–7; found \(what) at position \(position).")
            }
            cleaned.append(upper)
        }
        guard [0, 2, 4, 5, 7].contains(cleaned.count % 8) else {
            throw Base32Error(
                code: .invalidLength, reason: "\(cleaned.count) base32 characters cannot be a complete key; check that none is missing.")
        }
        if cleaned.isEmpty { return [] }
        let padded = cleaned + String(repeating: "=", count: (8 - cleaned.count % 8) % 8)
        do {
            return try ExtrasBase64.Base32.decode(string: padded)
        } catch {
            throw Base32Error(code: .invalidLength, reason: "The base32 text has stray bits at its end; check the last characters.")
        }
    }
}
