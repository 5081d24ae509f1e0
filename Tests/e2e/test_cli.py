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
    assert result.returncode != 0 and "at least 8 characters" in result.stderr


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
