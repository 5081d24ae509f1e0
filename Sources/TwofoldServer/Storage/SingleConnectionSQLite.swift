import FluentKit
import NIOCore

/// Runs every SQLite query of the process on one connection (the pool of one event loop).
///
/// SQLite admits one writer at a time. With a connection per event loop, concurrent sign-ins made the connections
/// collide on the write lock, and the driver's busy handler retries at once, spinning a thread-pool thread. One
/// connection queues the work instead: each statement takes microseconds, a transaction holds the connection until
/// it ends, and no thread spins. PostgreSQL keeps its connection pool per event loop.
struct SingleConnectionSQLite: DatabaseConfiguration {
    var inner: any DatabaseConfiguration

    var middleware: [any AnyModelMiddleware] {
        get { inner.middleware }
        set { inner.middleware = newValue }
    }

    func makeDriver(for databases: Databases) -> any DatabaseDriver {
        Driver(inner: inner.makeDriver(for: databases), eventLoop: databases.eventLoopGroup.next())
    }

    private struct Driver: DatabaseDriver {
        let inner: any DatabaseDriver
        let eventLoop: any EventLoop

        func makeDatabase(with context: DatabaseContext) -> any Database {
            inner.makeDatabase(
                with: DatabaseContext(
                    configuration: context.configuration, logger: context.logger, eventLoop: eventLoop,
                    history: context.history, pageSizeLimit: context.pageSizeLimit, shouldTrace: context.shouldTrace))
        }

        func shutdown() { inner.shutdown() }
        func shutdownAsync() async { await inner.shutdownAsync() }
    }
}
