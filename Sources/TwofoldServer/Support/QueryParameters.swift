import Foundation
import Vapor

/// Why a number or date in the query string was refused (400, with a reason that names the parameter).
enum QueryParameterError: AbortError {
    case notAWholeNumber(name: String, range: ClosedRange<Int>)
    case outOfRange(name: String, range: ClosedRange<Int>)

    var status: HTTPResponseStatus { .badRequest }

    var reason: String {
        switch self {
        case .notAWholeNumber(let name, let range): "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)."
        case .outOfRange(let name, let range): "\(name) must be from \(range.lowerBound) to \(range.upperBound)."
        }
    }
}

enum QueryBounds {
    /// Page numbers of every paged list; far beyond any real list, far below where `page * size` could overflow.
    static let page = 1...1_000_000
}

extension Request {
    /// An integer query parameter within `range`; nil when it is absent or empty.
    /// - Throws: ``QueryParameterError`` for text that is not a whole number, one that does not fit, or one outside `range`.
    func boundedQuery(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = (try? query.get(String.self, at: name))?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        guard text.count <= 20, let value = Int(text) else { throw QueryParameterError.notAWholeNumber(name: name, range: range) }
        guard range.contains(value) else { throw QueryParameterError.outOfRange(name: name, range: range) }
        return value
    }
}
