"""``binderhub-registry verify`` on bad inputs: one line that says what to fix, nothing secret.

Every case in :data:`BAD_INPUTS` must end with exit code 1 or 2, exactly one line on
stderr (``error: ...``) naming what to fix, no traceback, no piece of the secret in
the output, within 2 seconds, and without any network (pytest-socket blocks all but
loopback, and these cases must fail before even that).
"""

from __future__ import annotations

import base64
import datetime
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from binderhub_registry import cli
from binderhub_registry.binderhub import MAX_VALUES_BYTES, load_values
from binderhub_registry.errors import InvalidValuesFile

#: A Docker Hub-like token: 36 random characters after its prefix.
SECRET = "dckr_pat_k3Jx9QmZ2vB7nR4tW8yL1cF6hD0sGa5E"
RANDOM = SECRET.removeprefix("dckr_pat_")

CONFIG = """\
config:
  BinderHub:
    use_registry: true
    image_prefix: registry.invalid/org/binder-
"""
SECRET_YAML = f"""\
registry:
  url: https://registry.invalid
  username: binderhubdemo
  password: {SECRET}
"""

Content = str | bytes | Callable[[Path], None] | None  # None: the file does not exist


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # reading it would block for ever


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")  # endless, and reports size 0


def _registry(body: str) -> str:
    return f"registry:\n{body}"


def _with(**fields: str) -> str:
    """secret.yaml with ``registry`` fields replaced (an empty string removes one)."""
    base = {"url": "https://registry.invalid", "username": "binderhubdemo", "password": SECRET}
    base |= fields
    return _registry("".join(f"  {k}: {v}\n" for k, v in base.items() if v != ""))


def _config(**fields: str) -> str:
    base = {"image_prefix": "registry.invalid/org/binder-"}
    base |= fields
    binderhub = "".join(f"    {k}: {v}\n" for k, v in base.items() if k != "DockerRegistry")
    extra = f"  DockerRegistry:\n{fields['DockerRegistry']}" if "DockerRegistry" in fields else ""
    return f"config:\n  BinderHub:\n{binderhub}{extra}"


ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
    f"registry: {{username: u, password: {SECRET}, x: *i}}\n"
)


@dataclass(frozen=True)
class Bad:
    """One bad input: the files (or extra arguments) and what its one line must say."""

    id: str
    expect: str  # a piece of the one error line, saying what to fix
    secret: Content = SECRET_YAML
    config: Content = CONFIG
    args: tuple[str, ...] = ()
    code: int = 2


BAD_INPUTS = [
    # --- secret.yaml: not YAML, or not a file ----------------------------------------
    Bad("unterminated quote", "from line 4", _with(password=f'"{SECRET}')),
    Bad("mapping in a scalar", "line 4", _with(password=f"{SECRET}: x: y")),
    Bad("tab indentation", "line 2", f"registry:\n\tusername: u\n\tpassword: {SECRET}\n"),
    Bad("unclosed flow mapping", "from line 1", f"registry: {{username: u, password: {SECRET}\n\n"),
    Bad("unclosed flow, one long line", "line 1", f"registry: [{SECRET}" + "a" * 200_000),
    Bad("stray indentation", "line 3", f"registry:\n  username: u\n password: {SECRET}\n"),
    Bad("missing file", "no such file", None),
    Bad("directory", "not a regular file", _directory),
    Bad("fifo", "not a regular file", _fifo),
    Bad("symlink to /dev/zero", "not a regular file", _dev_zero),
    Bad("binary", "not UTF-8", bytes(range(256)) * 4 + SECRET.encode()),
    Bad("NUL byte", "line 4", _with(password=SECRET + "\x00")),
    Bad("control character", "line 4", _with(password=SECRET + "\x07")),
    Bad("non-UTF-8 byte", "not UTF-8", _with(password=SECRET).encode() + b"\xff\xfe\n"),
    Bad("UTF-16 with BOM", "not UTF-8", _with(password=SECRET).encode("utf-16")),
    Bad("2 MB file", "at most 1 MiB", SECRET_YAML + "# padding\n" * 200_000),
    Bad("alias bomb", "aliases", ALIAS_BOMB),
    Bad("plain alias", "aliases", f"r: &r {{username: u, password: {SECRET}}}\nregistry: *r\n"),
    Bad("deep nesting", "nested", "[" * 100_000),
    Bad("python tag", "tag", f"registry: !!python/object/apply:os.system ['echo {SECRET}']\n"),
    Bad("custom tag holding the secret", "tag", _with(password=f"!{SECRET} x")),
    Bad("invalid date", "line 4", _with(password="2024-13-45")),
    Bad("number past the digit limit", "line 4", _with(password="9" * 5000)),
    # --- secret.yaml: YAML of the wrong shape ----------------------------------------
    Bad("empty file", "is empty", ""),
    Bad("comments only", "is empty", "# nothing here\n\n"),
    Bad("null", "is empty", "null\n"),
    Bad("tilde", "is empty", "~\n"),
    Bad("list", "must be a mapping", f"- {SECRET}\n"),
    Bad("scalar", "must be a mapping", f"{SECRET}\n"),
    Bad("registry missing", "registry is missing", f"other:\n  password: {SECRET}\n"),
    Bad("registry a scalar", "registry must be a mapping", f"registry: {SECRET}\n"),
    Bad("registry a list", "registry must be a mapping", f"registry: [{SECRET}]\n"),
    Bad("registry empty", "registry must be a mapping", "registry:\n"),
    Bad("username missing", "registry.username is missing", _with(username="")),
    Bad("password missing", "registry.password is missing", _with(password="")),
    Bad("password empty", "registry.password is empty", _with(password="''")),
    Bad("password blank", "registry.password is empty", _with(password="'   '")),
    Bad("password null", "registry.password is empty", _with(password="null")),
    Bad("password a number", "registry.password must be text", _with(password="123456789")),
    Bad("password a float", "registry.password must be text", _with(password="1.5")),
    Bad("password true", "registry.password must be text", _with(password="yes")),
    Bad("password a list", "registry.password must be text", _with(password=f"[{SECRET}]")),
    Bad("password a mapping", "registry.password must be text", _with(password=f"{{a: {SECRET}}}")),
    Bad("password a date", "registry.password must be text", _with(password="2024-01-02")),
    Bad("username empty", "registry.username is empty", _with(username="''")),
    Bad("username a number", "registry.username must be text", _with(username="42")),
    Bad("username false", "registry.username must be text", _with(username="off")),
    Bad("url a number", "registry.url must be text", _with(url="8080")),
    Bad("url a list", "registry.url must be text", _with(url="[https://a.invalid]")),
    Bad("url with whitespace", "registry.url", _with(url="'https://registry.invalid /x'")),
    Bad("url of another scheme", "registry.url", _with(url="ftp://registry.invalid")),
    Bad("typo in a key", "password", _registry(f"  username: u\n  pasword: {SECRET}\n")),
    # --- config.yaml ---------------------------------------------------------------
    Bad("config missing", "no such file", config=None),
    Bad("config a directory", "not a regular file", config=_directory),
    Bad("config malformed", "from line 5", config=CONFIG + f"    x: [{SECRET}\n"),
    Bad("config alias bomb", "aliases", config=ALIAS_BOMB),
    Bad("config empty", "is empty", config=""),
    Bad("config a list", "must be a mapping", config="- a\n"),
    Bad("config key missing", "config is missing", config="BinderHub:\n  image_prefix: x/\n"),
    Bad("BinderHub missing", "config.BinderHub is missing", config="config:\n  Other: {}\n"),
    Bad(
        "BinderHub a list",
        "config.BinderHub must be a mapping",
        config="config:\n  BinderHub: []\n",
    ),
    Bad(
        "image_prefix missing",
        "config.BinderHub.image_prefix is missing",
        config="config:\n  BinderHub:\n    use_registry: true\n",
    ),
    Bad("image_prefix empty", "image_prefix is empty", config=_config(image_prefix="''")),
    Bad("image_prefix a number", "image_prefix must be text", config=_config(image_prefix="7")),
    Bad(
        "image_prefix with a scheme",
        "image_prefix",
        config=_config(image_prefix="https://registry.invalid/org/binder-"),
    ),
    Bad("image_prefix with spaces", "image_prefix", config=_config(image_prefix="'a b/c-'")),
    Bad(
        "DockerRegistry a list",
        "config.DockerRegistry must be a mapping",
        config=_config(DockerRegistry="    - a\n"),
    ),
    Bad(
        "DockerRegistry.url a number",
        "config.DockerRegistry.url must be text",
        config=_config(DockerRegistry="    url: 5\n"),
    ),
    Bad(
        "DockerRegistry.token_url a list",
        "config.DockerRegistry.token_url must be text",
        config=_config(DockerRegistry="    token_url: [a]\n"),
    ),
    Bad(
        "DockerRegistry.password in config, malformed",
        "line 6",
        config=_config(DockerRegistry=f"    password: '{SECRET}\n"),
    ),
    Bad(
        "not_found_401 not a boolean",
        "config.DockerRegistry.not_found_401 must be true or false",
        config=_config(DockerRegistry="    not_found_401: maybe\n"),
    ),
    Bad(
        "singleuser.image.pullSecrets not a list",
        "jupyterhub.singleuser.image.pullSecrets must be a list of Secret names",
        config=_config() + "jupyterhub:\n  singleuser:\n    image:\n      pullSecrets: name\n",
    ),
    Bad(
        "singleuser.image.pullSecrets holding a number",
        "jupyterhub.singleuser.image.pullSecrets must list Secret names (text)",
        config=_config() + "jupyterhub:\n  singleuser:\n    image:\n      pullSecrets: [5]\n",
    ),
    # --- values that parse but must not be sent anywhere ------------------------------
    Bad("http registry.url", "--insecure", _with(url="http://registry.invalid"), code=1),
    Bad(
        "http DockerRegistry.url",
        "--insecure",
        config=_config(DockerRegistry="    url: http://registry.invalid\n"),
        code=1,
    ),
    Bad(
        "http token_url",
        "--insecure",
        config=_config(
            DockerRegistry="    url: https://registry.invalid\n"
            "    token_url: http://registry.invalid/token\n"
        ),
        code=1,
    ),
    Bad(
        "host mismatch",
        "differs from the image_prefix host",
        _with(url="https://other.invalid"),
        code=1,
    ),
    # --- arguments ---------------------------------------------------------------
    Bad("missing --ca-file", "--ca-file", args=("--ca-file", "/nonexistent/ca.crt")),
    Bad("--ca-file a directory", "--ca-file", args=("--ca-file", "/")),
    Bad("--ca-file not PEM", "--ca-file", args=("--ca-file", "/etc/hostname")),
]


def _make(path: Path, content: Content) -> None:
    if content is None:
        return
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    if path.is_file() and not path.is_symlink():
        path.chmod(0o600)


def _leaks(text: str) -> list[str]:
    """Pieces of the secret found in ``text``: any 8 random characters, or its base64."""
    found = [RANDOM[i : i + 8] for i in range(len(RANDOM) - 7) if RANDOM[i : i + 8] in text]
    encoded = base64.b64encode(f"binderhubdemo:{SECRET}".encode()).decode()
    return found + ([encoded[8:24]] if encoded[8:24] in text else [])


def run_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: Bad
) -> tuple[int, str, str, float]:
    config, secret = tmp_path / "config.yaml", tmp_path / "secret.yaml"
    _make(config, bad.config)
    _make(secret, bad.secret)
    t0 = time.perf_counter()
    code = cli.main(["verify", *bad.args, str(config), str(secret)])
    elapsed = time.perf_counter() - t0
    out, err = capsys.readouterr()
    return code, out, err, elapsed


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[b.id for b in BAD_INPUTS])
def test_bad_input_gets_one_line_that_says_what_to_fix(
    bad: Bad, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, elapsed = run_cli(tmp_path, capsys, bad)
    assert code == bad.code, err
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert bad.expect in lines[0], lines[0]
    assert len(lines[0]) < 400, lines[0]
    assert "Traceback" not in err
    assert not _leaks(out + err), (out + err)[:300]
    assert elapsed < 2.0


def test_the_list_has_the_figures_the_issue_asked_for() -> None:
    assert len(BAD_INPUTS) >= 30
    assert len({b.id for b in BAD_INPUTS}) == len(BAD_INPUTS)


def test_parse_errors_keep_the_content_out_of_the_chained_exceptions(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text(_with(password=f'"{SECRET}'))
    with pytest.raises(InvalidValuesFile) as err:
        load_values(_write(tmp_path, CONFIG), secret)
    assert err.value.line == 5 and err.value.path == str(secret)
    assert "quoted scalar (from line 4)" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert not _leaks(repr(err.value) + str(err.value))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_size_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.yaml"
    with secret.open("wb") as f:
        f.truncate(MAX_VALUES_BYTES * 60)  # sparse: 60 MiB that cost nothing to make
    monkeypatch.setattr(Path, "read_bytes", _no_read)
    monkeypatch.setattr(Path, "read_text", _no_read)
    with pytest.raises(InvalidValuesFile, match="at most 1 MiB"):
        load_values(_write(tmp_path, CONFIG), secret)


def _no_read(*args: object, **kwargs: object) -> bytes:
    raise AssertionError("read a file over the size limit")


def test_good_values_load(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("\ufeff" + SECRET_YAML + "# a comment\nother: {a: 1}\n")  # a BOM is fine
    values = load_values(_write(tmp_path, CONFIG), secret)
    assert (values.image_prefix, values.username, values.registry_url) == (
        "registry.invalid/org/binder-",
        "binderhubdemo",
        "https://registry.invalid",
    )
    assert values.password.reveal() == SECRET


def test_a_secret_file_readable_by_others_gets_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = Bad("0644 and http", "--insecure", _with(url="http://registry.invalid"), code=1)
    config, secret = tmp_path / "config.yaml", tmp_path / "secret.yaml"
    _make(config, bad.config)
    _make(secret, bad.secret)
    secret.chmod(0o644)
    assert cli.main(["verify", str(config), str(secret)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("warning: ") and f"chmod 600 {secret}" in lines[0]
    assert lines[1].startswith("error: ")


# --- against loopback servers: TLS, unreachable, retries ---------------------------------


@pytest.fixture
def self_signed_tls() -> Iterator[str]:
    """A loopback HTTPS server whose certificate no CA vouches for: ``host:port``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    directory = Path(tempfile.mkdtemp())
    (directory / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "c.pem", directory / "k.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = 0
    stop = threading.Event()

    def serve() -> None:
        nonlocal accepted
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                # verify first checks that something listens (a connection that sends
                # nothing): only TLS handshakes count
                conn.settimeout(5)
                if not conn.recv(1, socket.MSG_PEEK):
                    conn.close()
                    continue
            except OSError:
                conn.close()
                continue
            accepted += 1
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client refuses the certificate: that is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()
    assert accepted == 1, f"{accepted} connections: a TLS failure must not be retried"


def test_tls_failure_is_one_line_at_once_and_names_ca_file(
    self_signed_tls: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = self_signed_tls
    bad = Bad(
        "tls",
        "--ca-file",
        _with(url=f"https://{host}"),
        _config(image_prefix=f"{host}/org/binder-"),
        code=1,
    )
    code, out, err, elapsed = run_cli(tmp_path, capsys, bad)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "TLS verification" in lines[0] and "--ca-file" in lines[0]
    assert elapsed < 2.0 and not _leaks(err)


@pytest.fixture
def resetting() -> Iterator[str]:
    """A loopback port that accepts each connection and resets it at once: ``host:port``.

    (A port nothing listens on is no fault to retry: verify says at once that nothing
    listens there, see test_verify_sandbox.py.)"""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # with linger 0: a reset

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()


def test_retries_are_told_only_with_verbose(tmp_path: Path, resetting: str) -> None:
    host = resetting
    config, secret = tmp_path / "config.yaml", tmp_path / "secret.yaml"
    _make(config, _config(image_prefix=f"{host}/org/binder-"))
    _make(secret, _with(url=f"https://{host}"))
    command = [sys.executable, "-m", "binderhub_registry.cli", "verify"]
    # both at once: each spends its time waiting between retries
    runs = [
        subprocess.Popen(
            [*command, *flags, str(config), str(secret)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flags in ([], ["--verbose"])
    ]
    outputs = [r.communicate(timeout=60) for r in runs]  # read before the exit status
    quiet, verbose = (
        subprocess.CompletedProcess(r.args, r.returncode, *out)
        for r, out in zip(runs, outputs, strict=True)
    )
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert quiet.stderr.splitlines() == [quiet.stderr.strip()], quiet.stderr
    assert quiet.stderr.startswith("error: ") and "cannot reach" in quiet.stderr
    assert verbose.returncode == 1
    assert "retrying" in verbose.stdout + verbose.stderr
    assert verbose.stderr.splitlines()[-1] == quiet.stderr.strip()
    assert not _leaks(quiet.stdout + quiet.stderr + verbose.stdout + verbose.stderr)
