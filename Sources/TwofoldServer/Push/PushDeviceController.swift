import Fluent
import TwofoldCore
import Vapor

/// `/api/v1/push/…`: what a push device calls. Enrollment presents the one-time token; every other request is
/// signed with the device key (see docs/push-protocol.md).
struct PushDeviceController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let push = routes.grouped("push")
        push.on(.POST, "enroll", body: .collect(maxSize: "8kb"), use: enroll)
        push.on(.GET, "challenges", use: challenges)
        push.on(.POST, "challenges", ":id", body: .collect(maxSize: "8kb"), use: answer)
    }

    struct EnrollRequest: Content {
        var token: String
        var publicKey: String
        var proof: String
        var deviceName: String?
    }

    struct EnrollResponse: Content {
        var deviceId: UUID
        var nickname: String
        var status: String
    }

    static let enrollLimit = FixedWindowLimit(limit: 20, window: 3600)

    @Sendable func enroll(req: Request) async throws -> EnrollResponse {
        let throttle = ThrottleStore(database: req.db)
        let key = "push-enroll:ip:\(req.clientThrottleKey)"
        // Failed enrollments count per address; each attempt is reserved first and given back when it enrolls.
        if let seconds = try await throttle.reserve(key, limit: Self.enrollLimit, now: req.now).retryAfter {
            throw Abort(.tooManyRequests, headers: ["Retry-After": String(seconds)],
                        reason: "Too many enrollment attempts from this address. Try again later.")
        }
        let body = try req.content.decode(EnrollRequest.self)
        let factor = try await PushService(request: req).enrollDevice(token: body.token, publicKey: body.publicKey, deviceName: body.deviceName, proof: body.proof)
        try await throttle.release(key, limit: Self.enrollLimit, now: req.now)
        return EnrollResponse(deviceId: factor.id!, nickname: factor.nickname, status: factor.status.rawValue)
    }

    /// Long poll: waits up to `wait` seconds (0 to 30, default 0) for a challenge to arrive.
    @Sendable func challenges(req: Request) async throws -> PushMessages.ChallengeList {
        let service = PushService(request: req)
        let device = try await service.authenticateDevice()
        let wait = min(30, max(0, (try? req.query.get(Int.self, at: "wait")) ?? 0))
        let deadline = Date().addingTimeInterval(TimeInterval(wait))
        var pending = try await service.pending(for: device)
        while pending.isEmpty, Date() < deadline {
            try await Task.sleep(for: .milliseconds(500))
            pending = try await service.pending(for: device)
        }
        return PushMessages.ChallengeList(deviceId: device.id!, challenges: pending.map {
            PushMessages.Challenge(id: $0.id!, purpose: $0.purpose.rawValue, summary: $0.summary, ip: $0.ip, browser: $0.userAgent,
                         createdAt: $0.createdAt, expiresAt: $0.expiresAt, numberRequired: $0.numberRequired)
        })
    }

    @Sendable func answer(req: Request) async throws -> PushMessages.AnswerResult {
        let service = PushService(request: req)
        let device = try await service.authenticateDevice()
        let id = try req.parameters.require("id", as: UUID.self)
        let body = try req.content.decode(PushMessages.Answer.self)
        let decision: PushService.Decision
        switch body.decision {
        case "approve":
            decision = .approve(number: body.number)
        case "deny":
            decision = .deny(fraud: body.fraud ?? false)
        default:
            throw Abort(.badRequest, reason: "decision must be \"approve\" or \"deny\".")
        }
        let challenge = try await service.answer(challengeID: id, device: device, decision: decision)
        return PushMessages.AnswerResult(id: id, status: challenge.status.rawValue)
    }
}

extension PushMessages.ChallengeList: Content {}
extension PushMessages.Answer: Content {}
extension PushMessages.AnswerResult: Content {}
