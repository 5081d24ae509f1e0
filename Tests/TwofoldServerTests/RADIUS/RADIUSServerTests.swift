import Fluent
import Foundation
import NIOCore
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// A network device as the tests play it: builds Access-Requests with the shared secret, sends them to the
/// processor as datagrams from its address, and checks every answer's authenticators.
struct TestNAS {
    let ctx: TestContext
    let processor: RADIUSProcessor
    let secret: RADIUSSharedSecret
    var address = "127.0.0.1"
    var identifier: UInt8 = 0

    init(_ ctx: TestContext, secret: String, address: String = "127.0.0.1") {
        self.ctx = ctx
        processor = RADIUSProcessor(app: ctx.app)
        self.secret = RADIUSSharedSecret(secret)
        self.address = address
    }

    func request(_ user: String, _ password: String?, state: [UInt8]? = nil, id: UInt8 = 1, secret other: RADIUSSharedSecret? = nil) throws
        -> RADIUSPacket
    {
        try RADIUSPacket.accessRequest(
            identifier: id, userName: user, password: password.map { Array($0.utf8) }, state: state,
            attributes: [.text(.nasIdentifier, "clinic-vpn"), .text(.callingStationID, "198.51.100.7")],
            secret: other ?? secret)
    }

    /// Sends the packet's bytes; returns the verified answer, or nil when Twofold stayed silent.
    func send(_ packet: RADIUSPacket, port: Int = 40_000) async throws -> RADIUSPacket? {
        try await sendBytes(try packet.encoded(), answering: packet, port: port)
    }

    func sendBytes(_ bytes: [UInt8], answering packet: RADIUSPacket, port: Int = 40_000) async throws -> RADIUSPacket? {
        guard let answer = await processor.handle(bytes, from: try SocketAddress(ipAddress: address, port: port)) else { return nil }
        let response = try RADIUSPacket(decoding: answer)
        try response.verifyResponse(to: packet, secret: secret)
        #expect(response.attributes.first?.type == .messageAuthenticator, "Message-Authenticator must come first")
        return response
    }
}

@Suite("RADIUS server")
struct RADIUSServerTests {
    static let secret = "a-long-shared-secret-for-the-clinic-vpn"

    static func client(
        _ ctx: TestContext, practice: Practice, mode: RADIUSClient.Mode = .passwordAndCode, address: String = "127.0.0.1/32",
        roleAttribute: String? = nil
    ) async throws -> RADIUSClient {
        let created = try await RADIUSClientService(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now)
            .create(
                practiceID: practice.id!, name: "Clinic VPN", address: address, mode: mode, secret: secret,
                roleAsFilterID: roleAttribute != nil)
        ctx.app.radiusClients.invalidate()
        return created.client
    }

    static func events(_ ctx: TestContext, _ name: String) async throws -> [AuditEvent] {
        try await AuditEvent.query(on: ctx.app.db).filter(\.$event == name).all()
    }

    @Test func passwordThenChallengeThenCodeSignsIn() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            _ = try await Self.client(ctx, practice: practice, roleAttribute: "Filter-Id")
            let nas = TestNAS(ctx, secret: Self.secret)
            ctx.clock.advance(30)
            let challenge = try #require(try await nas.send(try nas.request("dr.smith", Fixtures.password)))
            #expect(challenge.code == .accessChallenge)
            #expect(challenge.replyMessages.joined().contains("authenticator app"))
            let state = try #require(challenge.state)
            let accept = try #require(
                try await nas.send(try nas.request("dr.smith", try Fixtures.code(enrolled.secret, at: ctx.clock.now), state: state, id: 2)))
            #expect(accept.code == .accessAccept)
            #expect(accept.filterID == "provider")
            #expect(accept.classes.count == 1)
            let audit = try #require(try await Self.events(ctx, "radius.accepted").first)
            #expect(audit.details.contains("clinic-vpn") && audit.details.contains("198.51.100.7") && audit.details.contains("Clinic VPN"))
            // the State works once
            let again = try #require(try await nas.send(try nas.request("dr.smith", "123456", state: state, id: 3)))
            #expect(again.code == .accessReject)
        }
    }

    @Test func passwordFollowedByTheCodeInOneFieldSignsIn() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            ctx.clock.advance(30)
            let combined = Fixtures.password + (try Fixtures.code(enrolled.secret, at: ctx.clock.now))
            let accept = try #require(try await nas.send(try nas.request("dr.smith", combined)))
            #expect(accept.code == .accessAccept)
            // the same time step is spent for every channel: the web sign-in refuses it now
            let half = try await Flows.halfSignedIn(ctx)
            #expect(try await half.send(.POST, "/api/v1/login/verify", json: ["code": String(combined.suffix(6))]).status == .unauthorized)
        }
    }

    @Test func unknownUsersWrongPasswordsAndWrongCodesGetTheSameReject() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            let unknown = try #require(try await nas.send(try nas.request("nobody", Fixtures.password)))
            let wrongPassword = try #require(try await nas.send(try nas.request("dr.smith", "not the password at all", id: 2)))
            let challenge = try #require(try await nas.send(try nas.request("dr.smith", Fixtures.password, id: 3)))
            let wrongCode = try #require(try await nas.send(try nas.request("dr.smith", "000000", state: challenge.state, id: 4)))
            for reject in [unknown, wrongPassword, wrongCode] {
                #expect(reject.code == .accessReject)
                #expect(reject.replyMessages == ["Access denied."])
            }
            _ = enrolled
            #expect(try await Self.events(ctx, "radius.rejected").count == 3)
        }
    }

    @Test func codeOnlyModeChecksTheCodeOnItsOwnChannel() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let client = try await Self.client(ctx, practice: practice, mode: .codeOnly)
            let nas = TestNAS(ctx, secret: Self.secret)
            ctx.clock.advance(30)
            let code = try Fixtures.code(enrolled.secret, at: ctx.clock.now)
            #expect(try await nas.send(try nas.request("dr.smith", code))?.code == .accessAccept)
            #expect(try await nas.send(try nas.request("dr.smith", code, id: 2))?.code == .accessReject, "a time step is accepted once")
            for id in 3..<6 { _ = try await nas.send(try nas.request("dr.smith", "000000", id: UInt8(id))) }
            // failures count on this client's channel, not on the web sign-in's
            #expect(try await User.find(user.id, on: ctx.app.db)?.secondFactorFailures == 0)
            let channel = try await ctx.app.db.sql.raw(
                "SELECT failures FROM second_factor_counters WHERE channel = \(bind: "radius:" + client.id!.uuidString.lowercased())"
            )
            .first(decoding: ValidateTests.ChannelRow.self)
            #expect(channel?.failures == 4)
        }
    }

    @Test func aRetransmissionGetsTheSameAnswerAndIsNotCountedTwice() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Flows.enrollTOTP(ctx)
            _ = try await Self.client(ctx, practice: practice, mode: .codeOnly)
            let nas = TestNAS(ctx, secret: Self.secret)
            let packet = try nas.request("dr.smith", "000000")
            let first = try #require(try await nas.send(packet))
            let second = try #require(try await nas.send(packet))
            #expect(try first.encoded() == (try second.encoded()))
            #expect(try await Self.events(ctx, "radius.rejected").count == 1)
            // another port is another request (RFC 5080 §2.2.2 keys on address, port, identifier and authenticator)
            #expect(try await nas.send(packet, port: 40_001)?.code == .accessReject)
            #expect(try await Self.events(ctx, "radius.rejected").count == 2)
        }
    }

    @Test func packetsWithoutAValidMessageAuthenticatorOrFromUnknownAddressesAreDropped() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            // wrong shared secret
            let forged = try nas.request("dr.smith", Fixtures.password, secret: RADIUSSharedSecret("another-secret-entirely-0123456789"))
            #expect(try await nas.sendBytes(try forged.encoded(), answering: forged) == nil)
            // no Message-Authenticator (Blast-RADIUS): refused even with the right secret
            var bare = try nas.request("dr.smith", Fixtures.password)
            bare.attributes.removeAll { $0.type == .messageAuthenticator }
            #expect(try await nas.sendBytes(try bare.encoded(), answering: bare) == nil)
            // an address no client covers
            let stranger = TestNAS(ctx, secret: Self.secret, address: "192.0.2.99")
            #expect(try await stranger.send(try stranger.request("dr.smith", Fixtures.password)) == nil)
            // garbage
            #expect(await nas.processor.handle([1, 2, 3], from: try SocketAddress(ipAddress: "127.0.0.1", port: 1)) == nil)
            let metrics = ctx.app.metrics.registry.emitToString()
            for reason in ["bad_authenticator", "missing_authenticator", "unknown_client", "malformed"] {
                #expect(metrics.contains("reason=\"\(reason)\""), "\(reason)")
            }
            #expect(try await Self.events(ctx, "radius.dropped").count == 4)
            #expect(try await Self.events(ctx, "sign_in.failed").count == 0, "nothing was checked")
        }
    }

    @Test func aUserWhoMustEnrollIsToldToUseTheWebFirst() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx, mandatory: true)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            let reject = try #require(try await nas.send(try nas.request("dr.smith", Fixtures.password)))
            #expect(reject.code == .accessReject)
            #expect(reject.replyMessages.joined().contains("web browser"))
        }
    }

    @Test func statesExpireAndBelongToTheirClient() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            let challenge = try #require(try await nas.send(try nas.request("dr.smith", Fixtures.password)))
            ctx.clock.advance(TwofoldPolicy.standard.radius.challengeLifetime + 1)
            let late = try #require(
                try await nas.send(
                    try nas.request("dr.smith", try Fixtures.code(enrolled.secret, at: ctx.clock.now), state: challenge.state, id: 2)))
            #expect(late.code == .accessReject)
        }
    }

    @Test func typingSmsSendsACodeToTheConfirmedPhone() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await SMSTests.enrollSMS(ctx)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            ctx.clock.advance(31)
            let challenge = try #require(try await nas.send(try nas.request("dr.smith", Fixtures.password)))
            #expect(challenge.replyMessages.joined().contains("type sms"))
            let sent = try #require(try await nas.send(try nas.request("dr.smith", "sms", state: challenge.state, id: 2)))
            #expect(sent.code == .accessChallenge)
            #expect(sent.replyMessages.joined().contains("•••4567"))
            let code = try #require(try await Fixtures.latestOutboxCode(ctx))
            #expect(try await nas.send(try nas.request("dr.smith", code, state: sent.state, id: 3))?.code == .accessAccept)
        }
    }

    @Test func typingPushWaitsForTheDeviceWhichApprovesWithoutANumber() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPush(ctx)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            let challenge = try #require(try await nas.send(try nas.request("dr.smith", Fixtures.password)))
            #expect(challenge.replyMessages.joined().contains("type push"))
            let pushRequest = try nas.request("dr.smith", "push", state: challenge.state, id: 2)
            async let answer = nas.send(pushRequest)
            var pending: [[String: Any]] = []
            for _ in 0..<40 where pending.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                pending = try await enrolled.device.pending(ctx)
            }
            let request = try #require(pending.first)
            #expect(request["numberRequired"] as? Bool == false)
            let summary = try #require(request["summary"] as? String)
            #expect(summary.contains("Clinic VPN") && summary.contains("198.51.100.7"))
            // a retransmission while the device is asked is not a second push
            #expect(try await nas.send(pushRequest) == nil)
            let approved = try await enrolled.device.send(
                ctx, .POST, "/api/v1/push/challenges/\(try #require(request["id"] as? String))", json: ["decision": "approve"])
            #expect(approved.status == .ok, "\(approved.text)")
            #expect(try await answer?.code == .accessAccept)
            #expect(try await PushChallenge.query(on: ctx.app.db).count() == 1)
            // a browser sign-in's push still needs the number
            let half = try await Flows.halfSignedIn(ctx)
            let web = try await half.send(.POST, "/api/v1/login/push", json: [:])
            let webID = try #require(web.json["challengeId"] as? String)
            let numberless = try await enrolled.device.send(ctx, .POST, "/api/v1/push/challenges/\(webID)", json: ["decision": "approve"])
            #expect(numberless.status == .unprocessableEntity)
        }
    }

    @Test func aDeniedPushIsAReject() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPush(ctx)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            let challenge = try #require(try await nas.send(try nas.request("dr.smith", Fixtures.password)))
            async let answer = nas.send(try nas.request("dr.smith", "push", state: challenge.state, id: 2))
            var pending: [[String: Any]] = []
            for _ in 0..<40 where pending.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                pending = try await enrolled.device.pending(ctx)
            }
            let id = try #require(pending.first?["id"] as? String)
            _ = try await enrolled.device.send(ctx, .POST, "/api/v1/push/challenges/\(id)", json: ["decision": "deny", "fraud": true])
            #expect(try await answer?.code == .accessReject)
            #expect(try await Self.events(ctx, "push.fraud_reported").count == 1)
        }
    }

    @Test func statusServerIsAnsweredForAVerifiedClient() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Self.client(ctx, practice: practice)
            let nas = TestNAS(ctx, secret: Self.secret)
            let probe = try RADIUSPacket.statusServer(identifier: 9, secret: nas.secret)
            #expect(try await nas.send(probe)?.code == .accessAccept)
        }
    }

    @Test func clientsAreValidatedAndRevokedClientsAreDropped() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let service = RADIUSClientService(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now)
            await #expect(throws: RADIUSClientError.self) {
                _ = try await service.create(practiceID: practice.id!, name: "VPN", address: "not an address", mode: .codeOnly, secret: nil)
            }
            await #expect(throws: RADIUSClientError.self) {
                _ = try await service.create(practiceID: practice.id!, name: "VPN", address: "10.0.0.1", mode: .codeOnly, secret: "short")
            }
            let generated = try await service.create(
                practiceID: practice.id!, name: "VPN", address: "127.0.0.0/8", mode: .codeOnly, secret: nil)
            #expect(generated.secret.count >= 32)
            #expect(!String(decoding: generated.client.sealedSecret, as: UTF8.self).contains(generated.secret))
            ctx.app.radiusClients.invalidate()
            let nas = TestNAS(ctx, secret: generated.secret)
            #expect(try await nas.send(try nas.request("dr.smith", "000000"))?.code == .accessReject)
            _ = try await service.revoke(id: generated.client.id!)
            ctx.app.radiusClients.invalidate()
            #expect(try await nas.send(try nas.request("dr.smith", "000000", id: 2)) == nil)
        }
    }
}

@Suite("RADIUS administration page")
struct RADIUSPageTests {
    @Test func anAdministratorAddsADeviceSeesTheSecretOnceAndRevokesIt() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            let web = WebClient(ctx)
            _ = try await web.get("/login")
            _ = try await web.post("/login", ["username": "admin", "password": Fixtures.password])
            let empty = try await web.get("/admin/radius")
            #expect(empty.status == .ok)
            #expect(empty.text.contains("RADIUS is off on this server"))
            let bad = try await web.post(
                "/admin/radius", ["name": "VPN", "address": "not-an-address", "mode": "code-only", "adminPassword": Fixtures.password])
            #expect(bad.status == .badRequest)
            #expect(bad.text.contains("CIDR block"))
            let added = try await web.post(
                "/admin/radius",
                ["name": "Clinic VPN", "address": "10.0.0.1/32", "mode": "password+code", "adminPassword": Fixtures.password])
            #expect(added.status == .ok)
            #expect(added.headers.first(name: .cacheControl) == "no-store")
            let secret = try #require(PushWebTests.capture(#"id="new-secret">([A-Za-z0-9]+)<"#, in: added.text))
            #expect(secret.count == RADIUSClient.generatedSecretLength)
            let client = try #require(try await RADIUSClient.query(on: ctx.app.db).first())
            #expect(
                try RADIUSClientService(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now).secret(of: client)
                    == Array(secret.utf8))
            let again = try await web.get("/admin/radius")
            #expect(!again.text.contains(secret), "the secret is shown once")
            let revoked = try await web.post("/admin/radius/\(client.id!)/revoke", ["adminPassword": Fixtures.password])
            #expect(revoked.text.contains("was revoked"))
            #expect(try await RADIUSClient.find(client.id, on: ctx.app.db)?.revokedAt != nil)
            let events = try await AuditEvent.query(on: ctx.app.db).filter(\.$event ~~ "radius.client").all()
            #expect(events.count == 2)
            #expect(events.allSatisfy { $0.actorID != nil })
        }
    }
}
