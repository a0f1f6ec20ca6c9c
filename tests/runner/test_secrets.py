import base64
import binascii
import json
import logging
from urllib.parse import quote, quote_plus

import pytest

from dockyard import secrets
from dockyard.secrets import MASK, REDACTION_FAILED, Scrubber

SECRET = "s3cr3t-Pa55/w+rd=?&"


def test_raw_value_masked():
    s = Scrubber([SECRET])
    assert s.scrub(f"password is {SECRET}!") == f"password is {MASK}!"
    assert SECRET not in s.scrub(SECRET * 3)


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: quote(v, safe=""),
        lambda v: quote(v),
        lambda v: quote_plus(v),
        lambda v: binascii.hexlify(v.encode()).decode(),
        lambda v: binascii.hexlify(v.encode()).decode().upper(),
        lambda v: json.dumps(v)[1:-1],
    ],
    ids=["quote", "quote-slash-safe", "quote_plus", "hex", "HEX", "json"],
)
def test_encoded_forms_masked(encode):
    s = Scrubber([SECRET])
    encoded = encode(SECRET)
    out = s.scrub(f"x={encoded};")
    assert encoded not in out
    assert MASK in out


@pytest.mark.parametrize("prefix", ["", "u", "us", "use", "user:", "admin:"])
@pytest.mark.parametrize("suffix", ["", "@", "@h", "@host:5432"])
def test_base64_every_alignment(prefix, suffix):
    """The secret inside a longer base64 blob (a Basic auth header, say) is found at any offset."""
    s = Scrubber([SECRET])
    for b64 in (base64.b64encode, base64.urlsafe_b64encode):
        blob = b64(f"{prefix}{SECRET}{suffix}".encode()).decode()
        out = s.scrub(f"Authorization: Basic {blob}")
        assert MASK in out
        # what is left of the blob cannot be decoded back to the secret
        assert blob not in out
        core = out.split("Basic ", 1)[1]
        assert len(core) < len(blob)


def test_json_escaped_value_masked_and_json_stays_valid():
    value = 'quote"and\\backslash'
    s = Scrubber([value])
    doc = json.dumps({"sql": f"select '{value}'", "other": 1})
    out = s.scrub(doc)
    assert json.loads(out) == {"sql": f"select '{MASK}'", "other": 1}


def test_longest_first():
    s = Scrubber(["abcde", "abcdefghij"])
    assert s.scrub("abcdefghij") == MASK
    assert s.scrub("abcde-abcdefghij") == f"{MASK}-{MASK}"


def test_short_values_not_masked_and_warned_once(caplog, monkeypatch):
    monkeypatch.setattr(secrets, "_warned_short", False)
    with caplog.at_level(logging.WARNING, logger="dockyard.secrets"):
        s = Scrubber(["abcd", "xy", ""])
        Scrubber(["abc"])
    assert s.scrub("abcd xy") == "abcd xy"
    assert not s
    assert len([r for r in caplog.records if "shorter than" in r.message]) == 1


def test_from_env_takes_secret_env_vars_and_extras():
    env = {"DBT_ENV_SECRET_TOKEN": "token-value-123", "PLAIN": "not-a-secret", "PATH": "/bin"}
    s = Scrubber.from_env(env, ["extra-secret-1"])
    out = s.scrub("token-value-123 not-a-secret extra-secret-1")
    assert out == f"{MASK} not-a-secret {MASK}"


def test_scrub_bytes():
    s = Scrubber([SECRET])
    data = f"a {SECRET} b {quote_plus(SECRET)}".encode()
    assert s.scrub_bytes(data) == f"a {MASK} b {MASK}".encode()
    assert Scrubber([]).scrub_bytes(b"same") == b"same"


def test_unicode_value():
    value = "pässwörd-ünïcode"
    s = Scrubber([value])
    assert s.scrub(f"[{value}]") == f"[{MASK}]"
    assert s.scrub_bytes(f"[{value}]".encode()) == f"[{MASK}]".encode()
    assert MASK in s.scrub(quote(value))


def test_fails_closed(monkeypatch):
    s = Scrubber([SECRET])

    class Broken:
        def sub(self, *a):
            raise RuntimeError("boom")

    s._re = Broken()
    s._re_bytes = Broken()
    assert s.scrub(f"x {SECRET}") == REDACTION_FAILED
    assert s.scrub_bytes(b"x") == REDACTION_FAILED.encode()


def test_scrub_obj():
    s = Scrubber([SECRET])
    obj = {"a": [SECRET, 1, {"b": f"x{SECRET}"}], "c": None}
    assert s.scrub_obj(obj) == {"a": [MASK, 1, {"b": f"x{MASK}"}], "c": None}


def test_fast_on_large_text():
    import time

    s = Scrubber([f"secret-number-{i:04d}" for i in range(20)])
    text = "07:00:00  1 of 500 OK created sql table model main.x ........ [OK in 0.1s]\n" * 20000
    t0 = time.perf_counter()
    out = s.scrub(text)
    assert out == text
    assert time.perf_counter() - t0 < 2.0
