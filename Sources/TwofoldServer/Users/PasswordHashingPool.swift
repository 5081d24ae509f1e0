import NIOPosix
import Vapor

/// bcrypt runs on threads of its own. On the application's shared thread pool, a burst of sign-ins (each hash takes
/// a quarter of a second at cost 12) queued every SQLite query behind it, stalling requests that never hash.
struct PasswordHashingPool: LifecycleHandler {
    let pool: NIOThreadPool

    static func install(on app: Application) {
        let pool = NIOThreadPool(numberOfThreads: System.coreCount)
        pool.start()
        app.storage[Key.self] = pool
        app.storage[PasswordCheckCounter.Key.self] = PasswordCheckCounter()
        // Read the password blocklist now: a build without it stops at start-up, not at someone's password change.
        _ = PasswordRules.blocklist.count
        app.lifecycle.use(PasswordHashingPool(pool: pool))
    }

    func shutdownAsync(_ application: Application) async {
        try? await pool.shutdownGracefully()
    }

    struct Key: StorageKey { typealias Value = NIOThreadPool }
}

extension Request {
    /// The password hasher, running on the bcrypt threads (or the shared pool before `configure` installed them).
    var passwordHasher: AsyncPasswordHasher {
        application.password.sync.async(on: application.storage[PasswordHashingPool.Key.self] ?? application.threadPool, hopTo: eventLoop)
    }
}
