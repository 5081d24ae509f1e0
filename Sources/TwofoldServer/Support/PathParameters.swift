import Foundation
import Vapor

extension Parameters {
    /// The id in the path segment `name`. Text that is not a UUID names no record, so it gets the same `notFound`
    /// answer as an id that matches nothing (Vapor's own `require(_:as:)` would answer 422, which no operation documents).
    func id(_ name: String, notFound: @autoclosure () -> any Error) throws -> UUID {
        guard let id = get(name, as: UUID.self) else { throw notFound() }
        return id
    }
}
