import Crypto
import Fluent
import Foundation
import TwofoldCore
import Vapor

/// A signed statement of what one audit export holds, so an auditor with only the published public key
/// (`twofold audit public-key`) can check the export offline (`twofold audit verify-export`): the digest of every
/// row in order, the filter and practice it was made for, the heads of the chains at the time, the newest signed
/// checkpoint of each, and whether the server found the whole log intact when it made the export. Signed with the
/// checkpoint key (Ed25519).
struct AuditExportManifest: Codable, Sendable, Equatable {
    static let format = "twofold-audit-export-v1"

    enum Kind: String, Codable, Sendable { case csv, json }

    struct Row: Codable, Sendable, Equatable {
        var chain: String
        var seq: Int64
        /// SHA-256 (hex) of the row exactly as exported: the CSV line without its line break, or the event's JSON.
        var digest: String
    }

    struct ChainHead: Codable, Sendable, Equatable {
        var chain: String
        var seq: Int64
        var head: String
    }

    struct Filter: Codable, Sendable, Equatable {
        var from: String?
        var to: String?
        var user: String?
        var type: String?
    }

    var format: String = Self.format
    var kind: Kind
    var practice: String
    var filter: Filter
    var exportedMS: Int64
    /// The CSV header line (CSV exports).
    var header: String?
    var count: Int
    /// SHA-256 (hex) of the whole CSV file; for JSON, of the row digests joined by line breaks.
    var digest: String
    var rows: [Row]
    var chains: [ChainHead]
    var checkpoints: [AuditCheckpoint]
    /// The outcome of `twofold audit verify` over the whole log when the export was made.
    var logIntact: Bool
    var logProblem: String?
    var keyID: String
    var signature: String = ""

    enum CodingKeys: String, CodingKey {
        case format, kind, practice, filter, header, count, digest, rows, chains, checkpoints, signature
        case exportedMS = "exported_ms"
        case logIntact = "log_intact"
        case logProblem = "log_problem"
        case keyID = "key_id"
    }

    /// How an export writes a time (an event's, a filter's): ISO 8601 in UTC to the millisecond, without a zone
    /// designator, such as 2026-11-25T14:00:00.123. The format cuts a time off at the millisecond rather than rounding.
    static let timeFormat = Date.ISO8601FormatStyle.iso8601.year().month().day().time(includingFractionalSeconds: true)

    /// Writes manifests and exports: sorted keys, and times in ``timeFormat``.
    static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting =
            pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.ISO8601Format(timeFormat))
        }
        return encoder
    }

    /// Reads what ``encoder(pretty:)`` writes, in any key order. A time is only read in the exact form an export
    /// writes it, so that a row read back encodes to the bytes that were signed.
    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            guard let time = time(try container.decode(String.self)) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a time as an audit export writes it")
            }
            return time
        }
        return decoder
    }

    /// The millisecond an export shows as `text`, or nil when an export would not show any time as `text`.
    static func time(_ text: String) -> Date? {
        guard text.utf8.count <= 40, let parsed = try? Date(text, strategy: timeFormat), abs(parsed.timeIntervalSince1970) < 1e12 else {
            return nil
        }
        // The time shown may be a millisecond before the one it was written from (see `timeFormat`).
        let shown = Int64((parsed.timeIntervalSince1970 * 1000).rounded())
        return [shown, shown + 1, shown - 1].lazy.map(AuditLog.date).first { $0.ISO8601Format(timeFormat) == text }
    }

    /// What is signed: a purpose label and the manifest's sorted-key JSON with an empty signature.
    var signedMessage: [UInt8] {
        var unsigned = self
        unsigned.signature = ""
        let json = (try? Self.encoder().encode(unsigned)) ?? Data()
        return Array("twofold-audit-export-v1\n".utf8) + Array(json)
    }

    mutating func sign(with keys: AuditKeys) throws {
        keyID = keys.signingKeyID
        signature = try keys.signingKey.signature(for: signedMessage).base64EncodedString()
    }

    static func digest(_ text: String) -> String { TwofoldCore.Digest.sha256Hex(text) }
}

extension AuditQuery.Entry {
    /// The event's exact form as a row of a JSON export, for its digest: sorted-key JSON, the time to the millisecond.
    var canonical: String {
        (try? AuditExportManifest.encoder().encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}

/// A self-contained JSON export: the events and the manifest that signs them.
struct AuditExportBundle: Codable, Sendable {
    var manifest: AuditExportManifest
    var events: [AuditQuery.Entry]
}

/// Makes signed exports of one practice's audit events.
struct AuditExport {
    let database: any Database
    let practiceID: UUID
    let now: Date

    /// The CSV export (as `/admin/audit.csv` gives it) and its manifest.
    func csv(_ filter: AuditQuery.Filter) async throws -> (csv: String, manifest: AuditExportManifest) {
        let rows = try await AuditQuery(database: database, practiceID: practiceID).csvRows(filter)
        let csv = ([AuditQuery.csvHeader] + rows.map(\.line)).joined(separator: "\r\n") + "\r\n"
        let manifest = try await manifest(
            .csv, filter, header: AuditQuery.csvHeader, digest: AuditExportManifest.digest(csv),
            rows: rows.map { .init(chain: $0.entry.chain, seq: $0.entry.seq, digest: AuditExportManifest.digest($0.line)) })
        return (csv, manifest)
    }

    /// The JSON export: events and manifest in one document.
    func json(_ filter: AuditQuery.Filter) async throws -> AuditExportBundle {
        let events = try await AuditQuery(database: database, practiceID: practiceID).csvRows(filter).map(\.entry)
        let rows = events.map { AuditExportManifest.Row(chain: $0.chain, seq: $0.seq, digest: AuditExportManifest.digest($0.canonical)) }
        let manifest = try await manifest(
            .json, filter, header: nil, digest: AuditExportManifest.digest(rows.map(\.digest).joined(separator: "\n")), rows: rows)
        return AuditExportBundle(manifest: manifest, events: events)
    }

    private func manifest(
        _ kind: AuditExportManifest.Kind, _ filter: AuditQuery.Filter, header: String?, digest: String,
        rows: [AuditExportManifest.Row]
    ) async throws -> AuditExportManifest {
        let keys = try AuditContext.of(database).keys
        let verification = try await AuditLog.verify(on: database, keys: keys)
        let chains = try await AuditChainRegistry.all(on: database)
        var newest: [AuditCheckpoint] = []
        for chain in chains {
            if let last = try await AuditCheckpoint.all(on: database, chain: chain.id, after: (chain.checkpoint_seq ?? 0) - 1).last {
                newest.append(last)
            }
        }
        func text(_ date: Date?) -> String? { date?.ISO8601Format(AuditExportManifest.timeFormat) }
        var manifest = AuditExportManifest(
            kind: kind, practice: practiceID.uuidString,
            filter: .init(
                from: text(filter.from), to: text(filter.to), user: filter.user.flatMap { $0.isEmpty ? nil : $0 },
                type: filter.type.flatMap { $0.isEmpty ? nil : $0 }),
            exportedMS: AuditLog.milliseconds(now), header: header, count: rows.count, digest: digest, rows: rows,
            chains: chains.map { .init(chain: $0.id, seq: $0.seq, head: $0.hash) }, checkpoints: newest,
            logIntact: verification.isIntact, logProblem: verification.problem, keyID: keys.signingKeyID)
        try manifest.sign(with: keys)
        return manifest
    }
}

/// Checks an export offline: no database, no sealing key, only the public key.
enum AuditExportVerifier {
    struct Outcome: Sendable {
        var problems: [String]
        var manifest: AuditExportManifest?
        var isIntact: Bool { problems.isEmpty }
    }

    /// Reads public keys: a base64 raw Ed25519 key, or lines as `twofold audit public-key` prints them.
    static func publicKeys(_ text: String) -> [Curve25519.Signing.PublicKey] {
        var keys: [Curve25519.Signing.PublicKey] = []
        for line in text.split(whereSeparator: \.isNewline) {
            for word in line.split(separator: " ") {
                if let data = Data(base64Encoded: String(word)), data.count == 32,
                    let key = try? Curve25519.Signing.PublicKey(rawRepresentation: data)
                {
                    keys.append(key)
                }
            }
        }
        return keys
    }

    /// Checks `file` (a JSON export, or a CSV export with its `manifest`) against `keys`; names every problem found.
    static func verify(file: Data, manifest manifestData: Data?, keys: [Curve25519.Signing.PublicKey]) -> Outcome {
        let decoder = AuditExportManifest.decoder()
        var manifest: AuditExportManifest
        var rows: [(text: String, chain: String, seq: String)]
        var wholeDigest: String
        let bundle: AuditExportBundle?
        do {
            bundle = try decoder.decode(AuditExportBundle.self, from: file)
        } catch {
            if let problem = unreadableRow(error) { return Outcome(problems: [problem]) }
            bundle = nil
        }
        if let bundle {
            manifest = bundle.manifest
            rows = bundle.events.map { ($0.canonical, $0.chain, String($0.seq)) }
            wholeDigest = AuditExportManifest.digest(rows.map { AuditExportManifest.digest($0.text) }.joined(separator: "\n"))
        } else {
            guard let manifestData else {
                return Outcome(problems: ["the file is not a JSON export, and no manifest was given for a CSV export"])
            }
            guard let decoded = try? decoder.decode(AuditExportManifest.self, from: manifestData) else {
                return Outcome(problems: ["the manifest is not an audit export manifest"])
            }
            manifest = decoded
            let text = String(decoding: file, as: UTF8.self)
            var records = csvRecords(text)
            guard !records.isEmpty else { return Outcome(problems: ["the CSV file is empty"], manifest: manifest) }
            let header = records.removeFirst()
            if header != manifest.header {
                return Outcome(problems: ["the CSV header is not the one that was signed: columns were changed"], manifest: manifest)
            }
            rows = records.map { record in
                let cells = csvCells(record)
                return (record, cells.last ?? "", cells.first ?? "")
            }
            wholeDigest = AuditExportManifest.digest(text)
        }
        guard manifest.format == AuditExportManifest.format else {
            return Outcome(problems: ["the manifest has format \(manifest.format), not \(AuditExportManifest.format)"])
        }

        // The signature first: without it nothing in the manifest can be trusted.
        guard let key = keys.first(where: { AuditKeys.keyID($0) == manifest.keyID }) else {
            let given = keys.map(AuditKeys.keyID).joined(separator: ", ")
            return Outcome(
                problems: [
                    "the manifest is signed with key \(manifest.keyID), not with the public key given (\(given.isEmpty ? "none could be read" : given)): the wrong key, or not an export of this server"
                ], manifest: manifest)
        }
        guard let signature = Data(base64Encoded: manifest.signature), key.isValidSignature(signature, for: manifest.signedMessage) else {
            return Outcome(problems: ["the manifest's signature does not verify: the manifest was changed or forged"], manifest: manifest)
        }
        var problems: [String] = []
        for checkpoint in manifest.checkpoints {
            let valid = Data(base64Encoded: checkpoint.signature).map { key.isValidSignature($0, for: checkpoint.signedMessage) } ?? false
            if !valid { problems.append("the \(checkpoint.label) of chain \(checkpoint.chain) in the manifest does not verify") }
        }
        problems += compare(rows: rows, with: manifest.rows)
        if problems.isEmpty, wholeDigest != manifest.digest {
            problems.append("the file differs from the signed export outside its rows (line breaks or data after the last row)")
        }
        return Outcome(problems: problems, manifest: manifest)
    }

    /// A JSON export that does not read because one of its events was changed (such as a time written in another form
    /// or a number made text): which row, and what in it.
    static func unreadableRow(_ error: any Error) -> String? {
        guard let error = error as? DecodingError else { return nil }
        let path: [any CodingKey]
        switch error {
        case .dataCorrupted(let context), .typeMismatch(_, let context), .valueNotFound(_, let context): path = context.codingPath
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        default: return nil
        }
        guard path.count >= 2, path[0].stringValue == "events", let index = path[1].intValue else { return nil }
        let field = path.dropFirst(2).map(\.stringValue).joined(separator: ".")
        return "row \(index + 1) of the file is not an event as Twofold exports it\(field.isEmpty ? "" : " (\(field))"): it was edited"
    }

    /// Names edited, inserted, removed and moved rows, by their row number in the file (1 = first event).
    static func compare(rows: [(text: String, chain: String, seq: String)], with signed: [AuditExportManifest.Row]) -> [String] {
        let digests = rows.map { AuditExportManifest.digest($0.text) }
        if digests == signed.map(\.digest) { return [] }
        var problems: [String] = []
        var positions: [String: [Int]] = [:]
        for (index, row) in signed.enumerated() { positions[row.digest, default: []].append(index) }
        let inFile = Set(digests)
        let signedByEvent = Dictionary(
            signed.enumerated().map { ("\($0.element.chain)#\($0.element.seq)", $0.offset) }, uniquingKeysWith: { first, _ in first })
        // A row is out of place when it was signed before a row the file shows above it (a removed row shifts the
        // rest without reordering them).
        var latest = -1
        for (index, digest) in digests.enumerated() {
            let name = "row \(index + 1) (event #\(rows[index].seq) of chain \(rows[index].chain))"
            if let places = positions[digest] {
                let place = places.first { $0 > latest } ?? places[0]
                if place < latest {
                    problems.append(
                        "\(name) is out of place: it was signed as row \(place + 1), before a row shown above it; rows were reordered")
                }
                latest = max(latest, place)
            } else if let original = signedByEvent["\(rows[index].chain)#\(rows[index].seq)"], !inFile.contains(signed[original].digest) {
                problems.append("\(name) was edited: it differs from the signed row \(original + 1)")
            } else {
                problems.append("\(name) is not in the signed export: it was inserted or edited")
            }
        }
        let edited = Set(rows.compactMap { signedByEvent["\($0.chain)#\($0.seq)"] })
        for (index, row) in signed.enumerated() where !inFile.contains(row.digest) && !edited.contains(index) {
            problems.append("row \(index + 1) of the signed export (event #\(row.seq) of chain \(row.chain)) is missing: it was removed")
        }
        if problems.isEmpty, digests.count != signed.count {
            problems.append("the file has \(digests.count) rows but \(signed.count) were signed: a row was duplicated or removed")
        }
        return problems
    }

    /// Splits CSV text into records (without their CRLF), keeping line breaks inside quoted cells.
    static func csvRecords(_ text: String) -> [String] {
        var records: [String] = []
        var current = ""
        var quoted = false
        var iterator = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = iterator.next()
        while let scalar = pending {
            pending = iterator.next()
            if scalar == "\"" { quoted.toggle() }
            if !quoted, scalar == "\r", pending == "\n" {
                records.append(current)
                current = ""
                pending = iterator.next()
                continue
            }
            current.unicodeScalars.append(scalar)
        }
        if !current.isEmpty { records.append(current) }
        return records
    }

    /// The cells of one record, unquoted (without undoing the formula guard, which the digest covers anyway).
    static func csvCells(_ record: String) -> [String] {
        let characters = Array(record)
        var cells: [String] = []
        var current = ""
        var quoted = false
        var index = 0
        while index < characters.count {
            let character = characters[index]
            index += 1
            if quoted {
                if character != "\"" {
                    current.append(character)
                } else if index < characters.count, characters[index] == "\"" {
                    current.append("\"")
                    index += 1
                } else {
                    quoted = false
                }
            } else if character == "\"" {
                quoted = true
            } else if character == "," {
                cells.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        cells.append(current)
        return cells
    }
}
