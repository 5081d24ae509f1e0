import Benchmark
import Crypto
import Foundation
import QRCode
import TwofoldCore

/// Micro-benchmarks of the pure core: what every verification, enrollment and step-up spends outside the database.
/// Run with `TWOFOLD_BENCHMARKS=1 swift package --disable-sandbox benchmark` (see docs/benchmarks.md).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(2), maxIterations: 1_000_000)

    let secret = OTPSecret.generate(for: .sha1)
    let totp = TOTP(secret: secret)
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let current = totp.code(at: now)
    Benchmark("TOTP verify, current code (±1 step window)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(totp.verify(current, at: now)) }
    }
    Benchmark("TOTP verify, wrong code (all 3 steps checked)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(totp.verify("000000", at: now)) }
    }

    let sealer = SecretSealer(current: SealingKey.generate())
    let context = Array("factor:00000000-0000-0000-0000-000000000000".utf8)
    let sealed = try! sealer.seal(secret.bytes, context: context)
    Benchmark("Open a sealed authenticator key (AES-256-GCM)") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try sealer.open(sealed, context: context)) }
    }

    let uri = OTPAuthURI(issuer: "Riverside Family Medicine", account: "dr.smith", secret: secret).uri
    Benchmark("QR code for an otpauth URI, SVG") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try QRCode(text: uri).svg()) }
    }
    Benchmark("QR code for an otpauth URI, PNG") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try QRCode(text: uri).png()) }
    }

    let deviceKey = P256.Signing.PrivateKey()
    let body = Array(#"{"decision":"approve","number":42}"#.utf8)
    let headers = Dictionary(
        uniqueKeysWithValues: try! DeviceRequestSignature.sign(
            method: "POST", pathAndQuery: "/api/v1/push/challenges/x", body: body, deviceID: "d", key: deviceKey, now: now))
    Benchmark("Check a signed push-device request") { benchmark in
        for _ in benchmark.scaledIterations {
            let envelope = try DeviceRequestSignature.Envelope { headers[$0] }
            try envelope.verify(
                method: "POST", pathAndQuery: "/api/v1/push/challenges/x", body: body, publicKey: deviceKey.publicKey, now: now)
        }
    }
}
