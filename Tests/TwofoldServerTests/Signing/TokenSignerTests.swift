import Crypto
import Fluent
import Foundation
import JWTKit
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Token signing with jwt-kit: RS256 and ES256 keys, the JWKS, rotation")
struct TokenSignerTests {
    struct Payload: JWTPayload, Equatable {
        var sub: String
        var exp: Int64
        var scope: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static let payload = Payload(sub: "user-1", exp: 1_900_000_300, scope: "openid https://example.org/a/b")

    static func signer(_ ctx: TestContext, at offset: TimeInterval = 0) -> TokenSigner {
        TokenSigner(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now.addingTimeInterval(offset))
    }

    static func jwks(_ ctx: TestContext) async throws -> (body: Data, keys: [[String: Any]]) {
        let response = try await ctx.app.testing().sendRequest(.GET, "/.well-known/jwks.json")
        let body = Data(buffer: response.body)
        let keys = try #require((try JSONSerialization.jsonObject(with: body) as? [String: Any])?["keys"] as? [[String: Any]])
        return (body, keys)
    }

    static func header(of token: String) throws -> [String: String] {
        let part = String(try #require(token.split(separator: ".").first))
        return try JSONDecoder().decode([String: String].self, from: Data(try Base64URL.decode(part)))
    }

    static func token(header: String, payload: String, signature: String = "") -> String {
        Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(Array(payload.utf8)) + "." + signature
    }

    @Test(arguments: SigningAlgorithm.allCases)
    func signsAndVerifies(_ algorithm: SigningAlgorithm) async throws {
        try await withTestApp { ctx in
            // act
            let token = try await Self.signer(ctx).sign(Self.payload, algorithm: algorithm, type: "at+jwt")

            // verify: the header, Twofold's own check, and an independent one against the published JWKS
            let header = try Self.header(of: token)
            #expect(header["alg"] == algorithm.rawValue)
            #expect(header["typ"] == "at+jwt")
            let kid = try #require(header["kid"])
            #expect(try await Self.signer(ctx).verify(token, as: Payload.self) == Self.payload)
            let verified = try IndependentJWS.verify(token, jwks: try await Self.jwks(ctx).body)
            #expect(try JSONDecoder().decode(Payload.self, from: verified.payload) == Self.payload)
            #expect(String(decoding: verified.payload, as: UTF8.self).contains("https://example.org/a/b"), "slashes stay unescaped")

            // The same key signs the next token: one current key per algorithm.
            #expect(try Self.header(of: try await Self.signer(ctx, at: 60).sign(Self.payload, algorithm: algorithm))["kid"] == kid)
            #expect(try await SigningKey.query(on: ctx.app.db).filter(\.$algorithm == algorithm).count() == 1)
        }
    }

    @Test func jwksPublishesAnRSAAndAnECKeyWithTheirFields() async throws {
        try await withTestApp { ctx in
            // act: the first fetch on a new database creates the key of each algorithm
            let response = try await ctx.app.testing().sendRequest(.GET, "/.well-known/jwks.json")
            let (_, keys) = try await Self.jwks(ctx)

            // verify
            #expect(response.headers.first(name: .cacheControl) == "public, max-age=300")
            #expect(keys.count == 2)
            let rsa = try #require(keys.first { $0["kty"] as? String == "RSA" })
            #expect(rsa["alg"] as? String == "RS256" && rsa["use"] as? String == "sig" && rsa["kid"] is String)
            #expect(rsa["e"] as? String == "AQAB")
            #expect(try Base64URL.decode(try #require(rsa["n"] as? String)).count == 256, "a 2048-bit modulus")
            #expect(Set(rsa.keys) == ["kty", "kid", "use", "alg", "n", "e"])
            let ec = try #require(keys.first { $0["kty"] as? String == "EC" })
            #expect(ec["alg"] as? String == "ES256" && ec["use"] as? String == "sig" && ec["crv"] as? String == "P-256")
            #expect(try Base64URL.decode(try #require(ec["x"] as? String)).count == 32)
            #expect(try Base64URL.decode(try #require(ec["y"] as? String)).count == 32)
            #expect(Set(ec.keys) == ["kty", "kid", "use", "alg", "crv", "x", "y"])
            #expect(rsa["kid"] as? String != ec["kid"] as? String)

            // The keys are kept: later fetches and signatures use the same ones, sealed at rest.
            #expect(try await Self.jwks(ctx).keys.compactMap { $0["kid"] as? String } == keys.compactMap { $0["kid"] as? String })
            for key in try await SigningKey.query(on: ctx.app.db).all() {
                #expect(!String(decoding: key.sealedPrivateKey, as: UTF8.self).contains("PRIVATE"))
                #expect(throws: (any Error).self) {
                    try ctx.app.twofold.sealer.open(Array(key.sealedPrivateKey), context: Array("other".utf8))
                }
            }
        }
    }

    @Test func rotatedKeysStayPublishedForADayThenGo() async throws {
        try await withTestApp { ctx in
            // setup: a token of each algorithm signed with the first keys
            var old: [SigningAlgorithm: String] = [:]
            for algorithm in SigningAlgorithm.allCases {
                old[algorithm] = try await Self.signer(ctx).sign(Self.payload, algorithm: algorithm)
            }

            // act: rotate both algorithms
            ctx.clock.advance(60)
            let store = SigningKeyStore(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now)
            var new: [SigningAlgorithm: String] = [:]
            for algorithm in SigningAlgorithm.allCases {
                let rotated = try await store.rotate(algorithm)
                #expect(rotated.retired == [try Self.header(of: try #require(old[algorithm]))["kid"]])
                new[algorithm] = rotated.key.kid
            }

            // verify: the new keys sign at once, and the old tokens still verify for a day
            for algorithm in SigningAlgorithm.allCases {
                let token = try await Self.signer(ctx).sign(Self.payload, algorithm: algorithm)
                #expect(try Self.header(of: token)["kid"] == new[algorithm])
            }
            ctx.clock.advance(SigningKeyStore.publishedAfterRetirement - 1)
            let (body, keys) = try await Self.jwks(ctx)
            #expect(keys.count == 4)
            #expect(keys.compactMap { $0["alg"] as? String } == ["RS256", "RS256", "ES256", "ES256"])
            #expect(
                keys.compactMap { $0["kid"] as? String }.filter { new.values.contains($0) } == [new[.rs256], new[.es256]].compactMap { $0 })
            for token in old.values {
                _ = try IndependentJWS.verify(token, jwks: body)
                #expect(try await Self.signer(ctx, at: 0).verify(token, as: Payload.self) == Self.payload)
            }
            #expect(try await SigningKeyStore.prune(on: ctx.app.db, now: ctx.clock.now).isEmpty)

            // More than a day after the rotation the retired keys are neither published nor accepted, and pruning deletes them.
            ctx.clock.advance(2)
            let (laterBody, laterKeys) = try await Self.jwks(ctx)
            #expect(Set(laterKeys.compactMap { $0["kid"] as? String }) == Set(new.values))
            for token in old.values {
                #expect(throws: IndependentJWS.Failure.unknownKey) { try IndependentJWS.verify(token, jwks: laterBody) }
                let kid = try #require(try Self.header(of: token)["kid"])
                await #expect(throws: TokenSignerError.unknownKey(kid)) { try await Self.signer(ctx).verify(token, as: Payload.self) }
            }
            #expect(
                try await MaintenanceTask.prune(database: ctx.app.db, now: ctx.clock.now)
                    == .init(throttleBuckets: 0, smsCodes: 0, webAuthnChallenges: 0))
            #expect(try await SigningKey.query(on: ctx.app.db).all().map(\.kid).sorted() == new.values.sorted())
        }
    }

    @Test func verifyRefusesNoneHMACForeignAndUnknownKeysAndTampering() async throws {
        try await withTestApp { ctx in
            // setup
            let signer = Self.signer(ctx)
            let es = try await signer.sign(Self.payload, algorithm: .es256)
            let rs = try await signer.sign(Self.payload, algorithm: .rs256)
            let esKid = try #require(try Self.header(of: es)["kid"])
            let rsKid = try #require(try Self.header(of: rs)["kid"])
            let claims = #"{"exp":1900000300,"scope":"openid","sub":"admin"}"#

            // "none": no signature at all
            await #expect(throws: TokenSignerError.unsupportedAlgorithm("none")) {
                try await signer.verify(Self.token(header: #"{"alg":"none","kid":"\#(esKid)"}"#, payload: claims), as: Payload.self)
            }
            // HS256 keyed with the public RSA key, the classic algorithm confusion
            let published = try await Self.jwks(ctx).body
            let unsigned = Self.token(header: #"{"alg":"HS256","kid":"\#(rsKid)","typ":"JWT"}"#, payload: claims)
            let mac = HMAC<SHA256>.authenticationCode(for: Array(unsigned.dropLast().utf8), using: SymmetricKey(data: published))
            await #expect(throws: TokenSignerError.unsupportedAlgorithm("HS256")) {
                try await signer.verify(unsigned + Base64URL.encode(Array(mac)), as: Payload.self)
            }
            // an unknown kid, no kid, and a kid of the other algorithm
            let parts = es.split(separator: ".").map(String.init)
            await #expect(throws: TokenSignerError.unknownKey("nope")) {
                try await signer.verify(
                    Self.token(header: #"{"alg":"ES256","kid":"nope","typ":"JWT"}"#, payload: claims, signature: parts[2]), as: Payload.self
                )
            }
            await #expect(throws: TokenSignerError.unknownKey("(none)")) {
                try await signer.verify(
                    Self.token(header: #"{"alg":"ES256","typ":"JWT"}"#, payload: claims, signature: parts[2]), as: Payload.self)
            }
            await #expect(throws: TokenSignerError.unknownKey(esKid)) {
                try await signer.verify(
                    Self.token(header: #"{"alg":"RS256","kid":"\#(esKid)","typ":"JWT"}"#, payload: claims, signature: parts[2]),
                    as: Payload.self)
            }
            // a tampered payload, for each algorithm
            for token in [es, rs] {
                let pieces = token.split(separator: ".").map(String.init)
                let forged = pieces[0] + "." + Base64URL.encode(Array(claims.utf8)) + "." + pieces[2]
                await #expect(throws: TokenSignerError.badSignature) { try await signer.verify(forged, as: Payload.self) }
                #expect(throws: IndependentJWS.Failure.badSignature) { try IndependentJWS.verify(forged, jwks: published) }
            }
            // another token's signature, and garbage
            await #expect(throws: TokenSignerError.badSignature) {
                let other = try await Self.signer(ctx, at: 1).sign(Payload(sub: "user-2", exp: 1, scope: ""), algorithm: .es256)
                try await signer.verify(parts[0] + "." + parts[1] + "." + other.split(separator: ".")[2], as: Payload.self)
            }
            await #expect(throws: TokenSignerError.malformed("expected three dot-separated parts")) {
                try await signer.verify("only.two", as: Payload.self)
            }
            await #expect(throws: TokenSignerError.self) { try await signer.verify("!!.!!.!!", as: Payload.self) }
        }
    }

    @Test func migrationKeepsExistingKeysAsES256AndRetiresAllButTheNewest() async throws {
        try await withTestApp { ctx in
            // setup: the table as it was before, with three keys made a week apart
            let migration = AddAlgorithmAndRetirementToSigningKey()
            try await migration.revert(on: ctx.app.db)
            let start = ctx.clock.now
            for week in 0..<3 {
                try await ctx.app.db.sql.insert(into: SigningKey.schema).columns("id", "kid", "sealed_private_key", "created_at")
                    .values(
                        SQLBind(UUID()), SQLBind("k\(week)"), SQLBind(Data([1, 2, 3])),
                        SQLBind(start.addingTimeInterval(Double(week) * 604_800))
                    )
                    .run()
            }

            // act
            try await migration.prepare(on: ctx.app.db)

            // verify
            let keys = try await SigningKey.query(on: ctx.app.db).sort(\.$kid).all()
            #expect(keys.map(\.algorithm) == [.es256, .es256, .es256])
            #expect(keys.map(\.retiredAt) == [start.addingTimeInterval(604_800), start.addingTimeInterval(2 * 604_800), nil])
        }
    }
}
