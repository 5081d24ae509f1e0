"""Cross-check of the recorded WebAuthn ceremonies in Tests/TwofoldCoreTests/Fixtures/WebAuthn with py_webauthn.

The same JSON files feed Twofold's Swift WebAuthn tests; this module makes sure an independent verifier agrees with
every value they claim. No server, browser or network is needed (none of conftest.py's fixtures are used).
Regenerate the files with Tests/e2e/webauthn_fixtures/make_fixtures.py.
"""
import base64
import copy
import json
import pathlib
import re

import pytest
import webauthn
from webauthn.helpers import decode_credential_public_key, encode_cbor, parse_cbor
from webauthn.helpers.structs import AttestationFormat, CredentialDeviceType

FIXTURES_DIR = pathlib.Path(__file__).resolve().parents[1] / "TwofoldCoreTests" / "Fixtures" / "WebAuthn"
FIXTURE_PATHS = sorted(FIXTURES_DIR.glob("*.json"))
FIXTURES = [json.loads(path.read_text()) for path in FIXTURE_PATHS]
IDS = [fixture["name"] for fixture in FIXTURES]
UV_CLEAR = [fixture for fixture in FIXTURES if not fixture["expected"]["userVerified"]]
WITH_ANCHORS = [fixture for fixture in FIXTURES if fixture.get("trustAnchors")]
ATTESTED = [fixture for fixture in FIXTURES if fixture["expected"]["format"] != "none"]

EXPECTED_NAMES = {
    "chromium-none-es256", "chromium-packed-es256", "chromium-u2f",
    "fido2-packed-self-es256", "fido2-packed-self-eddsa", "fido2-packed-self-rs256", "fido2-packed-x5c-es256",
    "fido2-fido-u2f", "fido2-none-eddsa", "fido2-backup-eligible",
}
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def unb64u(text):
    assert B64URL.match(text), f"not unpadded base64url: {text[:40]!r}"
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64u(data):
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


def flip(text, index):
    data = bytearray(unb64u(text))
    data[index] ^= 0x01
    return b64u(data)


def pem_roots(fixture, fmt):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    anchors = fixture.get("trustAnchors") or []
    if not anchors:
        return None
    pems = [x509.load_der_x509_certificate(base64.b64decode(a)).public_bytes(serialization.Encoding.PEM) for a in anchors]
    return {AttestationFormat(fmt): pems}


def register(fixture, *, credential=None, challenge=None, rp_id=None, origin=None, require_uv=None, roots="fixture"):
    registration = fixture["registration"]
    return webauthn.verify_registration_response(
        credential=copy.deepcopy(credential or registration["credential"]),
        expected_challenge=challenge if challenge is not None else unb64u(registration["challenge"]),
        expected_rp_id=rp_id or fixture["rpId"],
        expected_origin=origin or fixture["origin"],
        require_user_verification=registration["requireUserVerification"] if require_uv is None else require_uv,
        pem_root_certs_bytes_by_fmt=pem_roots(fixture, fixture["expected"]["format"]) if roots == "fixture" else roots,
    )


_REGISTERED = {}


def registered(fixture):
    """The verified registration (cached: RSA and chain checks are the slow part)."""
    if fixture["name"] not in _REGISTERED:
        _REGISTERED[fixture["name"]] = register(fixture)
    return _REGISTERED[fixture["name"]]


def previous_sign_count(fixture, index):
    return fixture["expected"]["signCount"] if index == 0 else fixture["authentications"][index - 1]["expectedSignCount"]


def authenticate(fixture, index, *, credential=None, challenge=None, rp_id=None, origin=None, require_uv=None,
                 current_sign_count=None):
    authentication = fixture["authentications"][index]
    return webauthn.verify_authentication_response(
        credential=copy.deepcopy(credential or authentication["credential"]),
        expected_challenge=challenge if challenge is not None else unb64u(authentication["challenge"]),
        expected_rp_id=rp_id or fixture["rpId"],
        expected_origin=origin or fixture["origin"],
        credential_public_key=registered(fixture).credential_public_key,
        credential_current_sign_count=previous_sign_count(fixture, index) if current_sign_count is None else current_sign_count,
        require_user_verification=authentication["requireUserVerification"] if require_uv is None else require_uv,
    )


def each_authentication(fixtures):
    return [pytest.param(f, i, id=f"{f['name']}#{i + 1}") for f in fixtures for i in range(len(f["authentications"]))]


# ---------------------------------------------------------------------------------------------------- shape

def test_every_expected_fixture_is_present():
    assert EXPECTED_NAMES <= set(IDS), f"missing: {sorted(EXPECTED_NAMES - set(IDS))}"
    assert len(UV_CLEAR) >= 2 and WITH_ANCHORS


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_fixture_shape(fixture):
    path = FIXTURES_DIR / f"{fixture['name']}.json"
    assert path.exists(), "name must match the file name"
    assert set(fixture) - {"trustAnchors"} == {"name", "source", "rpId", "origin", "registration", "expected", "authentications"}
    assert fixture["rpId"] == "localhost" and re.fullmatch(r"http://localhost:\d+", fixture["origin"])
    registration = fixture["registration"]
    credential = registration["credential"]
    assert credential["type"] == "public-key" and credential["id"] == credential["rawId"]
    for key in ("challenge",):
        unb64u(registration[key])
    for key in ("clientDataJSON", "attestationObject"):
        unb64u(credential["response"][key])
    expected = fixture["expected"]
    assert expected["format"] in ("none", "packed", "fido-u2f")
    assert expected["attestation"] in ("none", "self", "basic")
    assert expected["algorithm"] in (-7, -8, -257)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", expected["aaguid"])
    assert len(fixture["authentications"]) >= 2
    counts = [expected["signCount"]] + [a["expectedSignCount"] for a in fixture["authentications"]]
    assert counts == sorted(counts) and (len(set(counts)) == len(counts) or set(counts) == {0})
    for authentication in fixture["authentications"]:
        response = authentication["credential"]["response"]
        for key in ("clientDataJSON", "authenticatorData", "signature"):
            unb64u(response[key])
        if response.get("userHandle") is not None:
            unb64u(response["userHandle"])
    for anchor in fixture.get("trustAnchors", []):
        base64.b64decode(anchor, validate=True)


# ---------------------------------------------------------------------------------------------------- positive

@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_registration_verifies_with_expected_values(fixture):
    expected = fixture["expected"]
    verified = registered(fixture)
    assert verified.fmt == expected["format"]
    assert b64u(verified.credential_id) == expected["credentialId"] == fixture["registration"]["credential"]["id"]
    assert verified.sign_count == expected["signCount"]
    assert int(decode_credential_public_key(verified.credential_public_key).alg) == expected["algorithm"]
    assert verified.aaguid == expected["aaguid"]
    assert verified.user_verified == expected["userVerified"]
    assert (verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE) == expected["backupEligible"]
    assert verified.credential_backed_up == expected["backupState"]
    response = fixture["registration"]["credential"]["response"]
    if "publicKeyAlgorithm" in response:
        assert response["publicKeyAlgorithm"] == expected["algorithm"]


@pytest.mark.parametrize("fixture,index", each_authentication(FIXTURES))
def test_authentication_verifies_with_registered_key(fixture, index):
    authentication = fixture["authentications"][index]
    result = authenticate(fixture, index)
    assert result.new_sign_count == authentication["expectedSignCount"]
    assert result.user_verified == authentication["userVerified"]
    assert b64u(result.credential_id) == fixture["expected"]["credentialId"]


# ---------------------------------------------------------------------------------------------------- negative: registration

@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_registration_rejects_wrong_origin_rp_and_challenge(fixture):
    with pytest.raises(Exception, match="origin"):
        register(fixture, origin="http://localhost:1")
    with pytest.raises(Exception, match="RP ID"):
        register(fixture, rp_id="example.com")
    with pytest.raises(Exception, match="challenge"):
        register(fixture, challenge=b"\x00" * 32)


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_registration_rejects_flipped_rp_id_hash(fixture):
    credential = copy.deepcopy(fixture["registration"]["credential"])
    attestation_object = parse_cbor(unb64u(credential["response"]["attestationObject"]))
    auth_data = bytearray(attestation_object["authData"])
    auth_data[0] ^= 0x01
    attestation_object["authData"] = bytes(auth_data)
    credential["response"]["attestationObject"] = b64u(encode_cbor(attestation_object))
    with pytest.raises(Exception, match="RP ID hash"):
        register(fixture, credential=credential)


@pytest.mark.parametrize("fixture", ATTESTED, ids=[f["name"] for f in ATTESTED])
def test_registration_rejects_flipped_attestation_signature(fixture):
    credential = copy.deepcopy(fixture["registration"]["credential"])
    attestation_object = parse_cbor(unb64u(credential["response"]["attestationObject"]))
    signature = bytearray(attestation_object["attStmt"]["sig"])
    signature[-1] ^= 0x01
    attestation_object["attStmt"]["sig"] = bytes(signature)
    credential["response"]["attestationObject"] = b64u(encode_cbor(attestation_object))
    with pytest.raises(Exception):
        register(fixture, credential=credential)


@pytest.mark.parametrize("fixture", UV_CLEAR, ids=[f["name"] for f in UV_CLEAR])
def test_registration_rejects_required_uv_when_uv_flag_clear(fixture):
    with pytest.raises(Exception, match="[Uu]ser verification"):
        register(fixture, require_uv=True)


@pytest.mark.parametrize("fixture", WITH_ANCHORS, ids=[f["name"] for f in WITH_ANCHORS])
def test_attestation_chain_needs_the_right_root(fixture):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Unrelated Root")])
    stranger = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(datetime.datetime(2025, 1, 1))
                .not_valid_after(datetime.datetime(2045, 1, 1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
    roots = {AttestationFormat(fixture["expected"]["format"]): [stranger.public_bytes(serialization.Encoding.PEM)]}
    with pytest.raises(Exception, match="[Cc]ertificate chain"):
        register(fixture, roots=roots)


# ---------------------------------------------------------------------------------------------------- negative: authentication

@pytest.mark.parametrize("fixture,index", each_authentication(FIXTURES))
def test_authentication_rejects_wrong_origin_rp_and_challenge(fixture, index):
    with pytest.raises(Exception, match="origin"):
        authenticate(fixture, index, origin="http://localhost:1")
    with pytest.raises(Exception, match="RP ID"):
        authenticate(fixture, index, rp_id="example.com")
    with pytest.raises(Exception, match="challenge"):
        authenticate(fixture, index, challenge=b"\x00" * 32)


@pytest.mark.parametrize("fixture,index", each_authentication(FIXTURES))
def test_authentication_rejects_flipped_signature_byte(fixture, index):
    credential = copy.deepcopy(fixture["authentications"][index]["credential"])
    credential["response"]["signature"] = flip(credential["response"]["signature"], -1)
    with pytest.raises(Exception, match="[Ss]ignature"):
        authenticate(fixture, index, credential=credential)


@pytest.mark.parametrize("fixture,index", each_authentication(FIXTURES))
def test_authentication_rejects_flipped_rp_id_hash(fixture, index):
    credential = copy.deepcopy(fixture["authentications"][index]["credential"])
    credential["response"]["authenticatorData"] = flip(credential["response"]["authenticatorData"], 0)
    with pytest.raises(Exception, match="RP ID hash"):
        authenticate(fixture, index, credential=credential)


@pytest.mark.parametrize("fixture,index", each_authentication(UV_CLEAR))
def test_authentication_rejects_required_uv_when_uv_flag_clear(fixture, index):
    assert not fixture["authentications"][index]["userVerified"]
    with pytest.raises(Exception, match="[Uu]ser verification"):
        authenticate(fixture, index, require_uv=True)


@pytest.mark.parametrize("fixture,index", each_authentication(FIXTURES))
def test_authentication_rejects_replayed_sign_count(fixture, index):
    authentication = fixture["authentications"][index]
    if authentication["expectedSignCount"] == 0:
        pytest.skip("authenticator does not count")
    with pytest.raises(Exception, match="[Cc]ount"):
        authenticate(fixture, index, current_sign_count=authentication["expectedSignCount"])
