/// Comparison of secrets whose running time does not depend on where the inputs differ.
///
/// Every comparison of a code, token or hash in Twofold goes through here.
public enum ConstantTime {
    /// Compares two byte sequences in time that depends only on their lengths.
    /// - Parameters:
    ///   - a: the first sequence.
    ///   - b: the second sequence.
    /// - Returns: `true` when both hold the same bytes.
    public static func equals<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
        let left = Array(a)
        let right = Array(b)
        var difference: UInt8 = left.count == right.count ? 0 : 1
        let length = max(left.count, right.count)
        for index in 0..<length {
            let x = index < left.count ? left[index] : 0
            let y = index < right.count ? right[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }

    /// Compares the UTF-8 bytes of two strings in constant time.
    /// - Returns: `true` when the strings are byte-for-byte equal.
    public static func equals(_ a: String, _ b: String) -> Bool {
        equals(Array(a.utf8), Array(b.utf8))
    }
}
