import FluentKit
import Logging

/// FluentKit logs every query it runs, with its values ("Running query" and the input rows), at debug level; those
/// values include SMS code hashes and token hashes. Database handles therefore log at info or above unless the process
/// runs at trace, the one level where SQL statements and their values appear (see README, "Operations").
struct QueryValuesOnlyAtTrace: DatabaseConfiguration {
    var inner: any DatabaseConfiguration

    var middleware: [any AnyModelMiddleware] {
        get { inner.middleware }
        set { inner.middleware = newValue }
    }

    func makeDriver(for databases: Databases) -> any DatabaseDriver {
        Driver(inner: inner.makeDriver(for: databases))
    }

    static func logger(_ logger: Logger) -> Logger {
        var logger = logger
        if logger.logLevel == .debug { logger.logLevel = .info }
        return logger
    }

    private struct Driver: DatabaseDriver {
        let inner: any DatabaseDriver

        func makeDatabase(with context: DatabaseContext) -> any Database {
            inner.makeDatabase(
                with: DatabaseContext(
                    configuration: context.configuration, logger: QueryValuesOnlyAtTrace.logger(context.logger),
                    eventLoop: context.eventLoop,
                    history: context.history, pageSizeLimit: context.pageSizeLimit, shouldTrace: context.shouldTrace))
        }

        func shutdown() { inner.shutdown() }
        func shutdownAsync() async { await inner.shutdownAsync() }
    }
}

extension DatabaseConfigurationFactory {
    /// This configuration, with query values kept out of logs below trace.
    var queryValuesOnlyAtTrace: DatabaseConfigurationFactory {
        DatabaseConfigurationFactory { QueryValuesOnlyAtTrace(inner: self.make()) }
    }
}
