#!/usr/bin/env python3
"""Writes Sources/TwofoldServer/Resources/password-blocklist.txt: the common passwords Twofold refuses (NIST SP 800-63B
rev. 4 §3.1.1.2), one lower-cased password per line, sorted.

Source: the `passwords` frequency list of the zxcvbn package (the ~30,000 most common passwords from leaked sets),
available offline with `pip install zxcvbn`. Only entries of at least 8 characters are kept: Twofold refuses shorter
passwords anyway. Run from the repository root and commit the result:

    python3 scripts/make-password-blocklist.py
"""
import pathlib

from zxcvbn import frequency_lists

MINIMUM_LENGTH = 8
MAXIMUM_BYTES = 72
# Well-known examples that are not in the frequency list but are typed as "strong" passwords.
EXTRA = ["correcthorsebatterystaple", "correct horse battery staple", "passwordpassword", "password1234567", "1234567890123456"]

OUT = pathlib.Path(__file__).resolve().parents[1] / "Sources" / "TwofoldServer" / "Resources" / "password-blocklist.txt"


def main():
    words = {w.strip().lower() for w in frequency_lists.FREQUENCY_LISTS["passwords"] + EXTRA}
    kept = sorted(w for w in words if len(w) >= MINIMUM_LENGTH and len(w.encode()) <= MAXIMUM_BYTES and "\n" not in w)
    OUT.write_text("".join(w + "\n" for w in kept))
    print(f"wrote {len(kept)} passwords ({OUT.stat().st_size} bytes) to {OUT}")


if __name__ == "__main__":
    main()
