import Fluent
import Vapor

/// Migrates, then tells the operator how to create the first practice when the database is empty.
public func prepareToServe(_ app: Application) async throws {
    try await prepareDatabase(app)
    guard try await Practice.query(on: app.db).count() == 0 else { return }
    let hint = """

        Twofold is running with an empty database. Create the first practice and its administrator:

          twofold practice create --name "Your Practice Name"
          echo 'a long password' | twofold user create --practice <practice id> --username admin \\
              --first-name Ada --last-name Admin --email admin@example.org --manage-accounts --password-stdin

        (from a source checkout: swift run twofold …). Then sign in at the address below.

        """
    app.logger.notice("\(hint)")
}
