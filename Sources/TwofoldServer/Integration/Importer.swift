import Fluent
import Foundation
import SQLKit
import TwofoldCore
import Vapor

/// Moves a practice from another system: staff (optionally with bcrypt hashes) and authenticator keys from CSV.
/// Every row is checked first; on any problem nothing is written and each problem names its line and column.
struct Importer {
    let database: any Database
    let sealer: SecretSealer
    let now: Date
    let practiceID: UUID

    static let batchSize = 1000
    static let maximumReportedProblems = 25

    struct Problems: Error, CustomStringConvertible {
        var lines: [String]
        var description: String {
            "nothing was imported; fix these rows and run the import again:\n" + lines.map { "  \($0)" }.joined(separator: "\n")
        }
    }

    /// A row's fields by column name, with the line number for messages. Every record shares one column index.
    struct Record {
        var line: Int
        var fields: [String]
        let columns: [String: Int]
        subscript(_ column: String) -> String { columns[column].map { fields[$0].trimmingCharacters(in: .whitespaces) } ?? "" }
    }

    static func records(_ text: String, required: [String], optional: [String]) throws -> [Record] {
        let rows: [CSVReader.Row]
        do { rows = try CSVReader.parse(text) } catch { throw Problems(lines: ["\(error)"]) }
        guard let header = rows.first else {
            throw Problems(lines: ["the file is empty; the first line must name the columns: \(required.joined(separator: ","))"])
        }
        let columns = header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        let missing = required.filter { !columns.contains($0) }
        let unknown = columns.filter { !required.contains($0) && !optional.contains($0) }
        guard missing.isEmpty, unknown.isEmpty else {
            var lines: [String] = []
            if !missing.isEmpty { lines.append("line 1: missing column(s) \(missing.joined(separator: ", "))") }
            if !unknown.isEmpty {
                lines.append(
                    "line 1: unknown column(s) \(unknown.joined(separator: ", ")); allowed: \((required + optional).joined(separator: ", "))"
                )
            }
            throw Problems(lines: lines)
        }
        var records: [Record] = []
        records.reserveCapacity(rows.count - 1)
        var index: [String: Int] = [:]
        for (position, column) in columns.enumerated() where index[column] == nil { index[column] = position }
        var problems: [String] = []
        for row in rows.dropFirst() {
            guard row.fields.count == columns.count else {
                problems.append("line \(row.line): \(row.fields.count) fields, expected \(columns.count)")
                continue
            }
            records.append(Record(line: row.line, fields: row.fields, columns: index))
        }
        guard problems.isEmpty else { throw Problems(lines: Array(problems.prefix(maximumReportedProblems))) }
        return records
    }

    // MARK: users

    static let bcryptPattern = #"^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$"#
    /// Imported hashes cheaper than the configured cost are rehashed at the user's next sign-in; costlier ones than
    /// this would tie up a bcrypt thread for minutes at every attempt.
    static let maximumImportedCost = 16
    /// Stored for imported users without a hash: no password ever verifies against it (the decoy hash is checked
    /// instead, so refusing them takes as long as refusing an unknown username).
    static let unusablePasswordHash = "!imported-without-password"

    func importUsers(csv: String) async throws -> Int {
        let records = try Self.records(
            csv, required: ["username", "first_name", "last_name", "email", "cell", "role"], optional: ["password_hash"])
        var problems: [String] = []
        func problem(_ record: Record, _ column: String, _ text: String) {
            if problems.count < Self.maximumReportedProblems { problems.append("line \(record.line), column \(column): \(text)") }
        }
        var seen: [String: Int] = [:]
        var users: [ImportedUser] = []
        users.reserveCapacity(records.count)
        for record in records {
            let username = record["username"]
            if !AccountProvisioning.isValidUsername(username) { problem(record, "username", "use \(AccountProvisioning.usernamePattern)") }
            if let earlier = seen[User.key(for: username)] { problem(record, "username", "\(username) also appears on line \(earlier)") }
            seen[User.key(for: username)] = record.line
            if record["first_name"].isEmpty { problem(record, "first_name", "required") }
            if record["last_name"].isEmpty { problem(record, "last_name", "required") }
            let email = ProfileService.validEmail(record["email"])
            if email == nil { problem(record, "email", "not a valid email address") }
            var cell: String?
            if !record["cell"].isEmpty {
                cell = SMSCodeService.normalizedPhone(record["cell"])
                if cell == nil { problem(record, "cell", "needs 7 to 15 digits") }
            }
            let role = User.Role(rawValue: record["role"].lowercased())
            if role == nil { problem(record, "role", "must be provider or staff") }
            let hash = record["password_hash"]
            if !hash.isEmpty && hash.range(of: Self.bcryptPattern, options: .regularExpression) == nil {
                problem(record, "password_hash", "must be a bcrypt hash ($2a$, $2b$ or $2y$)")
            } else if !hash.isEmpty, !(4...Self.maximumImportedCost).contains(PasswordRules.bcryptCost(of: hash) ?? 0) {
                problem(record, "password_hash", "bcrypt cost must be 4 to \(Self.maximumImportedCost) (each sign-in would check it)")
            }
            guard problems.isEmpty, let email, let role else { continue }
            users.append(
                ImportedUser(
                    username: username, firstName: record["first_name"], lastName: record["last_name"], email: email,
                    cellPhone: cell, role: role, passwordHash: hash))
        }
        guard try await Practice.find(practiceID, on: database) != nil else {
            throw Problems(lines: ["there is no practice with id \(practiceID)"])
        }
        if problems.isEmpty {
            let keys = Array(seen.keys)
            for start in stride(from: 0, to: keys.count, by: Self.batchSize) {
                let chunk = Array(keys[start..<min(start + Self.batchSize, keys.count)])
                for existing in try await User.query(on: database).filter(\.$usernameKey ~~ chunk).all()
                where problems.count < Self.maximumReportedProblems {
                    problems.append("line \(seen[existing.usernameKey] ?? 0), column username: \(existing.username) already exists")
                }
            }
        }
        guard problems.isEmpty else { throw Problems(lines: problems) }
        let rows = users
        let (practiceID, now) = (self.practiceID, self.now)
        let audit = AuditEntry(type: .usersImported, practiceID: practiceID, details: ["count": String(rows.count)])
        try await database.transaction { tx in
            for start in stride(from: 0, to: rows.count, by: Self.batchSize) {
                try await rows[start..<min(start + Self.batchSize, rows.count)].map {
                    $0.model(practiceID: practiceID, emailVerifiedAt: now)
                }.create(on: tx)
            }
            try await AuditLog.append(audit, on: tx, now: now)
        }
        try await refreshStatistics(of: User.schema)
        return rows.count
    }

    /// After a bulk insert on PostgreSQL, brings the planner's statistics of `table` up to date at once: until
    /// autovacuum gets to it, the planner takes the grown table for an empty one and picks plans that make the first
    /// minute of verifications after an import several times slower.
    private func refreshStatistics(of table: String) async throws {
        guard database.isPostgres else { return }
        try await database.sql.raw("ANALYZE \(ident: table)").run()
    }

    // MARK: factors

    func importFactors(csv: String) async throws -> Int {
        let records = try Self.records(csv, required: ["username", "secret", "digits", "algorithm", "period", "nickname"], optional: [])
        var problems: [String] = []
        func problem(_ record: Record, _ column: String, _ text: String) {
            if problems.count < Self.maximumReportedProblems { problems.append("line \(record.line), column \(column): \(text)") }
        }
        var usersByKey: [String: (id: UUID, hasFactor: Bool)] = [:]
        let keys = Array(Set(records.map { User.key(for: $0["username"]) }))
        for start in stride(from: 0, to: keys.count, by: Self.batchSize) {
            let chunk = Array(keys[start..<min(start + Self.batchSize, keys.count)])
            for user in try await database.sql.select().columns("id", "username_key").from(User.schema)
                .where("practice_id", .equal, practiceID).where("username_key", .in, chunk).all(decoding: UserKeyRow.self)
            {
                usersByKey[user.username_key] = (user.id, false)
            }
        }
        let keysByID = Dictionary(uniqueKeysWithValues: usersByKey.map { ($0.value.id, $0.key) })
        let ids = Array(keysByID.keys)
        for start in stride(from: 0, to: ids.count, by: Self.batchSize) {
            let chunk = Array(ids[start..<min(start + Self.batchSize, ids.count)])
            for row in try await database.sql.select().distinct().column("user_id").from(Factor.schema)
                .where("user_id", .in, chunk).where("status", .equal, Factor.Status.active.rawValue).all(decoding: FactorOwnerRow.self)
            {
                if let key = keysByID[row.user_id] { usersByKey[key]?.hasFactor = true }
            }
        }
        var factors: [ImportedFactor] = []
        factors.reserveCapacity(records.count)
        for record in records {
            guard let user = usersByKey[User.key(for: record["username"])] else {
                problem(record, "username", "no user \(record["username"]) in this practice (import users first)")
                continue
            }
            let secret = try? OTPSecret(base32: record["secret"])
            if secret == nil { problem(record, "secret", "must be base32 of at least 80 bits") }
            let digits = Int(record["digits"].isEmpty ? "6" : record["digits"])
            let algorithm = OTPAlgorithm(
                rawValue: (record["algorithm"].isEmpty ? "SHA1" : record["algorithm"]).uppercased().replacingOccurrences(of: "-", with: ""))
            let period = Int(record["period"].isEmpty ? "30" : record["period"])
            let parameters = algorithm.flatMap { algorithm in
                digits.flatMap { digits in period.flatMap { try? OTPParameters(algorithm: algorithm, digits: digits, period: $0) } }
            }
            if algorithm == nil { problem(record, "algorithm", "must be SHA1, SHA256 or SHA512") }
            if digits == nil || !(6...8).contains(digits ?? 0) { problem(record, "digits", "must be 6, 7 or 8") }
            if period == nil || !(15...300).contains(period ?? 0) { problem(record, "period", "must be 15 to 300 seconds") }
            let nickname = record["nickname"].isEmpty ? "Authenticator app" : record["nickname"]
            let longest = TwofoldPolicy.standard.fields.nickname
            if nickname.count > longest { problem(record, "nickname", "at most \(longest) characters") }
            guard problems.isEmpty, let secret, let parameters else { continue }
            let id = UUID()
            factors.append(
                ImportedFactor(
                    id: id, userID: user.id, nickname: nickname, parameters: parameters, isPrimary: !user.hasFactor,
                    sealedSecret: Data(try sealer.seal(secret.bytes, context: TOTPVerifier.sealingContext(for: id)))))
            usersByKey[User.key(for: record["username"])]?.hasFactor = true
        }
        guard problems.isEmpty else { throw Problems(lines: problems) }
        let now = self.now
        let rows = factors
        let audit = AuditEntry(type: .factorsImported, practiceID: practiceID, details: ["count": String(factors.count)])
        try await database.transaction { tx in
            for start in stride(from: 0, to: rows.count, by: Self.batchSize) {
                var insert = tx.sql.insert(into: Factor.schema).columns(ImportedFactor.columns)
                for factor in rows[start..<min(start + Self.batchSize, rows.count)] { insert = insert.values(factor.values(now: now)) }
                try await insert.run()
            }
            try await AuditLog.append(audit, on: tx, now: now)
        }
        try await refreshStatistics(of: Factor.schema)
        return rows.count
    }

    /// A staff member checked and ready to insert; the Fluent model is built only for its batch.
    struct ImportedUser: Sendable {
        var username, firstName, lastName, email: String
        var cellPhone: String?
        var role: User.Role
        /// A bcrypt hash, or empty: the user gets a password that never verifies and must be given one. Either way it is
        /// not known to meet the single-factor minimum (`passwordMeetsSingleFactorMinimum` stays false until a sign-in).
        var passwordHash: String

        /// - Parameter emailVerifiedAt: the import's time: an address the practice's administrator supplies counts as verified.
        func model(practiceID: UUID, emailVerifiedAt: Date? = nil) -> User {
            let user = User(
                id: UUID(), practiceID: practiceID, username: username, firstName: firstName, lastName: lastName, email: email,
                cellPhone: cellPhone, role: role, permissions: [],
                passwordHash: passwordHash.isEmpty ? Importer.unusablePasswordHash : passwordHash)
            user.mustChangePassword = passwordHash.isEmpty
            user.emailVerifiedAt = emailVerifiedAt
            return user
        }
    }

    private struct UserKeyRow: Decodable {
        var id: UUID
        var username_key: String
    }
    private struct FactorOwnerRow: Decodable { var user_id: UUID }

    /// An authenticator key checked and sealed, ready to insert: a plain row rather than a Fluent model, so a million
    /// of them fit in memory and go in as multi-row inserts.
    struct ImportedFactor: Sendable {
        var id: UUID
        var userID: UUID
        var nickname: String
        var parameters: OTPParameters
        var isPrimary: Bool
        var sealedSecret: Data

        static let columns = [
            "id", "user_id", "kind", "status", "nickname", "is_primary", "sealed_secret", "digits", "algorithm", "period",
            "created_at", "activated_at",
        ]

        func values(now: Date) -> [any SQLExpression] {
            [
                SQLBind(id), SQLBind(userID), SQLBind(Factor.Kind.totp.rawValue), SQLBind(Factor.Status.active.rawValue), SQLBind(nickname),
                SQLBind(isPrimary), SQLBind(sealedSecret), SQLBind(parameters.digits), SQLBind(parameters.algorithm.rawValue),
                SQLBind(parameters.period), SQLBind(now), SQLBind(now),
            ]
        }
    }
}
