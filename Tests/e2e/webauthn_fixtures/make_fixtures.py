#!/usr/bin/env python3
"""Record real WebAuthn ceremonies as JSON fixtures for Twofold's WebAuthn verifier.

Writes one file per ceremony to Tests/TwofoldCoreTests/Fixtures/WebAuthn/<name>.json:

  * chromium-*  headless Chromium driven by Selenium, with Chrome's virtual authenticator, on a page
                (ceremony.html, beside this script) served by `python -m http.server` as http://localhost:PORT.
                The credential objects are exactly what PublicKeyCredential.toJSON() returned in the browser.
  * fido2-*     a small software authenticator written here on python-fido2's data classes
                (AttestedCredentialData / AuthenticatorData / AttestationObject, fido2.cose, fido2.cbor) and
                `cryptography` keys; the credential JSON is built in the same shape as toJSON().

Every fixture is verified before it is written, independently by py_webauthn (verify_registration_response /
verify_authentication_response) and by python-fido2 (Fido2Server.register_complete / authenticate_complete plus
the fido2.attestation verifiers). "expected" is filled from what those libraries parse; if the two disagree, or
anything fails to verify, the script stops with an error and writes nothing for that run.

This file is deliberately not named test_*.py: pytest must not collect it. The cross-check that runs in the
test suite is Tests/e2e/test_webauthn_fixtures.py.

Usage (from anywhere):
    python3 Tests/e2e/webauthn_fixtures/make_fixtures.py              # everything
    python3 Tests/e2e/webauthn_fixtures/make_fixtures.py --only python  # or --only chromium
    python3 Tests/e2e/webauthn_fixtures/make_fixtures.py --out /tmp/x   # another output directory
Needs: chromium + chromedriver in /usr/bin (or on PATH); pip install webauthn fido2 selenium cryptography
"""
import argparse
import base64
import copy
import datetime
import hashlib
import importlib.metadata
import json
import pathlib
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DEFAULT_OUT = ROOT / "Tests" / "TwofoldCoreTests" / "Fixtures" / "WebAuthn"
RP_ID = "localhost"
RP_NAME = "Twofold"
PYTHON_ORIGIN = "http://localhost:8080"  # the python-made ceremonies never touch the network; any localhost origin works

ALG_NAMES = {-7: "es256", -8: "eddsa", -257: "rs256"}
FLAG_UP, FLAG_UV, FLAG_BE, FLAG_BS, FLAG_AT, FLAG_ED = 0x01, 0x04, 0x08, 0x10, 0x40, 0x80
OID_FIDO_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")


class FixtureError(Exception):
    pass


def check(condition, message):
    if not condition:
        raise FixtureError(message)


def b64u(data):
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def version(distribution):
    return importlib.metadata.version(distribution)


# ----------------------------------------------------------------------------------------------------------------
# Independent verification (py_webauthn + python-fido2); fills "expected", "expectedSignCount" and "userVerified".
# ----------------------------------------------------------------------------------------------------------------

def verify_and_fill(fixture):
    """Verify the registration and every authentication of `fixture` with both libraries, then fill in
    fixture["expected"] and each authentication's expectedSignCount / userVerified from what they parsed."""
    import webauthn
    from webauthn.helpers import decode_credential_public_key
    from webauthn.helpers.structs import AttestationFormat, CredentialDeviceType
    from fido2.attestation import Attestation, AttestationType, AttestationVerifier
    from fido2.cose import CoseKey
    from fido2.server import Fido2Server
    from fido2.webauthn import (AttestationObject, AuthenticatorData, CollectedClientData,
                                PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity)

    name, origin, rp_id = fixture["name"], fixture["origin"], fixture["rpId"]
    registration = fixture["registration"]
    credential = registration["credential"]
    challenge = unb64u(registration["challenge"])
    require_uv = registration["requireUserVerification"]
    anchors_der = [base64.b64decode(a) for a in fixture.get("trustAnchors", [])]

    # -- parse with fido2 first (what the bytes say) --
    attestation_object = AttestationObject(unb64u(credential["response"]["attestationObject"]))
    client_data = CollectedClientData(unb64u(credential["response"]["clientDataJSON"]))
    auth_data = attestation_object.auth_data
    credential_data = auth_data.credential_data
    check(credential_data is not None, f"{name}: no attested credential data")
    check(client_data.type == "webauthn.create" and client_data.origin == origin and client_data.challenge == challenge,
          f"{name}: clientDataJSON does not match the ceremony")

    # -- py_webauthn --
    roots_by_fmt = None
    if anchors_der:
        pems = [x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for d in anchors_der]
        roots_by_fmt = {AttestationFormat(attestation_object.fmt): pems}
    try:
        verified = webauthn.verify_registration_response(
            credential=copy.deepcopy(credential), expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, require_user_verification=require_uv, pem_root_certs_bytes_by_fmt=roots_by_fmt)
    except Exception as error:
        raise FixtureError(f"{name}: py_webauthn rejected the registration: {error!r}") from error
    py_alg = decode_credential_public_key(verified.credential_public_key).alg
    py_alg = int(getattr(py_alg, "value", py_alg))

    # -- python-fido2: the attestation statement on its own ... --
    try:
        attestation_result = Attestation.for_type(attestation_object.fmt)().verify(
            attestation_object.att_stmt, auth_data, client_data.hash)
    except Exception as error:
        raise FixtureError(f"{name}: fido2 rejected the {attestation_object.fmt} attestation: {error!r}") from error

    # -- ... and the whole registration through Fido2Server (with the trust anchor when there is one) --
    verifier = None
    if anchors_der:
        class AnchorVerifier(AttestationVerifier):
            def ca_lookup(self, result, auth_data):
                return anchors_der[0]
        verifier = AnchorVerifier()
    server = Fido2Server(PublicKeyCredentialRpEntity(name=RP_NAME, id=rp_id),
                         attestation="direct" if verifier else None, verify_attestation=verifier,
                         verify_origin=lambda o: o == origin)
    uv_requirement = "required" if require_uv else "discouraged"
    _, state = server.register_begin(PublicKeyCredentialUserEntity(name="alice", id=b"fixture-user", display_name="Alice"),
                                     user_verification=uv_requirement, challenge=challenge)
    try:
        registered = server.register_complete(state, copy.deepcopy(credential))
    except Exception as error:
        raise FixtureError(f"{name}: fido2 Fido2Server rejected the registration: {error!r}") from error
    stored = registered.credential_data

    # -- the two libraries (and the toJSON extras) must agree --
    fido_alg = stored.public_key.ALGORITHM
    check(verified.fmt == attestation_object.fmt, f"{name}: fmt {verified.fmt} vs {attestation_object.fmt}")
    check(verified.credential_id == stored.credential_id == unb64u(credential["rawId"]) == unb64u(credential["id"]),
          f"{name}: credential id mismatch")
    check(verified.sign_count == registered.counter, f"{name}: sign count {verified.sign_count} vs {registered.counter}")
    check(verified.aaguid == str(stored.aaguid), f"{name}: aaguid {verified.aaguid} vs {stored.aaguid}")
    check(verified.user_verified == registered.is_user_verified(), f"{name}: UV disagreement")
    check(verified.credential_backed_up == registered.is_backed_up(), f"{name}: BS disagreement")
    check((verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE) == registered.is_backup_eligible(),
          f"{name}: BE disagreement")
    check(py_alg == fido_alg, f"{name}: alg {py_alg} vs {fido_alg}")
    response = credential["response"]
    if "publicKeyAlgorithm" in response:
        check(response["publicKeyAlgorithm"] == fido_alg, f"{name}: publicKeyAlgorithm {response['publicKeyAlgorithm']}")
    if response.get("publicKey"):
        spki_key = serialization.load_der_public_key(unb64u(response["publicKey"]))
        check(dict(CoseKey.for_alg(fido_alg).from_cryptography_key(spki_key)) == dict(stored.public_key),
              f"{name}: toJSON publicKey (SPKI) is not the COSE key in authenticatorData")
    if "authenticatorData" in response:
        check(unb64u(response["authenticatorData"]) == bytes(auth_data), f"{name}: toJSON authenticatorData mismatch")

    attestation_names = {AttestationType.NONE: "none", AttestationType.SELF: "self", AttestationType.BASIC: "basic",
                         AttestationType.ATT_CA: "attca", AttestationType.ANON_CA: "anonca"}
    fixture["expected"] = {
        "format": attestation_object.fmt,
        "attestation": attestation_names[attestation_result.attestation_type],
        "algorithm": fido_alg,
        "credentialId": b64u(stored.credential_id),
        "signCount": verified.sign_count,
        "aaguid": str(stored.aaguid),
        "userVerified": registered.is_user_verified(),
        "backupEligible": registered.is_backup_eligible(),
        "backupState": registered.is_backed_up(),
    }

    # -- authentications, in order, each against the previous sign count --
    check(len(fixture["authentications"]) >= 2, f"{name}: fewer than two authentications")
    sign_count = verified.sign_count
    for index, authentication in enumerate(fixture["authentications"]):
        label = f"{name} authentication #{index + 1}"
        assertion = authentication["credential"]
        a_challenge = unb64u(authentication["challenge"])
        a_require_uv = authentication["requireUserVerification"]
        try:
            result = webauthn.verify_authentication_response(
                credential=copy.deepcopy(assertion), expected_challenge=a_challenge, expected_rp_id=rp_id,
                expected_origin=origin, credential_public_key=verified.credential_public_key,
                credential_current_sign_count=sign_count, require_user_verification=a_require_uv)
        except Exception as error:
            raise FixtureError(f"{label}: py_webauthn rejected it: {error!r}") from error
        _, a_state = server.authenticate_begin([stored], user_verification="required" if a_require_uv else "discouraged",
                                               challenge=a_challenge)
        try:
            server.authenticate_complete(a_state, [stored], copy.deepcopy(assertion))
        except Exception as error:
            raise FixtureError(f"{label}: fido2 Fido2Server rejected it: {error!r}") from error
        a_auth_data = AuthenticatorData(unb64u(assertion["response"]["authenticatorData"]))
        check(result.new_sign_count == a_auth_data.counter, f"{label}: sign count disagreement")
        check(result.user_verified == a_auth_data.is_user_verified(), f"{label}: UV disagreement")
        check(result.credential_id == stored.credential_id, f"{label}: credential id mismatch")
        if sign_count or result.new_sign_count:
            check(result.new_sign_count > sign_count, f"{label}: sign count did not increase ({sign_count} -> {result.new_sign_count})")
        authentication["expectedSignCount"] = result.new_sign_count
        authentication["userVerified"] = a_auth_data.is_user_verified()
        sign_count = result.new_sign_count
    return fixture


def fixture_document(name, source, origin, registration, authentications, trust_anchors=None):
    """A fixture with the keys in the documented order; expected values are filled by verify_and_fill."""
    document = {"name": name, "source": source, "rpId": RP_ID, "origin": origin, "registration": registration,
                "expected": None, "authentications": authentications}
    if trust_anchors:
        document["trustAnchors"] = trust_anchors
    return document


def reorder(fixture):
    """Put the per-authentication keys in the documented order (expectedSignCount/userVerified are filled last)."""
    fixture["authentications"] = [
        {"challenge": a["challenge"], "requireUserVerification": a["requireUserVerification"], "credential": a["credential"],
         "expectedSignCount": a["expectedSignCount"], "userVerified": a["userVerified"]}
        for a in fixture["authentications"]]
    return fixture


# ----------------------------------------------------------------------------------------------------------------
# Chromium + Selenium virtual authenticator
# ----------------------------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record_chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions as VA

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    port = free_port()
    origin = f"http://localhost:{port}"
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(HERE)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ceremony.html", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise FixtureError("the static http.server did not come up")

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1000,800"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)  # explicit driver: no Selenium Manager
        driver.set_script_timeout(30)
        driver.get(f"{origin}/ceremony.html")
        browser = f"Chromium {driver.capabilities.get('browserVersion')}"
        selenium_version = version("selenium")
        print(f"recording with {browser} / chromedriver "
              f"{driver.capabilities['chrome']['chromedriverVersion'].split()[0]} / selenium {selenium_version} on {origin}")

        def run(function, options_json):
            outcome = driver.execute_async_script(
                f"settle(() => {function}(arguments[0]), arguments[arguments.length - 1])", options_json)
            if "ok" not in outcome:
                raise FixtureError(f"{function} failed in the browser: {outcome.get('error')}")
            return outcome["ok"]

        def ceremony(label, authenticator, user_id, selection, attestation, user_verification, allow_lists):
            driver.add_virtual_authenticator(authenticator)
            try:
                challenge = secrets.token_bytes(32)
                creation = {
                    "challenge": b64u(challenge),
                    "rp": {"id": RP_ID, "name": RP_NAME},
                    "user": {"id": b64u(user_id), "name": "alice@example.test", "displayName": "Alice"},
                    "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
                    "authenticatorSelection": selection,
                    "attestation": attestation,
                    "timeout": 20000,
                }
                credential = run("recordCreate", creation)
                registration = {"challenge": b64u(challenge), "requireUserVerification": user_verification == "required",
                                "credential": credential}
                authentications = []
                for allow in allow_lists:
                    a_challenge = secrets.token_bytes(32)
                    request = {
                        "challenge": b64u(a_challenge),
                        "rpId": RP_ID,
                        "allowCredentials": [{"type": "public-key", "id": credential["id"]}] if allow else [],
                        "userVerification": user_verification,
                        "timeout": 20000,
                    }
                    authentications.append({"challenge": b64u(a_challenge),
                                            "requireUserVerification": user_verification == "required",
                                            "credential": run("recordGet", request)})
                source = f"{browser} virtual authenticator ({label}) via Selenium {selenium_version}"
                return registration, authentications, source
            finally:
                driver.remove_virtual_authenticator()

        def internal_authenticator():
            return VA(protocol=VA.Protocol.CTAP2, transport=VA.Transport.INTERNAL, has_resident_key=True,
                      has_user_verification=True, is_user_verified=True, is_user_consenting=True)

        resident_uv = {"residentKey": "required", "requireResidentKey": True, "userVerification": "required"}
        fixtures = []
        for attestation, wanted in (("none", "none"), ("direct", "packed")):
            registration, authentications, source = ceremony(
                "ctap2, internal, resident key, UV", internal_authenticator(), f"chromium-{attestation}".encode(),
                resident_uv, attestation, "required", allow_lists=(True, False))
            fixture = verify_and_fill(fixture_document("pending", source, origin, registration, authentications))
            fmt, alg = fixture["expected"]["format"], fixture["expected"]["algorithm"]
            fixture["name"] = f"chromium-{fmt}-{ALG_NAMES.get(alg, str(alg))}"
            if fmt != wanted:
                print(f"NOTE: attestation {attestation!r} gave fmt {fmt!r}; the file is named {fixture['name']}")
            fixtures.append(reorder(fixture))

        u2f = VA(protocol=VA.Protocol.U2F, transport=VA.Transport.USB, has_resident_key=False,
                 has_user_verification=False, is_user_consenting=True)
        registration, authentications, source = ceremony(
            "u2f, usb, no resident key, no UV", u2f, b"chromium-u2f",
            {"residentKey": "discouraged", "requireResidentKey": False, "userVerification": "discouraged"},
            "direct", "discouraged", allow_lists=(True, True))
        fixture = verify_and_fill(fixture_document("chromium-u2f", source, origin, registration, authentications))
        check(fixture["expected"]["format"] == "fido-u2f", f"chromium-u2f: fmt is {fixture['expected']['format']}")
        fixtures.append(reorder(fixture))
        return fixtures
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()


# ----------------------------------------------------------------------------------------------------------------
# Software authenticator on python-fido2 data classes
# ----------------------------------------------------------------------------------------------------------------

class SoftwareAuthenticator:
    """One credential on a software authenticator: key pair, credential id, counter, flags."""

    def __init__(self, alg, *, aaguid=b"\x00" * 16, credential_id_length=32, user_verification=True,
                 backup_eligible=False, backup_state=False, resident=True, transports=("internal",),
                 attachment="platform"):
        from fido2.cose import CoseKey
        if alg == -7:
            self.private_key = ec.generate_private_key(ec.SECP256R1())
        elif alg == -8:
            self.private_key = ed25519.Ed25519PrivateKey.generate()
        elif alg == -257:
            self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(alg)
        self.alg = alg
        self.cose_key = CoseKey.for_alg(alg).from_cryptography_key(self.private_key.public_key())
        self.aaguid = bytes(aaguid)
        self.credential_id = secrets.token_bytes(credential_id_length)
        self.counter = 0
        self.flags = FLAG_UP | (FLAG_UV if user_verification else 0) | (FLAG_BE if backup_eligible else 0) \
            | (FLAG_BS if backup_state else 0)
        self.resident = resident
        self.user_id = None
        self.transports = list(transports)
        self.attachment = attachment

    def sign(self, data, private_key=None, alg=None):
        key, alg = private_key or self.private_key, alg or self.alg
        if alg == -7:
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        if alg == -8:
            return key.sign(data)
        if alg == -257:
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        raise ValueError(alg)

    @staticmethod
    def client_data(kind, challenge, origin, extra=None):
        from fido2.webauthn import CollectedClientData
        return CollectedClientData.create(type=kind, challenge=challenge, origin=origin, cross_origin=False, **(extra or {}))

    def spki(self):
        return self.private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)

    def make_credential(self, challenge, origin, user_id, statement):
        """statement: "none" | "self" | ("x5c", attestation_key, [cert_der, ...]) | ("fido-u2f", key, cert_der)"""
        from fido2.webauthn import AttestationObject, AttestedCredentialData, AuthenticatorData
        self.user_id = user_id
        client_data = self.client_data("webauthn.create", challenge, origin)
        credential_data = AttestedCredentialData.create(self.aaguid, self.credential_id, self.cose_key)
        auth_data = AuthenticatorData.create(hashlib.sha256(RP_ID.encode()).digest(), self.flags | FLAG_AT, self.counter,
                                             credential_data)
        signed = bytes(auth_data) + client_data.hash
        if statement == "none":
            fmt, att_stmt = "none", {}
        elif statement == "self":
            fmt, att_stmt = "packed", {"alg": self.alg, "sig": self.sign(signed)}
        elif statement[0] == "x5c":
            _, attestation_key, chain = statement
            fmt, att_stmt = "packed", {"alg": -7, "sig": self.sign(signed, attestation_key, -7), "x5c": chain}
        elif statement[0] == "fido-u2f":
            _, attestation_key, cert_der = statement
            check(self.alg == -7, "fido-u2f needs a P-256 credential")
            point = self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                                serialization.PublicFormat.UncompressedPoint)
            message = b"\x00" + auth_data.rp_id_hash + client_data.hash + self.credential_id + point
            fmt, att_stmt = "fido-u2f", {"sig": attestation_key.sign(message, ec.ECDSA(hashes.SHA256())), "x5c": [cert_der]}
        else:
            raise ValueError(statement)
        attestation_object = AttestationObject.create(fmt, auth_data, att_stmt)
        # Same members, same (alphabetical) order as Chromium's PublicKeyCredential.toJSON() output.
        return {
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "response": {
                "attestationObject": b64u(attestation_object),
                "authenticatorData": b64u(auth_data),
                "clientDataJSON": b64u(client_data),
                "publicKey": b64u(self.spki()),
                "publicKeyAlgorithm": self.alg,
                "transports": self.transports,
            },
            "type": "public-key",
        }

    def get_assertion(self, challenge, origin, client_data_extra=None):
        from fido2.webauthn import AuthenticatorData
        self.counter += 1
        client_data = self.client_data("webauthn.get", challenge, origin, client_data_extra)
        auth_data = AuthenticatorData.create(hashlib.sha256(RP_ID.encode()).digest(), self.flags, self.counter)
        response = {
            "authenticatorData": b64u(auth_data),
            "clientDataJSON": b64u(client_data),
            "signature": b64u(self.sign(bytes(auth_data) + client_data.hash)),
        }
        if self.resident:
            response["userHandle"] = b64u(self.user_id)  # toJSON() leaves userHandle out when it is null
        return {
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "response": response,
            "type": "public-key",
        }


VALID_FROM = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
VALID_UNTIL = datetime.datetime(2045, 1, 1, tzinfo=datetime.timezone.utc)


def make_root_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Twofold Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Twofold Test Attestation Root CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(VALID_FROM).not_valid_after(VALID_UNTIL)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_attestation_cert(aaguid, issuer_key=None, issuer_cert=None, common_name="Twofold Test Authenticator"):
    """Version-3 packed attestation certificate (C, O, OU=Authenticator Attestation, CN; CA=false; AAGUID extension).
    Without an issuer it is self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Twofold Test"),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(VALID_FROM).not_valid_after(VALID_UNTIL)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), critical=False)
    if aaguid is not None:
        # extnValue = DER OCTET STRING wrapping the 16 AAGUID bytes (tag 0x04, length 0x10).
        builder = builder.add_extension(x509.UnrecognizedExtension(OID_FIDO_AAGUID, b"\x04\x10" + bytes(aaguid)),
                                        critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def aaguid_for(label):
    """A stable, non-zero AAGUID per software-authenticator model (UUIDv5 of a fixed name)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://twofold.invalid/test-authenticators/{label}").bytes


def record_python():
    source = (f"python-fido2 {version('fido2')} data classes + cryptography {version('cryptography')} "
              f"(software authenticator in make_fixtures.py)")
    origin = PYTHON_ORIGIN

    def ceremony(name, authenticator, statement, *, trust_anchors=None, extra_client_data_on_second=False):
        challenge = secrets.token_bytes(32)
        user_id = secrets.token_bytes(16)
        require_uv = bool(authenticator.flags & FLAG_UV)
        registration = {"challenge": b64u(challenge), "requireUserVerification": require_uv,
                        "credential": authenticator.make_credential(challenge, origin, user_id, statement)}
        authentications = []
        for index in range(2):
            a_challenge = secrets.token_bytes(32)
            extra = None
            if extra_client_data_on_second and index == 1:
                # Chromium sometimes adds this member; put it in deterministically so parsers must tolerate it.
                extra = {"other_keys_can_be_added_here":
                         "do not compare clientDataJSON against a template. See https://goo.gl/yabPex"}
            authentications.append({"challenge": b64u(a_challenge), "requireUserVerification": require_uv,
                                    "credential": authenticator.get_assertion(a_challenge, origin, extra)})
        fixture = fixture_document(name, source, origin, registration, authentications, trust_anchors)
        return reorder(verify_and_fill(fixture))

    fixtures = [
        ceremony("fido2-packed-self-es256", SoftwareAuthenticator(-7, aaguid=aaguid_for("packed-self-es256")), "self"),
        ceremony("fido2-packed-self-eddsa",
                 SoftwareAuthenticator(-8, aaguid=aaguid_for("packed-self-eddsa"), credential_id_length=48), "self"),
        ceremony("fido2-packed-self-rs256",
                 SoftwareAuthenticator(-257, aaguid=aaguid_for("packed-self-rs256"), credential_id_length=16), "self"),
    ]

    x5c_aaguid = aaguid_for("packed-x5c-es256")
    root_key, root_cert = make_root_ca()
    attestation_key, attestation_cert = make_attestation_cert(x5c_aaguid, root_key, root_cert)
    fixtures.append(ceremony(
        "fido2-packed-x5c-es256",
        SoftwareAuthenticator(-7, aaguid=x5c_aaguid, transports=("usb", "nfc"), attachment="cross-platform"),
        ("x5c", attestation_key, [der(attestation_cert)]),
        trust_anchors=[base64.b64encode(der(root_cert)).decode()]))

    u2f_key, u2f_cert = make_attestation_cert(None, common_name="Twofold Test U2F Batch")  # self-signed
    fixtures.append(ceremony(
        "fido2-fido-u2f",
        SoftwareAuthenticator(-7, credential_id_length=64, user_verification=False, resident=False,
                              transports=("usb",), attachment="cross-platform"),
        ("fido-u2f", u2f_key, der(u2f_cert))))

    fixtures.append(ceremony(
        "fido2-none-eddsa",
        SoftwareAuthenticator(-8, resident=False, transports=("usb", "nfc"), attachment="cross-platform"), "none"))

    fixtures.append(ceremony(
        "fido2-backup-eligible",
        SoftwareAuthenticator(-7, aaguid=aaguid_for("backup-eligible"), backup_eligible=True, backup_state=True,
                              transports=("hybrid", "internal")),
        "self", extra_client_data_on_second=True))

    expectations = {  # what each python fixture was built to be; the verifiers' parse must agree
        "fido2-packed-self-es256": ("packed", "self", -7), "fido2-packed-self-eddsa": ("packed", "self", -8),
        "fido2-packed-self-rs256": ("packed", "self", -257), "fido2-packed-x5c-es256": ("packed", "basic", -7),
        "fido2-fido-u2f": ("fido-u2f", "basic", -7), "fido2-none-eddsa": ("none", "none", -8),
        "fido2-backup-eligible": ("packed", "self", -7),
    }
    for fixture in fixtures:
        e = fixture["expected"]
        check((e["format"], e["attestation"], e["algorithm"]) == expectations[fixture["name"]],
              f"{fixture['name']}: parsed as {e['format']}/{e['attestation']}/{e['algorithm']}")
        check([a["expectedSignCount"] for a in fixture["authentications"]] == [1, 2] and e["signCount"] == 0,
              f"{fixture['name']}: unexpected sign counts")
    be = next(f for f in fixtures if f["name"] == "fido2-backup-eligible")["expected"]
    check(be["backupEligible"] and be["backupState"] and be["userVerified"], "fido2-backup-eligible: flags lost")
    return fixtures


# ----------------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("chromium", "python"), help="record only one family of fixtures")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    args = parser.parse_args()

    fixtures = []
    try:
        if args.only in (None, "chromium"):
            fixtures += record_chromium()
        if args.only in (None, "python"):
            fixtures += record_python()
    except FixtureError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1

    args.out.mkdir(parents=True, exist_ok=True)
    for fixture in fixtures:
        path = args.out / f"{fixture['name']}.json"
        path.write_text(json.dumps(fixture, indent=2) + "\n")
        e = fixture["expected"]
        counts = [e["signCount"]] + [a["expectedSignCount"] for a in fixture["authentications"]]
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: fmt={e['format']} "
              f"attestation={e['attestation']} alg={e['algorithm']} aaguid={e['aaguid']} uv={e['userVerified']} "
              f"be={e['backupEligible']} bs={e['backupState']} signCounts={counts}")
    print(f"{len(fixtures)} fixtures verified by py_webauthn {version('webauthn')} and fido2 {version('fido2')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
