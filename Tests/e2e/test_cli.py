"""The `twofold` command line as an operator uses it."""
import re

UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


def test_practice_and_user_creation_print_ids(twofold):
    practice = twofold.create_practice("Clínica Müller & Söhne")
    assert UUID.match(practice)
    user = twofold.create_user(practice)
    assert UUID.match(user)
    assert (twofold.data_dir / "twofold.sqlite").exists()
    key = twofold.data_dir / "twofold.key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600


def test_bad_arguments_give_a_message_and_non_zero_exit(twofold):
    result = twofold.cli("practice", "create", check=False)
    assert result.returncode != 0
    assert "--name is required" in result.stderr
    assert "Fatal error" not in result.stderr and "Stack" not in result.stderr

    practice = twofold.create_practice()
    result = twofold.cli("user", "create", "--practice", practice, "--username", "x", check=False)
    assert result.returncode != 0
    assert "missing" in result.stderr and "--first-name" in result.stderr

    result = twofold.cli("user", "create", "--practice", "not-an-id", "--username", "amy", "--first-name", "A", "--last-name", "B",
                         "--email", "a@example.org", "--password-stdin", stdin="long enough password\n", check=False)
    assert result.returncode != 0 and "practice id" in result.stderr

    result = twofold.cli("user", "create", "--practice", practice, "--username", "amy", "--first-name", "A", "--last-name", "B",
                         "--email", "a@example.org", "--password-stdin", stdin="short\n", check=False)
    assert result.returncode != 0 and "at least 15 characters" in result.stderr

    # A common password is refused whatever its case (NIST SP 800-63B rev. 4 blocklist).
    result = twofold.cli("user", "create", "--practice", practice, "--username", "amy", "--first-name", "A", "--last-name", "B",
                         "--email", "a@example.org", "--password-stdin", stdin="1QAZ2WSX3EDC4RFV\n", check=False)
    assert result.returncode != 0 and "common or breached" in result.stderr


def test_duplicate_username_is_refused(twofold):
    practice = twofold.create_practice()
    twofold.create_user(practice, username="dr.smith")
    result = twofold.cli("user", "create", "--practice", practice, "--username", "DR.SMITH", "--first-name", "A", "--last-name", "B",
                         "--email", "a@example.org", "--password-stdin", stdin="long enough password\n", check=False)
    assert result.returncode != 0 and "already taken" in result.stderr


def test_outbox_is_empty_and_audit_verifies(twofold):
    assert twofold.outbox() == []
    assert "The outbox is empty." in twofold.cli("outbox", "list").stdout
    twofold.create_user(twofold.create_practice())
    result = twofold.cli("audit", "verify")
    assert "intact" in result.stdout


def test_bad_configuration_lists_every_problem(twofold):
    twofold.env.update({"DATABASE_URL": "mysql://nope", "TWOFOLD_SECRET_KEY": "short"})
    result = twofold.cli("migrate", check=False)
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and "TWOFOLD_SECRET_KEY" in result.stderr


def _audit_db(twofold):
    import sqlite3
    return sqlite3.connect(twofold.data_dir / "twofold.sqlite")


def _seed_events(twofold):
    practice = twofold.create_practice()
    for name in ("amy", "ben", "cal"):
        twofold.create_user(practice, username=name)
    assert "intact: 4 events" in twofold.cli("audit", "verify").stdout


# Every CLI process writes to an audit chain of its own (one per writer instance), so the seeded events lie in
# several chains; the tests pick events in the order the audit page shows them.
_IN_PAGE_ORDER = "ORDER BY occurred_ms, chain_id, seq"


def _event(db, offset):
    return db.execute(f"SELECT id, chain_id, seq FROM audit_events {_IN_PAGE_ORDER} LIMIT 1 OFFSET ?", (offset,)).fetchone()


def test_audit_verify_names_a_changed_event(twofold):
    _seed_events(twofold)
    with _audit_db(twofold) as db:
        event_id, _, seq = _event(db, 2)
        db.execute("UPDATE audit_events SET details = '{\"username\":\"mallory\"}' WHERE id = ?", (event_id,))
    result = twofold.cli("audit", "verify", check=False)
    assert result.returncode != 0
    assert f"event #{seq}" in result.stderr and "changed" in result.stderr


def test_audit_verify_names_a_removed_event(twofold):
    _seed_events(twofold)
    with _audit_db(twofold) as db:
        event_id, chain, _ = _event(db, 1)
        db.execute("DELETE FROM audit_events WHERE id = ?", (event_id,))
    result = twofold.cli("audit", "verify", check=False)
    assert result.returncode != 0 and "removed" in result.stderr and chain in result.stderr


def test_audit_verify_names_an_inserted_event(twofold):
    _seed_events(twofold)
    with _audit_db(twofold) as db:
        row = db.execute("SELECT id, practice_id, actor_id, subject_id, event, ip, user_agent, details, occurred_ms, occurred_at, prev_hash, hash, "
                         "key_id, chain_id, seq FROM audit_events ORDER BY occurred_ms DESC, chain_id DESC, seq DESC LIMIT 1").fetchone()
        import uuid
        # A copy of the newest event appended to its chain without the audit key or the chain's registry row.
        forged = (str(uuid.uuid4()).upper(),) + row[1:-1] + (row[-1] + 1,)
        db.execute("INSERT INTO audit_events (id, practice_id, actor_id, subject_id, event, ip, user_agent, details, occurred_ms, occurred_at, prev_hash, hash, "
                   "key_id, chain_id, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", forged)
    result = twofold.cli("audit", "verify", check=False)
    assert result.returncode != 0 and "NOT intact" in result.stderr and "inserted" in result.stderr
