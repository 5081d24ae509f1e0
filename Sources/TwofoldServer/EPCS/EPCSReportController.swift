import Fluent
import TwofoldCore
import Vapor

/// The daily EPCS audit report and the prescriber's monthly log: pages, exports and API.
struct EPCSReportController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {}
}
