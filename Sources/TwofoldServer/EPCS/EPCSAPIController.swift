import Fluent
import TwofoldCore
import Vapor

/// `/api/v1/practice/…/epcs…` and `/api/v1/me/…` routes for EPCS permissions, approvers, settings and lost devices.
struct EPCSAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {}
}
