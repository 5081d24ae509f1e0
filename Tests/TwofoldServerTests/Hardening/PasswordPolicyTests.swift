import Fluent
import Foundation
import Testing
import TwofoldCore
import Vapor
import VaporTesting

@testable import TwofoldServer

/// NIST SP 800-63B rev. 4 §3.1.1.2 passwords, bcrypt costs, rehashing, and the decoy check for unusable hashes.
@Suite("Password policy")
struct PasswordPolicyTests {
    static let singleFactor = PasswordRules.Context.singleFactor(username: "dr.smith", practiceName: "Riverside Family Medicine")
    static let withSecondFactor = PasswordRules.Context(
        hasSecondFactor: true, username: "dr.smith", practiceName: "Riverside Family Medicine")

    // MARK: the rules

    @Test func fifteenCharactersAsTheOnlyFactorEightWithASecondFactor() {
        let fourteen = "tulip kettle 9"
        #expect(fourteen.count == 14)
        #expect(PasswordRules.problem(with: fourteen, context: Self.singleFactor)?.contains("at least 15 characters") == true)
        #expect(PasswordRules.problem(with: fourteen, context: Self.withSecondFactor) == nil)
        #expect(PasswordRules.problem(with: fourteen + "x", context: Self.singleFactor) == nil)
        #expect(PasswordRules.problem(with: "tulip k", context: Self.withSecondFactor)?.contains("at least 8 characters") == true)
        #expect(PasswordRules.problem(with: "tulipkez", context: Self.withSecondFactor) == nil)
        // No composition rules: all lower-case letters and spaces are fine.
        #expect(PasswordRules.problem(with: "purple ocean lantern", context: Self.singleFactor) == nil)
    }

    @Test func commonPasswordsAreRefusedWhateverTheirCase() {
        #expect(PasswordRules.blocklist.count > 10_000)
        for common in [
            "qwertyuiop", "QwertyUIOP", "1q2w3e4r5t6y", "Password1", "ILOVEYOU", "Baseball1", "CorrectHorseBatteryStaple", "password 1",
        ] {
            #expect(
                PasswordRules.problem(with: common, context: Self.withSecondFactor)?.contains("common or breached") == true, "\(common)")
        }
        #expect(PasswordRules.problem(with: "qwertyuiop zebra", context: Self.withSecondFactor) == nil)
    }

    @Test func theUsernameAndThePracticeNameAreRefused() {
        let context = PasswordRules.Context(hasSecondFactor: true, username: "nurse.kimberly", practiceName: "Riverside Family Medicine")
        #expect(PasswordRules.problem(with: "Nurse.Kimberly", context: context)?.contains("username") == true)
        #expect(PasswordRules.problem(with: "riverside family medicine", context: context)?.contains("practice") == true)
        #expect(PasswordRules.problem(with: "RiversideFamilyMedicine", context: context)?.contains("practice") == true)
        #expect(PasswordRules.problem(with: "nurse.kimberly rides", context: context) == nil)
    }

    @Test func passwordsLongerThanBcryptReadsAreRefused() {
        let seventyTwo = String(repeating: "horse ", count: 12)
        #expect(seventyTwo.utf8.count == 72)
        #expect(PasswordRules.problem(with: seventyTwo, context: Self.singleFactor) == nil)
        #expect(PasswordRules.problem(with: seventyTwo + "x", context: Self.singleFactor)?.contains("at most 72 bytes") == true)
        // 24 characters but 96 bytes.
        #expect(PasswordRules.problem(with: String(repeating: "🐎", count: 24), context: Self.singleFactor)?.contains("72 bytes") == true)
    }

    @Test func bcryptCostsAreReadFromTheHash() {
        #expect(PasswordRules.bcryptCost(of: "$2b$12$" + String(repeating: "a", count: 53)) == 12)
        #expect(PasswordRules.bcryptCost(of: "$2y$04$" + String(repeating: "./", count: 26) + "A") == 4)
        #expect(PasswordRules.bcryptCost(of: Importer.unusablePasswordHash) == nil)
        #expect(PasswordRules.bcryptCost(of: "") == nil)
        #expect(PasswordRules.bcryptCost(of: "$2b$99$" + String(repeating: "a", count: 53)) == nil)
        #expect(PasswordRules.bcryptCost(of: "$2b$12$" + String(repeating: "!", count: 53)) == nil)
    }

    // MARK: where passwords are set

    @Test func aNewUserNeedsFifteenCharactersUnlessThePracticeRequiresTwoFactor() async throws {
        try await withTestApp { ctx in
            let open = try await Fixtures.practice(ctx)
            let mandatory = try await Fixtures.practice(ctx, name: "Lakeside Clinic", mandatory: true)
            let provisioning = AccountProvisioning(database: ctx.app.db, passwords: ctx.app.password.async, now: ctx.clock.now)
            func newUser(_ practice: Practice, _ username: String, _ password: String) -> AccountProvisioning.NewUser {
                .init(
                    practiceID: practice.id!, username: username, firstName: "Kim", lastName: "Lee", email: "\(username)@example.org",
                    cellPhone: nil, role: .staff, permissions: [], password: password)
            }
            do {
                _ = try await provisioning.createUser(newUser(open, "kim", "tulip kettle 9"))
                Issue.record("a 14-character only factor was accepted")
            } catch let error as any AbortError {
                #expect(error.status == .badRequest)
                #expect(error.reason.contains("at least 15 characters"))
            }
            do {
                _ = try await provisioning.createUser(newUser(mandatory, "kim", "qwertyuiop"))
                Issue.record("a common password was accepted")
            } catch let error as any AbortError {
                #expect(error.reason.contains("common or breached"))
            }
            let short = try await provisioning.createUser(newUser(mandatory, "kim", "tulip kettle 9"))
            #expect(!short.passwordMeetsSingleFactorMinimum)
            let long = try await provisioning.createUser(newUser(open, "lee", "tulip kettle 9 lamp"))
            #expect(long.passwordMeetsSingleFactorMinimum)
            let stored = try #require(try await User.find(long.id, on: ctx.app.db))
            #expect(stored.passwordMeetsSingleFactorMinimum)
        }
    }

    @Test func anAdministratorsTemporaryPasswordFollowsTheSameRules() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            let web = WebClient(ctx)
            _ = try await web.get("/login")
            _ = try await web.post("/login", ["username": "admin", "password": Fixtures.password])
            func create(_ temporaryPassword: String) async throws -> TestingHTTPResponse {
                _ = try await web.get("/admin/staff/new")
                return try await web.post(
                    "/admin/staff",
                    [
                        "username": "new.staff", "firstName": "Nia", "lastName": "New", "email": "nia@example.org", "role": "staff",
                        "temporaryPassword": temporaryPassword, "adminPassword": Fixtures.password,
                    ])
            }
            let short = try await create("short pass 1")
            #expect(short.status == .badRequest, "\(short.status)")
            #expect(short.text.contains("15 characters"))
            let practiceName = try await create("Riverside Family Medicine")
            #expect(practiceName.status == .badRequest)
            #expect(practiceName.text.contains("practice"))
            let username = try await create("New.Staff")
            #expect(username.status == .badRequest)
            #expect(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "new.staff").first() == nil)
            let created = try await create("temporary pass 12")
            #expect(created.location?.hasPrefix("/admin/staff?notice=staff-created") == true, "\(created.status)")
        }
    }

    @Test func ownPasswordChangeNeedsFifteenCharactersWithoutTwoFactorAndEightWithIt() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let web = WebClient(ctx)
            _ = try await web.get("/login")
            _ = try await web.post("/login", ["username": "dr.smith", "password": Fixtures.password])
            #expect(try await web.get("/account/password").text.contains("at least 15 characters"))
            let short = "tulip kettle 9"
            let refused = try await web.post(
                "/account/password", ["currentPassword": Fixtures.password, "newPassword": short, "confirmPassword": short])
            #expect(refused.status == .badRequest)
            #expect(refused.text.contains("at least 15 characters"))
            let common = try await web.post(
                "/account/password",
                ["currentPassword": Fixtures.password, "newPassword": "1QAZ2WSX3EDC4RFV", "confirmPassword": "1QAZ2WSX3EDC4RFV"])
            #expect(common.status == .badRequest)
            #expect(common.text.contains("common or breached"))
            let username = try await web.post(
                "/account/password", ["currentPassword": Fixtures.password, "newPassword": "Dr.Smith", "confirmPassword": "Dr.Smith"])
            #expect(username.status == .badRequest)

            // With an authenticator app the same password is long enough, but it is recorded as too short to be the only factor.
            _ = try await Flows.enrollTOTP(ctx)
            #expect(try await web.get("/account/password").text.contains("at least 8 characters"))
            let accepted = try await web.post(
                "/account/password", ["currentPassword": Fixtures.password, "newPassword": short, "confirmPassword": short])
            #expect(accepted.location?.hasPrefix("/account/security") == true, "\(accepted.status) \(accepted.text.prefix(300))")
            var user = try #require(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "dr.smith").first())
            #expect(!user.passwordMeetsSingleFactorMinimum)
            _ = try await web.get("/account/password")
            let long = "tulip kettle 9 lamp"
            _ = try await web.post("/account/password", ["currentPassword": short, "newPassword": long, "confirmPassword": long])
            user = try #require(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "dr.smith").first())
            #expect(user.passwordMeetsSingleFactorMinimum)
        }
    }

    // MARK: bcrypt cost

    @Test func bcryptCostsBelowTenAreAConfigurationErrorUnlessWeakCostsAreAllowed() throws {
        for cost in ["4", "9"] {
            do {
                _ = try TwofoldConfiguration.fromEnvironment(["TWOFOLD_BCRYPT_COST": cost])
                Issue.record("cost \(cost) was accepted")
            } catch let error as ConfigurationError {
                #expect(error.description.contains("TWOFOLD_BCRYPT_COST \(cost) is too weak"))
                #expect(error.description.contains("TWOFOLD_ALLOW_WEAK_BCRYPT=1"))
            }
        }
        #expect(try TwofoldConfiguration.fromEnvironment(["TWOFOLD_BCRYPT_COST": "10"]).bcryptCost == 10)
        #expect(try TwofoldConfiguration.fromEnvironment(["TWOFOLD_BCRYPT_COST": "6", "TWOFOLD_ALLOW_WEAK_BCRYPT": "1"]).bcryptCost == 6)
        #expect(throws: ConfigurationError.self) {
            try TwofoldConfiguration.fromEnvironment(["TWOFOLD_BCRYPT_COST": "3", "TWOFOLD_ALLOW_WEAK_BCRYPT": "1"])
        }
        #expect(try TwofoldConfiguration.fromEnvironment([:]).bcryptCost == 12)
    }

    /// Makes the stored hash cheaper than the configured cost, as an import or an older setting would have.
    static func storeCheapHash(_ ctx: TestContext, username: String = "dr.smith") async throws -> User {
        let user = try #require(try await User.query(on: ctx.app.db).filter(\.$usernameKey == username).first())
        user.passwordHash = try Bcrypt.hash(Fixtures.password, cost: 4)
        user.passwordMeetsSingleFactorMinimum = false
        try await user.save(on: ctx.app.db)
        ctx.app.twofold.configuration.bcryptCost = 5
        return user
    }

    @Test func upgradingRehashesACheapHashAndRecordsTheSingleFactorMinimum() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let user = try await Self.storeCheapHash(ctx)
            let request = Request(application: ctx.app, on: ctx.app.eventLoopGroup.next())
            try await request.upgradePasswordHashIfNeeded(user: user, password: Fixtures.password)
            let stored = try #require(try await User.find(user.id, on: ctx.app.db))
            #expect(PasswordRules.bcryptCost(of: stored.passwordHash) == 5)
            #expect(try Bcrypt.verify(Fixtures.password, created: stored.passwordHash))
            #expect(stored.passwordMeetsSingleFactorMinimum)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "password.rehashed").count() == 1)
            // Nothing to do the second time.
            try await request.upgradePasswordHashIfNeeded(user: stored, password: Fixtures.password)
            #expect(try await User.find(user.id, on: ctx.app.db)?.passwordHash == stored.passwordHash)
        }
    }

    @Test func signingInRehashesAHashBelowTheConfiguredCost() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let user = try await Self.storeCheapHash(ctx)
            let (_, body, status) = try await APIClient.login(ctx)
            #expect(status == .ok)
            #expect(body["status"] as? String == "authenticated")
            let stored = try #require(try await User.find(user.id, on: ctx.app.db))
            #expect(PasswordRules.bcryptCost(of: stored.passwordHash) == 5, "the sign-in path does not call upgradePasswordHashIfNeeded")
            #expect(try Bcrypt.verify(Fixtures.password, created: stored.passwordHash))
            #expect(try await APIClient.login(ctx).2 == .ok)
        }
    }

    // MARK: users without a usable hash

    @Test func importedUsersWithoutAPasswordAreCheckedAgainstTheDecoyHashLikeUnknownUsers() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let csv = """
                username,first_name,last_name,email,cell,role,password_hash
                bob,Bob,Ng,bob@example.org,,staff,
                """
            #expect(
                try await Importer(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now, practiceID: practice.id!)
                    .importUsers(csv: csv) == 1)
            let counter = try #require(ctx.app.passwordChecks)

            let before = counter.decoyChecks
            #expect(try await APIClient.login(ctx, username: "nobody", password: "some password here").2 == .unauthorized)
            #expect(counter.decoyChecks == before + 1, "an unknown username is checked against the decoy")

            #expect(try await APIClient.login(ctx, username: "bob", password: "some password here").2 == .unauthorized)
            #expect(try await APIClient.login(ctx, username: "bob", password: Importer.unusablePasswordHash).2 == .unauthorized)
            #expect(counter.decoyChecks == before + 3, "an imported user without a password takes the same path")

            #expect(try await APIClient.login(ctx, username: "dr.smith", password: "not the password").2 == .unauthorized)
            #expect(counter.decoyChecks == before + 3, "a real hash is checked itself")
        }
    }

    @Test func importedHashesWithAnUnreasonableCostAreRefused() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let csv = """
                username,first_name,last_name,email,cell,role,password_hash
                bob,Bob,Ng,bob@example.org,,staff,$2b$31$\(String(repeating: "a", count: 53))
                """
            do {
                _ = try await Importer(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now, practiceID: practice.id!)
                    .importUsers(csv: csv)
                Issue.record("a cost-31 hash was imported")
            } catch let problems as Importer.Problems {
                #expect(problems.description.contains("bcrypt cost must be 4 to 16"))
            }
        }
    }

    @Test func importedUsersAreNotKnownToMeetTheSingleFactorMinimum() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let hash = try Bcrypt.hash("a long imported password", cost: 4)
            let csv = """
                username,first_name,last_name,email,cell,role,password_hash
                amy,Amy,Ng,amy@example.org,,staff,\(hash)
                """
            _ = try await Importer(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now, practiceID: practice.id!)
                .importUsers(csv: csv)
            let amy = try #require(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "amy").first())
            #expect(!amy.passwordMeetsSingleFactorMinimum)
        }
    }
}
