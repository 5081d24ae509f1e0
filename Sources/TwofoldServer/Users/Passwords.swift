import Fluent
import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import SQLKit
import Vapor

/// Password rules shared by every place a password is set or checked (NIST SP 800-63B rev. 4 §3.1.1.2):
/// a length that depends on whether the password is the only factor, no composition rules, at most 72 bytes
/// (bcrypt), and a blocklist of common passwords, the username and the practice name, compared case-insensitively.
enum PasswordRules {
    /// The minimum for a user who has, or must have, a second factor.
    static let minimumLength = 8
    /// The minimum for a password that is the user's only factor.
    static let singleFactorMinimumLength = 15
    /// bcrypt reads only the first 72 bytes; longer passwords are refused rather than silently truncated.
    static let maximumBytes = 72

    /// What the rules depend on besides the password itself.
    struct Context: Sendable {
        /// The user has an active second factor, or must enroll one (practice-wide or per-user requirement).
        var hasSecondFactor: Bool
        var username: String?
        var practiceName: String?

        /// The strictest context: the password is the only factor.
        static func singleFactor(username: String? = nil, practiceName: String? = nil) -> Context {
            Context(hasSecondFactor: false, username: username, practiceName: practiceName)
        }

        var minimumLength: Int { hasSecondFactor ? PasswordRules.minimumLength : PasswordRules.singleFactorMinimumLength }
    }

    /// The reason a new password is unacceptable, or nil when it is fine.
    static func problem(with password: String, context: Context) -> String? {
        if password.count < context.minimumLength {
            return context.hasSecondFactor
                ? "Choose a password of at least \(context.minimumLength) characters."
                : "Choose a password of at least \(context.minimumLength) characters (\(minimumLength) once two-factor authentication is on); a few unrelated words make a good one."
        }
        if password.utf8.count > maximumBytes {
            return "Choose a password of at most \(maximumBytes) bytes (bcrypt ignores anything longer)."
        }
        let candidate = normalized(password)
        if let username = context.username.map(normalized), !username.isEmpty, candidate == username {
            return "Choose a password that is not your username."
        }
        if let practice = context.practiceName.map(normalized), !practice.isEmpty, candidate == practice {
            return "Choose a password that is not the practice's name."
        }
        if isCommon(password) { return "That password is on the list of common or breached passwords. Choose another one." }
        return nil
    }

    /// Whether a password is long enough (and otherwise acceptable) to be a user's only factor; recorded when it is set.
    static func meetsSingleFactorMinimum(_ password: String, username: String?, practiceName: String?) -> Bool {
        problem(with: password, context: .singleFactor(username: username, practiceName: practiceName)) == nil
    }

    /// Lower-cased, without whitespace: "Password 123" and "password123" are the same password here.
    static func normalized(_ text: String) -> String {
        String(text.lowercased().unicodeScalars.filter { !CharacterSet.whitespacesAndNewlines.contains($0) })
    }

    static func isCommon(_ password: String) -> Bool {
        let lowered = password.lowercased()
        return blocklist.contains(lowered) || blocklist.contains(normalized(lowered))
    }

    /// Resources/password-blocklist.txt (made by scripts/make-password-blocklist.py), read once on first use.
    static let blocklist: Set<String> = {
        guard let data = try? ServerResources.data("password-blocklist.txt"), let text = String(data: data, encoding: .utf8) else {
            fatalError("Resources/password-blocklist.txt is missing from the build; run scripts/make-password-blocklist.py")
        }
        return Set(text.split(separator: "\n").map(String.init))
    }()

    // MARK: stored hashes

    private static let bcryptAlphabet = Set("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)

    /// The cost of a bcrypt hash (`$2b$12$…` → 12), or nil when the string is not a usable bcrypt hash
    /// (e.g. the marker stored for users imported without a password).
    static func bcryptCost(of hash: String) -> Int? {
        let bytes = Array(hash.utf8)
        guard bytes.count == 60, bytes[0] == UInt8(ascii: "$"), bytes[1] == UInt8(ascii: "2"),
            [UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "y")].contains(bytes[2]), bytes[3] == UInt8(ascii: "$"),
            bytes[6] == UInt8(ascii: "$"),
            let cost = Int(String(decoding: bytes[4...5], as: UTF8.self)), (4...31).contains(cost),
            bytes[7...].allSatisfy(bcryptAlphabet.contains)
        else { return nil }
        return cost
    }

    /// The rules for `user`, from their factors and their practice's requirement.
    static func context(for user: User, on database: any Database) async throws -> Context {
        let practice = try await Practice.find(user.$practice.id, on: database)
        var hasSecondFactor = user.twoFactorRequired || (practice?.mandatoryTwoFactor ?? false)
        if !hasSecondFactor, let id = user.id {
            hasSecondFactor = try await Factor.query(on: database).filter(\.$user.$id == id).filter(\.$status == .active).count() > 0
        }
        return Context(hasSecondFactor: hasSecondFactor, username: user.username, practiceName: practice?.name)
    }
}

/// Counts password checks that went to the decoy hash, so tests can see that users without a usable hash take the
/// same path (and the same time) as unknown usernames.
final class PasswordCheckCounter: Sendable {
    private let decoys = NIOLockedValueBox(0)
    var decoyChecks: Int { decoys.withLockedValue { $0 } }
    func countDecoy() { decoys.withLockedValue { $0 += 1 } }

    struct Key: StorageKey { typealias Value = PasswordCheckCounter }
}

extension Application {
    /// Installed with the bcrypt threads in `configure`.
    var passwordChecks: PasswordCheckCounter? { storage[PasswordCheckCounter.Key.self] }
}

/// Password checks and hashes, run on the bcrypt threads (never on an event loop), for services that take their
/// dependencies explicitly (``ServiceContext/passwords``).
struct PasswordChecker: Sendable {
    var hasher: AsyncPasswordHasher
    /// The threads bcrypt runs on (for rehashing at another cost than the hasher's).
    var pool: NIOThreadPool
    var decoyHash: String
    /// The configured bcrypt cost.
    var cost: Int
    var counter: PasswordCheckCounter?

    /// Checks a password off the event loop; never true for passwords bcrypt would truncate. When there is no user or
    /// the stored hash is not a usable bcrypt hash (imported without a password), the decoy hash is checked instead,
    /// so the answer takes as long as for a real account.
    func verify(_ password: String, against hash: String?) async -> Bool {
        guard password.utf8.count <= PasswordRules.maximumBytes else { return false }
        let usable = hash.flatMap { PasswordRules.bcryptCost(of: $0) == nil ? nil : $0 }
        if usable == nil { counter?.countDecoy() }
        do {
            let matches = try await hasher.verify(password, created: usable ?? decoyHash)
            return matches && usable != nil
        } catch {
            return false
        }
    }

    /// Hashes a new password after checking it against the rules of `context`.
    func hash(_ password: String, context: PasswordRules.Context) async throws -> String {
        if let problem = PasswordRules.problem(with: password, context: context) { throw Abort(.badRequest, reason: problem) }
        return try await hasher.hash(password)
    }
}

extension ServiceContext {
    /// Call after `password` was verified against `user`'s stored hash at sign-in: rehashes it at the configured cost
    /// when the stored hash is cheaper (imported or made under an older setting), and records whether the password
    /// meets the single-factor minimum when that was not known. Writes only when the stored hash is still the one
    /// that was checked, so a concurrent password change is never overwritten.
    func upgradePasswordHashIfNeeded(user: User, password: String) async throws {
        guard let id = user.id, let storedCost = PasswordRules.bcryptCost(of: user.passwordHash) else { return }
        let targetCost = passwords.cost
        let needsRehash = storedCost < targetCost
        var meetsMinimum = user.passwordMeetsSingleFactorMinimum
        if !meetsMinimum {
            let practice = try await Practice.find(user.$practice.id, on: database)
            meetsMinimum = PasswordRules.meetsSingleFactorMinimum(password, username: user.username, practiceName: practice?.name)
        }
        guard needsRehash || meetsMinimum != user.passwordMeetsSingleFactorMinimum else { return }
        let old = user.passwordHash
        var hash = old
        if needsRehash {
            hash = try await passwords.pool.runIfActive { try Bcrypt.hash(password, cost: targetCost) }
        }
        try await database.sql.update(User.schema)
            .set("password_hash", to: hash).set("password_single_factor_ok", to: meetsMinimum)
            .where("id", .equal, id).where("password_hash", .equal, old).run()
        user.passwordHash = hash
        user.passwordMeetsSingleFactorMinimum = meetsMinimum
        if needsRehash {
            try await audit(
                .passwordRehashed, practiceID: user.$practice.id, actorID: id,
                details: ["from_cost": String(storedCost), "to_cost": String(targetCost)])
        }
    }
}

extension Request {
    /// See ``PasswordChecker/verify(_:against:)``.
    func verifyPassword(_ password: String, against hash: String?) async -> Bool {
        await serviceContext.passwords.verify(password, against: hash)
    }

    /// See ``PasswordChecker/hash(_:context:)``.
    func hashPassword(_ password: String, context: PasswordRules.Context) async throws -> String {
        try await serviceContext.passwords.hash(password, context: context)
    }

    /// See ``ServiceContext/upgradePasswordHashIfNeeded(user:password:)``.
    func upgradePasswordHashIfNeeded(user: User, password: String) async throws {
        try await serviceContext.upgradePasswordHashIfNeeded(user: user, password: password)
    }
}
