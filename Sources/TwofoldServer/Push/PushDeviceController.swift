import Fluent
import TwofoldAPI
import TwofoldCore
import Vapor

/// `/api/v1/push/…`: what a push device calls. Enrollment presents the one-time token; every other request is
/// signed with the device key (see docs/push-protocol.md).
struct PushDeviceController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.on(.POST, APIPath.pushEnroll, body: .collect(maxSize: "8kb"), use: enroll)
        routes.on(.GET, APIPath.pushChallenges, use: challenges)
        routes.on(.POST, APIPath.pushChallenge(.placeholder), body: .collect(maxSize: "8kb"), use: answer)
    }

    @Sendable func enroll(req: Request) async throws -> API.PushDevice {
        let throttle = ThrottleStore(database: req.db)
        let key = "push-enroll:ip:\(req.clientThrottleKey)"
        // Failed enrollments count per address; each attempt is reserved first and given back when it enrolls.
        if let seconds = try await throttle.reserve(key, limit: req.policy.push.enrollmentsPerAddress, now: req.now).retryAfter {
            throw Abort(
                .tooManyRequests, headers: ["Retry-After": String(seconds)],
                reason: "Too many enrollment attempts from this address. Try again later.")
        }
        let body = try req.apiBody(API.EnrollPushDeviceRequest.self)
        let factor = try await PushService(context: req.serviceContext).enrollDevice(
            token: body.token, publicKey: body.publicKey, deviceName: body.deviceName, proof: body.proof)
        try await throttle.release(key, limit: req.policy.push.enrollmentsPerAddress, now: req.now)
        return API.PushDevice(
            deviceId: try factor.requireID().uuidString, nickname: factor.nickname, status: try .documented(factor.status.rawValue))
    }

    /// Long poll: waits up to `wait` seconds (0 to 30, default 0) for a challenge to arrive.
    @Sendable func challenges(req: Request) async throws -> API.PushChallenges {
        let device = try await PushService(context: req.serviceContext).authenticateDevice(Self.signed(req))
        let wait = min(30, max(0, (try? req.query.get(Int.self, at: "wait")) ?? 0))
        let deadline = Date().addingTimeInterval(TimeInterval(wait))
        // Each look takes the time again, so a challenge that expires during the wait is no longer listed.
        var pending = try await PushService(context: req.serviceContext).pending(for: device)
        while pending.isEmpty, Date() < deadline {
            try await Task.sleep(for: .milliseconds(500))
            pending = try await PushService(context: req.serviceContext).pending(for: device)
        }
        return API.PushChallenges(
            deviceId: try device.requireID().uuidString,
            challenges: try pending.map {
                API.PushChallenges.ChallengesPayloadPayload(
                    id: try $0.requireID().uuidString, purpose: try .documented($0.purpose.rawValue), summary: $0.summary, ip: $0.ip,
                    browser: $0.userAgent, createdAt: $0.createdAt, expiresAt: $0.expiresAt, numberRequired: $0.numberRequired)
            })
    }

    @Sendable func answer(req: Request) async throws -> API.PushAnswer {
        let service = PushService(context: req.serviceContext)
        let device = try await service.authenticateDevice(Self.signed(req))
        let id = try req.parameters.id("id", notFound: PushError.challengeNotFound)
        let body = try req.apiBody(API.AnswerPushChallengeRequest.self)
        let decision: PushService.Decision =
            switch body.decision {
            case .approve: .approve(number: body.number)
            case .deny: .deny(fraud: body.fraud ?? false)
            }
        let challenge = try await service.answer(challengeID: id, device: device, decision: decision)
        return API.PushAnswer(id: id.uuidString, status: try .documented(challenge.status.rawValue))
    }

    /// The parts of this request a device's signature covers.
    private static func signed(_ req: Request) -> PushService.SignedRequest {
        PushService.SignedRequest(
            headers: req.headers, method: req.method.rawValue, pathAndQuery: req.url.string,
            body: req.body.data.map { Array($0.readableBytesView) } ?? [])
    }
}

extension API.PushChallenges: Content {}
extension API.EnrollPushDeviceRequest: Content {}
extension API.PushDevice: Content {}
extension API.AnswerPushChallengeRequest: Content {}
extension API.PushAnswer: Content {}
