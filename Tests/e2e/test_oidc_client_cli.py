"""`twofold oidc-client`: registering the practice's OpenID Connect applications from the command line."""
import json


def test_oidc_client_create_list_rotate_revoke_delete(twofold):
    practice = twofold.create_practice()
    created = twofold.cli("oidc-client", "create", "--practice", practice, "--name", "Riverside EHR",
                          "--redirect-uri", "https://ehr.example.org/oidc/callback", "--redirect-uri", "http://127.0.0.1:9000/cb",
                          "--post-logout-redirect-uri", "https://ehr.example.org/bye", "--start-url", "https://ehr.example.org/",
                          "--id-token-alg", "ES256", "--allow-refresh")
    lines = dict(line.split(": ", 1) for line in created.stdout.strip().splitlines())
    client_id, secret = lines["client_id"], lines["client_secret"]
    assert client_id.startswith("tf-") and len(secret) >= 43
    assert secret not in created.stderr

    public = twofold.cli("oidc-client", "create", "--practice", practice, "--name", "Tablet", "--public",
                         "--redirect-uri", "org.example.tablet:/cb").stdout
    assert public.startswith("client_id: ") and "client_secret" not in public

    table = twofold.cli("oidc-client", "list", "--practice", practice).stdout
    assert client_id in table and "confidential" in table and "enabled" in table and "Riverside EHR" in table
    assert secret not in table
    listed = {item["clientId"]: item for item in json.loads(twofold.cli("oidc-client", "list", "--practice", practice, "--json").stdout)}
    assert listed[client_id]["redirectUris"] == ["https://ehr.example.org/oidc/callback", "http://127.0.0.1:9000/cb"]
    assert len(listed) == 2

    rotated = twofold.cli("oidc-client", "rotate-secret", client_id).stdout
    assert f"client_id: {client_id}" in rotated and "client_secret: " in rotated and secret not in rotated

    assert "Disabled Riverside EHR" in twofold.cli("oidc-client", "revoke", client_id).stdout
    listed = {item["clientId"]: item for item in json.loads(twofold.cli("oidc-client", "list", "--practice", practice, "--json").stdout)}
    assert listed[client_id]["status"] == "disabled"

    assert "Deleted" in twofold.cli("oidc-client", "delete", client_id).stdout
    result = twofold.cli("oidc-client", "revoke", client_id, check=False)
    assert result.returncode != 0 and "no application with that client_id" in result.stderr
    assert "intact" in twofold.cli("audit", "verify").stdout


def test_oidc_client_errors_are_plain(twofold):
    practice = twofold.create_practice()
    result = twofold.cli("oidc-client", "create", "--practice", practice, "--name", "EHR", "--redirect-uri", "http://ehr.example.org/cb", check=False)
    assert result.returncode != 0 and "must use https" in result.stderr and "Fatal error" not in result.stderr
    result = twofold.cli("oidc-client", "create", "--practice", "3F2504E0-4F89-11D3-9A0C-0305E82C3301", "--name", "EHR",
                         "--redirect-uri", "https://ehr.example.org/cb", check=False)
    assert result.returncode != 0 and "no practice with that id" in result.stderr
    result = twofold.cli("oidc-client", "create", "--practice", practice, "--name", "EHR", check=False)
    assert result.returncode != 0 and "--redirect-uri" in result.stderr
    result = twofold.cli("oidc-client", "rotate-secret", "tf-unknown", check=False)
    assert result.returncode != 0 and "no application with that client_id" in result.stderr
