import Foundation
import Vapor

/// Email bodies from Leaf templates: `mail-<name>-text.leaf` (plain text; values are printed with `#unsafeHTML(…)`,
/// since Leaf would HTML-escape them) and `mail-<name>-html.leaf` (extends `mail-layout.leaf`; values escaped as
/// on every page). Every template gets the practice's name and is given links that start with the public address.
enum MailTemplates {
    /// Renders both bodies of `name` with `context`.
    static func render(_ name: String, _ context: some Encodable & Sendable, with renderer: any ViewRenderer) async throws -> MailBody {
        let text = try await renderer.render("mail-\(name)-text", context)
        let html = try await renderer.render("mail-\(name)-html", context)
        return MailBody(text: Self.normalizedText(String(buffer: text.data)), html: String(buffer: html.data))
    }

    /// Text bodies: template indentation and runs of blank lines removed, lines ending in LF (the SMTP client sends CRLF).
    static func normalizedText(_ text: String) -> String {
        var lines: [String] = []
        for raw in text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty, lines.last?.isEmpty ?? true { continue }
            lines.append(line)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension Request {
    /// An absolute link for an email: `TWOFOLD_PUBLIC_URL` (required with the smtp sender), else this request's
    /// own address (the outbox sender in development and tests).
    func mailLink(_ path: String) -> String {
        (twofold.configuration.publicURL ?? publicBaseURL) + path
    }
}
