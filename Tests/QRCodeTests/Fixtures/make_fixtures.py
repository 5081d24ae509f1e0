"""Regenerates the reference module matrices in this folder with segno (an independent QR encoder).

    python3 Tests/QRCodeTests/Fixtures/make_fixtures.py

Each case is encoded in byte mode at a fixed version, error-correction level and mask, so the Swift tests can
compare our encoder with segno module by module.
"""
import json
import pathlib

import segno
from segno import encoder

# segno adds a whole zero byte after the terminator when the bit stream already ends on a byte boundary;
# ISO/IEC 18004 §7.4.10 adds padding bits only to reach the boundary. Use the standard's rule so the
# reference matrices follow the standard (both forms decode the same).
_original_padding = encoder.write_padding_bits


def _standard_padding(buff, version, length):
    if length % 8:
        _original_padding(buff, version, length)


encoder.write_padding_bits = _standard_padding

CASES = [
    ("HELLO WORLD", "M", 1, 2),
    ("otpauth://totp/Riverside:dr.smith?secret=JBSWY3DPEHPK3PXP&digits=6", "L", 4, 5),
    ("otpauth://totp/Riverside:dr.smith?secret=JBSWY3DPEHPK3PXP&digits=6", "Q", 6, 0),
    ("Clínica Müller & Söhne — Überweisung", "H", 6, 7),
    ("x" * 300, "M", 13, 3),
    ("".join(chr(33 + (i * 7) % 90) for i in range(180)), "Q", 12, 6),
    ("0123456789" * 20, "L", 9, 1),
    ("a" * 50, "H", 6, 4),
]


def main():
    out = []
    for text, error, version, mask in CASES:
        qr = segno.make_qr(text.encode("utf-8"), mode="byte", error=error.lower(), version=version, mask=mask, boost_error=False)
        rows = ["".join("1" if cell else "0" for cell in row) for row in qr.matrix]
        out.append({"text": text, "error": error, "version": version, "mask": mask, "rows": rows})
    path = pathlib.Path(__file__).with_name("segno-matrices.json")
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(out)} matrices to {path}")


if __name__ == "__main__":
    main()
