import Fluent
import Foundation
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Bulk import")
struct ImportTests {
    static func importer(_ ctx: TestContext, _ practice: Practice) -> Importer {
        Importer(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now, practiceID: practice.id!)
    }

    static func problems(_ body: () async throws -> Int) async -> String? {
        do {
            _ = try await body()
            return nil
        } catch let problems as Importer.Problems { return problems.description } catch { return "\(error)" }
    }

    @Test func usersWithBcryptHashesCanSignInAndKeysWorkForValidation() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let hash = try ctx.app.password.hash("imported password 1")
            let users = """
                username,first_name,last_name,email,cell,role,password_hash
                amy.ng,Amy,Ng,amy@example.org,+1 555 010 0001,provider,\(hash.replacingOccurrences(of: "$2b$", with: "$2y$"))
                "bo,b",Bob,"O""Neil",bob@example.org,,staff,
                """
            let badName = await Self.problems { try await Self.importer(ctx, practice).importUsers(csv: users) }
            #expect(badName?.contains("line 3, column username") == true)
            #expect(try await User.query(on: ctx.app.db).count() == 0)
            let fixed = users.replacingOccurrences(of: "\"bo,b\"", with: "bob")
            #expect(try await Self.importer(ctx, practice).importUsers(csv: fixed) == 2)
            let bob = try #require(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "bob").first())
            #expect(bob.lastName == "O\"Neil")
            #expect(bob.mustChangePassword)
            let (_, body, status) = try await APIClient.login(ctx, username: "amy.ng", password: "imported password 1")
            #expect(status == .ok)
            #expect(body["status"] as? String == "authenticated")
            #expect(try await APIClient.login(ctx, username: "bob", password: Importer.unusablePasswordHash).2 == .unauthorized)

            let secret = OTPSecret.generate(for: .sha256)
            let factors = "username,secret,digits,algorithm,period,nickname\namy.ng,\(secret.base32.lowercased()),8,sha256,30,Old app\n"
            #expect(try await Self.importer(ctx, practice).importFactors(csv: factors) == 1)
            let factor = try #require(try await Factor.query(on: ctx.app.db).first())
            #expect(factor.isPrimary && factor.status == .active && factor.digits == 8)
            #expect(factor.sealedSecret.map { $0.range(of: Data(secret.bytes)) == nil } == true)
            let key = try await APIKeyService(database: ctx.app.db, now: ctx.clock.now).create(practiceID: practice.id!, name: "VPN").key
            let code = TOTP(secret: secret, parameters: try OTPParameters(algorithm: .sha256, digits: 8)).code(at: ctx.clock.now)
            let validated = try await APIClient(ctx, token: key).send(
                .POST, "/api/v1/validate", json: ["username": "amy.ng", "code": code])
            #expect(validated.json["result"] as? String == "accept")

            if ctx.app.db.isPostgres {
                // The planner's statistics of both tables were brought up to date by the imports themselves.
                struct Analyzed: Decodable { var relname: String }
                let analyzed = try await ctx.app.db.sql.raw(
                    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() AND last_analyze IS NOT NULL"
                ).all(decoding: Analyzed.self).map(\.relname)
                #expect(Set(analyzed).isSuperset(of: [User.schema, Factor.schema]))
            }
        }
    }

    @Test func anyBadRowWritesNothingAndNamesLineAndColumn() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "taken")
            let csv = """
                username,first_name,last_name,email,cell,role
                ok.one,A,B,a@example.org,,staff
                taken,C,D,c@example.org,,staff
                bad.role,E,F,e@example.org,,doctor
                bad.mail,G,H,not-an-email,,staff
                ok.one,I,J,i@example.org,,staff
                """
            let report = try #require(await Self.problems { try await Self.importer(ctx, practice).importUsers(csv: csv) })
            #expect(report.contains("line 4, column role"))
            #expect(report.contains("line 5, column email"))
            #expect(report.contains("line 6, column username: ok.one also appears on line 2"))
            #expect(try await User.query(on: ctx.app.db).count() == 1)
            let missingColumn = try #require(
                await Self.problems { try await Self.importer(ctx, practice).importUsers(csv: "username,first_name\nx,y\n") })
            #expect(missingColumn.contains("missing column(s) last_name, email, cell, role"))
            let factors =
                "username,secret,digits,algorithm,period,nickname\nghost,JBSWY3DPEHPK3PXP,6,SHA1,30,x\ntaken,NOT*BASE32,9,MD5,1,x\n"
            let factorReport = try #require(await Self.problems { try await Self.importer(ctx, practice).importFactors(csv: factors) })
            #expect(factorReport.contains("line 2, column username"))
            #expect(factorReport.contains("line 3, column secret"))
            #expect(factorReport.contains("line 3, column algorithm"))
            #expect(factorReport.contains("line 3, column digits"))
            #expect(factorReport.contains("line 3, column period"))
            #expect(try await Factor.query(on: ctx.app.db).count() == 0)
        }
    }

    @Test func csvReaderHandlesQuotesAndLineEnds() throws {
        let rows = try CSVReader.parse("a,\"b,c\",\"d\"\"e\"\r\n\"multi\nline\",x,\n\n")
        #expect(rows.count == 2)
        #expect(rows[0].fields == ["a", "b,c", "d\"e"])
        #expect(rows[1].fields == ["multi\nline", "x", ""])
        #expect(throws: CSVReader.Failure.self) { try CSVReader.parse("a,\"open\n") }
        #expect(throws: CSVReader.Failure.self) { try CSVReader.parse("a,b\"c\n") }
    }
}
