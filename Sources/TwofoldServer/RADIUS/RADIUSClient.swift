import Fluent
import Foundation
import TwofoldCore

/// A network device of a practice (VPN, remote-desktop gateway, firewall, Wi-Fi controller) that asks Twofold for
/// sign-in decisions over RADIUS. Its shared secret is sealed at rest; packets are accepted only from its address block.
final class RADIUSClient: Model, @unchecked Sendable {
    static let schema = "radius_clients"

    /// What the device sends in `User-Password`.
    enum Mode: String, Codable, Sendable, CaseIterable {
        /// The user's Twofold password, then the code (after an Access-Challenge, or appended to the password).
        case passwordAndCode = "password+code"
        /// Only the code: the device has checked the password itself (e.g. against Active Directory).
        case codeOnly = "code-only"
    }

    @ID(key: .id) var id: UUID?

    // reference fields
    @Parent(key: "practice_id") var practice: Practice

    // data fields
    @Field(key: "name") var name: String
    /// A CIDR block (`10.0.0.1/32`, `192.0.2.0/24`, `2001:db8::/64`): the device's source addresses.
    @Field(key: "address") var address: String
    @Field(key: "mode") var mode: Mode
    /// The shared secret, AES-256-GCM sealed and bound to this client's id.
    @Field(key: "sealed_secret") var sealedSecret: Data
    /// How long a push request waits for the user's approval, in seconds (the device's own timeout should be longer).
    @Field(key: "push_timeout_seconds") var pushTimeoutSeconds: Int
    /// Optional reply attribute carrying the user's role on Access-Accept, e.g. `Filter-Id` (for VPN group policies).
    @OptionalField(key: "role_attribute") var roleAttribute: String?
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    @OptionalField(key: "revoked_at") var revokedAt: Date?

    init() {}

    init(id: UUID = UUID(), practiceID: UUID, name: String, address: String, mode: Mode) {
        self.id = id
        self.$practice.id = practiceID
        self.name = name
        self.address = address
        self.mode = mode
        self.sealedSecret = Data()
        self.pushTimeoutSeconds = RADIUSClient.defaultPushTimeout
        self.roleAttribute = nil
    }

    static let defaultPushTimeout = 25
    static let pushTimeoutRange = 5...120
    /// Shared secrets Twofold generates are this long; secrets given by an administrator must be at least 16 characters.
    static let generatedSecretLength = 40
    static let minimumSecretLength = 16

    static func sealingContext(for id: UUID) -> [UInt8] {
        Array("radius-client|\(id.uuidString.lowercased())".utf8)
    }
}

struct CreateRADIUSClient: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(RADIUSClient.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .cascade))
            .field("name", .string, .required)
            .field("address", .string, .required)
            .field("mode", .string, .required)
            .field("sealed_secret", .data, .required)
            .field("push_timeout_seconds", .int, .required)
            .field("role_attribute", .string)
            .field("created_at", .datetime)
            .field("revoked_at", .datetime)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(RADIUSClient.schema).delete()
    }
}

/// Errors of RADIUS client administration (pages, API and CLI).
enum RADIUSClientError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case notFound

    var description: String {
        switch self {
        case .invalid(let reason): reason
        case .notFound: "There is no RADIUS client with that id."
        }
    }
}

/// Registering, listing and revoking a practice's RADIUS clients.
struct RADIUSClientService {
    let database: any Database
    let sealer: SecretSealer
    let now: Date

    struct Created {
        var client: RADIUSClient
        /// The shared secret, shown once.
        var secret: String
    }

    /// Registers a device. `secret` nil generates one (40 characters from a CSPRNG).
    /// - Parameter roleAsFilterID: send the user's role (`provider`, `staff` or `administrator`) as `Filter-Id` on
    ///   Access-Accept, for VPN group policies.
    func create(
        practiceID: UUID, name rawName: String, address rawAddress: String, mode: RADIUSClient.Mode, secret given: String?,
        roleAsFilterID: Bool = false, actorID: UUID? = nil, origin: String = "cli"
    ) async throws -> Created {
        var problems: [String] = []
        let name = rawName.trimmingCharacters(in: .whitespacesAndNewlines)
        let longest = TwofoldPolicy.standard.fields.radiusClientName
        if !(1...longest).contains(name.count) { problems.append("the name must be 1 to \(longest) characters") }
        let address = rawAddress.trimmingCharacters(in: .whitespaces)
        if CIDRBlock(address) == nil {
            problems.append("the address must be an IP address or CIDR block, e.g. 10.0.0.1/32 or 192.0.2.0/24")
        }
        if let given {
            if given.utf8.count < RADIUSClient.minimumSecretLength {
                problems.append("the shared secret must be at least \(RADIUSClient.minimumSecretLength) characters")
            }
            if given.utf8.count > 128 { problems.append("the shared secret must be at most 128 characters") }
        }
        if try await Practice.find(practiceID, on: database) == nil { problems.append("there is no practice with id \(practiceID)") }
        guard problems.isEmpty else {
            throw RADIUSClientError.invalid("Cannot add the RADIUS client: " + problems.joined(separator: "; ") + ".")
        }
        let secret = given ?? Self.generateSecret()
        let client = RADIUSClient(practiceID: practiceID, name: name, address: address, mode: mode)
        client.roleAttribute = roleAsFilterID ? "Filter-Id" : nil
        client.sealedSecret = Data(try sealer.seal(Array(secret.utf8), context: RADIUSClient.sealingContext(for: try client.requireID())))
        try await client.create(on: database)
        try await AuditLog.append(
            AuditEntry(
                type: .radiusClientCreated, practiceID: practiceID, actorID: actorID, ip: origin,
                details: ["client": name, "address": address, "mode": mode.rawValue]), on: database, now: now)
        return Created(client: client, secret: secret)
    }

    func revoke(id: UUID, practiceID: UUID? = nil, actorID: UUID? = nil, origin: String = "cli") async throws -> RADIUSClient {
        var query = RADIUSClient.query(on: database).filter(\.$id == id)
        if let practiceID { query = query.filter(\.$practice.$id == practiceID) }
        guard let client = try await query.first() else { throw RADIUSClientError.notFound }
        guard client.revokedAt == nil else { return client }
        client.revokedAt = now
        try await client.save(on: database)
        try await AuditLog.append(
            AuditEntry(
                type: .radiusClientRevoked, practiceID: client.$practice.id, actorID: actorID, ip: origin,
                details: ["client": client.name, "address": client.address]), on: database, now: now)
        return client
    }

    func list(practiceID: UUID) async throws -> [RADIUSClient] {
        try await RADIUSClient.query(on: database).filter(\.$practice.$id == practiceID).sort(\.$createdAt).all()
    }

    /// The shared secret of a stored client.
    func secret(of client: RADIUSClient) throws -> [UInt8] {
        try sealer.open(Array(client.sealedSecret), context: RADIUSClient.sealingContext(for: try client.requireID()))
    }

    /// 40 characters of letters and digits (about 238 bits), easy to paste into a device's settings.
    static func generateSecret() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
        var result = ""
        while result.count < RADIUSClient.generatedSecretLength {
            for byte in SecureRandom.bytes(64) where Int(byte) < 256 - 256 % alphabet.count {
                result.append(alphabet[Int(byte) % alphabet.count])
                if result.count == RADIUSClient.generatedSecretLength { break }
            }
        }
        return result
    }
}
