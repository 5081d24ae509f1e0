import AsyncHTTPClient
import Fluent
import Leaf
import LeafKit
import TwofoldCore
import Vapor

/// Builds the Twofold application: storage, services, middleware and routes.
/// `twofold serve`, the admin commands and every server test go through here.
public func configure(_ app: Application, _ config: TwofoldConfiguration, clock: TwofoldClock = .system) async throws {
    let key = try config.sealingKey ?? SealingKeyFile.loadOrCreate(in: config.dataDirectory)
    app.passwords.use(.bcrypt(cost: config.bcryptCost))
    PasswordHashingPool.install(on: app)
    MaintenanceTask.install(on: app)
    MailDelivery.install(on: app, sender: config.emailSender)
    ForgotPasswordTiming.install(on: app)
    RADIUSServer.install(on: app, addresses: config.radiusListen)
    app.apiKeyCache = APIKeyCache()
    app.verificationWriter = VerificationWriter()
    app.twofold = TwofoldServices(
        configuration: config,
        sealer: SecretSealer(current: key, previous: config.previousSealingKeys),
        clock: clock,
        decoyPasswordHash: try app.password.hash(SecureRandom.token()))

    try DatabaseSetup.configure(
        app, storage: config.storage, postgresConnectionsPerEventLoop: config.postgresConnectionsPerEventLoop,
        connectionWaitSeconds: config.databaseConnectionWaitSeconds)

    switch config.smsSender {
    case .outbox: app.smsSender = OutboxSender()
    case .twilio(let settings): app.smsSender = TwilioSender(settings: settings)
    case .webhook(let settings): app.smsSender = WebhookSender(settings: settings)
    }
    app.http.client.configuration.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(5), read: .seconds(10))

    app.views.use(.leaf)
    let views = ServerResources.directory.appendingPathComponent("Views").path + "/"
    app.leaf.configuration.rootDirectory = views
    // The views ship inside the build folder (`.build/…`), which Leaf's default limits refuse as a hidden path.
    app.leaf.sources = .singleSource(
        NIOLeafFiles(fileio: app.fileio, limits: [.toSandbox, .requireExtensions], sandboxDirectory: views, viewDirectory: views))
    app.leaf.cache.isEnabled = app.environment.isRelease

    app.middleware = Middlewares()
    app.middleware.use(MetricsMiddleware(metrics: app.metrics))
    app.middleware.use(SecurityHeaders())
    app.middleware.use(TwofoldErrorMiddleware())
    app.middleware.use(SessionLoader())
    app.middleware.use(AnonymousCSRFCookie())

    try routes(app)
    app.asyncCommands.use(MigrateNowCommand(), as: "migrate")
    app.asyncCommands.use(PracticeCommands(), as: "practice")
    app.asyncCommands.use(UserCommands(), as: "user")
    app.asyncCommands.use(OutboxCommands(), as: "outbox")
    app.asyncCommands.use(MailCommands(), as: "mail")
    app.asyncCommands.use(AuditCommands(), as: "audit")
    app.asyncCommands.use(APIKeyCommands(), as: "api-key")
    app.asyncCommands.use(ImportCommands(), as: "import")
    app.asyncCommands.use(KeysCommands(), as: "keys")
    app.asyncCommands.use(RADIUSClientCommands(), as: "radius-client")
    app.asyncCommands.use(OIDCClientCommands(), as: "oidc-client")
    app.asyncCommands.use(EPCSCommands(), as: "epcs")
    RequestDrain.install(on: app)
}

func routes(_ app: Application) throws {
    try app.register(collection: AssetsController())
    try app.register(collection: OperationsController())
    try app.register(collection: MetricsController(token: app.twofold.configuration.metricsToken))
    let web = app.grouped(CSRFGuard(protectsAnonymousRequests: true))
    try web.register(collection: LoginWebController())
    try web.register(collection: PasswordResetWebController())
    try web.register(collection: SetupWebController())
    try web.register(collection: SecurityWebController())
    try web.register(collection: AdminWebController())
    try web.register(collection: APIKeyPages())
    try web.register(collection: RADIUSPages())
    try web.register(collection: PushWebController())
    try web.register(collection: StepUpWebController())
    try web.register(collection: PasskeyWebController())
    try web.register(collection: EPCSPages())
    try web.register(collection: InvitationWebController())
    let api = app.grouped(CSRFGuard(protectsAnonymousRequests: false))
    try api.register(collection: LoginAPIController())
    try api.register(collection: PasswordResetAPIController())
    try api.register(collection: MeAPIController())
    try api.register(collection: PracticeAPIController())
    try api.register(collection: ValidateController())
    try api.register(collection: PushDeviceController())
    try api.register(collection: PasskeyAPIController())
    try api.register(collection: EPCSAPIController())
    try app.register(collection: EPCSReportController())
    try app.register(collection: StepUpController())
    try app.register(collection: OIDCController())
}

/// Brings the schema up to date; `serve` and every command call this before doing anything else.
public func prepareDatabase(_ app: Application) async throws {
    try await app.autoMigrate()
    try await DatabaseSetup.tuneSQLite(app)
    try await SealingKeyCheck.verify(database: app.db, sealer: app.twofold.sealer, now: app.twofold.clock.now(), logger: app.logger)
    try await OIDCController.checkIssuer(app)
}
