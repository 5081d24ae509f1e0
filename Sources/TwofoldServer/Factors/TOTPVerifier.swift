import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// Checks authenticator-app codes against a factor's sealed key and spends the time step atomically.
struct TOTPVerifier {
    enum Outcome: Equatable {
        case accepted
        case replayed
        case wrong
    }

    let database: any Database
    let sealer: SecretSealer
    let now: Date

    static func sealingContext(for factorID: UUID) -> [UInt8] {
        Array("factor:\(factorID.uuidString)".utf8)
    }

    func secret(of factor: Factor) throws -> OTPSecret {
        guard let sealed = factor.sealedSecret else {
            throw Abort(.conflict, reason: "This factor has no key; remove it and set it up again.")
        }
        return OTPSecret(bytes: try sealer.open(Array(sealed), context: Self.sealingContext(for: try factor.requireID())))
    }

    func totp(for factor: Factor) throws -> TwofoldCore.TOTP {
        let parameters = try OTPParameters(
            algorithm: OTPAlgorithm(rawValue: factor.algorithm) ?? .sha1, digits: factor.digits, period: factor.period)
        return TwofoldCore.TOTP(secret: try secret(of: factor), parameters: parameters)
    }

    /// Verifies `code` for one factor. A matching step is accepted only if it is later than the last one used,
    /// and the check-and-set happens in one UPDATE so concurrent submissions of one code let exactly one through.
    func verify(_ code: String, factor: Factor) async throws -> Outcome {
        guard factor.kind == .totp, let step = try totp(for: factor).verify(code, at: now) else { return .wrong }
        let claimed = try await database.sql.raw(
            """
            UPDATE \(ident: Factor.schema) SET last_used_step = \(bind: step), last_used_at = \(bind: now)
            WHERE id = \(bind: try factor.requireID()) AND (last_used_step IS NULL OR last_used_step < \(bind: step)) RETURNING id
            """
        ).all()
        return claimed.isEmpty ? .replayed : .accepted
    }

    /// What a code did against several authenticators: the first that accepted it, else whether any had already
    /// accepted it (a replay), else wrong.
    enum Match {
        case accepted(Factor)
        case replayed
        case wrong
    }

    /// Tries `code` on each factor in turn, stopping at the first that accepts it (sign-in, validation, step-up).
    func firstMatch(_ code: String, among factors: [Factor]) async throws -> Match {
        var replayed = false
        for factor in factors {
            switch try await verify(code, factor: factor) {
            case .accepted: return .accepted(factor)
            case .replayed: replayed = true
            case .wrong: continue
            }
        }
        return replayed ? .replayed : .wrong
    }
}
