import Foundation

/// Rules of electronic prescribing of controlled substances (DEA, 21 CFR 1311) that need no storage.
public enum EPCS {
    /// The statement 21 CFR 1311.140(a)(3) prescribes, shown while the prescriber completes the two factors.
    public static let attestationStatement =
        "By completing the two-factor authentication protocol at this time, you are legally signing the prescription(s) and authorizing the transmission of the above information to the pharmacy for dispensing. The two-factor authentication protocol may only be completed by the practitioner whose name and DEA registration number appear above."

    /// Longest prescription summary an EHR may send (several prescriptions, one per line).
    public static let summaryMaximumCharacters = 2000
    public static let summaryMaximumLines = 20

    /// The exact text the prescriber is shown, and whose SHA-256 the signed assertion carries: the prescription
    /// summary, then the practitioner's name and DEA number, then the statement (§1311.140(a)(1)–(3)).
    public static func attestationDocument(summary: String, practitioner: String, deaNumber: String) -> String {
        let lines = summaryLines(summary)
        return (lines + ["", "Practitioner: \(practitioner)", "DEA registration number: \(deaNumber)", "", attestationStatement]).joined(
            separator: "\n")
    }

    /// SHA-256 of the attestation document's UTF-8 bytes, lower-case hex.
    public static func attestationHash(_ document: String) -> String {
        Digest.sha256Hex(document)
    }

    /// The summary as the lines shown: trimmed, blank lines dropped, CR LF read as LF.
    public static func summaryLines(_ summary: String) -> [String] {
        summary.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: true)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Why a prescription summary cannot be shown, or nil when it is acceptable.
    public static func summaryProblem(_ summary: String) -> String? {
        let lines = summaryLines(summary)
        if lines.isEmpty { return "action.summary must describe the prescription(s) to sign." }
        if summary.count > summaryMaximumCharacters || lines.count > summaryMaximumLines {
            return "action.summary may have at most \(summaryMaximumLines) lines and \(summaryMaximumCharacters) characters."
        }
        if summary.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" && $0 != "\r" && $0 != "\t" }) {
            return "action.summary may not contain control characters."
        }
        return nil
    }

    /// The hard tokens a practice may count as the "something you have" of §1311.115(b).
    public enum Token: String, CaseIterable, Sendable, Codable {
        /// A push device (the Twofold authenticator on a phone): a separate device holding a key.
        case push
        /// An authenticator app on a device separate from the computer used to prescribe.
        case totp
        /// A device-bound security key whose attestation chains to the practice's trust anchors.
        case securityKey = "security_key"

        public var label: String {
            switch self {
            case .push: "Push notification device"
            case .totp: "Authenticator app on a separate device"
            case .securityKey: "Security key (device-bound, attested)"
            }
        }

        /// Parses a comma-separated list, ignoring unknown names and duplicates.
        public static func list(_ text: String) -> [Token] {
            var seen: [Token] = []
            for part in text.split(separator: ",") {
                if let token = Token(rawValue: part.trimmingCharacters(in: .whitespaces)), !seen.contains(token) { seen.append(token) }
            }
            return seen
        }

        public static func text(_ tokens: [Token]) -> String {
            allCases.filter(tokens.contains).map(\.rawValue).joined(separator: ",")
        }
    }

    /// A security key counts when it is device-bound (it said at registration it cannot be backed up), its
    /// attestation was signed by a certificate that chained to configured trust anchors, and, when the practice
    /// lists models (e.g. FIPS 140 validated ones), its AAGUID is on the list.
    public static func securityKeyIsEligible(
        backupEligible: Bool?, attestation: String?, aaguid: String?, trustAnchorsConfigured: Bool,
        allowedAAGUIDs: [String]
    ) -> Bool {
        guard backupEligible == false, trustAnchorsConfigured, let attestation, attestation.hasSuffix("/basic") else { return false }
        guard !allowedAAGUIDs.isEmpty else { return true }
        guard let aaguid = aaguid?.lowercased() else { return false }
        return allowedAAGUIDs.contains { $0.lowercased() == aaguid }
    }

    /// Parses a list of AAGUIDs (UUIDs separated by commas, spaces or lines); nil names the first invalid entry.
    public static func aaguidList(_ text: String) -> (list: [String], invalid: String?) {
        var list: [String] = []
        for part in text.split(whereSeparator: { $0 == "," || $0.isWhitespace }) {
            guard let uuid = UUID(uuidString: String(part)) else { return (list, String(part)) }
            let value = uuid.uuidString.lowercased()
            if !list.contains(value) { list.append(value) }
        }
        return (list, nil)
    }

    /// US state and territory codes a DEA registration can name.
    public static let stateCodes: Set<String> = [
        "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD",
        "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD",
        "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
    ]

    /// An approval whose local hour falls outside `[start, end)` (or on a weekend) is flagged in the daily report.
    public static func isOutsideWorkingHours(hour: Int, weekday: Int, start: Int, end: Int) -> Bool {
        // weekday: 1 = Sunday … 7 = Saturday (Gregorian calendar).
        if weekday == 1 || weekday == 7 { return true }
        return hour < start || hour >= end
    }

    /// Failed EPCS signings by one prescriber in a day from which the daily report flags an incident.
    public static let repeatedFailureThreshold = 3
}

/// A DEA registration number: two letters and seven digits, the last a check digit (the sum of the 1st, 3rd and
/// 5th digits plus twice the sum of the 2nd, 4th and 6th; its last digit).
public struct DEANumber: Equatable, Sendable, CustomStringConvertible {
    public let value: String

    /// First letters DEA assigns to registrants (practitioners, mid-level practitioners, hospitals, …).
    static let registrantTypes: Set<Character> = ["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "P", "R", "S", "T", "U", "X"]

    /// Accepts upper or lower case and ignores spaces and hyphens; nil when the number is malformed or its check
    /// digit is wrong.
    public init?(_ raw: String) {
        let text = raw.uppercased().filter { !$0.isWhitespace && $0 != "-" }
        let chars = Array(text)
        guard chars.count == 9, Self.registrantTypes.contains(chars[0]), chars[1].isASCII, chars[1].isLetter || chars[1] == "9" else {
            return nil
        }
        let digits = chars[2...].compactMap { $0.isASCII ? $0.wholeNumberValue : nil }
        guard digits.count == 7 else { return nil }
        let check = (digits[0] + digits[2] + digits[4] + 2 * (digits[1] + digits[3] + digits[5])) % 10
        guard check == digits[6] else { return nil }
        value = text
    }

    public var description: String { value }

    /// The number with its last four characters kept, for logs and lists seen by other staff.
    public var masked: String { "*****" + value.suffix(4) }
}
