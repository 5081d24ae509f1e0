import Foundation
import Testing

@testable import TwofoldCore

@Suite("EPCS rules: DEA numbers, the attestation, eligible tokens")
struct EPCSTests {
    @Test func deaNumberCheckDigit() throws {
        // 1+3+5 + 2×(2+4+6) = 33: the check digit is 3.
        #expect(DEANumber("AB1234563")?.value == "AB1234563")
        #expect(DEANumber("ab 123-4563")?.value == "AB1234563", "case, spaces and hyphens are ignored")
        #expect(DEANumber("FS1234563") != nil)
        #expect(DEANumber("A91234563") != nil, "a business registrant has 9 in second place")
        #expect(DEANumber("AB1234567") == nil, "wrong check digit")
        #expect(DEANumber("AB123456") == nil, "too short")
        #expect(DEANumber("AB12345633") == nil, "too long")
        #expect(DEANumber("IB1234563") == nil, "I is not a registrant type")
        #expect(DEANumber("A11234563") == nil, "second place is a letter or 9")
        #expect(DEANumber("AB12345６3") == nil, "only ASCII digits")
        #expect(DEANumber("AB1234563")?.masked == "*****4563")
        // Every check digit: exactly one of the ten last digits is accepted.
        for prefix in ["BJ001234", "MX765432", "CD999999"] {
            #expect((0...9).filter { DEANumber(prefix + String($0)) != nil }.count == 1)
        }
    }

    @Test func attestationDocumentHasTheSummaryPractitionerAndStatementOfTheRule() {
        let document = EPCS.attestationDocument(
            summary: "oxycodone 5 mg, #20\r\n\n  hydrocodone 10 mg, #10  ", practitioner: "Sam Smith", deaNumber: "AB1234563")
        let lines = document.components(separatedBy: "\n")
        #expect(lines[0] == "oxycodone 5 mg, #20")
        #expect(lines[1] == "hydrocodone 10 mg, #10")
        #expect(document.contains("Practitioner: Sam Smith\nDEA registration number: AB1234563"))
        #expect(lines.last == EPCS.attestationStatement)
        #expect(
            EPCS.attestationStatement.hasPrefix(
                "By completing the two-factor authentication protocol at this time, you are legally signing the prescription(s)"))
        #expect(EPCS.attestationStatement.hasSuffix("whose name and DEA registration number appear above."))
        #expect(EPCS.attestationHash(document) == Digest.sha256Hex(document))
        #expect(EPCS.attestationHash(document).count == 64)
        #expect(EPCS.attestationHash(document) != EPCS.attestationHash(document.replacingOccurrences(of: "#20", with: "#200")))
    }

    @Test func summaryRules() {
        #expect(EPCS.summaryProblem("one line") == nil)
        #expect(EPCS.summaryProblem("a\nb\nc") == nil)
        #expect(EPCS.summaryProblem("  \n ") != nil)
        #expect(EPCS.summaryProblem(Array(repeating: "x", count: 21).joined(separator: "\n")) != nil)
        #expect(EPCS.summaryProblem(String(repeating: "x", count: 2001)) != nil)
        #expect(EPCS.summaryProblem("bell\u{07}") != nil)
    }

    @Test func tokenListsAndSecurityKeys() {
        #expect(EPCS.Token.list("totp, push,sms,totp,security_key") == [.totp, .push, .securityKey])
        #expect(EPCS.Token.text([.securityKey, .push]) == "push,security_key")
        let aaguid = "2fc0579f-8113-47ea-b116-bb5a8db9202a"
        func eligible(backup: Bool?, attestation: String?, anchors: Bool = true, allowed: [String] = [], aaguid: String? = aaguid) -> Bool {
            EPCS.securityKeyIsEligible(
                backupEligible: backup, attestation: attestation, aaguid: aaguid, trustAnchorsConfigured: anchors, allowedAAGUIDs: allowed)
        }
        #expect(eligible(backup: false, attestation: "packed/basic"))
        #expect(!eligible(backup: true, attestation: "packed/basic"), "a synced passkey is not a hard token")
        #expect(!eligible(backup: nil, attestation: "packed/basic"), "unknown backup state does not count")
        #expect(!eligible(backup: false, attestation: "none/none"))
        #expect(!eligible(backup: false, attestation: "packed/self"))
        #expect(!eligible(backup: false, attestation: "packed/basic", anchors: false), "without trust anchors nothing was checked")
        #expect(eligible(backup: false, attestation: "packed/basic", allowed: [aaguid.uppercased()]))
        #expect(!eligible(backup: false, attestation: "packed/basic", allowed: ["00000000-0000-0000-0000-000000000001"]))
        #expect(EPCS.aaguidList("\(aaguid), \(aaguid.uppercased())\n").list == [aaguid])
        #expect(EPCS.aaguidList("not-a-uuid").invalid == "not-a-uuid")
    }

    @Test func workingHours() {
        // weekday 2 = Monday
        #expect(!EPCS.isOutsideWorkingHours(hour: 7, weekday: 2, start: 7, end: 19))
        #expect(!EPCS.isOutsideWorkingHours(hour: 18, weekday: 6, start: 7, end: 19))
        #expect(EPCS.isOutsideWorkingHours(hour: 19, weekday: 2, start: 7, end: 19))
        #expect(EPCS.isOutsideWorkingHours(hour: 6, weekday: 3, start: 7, end: 19))
        #expect(EPCS.isOutsideWorkingHours(hour: 12, weekday: 1, start: 7, end: 19), "Sunday")
        #expect(EPCS.isOutsideWorkingHours(hour: 12, weekday: 7, start: 7, end: 19), "Saturday")
    }
}
