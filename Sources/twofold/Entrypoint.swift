import Foundation
import Logging
import TwofoldServer
import Vapor

@main
enum Entrypoint {
    static func main() async {
        var environment: Environment
        do {
            environment = try Environment.detect()
            if ProcessInfo.processInfo.environment["TWOFOLD_LOG_FORMAT"]?.lowercased() == "json" {
                let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
                let stream =
                    (environment.arguments.dropFirst().first ?? "serve") == "serve" ? FileHandle.standardOutput : FileHandle.standardError
                LoggingSystem.bootstrap { label in JSONLogHandler(label: label, logLevel: level, stream: stream) }
            } else {
                try LoggingSystem.bootstrap(from: &environment)
            }
        } catch {
            fail("\(error)", status: 2)
        }
        let configuration: TwofoldConfiguration
        do {
            configuration = try TwofoldConfiguration.fromEnvironment()
        } catch {
            fail("\(error)", status: 2)
        }
        let app: Application
        do {
            app = try await Application.make(environment)
        } catch {
            fail("cannot start: \(error)", status: 1)
        }
        let command = environment.arguments.dropFirst().first ?? "serve"
        if command != "serve", ProcessInfo.processInfo.environment["LOG_LEVEL"] == nil {
            // Admin commands print results on standard output; keep routine log lines out of it.
            app.logger.logLevel = .warning
        }
        do {
            try await configure(app, configuration)
            if command == "serve" {
                try await prepareToServe(app)
            }
            try await app.execute()
            try await app.asyncShutdown()
        } catch {
            try? await app.asyncShutdown()
            fail(describe(error), status: 1)
        }
    }

    static func describe(_ error: any Error) -> String {
        if let abort = error as? any AbortError { return abort.reason }
        return String(describing: error)
    }

    static func fail(_ message: String, status: Int32) -> Never {
        FileHandle.standardError.write(Data("twofold: \(message)\n".utf8))
        exit(status)
    }
}
