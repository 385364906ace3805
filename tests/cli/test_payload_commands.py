"""`wellcar keys ...` and `wellcar payload ...`: the release and install paths, and mistakes."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from wellcar.cli.main import app as wellcar_app
from wellcar.payload.signing import load_signing_key

from ..payload.helpers import BS, loopback_http, make_blob, make_old_image


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long paths in the summary lines: keep rich from wrapping them."""
    monkeypatch.setenv("COLUMNS", "10000")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(wellcar_app, [str(a) for a in args])


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def failed(result: Result) -> str:
    """The single error line of a failed command."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@dataclass(frozen=True)
class Kit:
    dir: Path
    old: Path
    new: Path
    kernel: Path
    rsa: Path  # prefix: rsa.key / rsa.pub
    ed: Path  # prefix: ed.key / ed.pub

    def key(self, prefix: Path) -> Path:
        return prefix.with_name(prefix.name + ".key")

    def pub(self, prefix: Path) -> Path:
        return prefix.with_name(prefix.name + ".pub")


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    root = tmp_path_factory.mktemp("cli")
    old = make_old_image(96, seed=51)
    blocks = [old[i : i + BS] for i in range(0, len(old), BS)]
    blocks[40] = make_blob(BS, seed=52)
    blocks[60:60] = [make_blob(BS, seed=53)] * 3
    kit = Kit(root, root / "old.img", root / "new.img", root / "vmlinuz", root / "rsa", root / "ed")
    kit.old.write_bytes(old)
    kit.new.write_bytes(b"".join(blocks))
    kit.kernel.write_bytes(make_blob(70_001, seed=54))
    ok(run("keys", "generate", kit.rsa, "--algorithm", "rsa"))
    ok(run("keys", "generate", kit.ed))
    return kit


def generate(kit: Kit, out: Path, *extra: str | Path) -> str:
    return ok(run("payload", "generate", "--new", kit.new, "-o", out, "--zstd-level", "3", *extra))


# --- keys -----------------------------------------------------------------------------


def test_keys_generate(tmp_path: Path) -> None:
    prefix = tmp_path / "release"
    out = ok(run("keys", "generate", prefix, "--algorithm", "ed25519"))
    private, public = tmp_path / "release.key", tmp_path / "release.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    key = load_signing_key(private)
    assert key.key_id.hex() in out and out.startswith("ed25519 key ")
    before = private.read_bytes(), public.read_bytes()

    message = failed(run("keys", "generate", prefix))
    assert "already exists; refusing to overwrite" in message
    assert (private.read_bytes(), public.read_bytes()) == before

    # Only the public half left over is still a reason to stop.
    (tmp_path / "other.pub").write_text("x")
    assert "other.pub already exists" in failed(run("keys", "generate", tmp_path / "other"))
    assert not (tmp_path / "other.key").exists()


def test_keys_generate_ed25519_default_rsa_on_request(kit: Kit) -> None:
    assert load_signing_key(kit.key(kit.ed)).algorithm.value == "ed25519"
    key = load_signing_key(kit.key(kit.rsa))
    assert key.algorithm.value == "rsa" and key.signature_length == 256
    assert stat.S_IMODE(kit.key(kit.rsa).stat().st_mode) == 0o600


def test_both_key_commands_write_the_same_names(tmp_path: Path) -> None:
    payload = ok(run("keys", "generate", tmp_path / "keys", "--name", "payload"))
    tuf = ok(run("trust", "keys", "generate", tmp_path / "keys", "--name", "targets-2"))
    prefix = ok(run("trust", "keys", "generate", tmp_path / "keys" / "root-2"))
    assert payload.startswith("ed25519 key ") and tuf.startswith("ed25519 key ")
    assert prefix.startswith("ed25519 key ")
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "payload.key", "payload.pub", "root-2.key", "root-2.pub", "targets-2.key", "targets-2.pub",
    ]  # fmt: skip
    for name in ("payload", "targets-2", "root-2"):
        assert stat.S_IMODE((tmp_path / "keys" / f"{name}.key").stat().st_mode) == 0o600


def test_keys_generate_into_a_missing_directory(tmp_path: Path) -> None:
    message = failed(run("keys", "generate", tmp_path / "nope" / "k"))
    assert "nope" in message


# --- the happy path -------------------------------------------------------------------


def test_generate_inspect_verify_sign_apply(tmp_path: Path, kit: Kit) -> None:
    payload = tmp_path / "full.crau"
    out = generate(kit, payload, "--key", kit.key(kit.rsa), "--kernel", kit.kernel)
    assert f"{payload}: full payload" in out and "1 signature(s)" in out
    rsa_id = load_signing_key(kit.key(kit.rsa)).key_id.hex()
    ed_id = load_signing_key(kit.key(kit.ed)).key_id.hex()

    desc = json.loads(ok(run("payload", "inspect", payload, "--json")))
    assert desc["kind"] == "full" and desc["layout"] == "signatures-first"
    assert desc["size"] == payload.stat().st_size
    assert [s["key_id"] for s in desc["signatures"]] == [rsa_id]
    assert [p["name"] for p in desc["parts"]] == ["usr", "kernel"]
    assert desc["parts"][0]["new_size"] == kit.new.stat().st_size
    assert desc["parts"][1]["new_size"] == 70_001
    text = ok(run("payload", "inspect", payload))
    assert "full payload" in text and f"signature: rsa_pkcs1_sha256 key {rsa_id}" in text

    verified = ok(run("payload", "verify", payload, "--key", kit.pub(kit.rsa)))
    assert "OK" in verified and f"signed by {rsa_id}" in verified
    # A directory of trusted keys works too.
    keydir = tmp_path / "trusted"
    keydir.mkdir()
    (keydir / "release.pem").write_bytes(kit.pub(kit.ed).read_bytes())
    (keydir / "old.pub").write_bytes(kit.pub(kit.rsa).read_bytes())
    (keydir / "README").write_text("not a key")
    assert f"signed by {rsa_id}" in ok(run("payload", "verify", payload, "--key", keydir))

    signed = tmp_path / "signed.crau"
    out = ok(run("payload", "sign", payload, "-o", signed, "--key", kit.key(kit.ed)))
    assert f"signed by {ed_id}" in out
    assert f"signed by {ed_id}" in ok(run("payload", "verify", signed, "--key", kit.pub(kit.ed)))
    assert "no signature verifies" in failed(
        run("payload", "verify", signed, "--key", kit.pub(kit.rsa))
    )

    target, kernel = tmp_path / "usr-b.img", tmp_path / "vmlinuz-b"
    out = ok(
        run(
            "payload", "apply", signed, "--target", target, "--kernel-target", kernel,
            "--key", kit.pub(kit.ed),
        )
    )  # fmt: skip
    assert "/usr written and verified" in out and f"signed by {ed_id}" in out
    assert target.read_bytes() == kit.new.read_bytes()
    assert kernel.read_bytes()[:70_001] == kit.kernel.read_bytes()
    assert not (tmp_path / "usr-b.img.wellcar-apply.json").exists()


def test_delta_and_flatcar_payloads(tmp_path: Path, kit: Kit) -> None:
    delta = tmp_path / "delta.crau"
    out = generate(kit, delta, "--old", kit.old, "--key", kit.key(kit.rsa), "--no-bsdiff")
    assert "delta payload" in out
    desc = json.loads(ok(run("payload", "inspect", delta, "--json")))
    assert desc["kind"] == "delta"
    assert "SOURCE_BSDIFF" not in desc["parts"][0]["operations"]
    assert "SOURCE_COPY" in desc["parts"][0]["operations"]
    target = tmp_path / "usr-b.img"
    ok(
        run(
            "payload", "apply", delta, "--target", target, "--source", kit.old,
            "--key", kit.pub(kit.rsa),
        )
    )  # fmt: skip
    assert target.read_bytes() == kit.new.read_bytes()

    flatcar = tmp_path / "flatcar.crau"
    generate(kit, flatcar, "--flatcar-compatible", "--key", kit.key(kit.rsa))
    desc = json.loads(ok(run("payload", "inspect", flatcar, "--json")))
    assert desc["layout"] == "signatures-last"
    assert set(desc["parts"][0]["operations"]) <= {"REPLACE_BZ", "REPLACE"}
    target2 = tmp_path / "usr-c.img"
    ok(run("payload", "apply", flatcar, "--target", target2, "--key", kit.pub(kit.rsa)))
    assert target2.read_bytes() == kit.new.read_bytes()


def test_unsigned_payload_and_no_signature_check(tmp_path: Path, kit: Kit) -> None:
    payload = tmp_path / "unsigned.crau"
    assert "0 signature(s)" in generate(kit, payload)
    assert "signature: none" in ok(run("payload", "inspect", payload))
    out = ok(run("payload", "verify", payload, "--no-signature-check"))
    assert "signature not checked" in out
    assert "not signed" in failed(run("payload", "verify", payload, "--key", kit.pub(kit.rsa)))
    target = tmp_path / "usr"
    assert "not signed" in failed(
        run("payload", "apply", payload, "--target", target, "--key", kit.pub(kit.rsa))
    )
    assert not target.exists()
    out = ok(run("payload", "apply", payload, "--target", target, "--no-signature-check"))
    assert "signature not checked" in out
    assert target.read_bytes() == kit.new.read_bytes()


def test_apply_from_a_url(tmp_path: Path, kit: Kit) -> None:
    payload = tmp_path / "p.crau"
    generate(kit, payload, "--key", kit.key(kit.ed))
    target = tmp_path / "usr"
    with loopback_http({"update.crau": payload.read_bytes()}) as server:
        out = ok(
            run(
                "payload", "apply", server.url_of("update.crau"), "--target", target,
                "--key", kit.pub(kit.ed),
            )
        )  # fmt: skip
        missing = failed(
            run(
                "payload", "apply", server.url_of("gone.crau"), "--target", tmp_path / "u2",
                "--no-signature-check",
            )
        )  # fmt: skip
    assert "/usr written and verified" in out
    assert target.read_bytes() == kit.new.read_bytes()
    assert "HTTP 404" in missing


def test_apply_resumes_with_the_default_progress_file(tmp_path: Path, kit: Kit) -> None:
    payload = tmp_path / "p.crau"
    generate(kit, payload, "--key", kit.key(kit.rsa))
    cut = tmp_path / "cut.crau"
    cut.write_bytes(payload.read_bytes()[:-10])
    target = tmp_path / "usr"
    message = failed(run("payload", "apply", cut, "--target", target, "--key", kit.pub(kit.rsa)))
    assert "incomplete" in message
    ok(run("payload", "apply", payload, "--target", target, "--key", kit.pub(kit.rsa)))
    assert target.read_bytes() == kit.new.read_bytes()


# --- mistakes -------------------------------------------------------------------------


def test_missing_files(tmp_path: Path, kit: Kit) -> None:
    nothing = tmp_path / "nothing.crau"
    assert "cannot open payload" in failed(run("payload", "inspect", nothing))
    assert "cannot open payload" in failed(
        run("payload", "verify", nothing, "--no-signature-check")
    )
    assert "cannot open payload" in failed(
        run("payload", "apply", nothing, "--target", tmp_path / "t", "--no-signature-check")
    )
    assert "cannot open payload" in failed(
        run("payload", "sign", nothing, "-o", tmp_path / "o", "--key", kit.key(kit.rsa))
    )
    message = failed(run("payload", "generate", "--new", tmp_path / "no.img", "-o", tmp_path / "o"))
    assert "no.img does not exist" in message
    message = failed(
        run("payload", "generate", "--new", kit.new, "-o", tmp_path / "o", "--key", tmp_path / "k")
    )
    assert "cannot read key" in message
    assert not (tmp_path / "o").exists() and not (tmp_path / "t").exists()
    payload = tmp_path / "p.crau"
    generate(kit, payload)
    message = failed(
        run(
            "payload", "apply", payload, "--target", tmp_path / "no-dir" / "usr",
            "--no-signature-check",
        )
    )  # fmt: skip
    assert "cannot open target" in message


def test_wrong_keys(tmp_path: Path, kit: Kit) -> None:
    payload = tmp_path / "p.crau"
    generate(kit, payload, "--key", kit.key(kit.rsa))
    target = tmp_path / "usr"
    message = failed(run("payload", "apply", payload, "--target", target, "--key", kit.pub(kit.ed)))
    assert "no signature verifies under a trusted key" in message
    assert not target.exists()
    # A private key where a public one belongs, and the other way round.
    assert "not a PEM public key" in failed(
        run("payload", "verify", payload, "--key", kit.key(kit.rsa))
    )
    assert "not an unencrypted PEM private key" in failed(
        run("payload", "sign", payload, "-o", tmp_path / "o", "--key", kit.pub(kit.rsa))
    )
    assert "no trusted public keys found" in failed(
        run("payload", "verify", payload, "--key", tmp_path)  # a directory without keys
    )


def test_missing_key_options(tmp_path: Path, kit: Kit) -> None:
    payload = tmp_path / "p.crau"
    generate(kit, payload, "--key", kit.key(kit.rsa))
    target = tmp_path / "usr"
    message = failed(run("payload", "apply", payload, "--target", target))
    assert "--key" in message and "--no-signature-check" in message
    assert not target.exists()
    assert "--no-signature-check" in failed(run("payload", "verify", payload))
    assert "at least one private key" in failed(
        run("payload", "sign", payload, "-o", tmp_path / "o")
    )
    assert not (tmp_path / "o").exists()


def test_bad_payloads(tmp_path: Path, kit: Kit) -> None:
    junk = tmp_path / "junk.crau"
    junk.write_bytes(b"PK\x03\x04 this is a zip file, not a payload" * 3)
    assert "not an update payload" in failed(run("payload", "inspect", junk))
    assert "not an update payload" in failed(
        run("payload", "apply", junk, "--target", tmp_path / "t", "--no-signature-check")
    )
    payload = tmp_path / "p.crau"
    generate(kit, payload, "--old", kit.old)
    assert "give the running slot's /usr as the source" in failed(
        run("payload", "apply", payload, "--target", tmp_path / "t", "--no-signature-check")
    )
    assert "made for another source" in failed(
        run(
            "payload", "apply", payload, "--target", tmp_path / "t", "--source", kit.new,
            "--no-signature-check",
        )
    )  # fmt: skip
    assert not (tmp_path / "t").exists()
    data = bytearray(payload.read_bytes())
    data[-50] ^= 0x40
    payload.write_bytes(bytes(data))
    assert "does not match its SHA-256" in failed(
        run("payload", "verify", payload, "--no-signature-check")
    )
    assert "does not match its SHA-256" in failed(
        run("payload", "sign", payload, "-o", tmp_path / "o", "--key", kit.key(kit.rsa))
    )
    assert not (tmp_path / "o").exists()


def test_flatcar_payload_with_an_initrd_is_refused(tmp_path: Path, kit: Kit) -> None:
    message = failed(
        run(
            "payload", "generate", "--new", kit.new, "-o", tmp_path / "o",
            "--flatcar-compatible", "--initrd", kit.kernel,
        )
    )  # fmt: skip
    assert "carry no initrd" in message
    assert not list(tmp_path.iterdir())


# --- --usr-verity -----------------------------------------------------------------------

ROOT_HASH = "3c" * 32


def test_generate_with_usr_verity_and_inspect_it(tmp_path: Path, kit: Kit) -> None:
    payload = tmp_path / "verity.crau"
    offset = 96 * BS  # the new image is 99 blocks: the last 3 "are" the hash tree
    generate(kit, payload, "--usr-verity", f"{ROOT_HASH.upper()}:{offset}")
    desc = json.loads(ok(run("payload", "inspect", payload, "--json")))
    assert desc["usr_verity"] == {"root_hash": ROOT_HASH, "hash_offset": offset}
    text = ok(run("payload", "inspect", payload))
    assert f"usr verity: root hash {ROOT_HASH}, hash tree at byte {offset}" in text

    plain = tmp_path / "plain.crau"
    generate(kit, plain)
    assert json.loads(ok(run("payload", "inspect", plain, "--json")))["usr_verity"] is None
    assert "usr verity: none" in ok(run("payload", "inspect", plain))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nonsense", "give ROOT_HASH:OFFSET"),
        (ROOT_HASH, "give ROOT_HASH:OFFSET"),
        (f"{ROOT_HASH}:", "give ROOT_HASH:OFFSET"),
        (f"{ROOT_HASH}:4k", "give ROOT_HASH:OFFSET"),
        (f"{ROOT_HASH}:-4096", "give ROOT_HASH:OFFSET"),
        (f"{ROOT_HASH[:-2]}:4096", "--usr-verity: usr verity root hash"),
        (f"{'zz' * 32}:4096", "is not 64 lowercase hex digits"),
        (f"{ROOT_HASH}:0", "hash offset 0 is not a positive multiple of 4096"),
        (f"{ROOT_HASH}:4097", "hash offset 4097 is not a positive multiple of 4096"),
        (f"{ROOT_HASH}:{99 * BS}", f"hash offset {99 * BS} is not inside"),
    ],
)
def test_generate_refuses_a_malformed_usr_verity(
    tmp_path: Path, kit: Kit, value: str, message: str
) -> None:
    result = run(
        "payload", "generate", "--new", kit.new, "-o", tmp_path / "o", "--usr-verity", value
    )
    assert message in failed(result)
    assert not list(tmp_path.iterdir())
