"""The API against its own contract: schemathesis reads the OpenAPI document that the server serves at /openapi.json,
generates requests for every operation (valid ones and deliberately broken ones) and checks each answer against the
document: no 5xx, only documented status codes, content types and headers, bodies that match their schemas, and no
operation that lets a request without credentials through. A failure is fixed in the server or in
Sources/TwofoldAPI/openapi.yaml, whichever is wrong; nothing is excluded (docs/api.md, "Contract tests")."""
import os
import subprocess
import sys
import textwrap

import requests

from conftest import PASSWORD

# The answer's status, content type, body and documented headers (Retry-After with every 429) follow the document,
# and an operation that documents a security scheme refuses a request without credentials.
CHECKS = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
                   "response_headers_conformance", "ignored_auth"])

# The operations run in three parts, in this order, so that none of them takes away what a later one needs:
# 1. everything else, with the administrator's session and the API key (a `logout` in between only means that
#    schemathesis signs in again);
# 2. the practice-wide settings: a required second factor sends the administrator's new sessions to
#    `enrollment_required`, after which every administrative operation would answer 403;
# 3. the anonymous sign-in operations: their wrong passwords and tokens count against this client address, and once
#    it is throttled the administrator could no longer sign in either.
PRACTICE_WIDE = ["updatePractice", "updateEPCSSettings"]
ANONYMOUS_SIGN_IN = ["login", "forgotPassword", "resetPassword", "passkeySignInOptions", "passkeySignIn", "enrollPushDevice"]


def operations(flag, ids):
    return [argument for operation in ids for argument in (flag, operation)]


def schemathesis(twofold, config, *arguments):
    """Runs `st run` against the served document; prints its summary; returns its exit status."""
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run",
               f"{twofold.base}/openapi.json", "--url", twofold.base, "--checks", CHECKS,
               # Bounded: a handful of generated cases per operation after the coverage phase's boundary values,
               # two workers for this two-core machine, and no response may take more than a few seconds.
               "--phases", "examples,coverage,fuzzing", "--max-examples", "15", "--workers", "2", "--request-timeout", "10",
               "--seed", "17", "--generation-database", "none", "--suppress-health-check", "all", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    return result.returncode


def test_every_operation_conforms_to_the_served_openapi_document(twofold, tmp_path):
    practice = twofold.create_practice("Riverside Family Medicine")
    # An administrator without a second factor: the password alone opens an `authenticated` session, so schemathesis
    # can sign in again by itself whenever a token stops working (after `logout`, say) and keep every operation
    # behind a valid session.
    twofold.create_user(practice, username="office.admin", admin=True)
    key = twofold.cli("api-key", "create", "--practice", practice, "--name", "EHR").stdout.strip().splitlines()[-1]
    twofold.start()
    assert requests.get(f"{twofold.base}/openapi.json").status_code == 200

    config = tmp_path / "schemathesis.toml"
    config.write_text(textwrap.dedent(f"""\
        [auth.dynamic.openapi.bearerAuth]
        path = "/api/v1/login"
        payload = {{ username = "office.admin", password = "{PASSWORD}" }}
        extract_selector = "/token"
        retry_on = [401]

        [auth.openapi.apiKeyAuth]
        bearer = "{key}"
        """))

    statuses = [
        schemathesis(twofold, config, *operations("--exclude-operation-id", PRACTICE_WIDE + ANONYMOUS_SIGN_IN)),
        schemathesis(twofold, config, *operations("--include-operation-id", PRACTICE_WIDE)),
        schemathesis(twofold, config, *operations("--include-operation-id", ANONYMOUS_SIGN_IN)),
    ]
    assert statuses == [0, 0, 0], "schemathesis found answers that break the OpenAPI document (summary above)"
