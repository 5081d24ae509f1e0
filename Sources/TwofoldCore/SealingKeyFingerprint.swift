import Crypto

extension SealingKey {
    /// 16 hex digits of SHA-256("twofold-sealing-key-check" ‖ 0x00 ‖ key): names the key in the database and in
    /// error messages without revealing it (a different label from ``id``, so the two never coincide).
    public var fingerprint: String {
        let digest = key.withUnsafeBytes { SHA256.hash(data: Array("twofold-sealing-key-check".utf8) + [0] + Array($0)) }
        return digest.prefix(8).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension SecretSealer {
    /// The fingerprint of the key that seals.
    public var currentFingerprint: String { current.fingerprint }

    /// The fingerprints of every key that opens (the current one and the previous ones).
    public var openingFingerprints: Set<String> { Set(keysByID.values.map(\.fingerprint)) }
}

private extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}

extension SecretSealer {
    /// Whether one of this sealer's keys sealed `blob` (by the key id in its header; nothing is decrypted).
    public func hasKey(for blob: [UInt8]) -> Bool {
        blob.count >= 5 && keysByID[Array(blob[1..<5])] != nil
    }
}
