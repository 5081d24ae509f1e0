import Fluent
import SQLKit
import Vapor

/// The staff list of one practice: search, paging and each user's 2FA state, in three queries per page.
struct StaffDirectory {
    static let pageSize = 50
    let database: any Database
    let practice: Practice

    enum TwoFactorState: Equatable {
        case active(kind: Factor.Kind, shortID: String)
        case requiredNotSetUp
        case inactive
    }

    struct Row {
        var user: User
        var twoFactor: TwoFactorState
        var primaryProviderName: String?
    }

    struct Page {
        var rows: [Row]
        var total: Int
        var page: Int
        var pageCount: Int { max(1, (total + StaffDirectory.pageSize - 1) / StaffDirectory.pageSize) }
    }

    /// Users whose login, name or email contains `search` (case-insensitive), sorted by name.
    func page(search: String?, page requested: Int) async throws -> Page {
        let page = min(max(1, requested), QueryBounds.page.upperBound)
        let term = (search ?? "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let practiceID = try practice.requireID()
        func matching(_ query: SQLSelectBuilder) -> SQLSelectBuilder {
            var query = query.where("practice_id", .equal, practiceID)
            if !term.isEmpty {
                let pattern = "%" + term.replacingOccurrences(of: "%", with: "").replacingOccurrences(of: "_", with: "") + "%"
                query = query.where { group in
                    var group = group
                    for column in ["username_key", "first_name", "last_name", "email"] {
                        group = group.orWhere(SQLFunction("LOWER", args: SQLColumn(column)), .like, SQLBind(pattern))
                    }
                    return group
                }
            }
            return query
        }
        let total =
            try await matching(database.sql.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n").from(User.schema))
            .first(decoding: CountRow.self)?.n ?? 0
        let users = try await matching(database.sql.select().column(SQLLiteral.all).from(User.schema))
            .orderBy("last_name").orderBy("first_name").orderBy("username_key")
            .limit(Self.pageSize).offset((page - 1) * Self.pageSize)
            .all(decodingFluent: User.self)
        let ids = users.compactMap(\.id)
        let factors = ids.isEmpty ? [] : try await Factor.query(on: database).filter(\.$user.$id ~~ ids).filter(\.$status == .active).all()
        let providerIDs = Set(users.compactMap(\.primaryProviderID))
        let providers = providerIDs.isEmpty ? [] : try await User.query(on: database).filter(\.$id ~~ Array(providerIDs)).all()
        let providerNames = Dictionary(uniqueKeysWithValues: try providers.map { (try $0.requireID(), "Dr. \($0.lastName)") })
        let rows = users.map { user in
            let own = factors.filter { $0.$user.id == user.id }
            let state: TwoFactorState
            if let primary = own.first(where: \.isPrimary) ?? own.first {
                state = .active(kind: primary.kind, shortID: primary.shortID)
            } else if user.twoFactorRequired || practice.mandatoryTwoFactor {
                state = .requiredNotSetUp
            } else {
                state = .inactive
            }
            return Row(user: user, twoFactor: state, primaryProviderName: user.primaryProviderID.flatMap { providerNames[$0] })
        }
        return Page(rows: rows, total: total, page: page)
    }

    private struct CountRow: Decodable { var n: Int }

    /// One user of this practice; another practice's id is "not found", never "forbidden".
    func user(_ id: UUID) async throws -> User {
        let practiceID = try practice.requireID()
        guard let user = try await User.query(on: database).filter(\.$id == id).filter(\.$practice.$id == practiceID).first() else {
            throw AdminError.userNotFound
        }
        return user
    }

    func providers() async throws -> [User] {
        let practiceID = try practice.requireID()
        return try await User.query(on: database).filter(\.$practice.$id == practiceID).filter(\.$role == .provider)
            .sort(\.$lastName).sort(\.$firstName).limit(500).all()
    }
}
