import Fluent
import SQLKit

extension Database {
    /// The SQL view of this database; every driver Twofold supports (SQLite, PostgreSQL) is an SQL database.
    var sql: any SQLDatabase {
        guard let sql = self as? any SQLDatabase else { fatalError("Twofold needs an SQL database driver") }
        return sql
    }

    func sqlIndex(name: String, on table: String, columns: [String], unique: Bool = false) async throws {
        var builder = sql.create(index: name).on(table)
        if unique { builder = builder.unique() }
        for column in columns { builder = builder.column(column) }
        try await builder.run()
    }

    var isPostgres: Bool { sql.dialect.name == "postgresql" }
}
