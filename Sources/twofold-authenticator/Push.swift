import ArgumentParser
import Crypto
import Foundation
import NIOHTTP1
import TwofoldCore

struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Acts as a push device: enroll, list pending requests, approve or deny them.",
        subcommands: [Enroll.self, Pending.self, Approve.self, Deny.self, Watch.self])

    struct DeviceOption: ParsableArguments {
        @Option(help: "Which push device (its name); needed only when there are several.") var device: String?

        func pick(from keyring: Keyring) throws -> Keyring.Device {
            if let device {
                guard let found = keyring.devices.first(where: { $0.name == device }) else {
                    throw ValidationError("No push device named \(device).")
                }
                return found
            }
            guard let only = keyring.devices.first else {
                throw ValidationError("No push device yet: run `push enroll <enrollment-uri> --name NAME`.")
            }
            guard keyring.devices.count == 1 else { throw ValidationError("There are several push devices; pass --device NAME.") }
            return only
        }
    }

    static func pending(_ device: Keyring.Device, wait: Int) async throws -> [PushMessages.Challenge] {
        let response = try await DeviceClient(server: device.server).send(
            method: .GET, path: "/api/v1/push/challenges?wait=\(wait)", signedBy: (device.deviceID, try device.signingKey()))
        return try DeviceClient.decode(PushMessages.ChallengeList.self, from: response).challenges
    }

    static func answer(_ device: Keyring.Device, challenge: String, _ answer: PushMessages.Answer) async throws -> String {
        let response = try await DeviceClient(server: device.server).send(
            method: .POST, path: "/api/v1/push/challenges/\(challenge)", body: Array(try JSONEncoder().encode(answer)),
            signedBy: (device.deviceID, try device.signingKey()))
        return try DeviceClient.decode(PushMessages.AnswerResult.self, from: response).status
    }

    static func describe(_ challenge: PushMessages.Challenge) -> String {
        let left = max(0, Int(challenge.expiresAt.timeIntervalSinceNow))
        return """
            \(challenge.id.uuidString)  \(challenge.purpose == "sign_in" ? "Sign-in request" : "Confirm action")
              \(challenge.summary.replacingOccurrences(of: "\n", with: "\n  "))
              from \(challenge.ip), \(challenge.browser.isEmpty ? "unknown browser" : challenge.browser)
              at \(ISO8601DateFormatter().string(from: challenge.createdAt)), expires in \(left) s
            """
    }

    /// Asks for the number on the terminal and answers; an empty line skips, "deny" denies, "fraud" reports it.
    static func prompt(_ device: Keyring.Device, _ challenge: PushMessages.Challenge) async throws {
        let numberless = challenge.numberRequired == false
        print(
            numberless
                ? "A sign-in from a device that cannot show a number: type \"approve\" if it is yours (Enter to skip, \"deny\", or \"fraud\" if you did not start this): "
                : "Number shown in the browser (Enter to skip, \"deny\", or \"fraud\" if you did not start this): ", terminator: "")
        guard let line = readLine()?.trimmingCharacters(in: .whitespaces), !line.isEmpty else { return }
        let status: String
        switch line.lowercased() {
        case "deny": status = try await answer(device, challenge: challenge.id.uuidString, PushMessages.Answer(decision: "deny"))
        case "fraud":
            status = try await answer(device, challenge: challenge.id.uuidString, PushMessages.Answer(decision: "deny", fraud: true))
        case "approve" where numberless:
            status = try await answer(device, challenge: challenge.id.uuidString, PushMessages.Answer(decision: "approve"))
        default:
            guard let number = Int(line) else {
                print("Not a number; skipped.")
                return
            }
            status = try await answer(device, challenge: challenge.id.uuidString, PushMessages.Answer(decision: "approve", number: number))
        }
        print(status.capitalized + ".")
    }

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrolls this authenticator as a push device with a twofold-push://enroll URI.")

        @Argument(help: "The enrollment URI from the set-up page (twofold-push://enroll?server=…&token=…).") var uri: String
        @Option(help: "The device's name, shown in the user's list of methods.") var name: String

        struct Body: Encodable {
            var token: String
            var publicKey: String
            var proof: String
            var deviceName: String
        }

        struct Enrolled: Decodable {
            var deviceId: UUID
            var nickname: String
        }

        func run() async throws {
            let enrollment: PushEnrollmentURI
            do { enrollment = try PushEnrollmentURI(parsing: uri) } catch let error as PushEnrollmentURI.ParseError {
                throw ValidationError(error.description)
            }
            let key = P256.Signing.PrivateKey()
            let proof = try key.signature(for: PushEnrollmentURI.proofMessage(token: enrollment.token))
            let body = Body(
                token: enrollment.token, publicKey: Base64URL.encode(Array(key.publicKey.x963Representation)),
                proof: Base64URL.encode(Array(proof.rawRepresentation)), deviceName: name)
            let client = DeviceClient(server: enrollment.server)
            let enrolled = try DeviceClient.decode(
                Enrolled.self,
                from: try await client.send(
                    method: .POST, path: "/api/v1/push/enroll",
                    body: Array(try JSONEncoder().encode(body)), signedBy: nil))
            let device = Keyring.Device(
                name: name, server: enrollment.server, deviceID: enrolled.deviceId.uuidString,
                privateKey: Base64URL.encode(Array(key.rawRepresentation)))
            try await Authenticator.withKeyring(saving: true) { keyring in
                keyring.devices.removeAll { $0.name == name }
                keyring.devices.append(device)
            }
            // The first signed request activates the device on the server.
            _ = try await Push.pending(device, wait: 0)
            print("Enrolled as \(enrolled.nickname) (device \(enrolled.deviceId.uuidString)).")
        }
    }

    struct Pending: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lists pending requests with their context; on a terminal, asks for the number to approve.")

        @OptionGroup var selection: DeviceOption
        @Option(help: "Seconds to wait for a request to arrive (0 to 30).") var wait: Int = 0

        func run() async throws {
            let device = try await Authenticator.withKeyring(saving: false) { try selection.pick(from: $0) }
            let challenges = try await Push.pending(device, wait: min(30, max(0, wait)))
            if challenges.isEmpty { print("No pending requests.") }
            for challenge in challenges {
                print(Push.describe(challenge))
                if isatty(STDIN_FILENO) != 0 { try await Push.prompt(device, challenge) }
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approves a request with the number shown in the browser.")

        @Argument(help: "The request's id (see `push pending`).") var id: String
        @Option(help: "The two-digit number shown in the browser (not needed for a sign-in from a terminal, e.g. a VPN).") var number: Int?
        @OptionGroup var selection: DeviceOption

        func run() async throws {
            let device = try await Authenticator.withKeyring(saving: false) { try selection.pick(from: $0) }
            print(try await Push.answer(device, challenge: id, PushMessages.Answer(decision: "approve", number: number)).capitalized + ".")
        }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Denies a request; --fraud reports that you did not start it.")

        @Argument(help: "The request's id (see `push pending`).") var id: String
        @Flag(help: "I did not start this: tell the practice's administrators.") var fraud = false
        @OptionGroup var selection: DeviceOption

        func run() async throws {
            let device = try await Authenticator.withKeyring(saving: false) { try selection.pick(from: $0) }
            print(try await Push.answer(device, challenge: id, PushMessages.Answer(decision: "deny", fraud: fraud)).capitalized + ".")
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Waits for requests and asks about each as it arrives (Ctrl-C to stop).")

        @OptionGroup var selection: DeviceOption

        func run() async throws {
            let device = try await Authenticator.withKeyring(saving: false) { try selection.pick(from: $0) }
            var seen = Set<UUID>()
            print("Waiting for requests to \(device.name)…")
            while true {
                for challenge in try await Push.pending(device, wait: 25) where !seen.contains(challenge.id) {
                    seen.insert(challenge.id)
                    print(Push.describe(challenge))
                    try await Push.prompt(device, challenge)
                }
            }
        }
    }
}
