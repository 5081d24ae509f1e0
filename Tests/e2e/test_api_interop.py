"""The JSON API with independent clients: oathtool computes the codes, zxing-cpp reads the QR SVG."""
import io

import requests

from conftest import PASSWORD, fresh_code


def svg_to_text(svg):
    import cairosvg
    import zxingcpp
    from PIL import Image
    png = cairosvg.svg2png(bytestring=svg.encode(), background_color="white", output_width=400)
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert results, "the QR code in qrSVG could not be decoded"
    return results[0].text


def test_api_enrollment_and_sign_in_with_oathtool(twofold):
    practice = twofold.create_practice("Clínica Müller & Söhne: Nord")
    twofold.create_user(practice)
    twofold.start()
    api = f"http://127.0.0.1:{twofold.port}/api/v1"

    login = requests.post(f"{api}/login", json={"username": "dr.smith", "password": PASSWORD}).json()
    assert login["status"] == "authenticated"
    auth = {"Authorization": f"Bearer {login['token']}"}
    started = requests.post(f"{api}/me/factors/totp", json={"password": PASSWORD}, headers=auth)
    assert started.status_code == 200, started.text
    body = started.json()
    assert svg_to_text(body["qrSVG"]) == body["otpauthURI"]
    assert "Cl%C3%ADnica%20M%C3%BCller%20%26%20S%C3%B6hne%3A%20Nord" in body["otpauthURI"]
    enrolled = fresh_code(body["secret"], step_offset=-1)
    activated = requests.post(f"{api}/me/factors/{body['factorId']}/activate", json={"code": enrolled}, headers=auth)
    assert activated.status_code == 200, activated.text
    assert len(activated.json()["recoveryCodes"]) == 10

    second = requests.post(f"{api}/login", json={"username": "dr.smith", "password": PASSWORD}).json()
    assert second["status"] == "second_factor_required"
    assert second["factors"][0]["kind"] == "totp" and second["factors"][0]["primary"] is True
    auth2 = {"Authorization": f"Bearer {second['token']}"}
    assert requests.get(f"{api}/me/factors", headers=auth2).status_code == 401
    wrong = requests.post(f"{api}/login/verify", json={"code": "000000"}, headers=auth2)
    assert wrong.status_code == 401 and wrong.json() == {"error": True, "reason": "That code is not correct. Check the code and try again."}
    verified = requests.post(f"{api}/login/verify", json={"code": fresh_code(body["secret"], after_step=enrolled.step)}, headers=auth2)
    assert verified.status_code == 200 and verified.json()["status"] == "authenticated"
    # The second factor rotates the bearer token: the password step's token no longer works.
    assert requests.get(f"{api}/me", headers=auth2).status_code == 401
    auth2 = {"Authorization": f"Bearer {verified.json()['token']}"}
    me = requests.get(f"{api}/me", headers=auth2).json()
    assert me["twoFactorEnabled"] is True and me["recoveryCodesLeft"] == 10


def test_health_ready_and_openapi(twofold):
    twofold.start()
    base = f"http://127.0.0.1:{twofold.port}"
    assert requests.get(f"{base}/health").json() == {"status": "ok"}
    assert requests.get(f"{base}/ready").json()["status"] == "ready"
    document = requests.get(f"{base}/openapi.json").json()
    assert document["openapi"] == "3.1.0" and "/api/v1/login" in document["paths"]


def test_unknown_paths_and_bad_json_are_clear_4xx(twofold):
    twofold.start()
    base = f"http://127.0.0.1:{twofold.port}"
    missing = requests.get(f"{base}/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"] is True
    broken = requests.post(f"{base}/api/v1/login", data="{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"] is True
    page = requests.get(f"{base}/no-such-page")
    assert page.status_code == 404 and "There is nothing at this address." in page.text
