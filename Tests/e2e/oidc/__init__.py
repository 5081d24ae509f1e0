"""Helpers for the OpenID Connect interop tests (Tests/e2e/test_oidc.py): a form-filling HTTP user agent, client
registration through the CLI, and an unprivileged Apache with mod_auth_openidc as a relying party."""
