import Fluent
import TwofoldCore
import Vapor

/// `/admin/epcs…`: EPCS approvers, grants, settings and lost-device pages for administrators.
struct EPCSPages: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {}
}
