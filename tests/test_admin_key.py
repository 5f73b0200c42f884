"""Issue 6: the Triton admin key stays off tritonserver's command line (hide_args.c preloaded), falls back to
the command line with a warning when there is no C compiler, and a server whose key is not in place is
stopped. The checks on a real hardened server (cmdline, environ, stubs, log, restart) are in
test_reliability.py (`-k "admin_key or restarted"`), on its shared server."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from inferforge.errors import UserError
from inferforge.triton import hardening
from inferforge.triton.hardening import (KEY_PLACEHOLDER, KEY_VARIABLE, PRELOAD_WAS_VARIABLE, HardenedServer,
                                         KeyHiding)
from inferforge.triton.server import ServerOptions, ServerPorts, TritonInstallation

FAKE_INSTALLATION = TritonInstallation(binary=Path("/opt/triton/bin/tritonserver"), python_backend=Path("/opt/b"),
                                       stub=Path("/opt/stub"), library_dirs=(Path("/opt/lib"),))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh per-test cache, and the per-process decision forgotten before and after."""
    monkeypatch.setenv("INFERFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    hardening.admin_key_hiding.cache_clear()
    yield tmp_path / "cache" / "preload"
    hardening.admin_key_hiding.cache_clear()


def launch(tmp_path) -> tuple[list[str], dict[str, str], HardenedServer]:
    server = HardenedServer(tmp_path, admin_key="the-real-key")
    server.ports = ServerPorts(8000, 8001, 8002)
    return server.command(FAKE_INSTALLATION, tmp_path / "backends"), server.environment(FAKE_INSTALLATION), server


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", "600000", " 200", "\u00b2"])
def test_a_bad_batcher_poll_setting_is_one_sentence_before_launching(cache, tmp_path, monkeypatch, value):
    """The preloaded library refuses to start Triton (exit 127) on such a value; the server says why first."""
    monkeypatch.setenv(hardening.BATCHER_POLL_VARIABLE, value)
    with pytest.raises(UserError, match=f"INFERFORGE_BATCHER_POLL_US='{re.escape(value)}' is not a whole number"):
        launch(tmp_path)
    monkeypatch.setenv(hardening.BATCHER_POLL_VARIABLE, "0")
    assert launch(tmp_path)[1][hardening.BATCHER_POLL_VARIABLE] == "0"


def test_the_key_goes_through_the_environment_and_the_preload_library(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libuser.so")
    command, env, server = launch(tmp_path)
    library = server.key_hiding.library
    assert library is not None and server.key_hiding.warning is None
    assert not any("the-real-key" in arg for arg in command)
    assert f"--http-restricted-api=model-repository,shared-memory,logging,trace:inferforge-admin-key={KEY_PLACEHOLDER}" \
        in command and sum(KEY_PLACEHOLDER in arg for arg in command) == 2
    assert env[KEY_VARIABLE] == "the-real-key"
    assert env["LD_PRELOAD"] == f"{library}:/usr/lib/libuser.so" and env[PRELOAD_WAS_VARIABLE] == "/usr/lib/libuser.so"
    # Built once per user, content-hashed, private.
    assert library.parent == cache and library.name.startswith("hide_args-") and library.suffix == ".so"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and stat.S_IMODE(library.stat().st_mode) == 0o600
    assert [p.name for p in cache.iterdir()] == [library.name]  # no temporary file left
    built_at = library.stat().st_mtime_ns
    hardening.admin_key_hiding.cache_clear()
    assert hardening.admin_key_hiding().library == library and library.stat().st_mtime_ns == built_at


def test_without_a_c_compiler_the_key_is_on_the_command_line_with_a_warning(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hardening, "find_c_compiler", lambda: None)
    command, env, server = launch(tmp_path)
    assert server.key_hiding == KeyHiding(None, server.key_hiding.warning)
    warning = server.key_hiding.warning
    assert warning == ("Warning: the Triton admin key is on tritonserver's command line, which any local user can "
                       "read (ps, /proc/<pid>/cmdline), because no C compiler (cc, gcc or clang) was found to build "
                       "the library that keeps it out.")
    assert "--http-restricted-api=model-repository,shared-memory,logging,trace:inferforge-admin-key=the-real-key" \
        in command and not any(KEY_PLACEHOLDER in arg for arg in command)
    assert KEY_VARIABLE not in env and "LD_PRELOAD" not in env and PRELOAD_WAS_VARIABLE not in env
    assert not cache.exists()
    # Printed once per process, on stderr, however many servers start (the start itself fails here: no repository).
    monkeypatch.setattr(hardening, "_warned", set())
    for _ in range(2):
        with pytest.raises(UserError, match="does not exist"):
            HardenedServer(tmp_path / "missing").start()
    assert capsys.readouterr().err.count(warning) == 1


def test_a_library_that_fails_its_self_test_is_not_used(cache, tmp_path, monkeypatch):
    source = tmp_path / "hide_args.c"
    source.write_text("int inferforge_does_nothing;\n")  # compiles, but leaves the placeholder in argv
    monkeypatch.setattr(hardening, "HIDE_ARGS_SOURCE", source)
    hiding = hardening.admin_key_hiding()
    assert hiding.library is None and "failed its self-test" in hiding.warning
    assert list(cache.iterdir()) == []  # nothing half-built is kept
    monkeypatch.setattr(hardening, "find_c_compiler", lambda: "/bin/false")
    monkeypatch.setattr(hardening, "HIDE_ARGS_SOURCE", tmp_path / "other.c")
    (tmp_path / "other.c").write_text("int x;\n")
    hardening.admin_key_hiding.cache_clear()
    assert "/bin/false could not build other.c" in hardening.admin_key_hiding().warning


@pytest.mark.parametrize("case", ["placeholder without the variable", "variable without a placeholder", "neither"])
def test_the_library_fails_closed(cache, case):
    """A placeholder that would become the key, or a key with nowhere to go, ends the process (127)."""
    library = hardening.admin_key_hiding().library
    env = {k: v for k, v in os.environ.items() if k != KEY_VARIABLE}
    env["LD_PRELOAD"] = str(library)
    arg = {"placeholder without the variable": f"k={KEY_PLACEHOLDER}"}.get(case, "plain")
    if case == "variable without a placeholder":
        env[KEY_VARIABLE] = "some-key"
    ran = subprocess.run([sys.executable, "-c", "import sys; print(sys.argv[1])", arg], env=env,
                         capture_output=True, text=True, timeout=60)
    if case == "neither":  # what a process that inherits LD_PRELOAD alone sees: nothing changes
        assert (ran.returncode, ran.stdout) == (0, "plain\n")
    else:
        assert ran.returncode == 127 and ran.stdout == "" and "error: inferforge admin-key preload" in ran.stderr


def test_package_data_ships_the_c_source():
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert '"triton/*.c"' in pyproject and hardening.HIDE_ARGS_SOURCE.is_file()


@pytest.mark.slow
def test_a_server_whose_key_was_not_put_in_place_is_stopped(converted_tiny, tmp_path, monkeypatch):
    """If the preload is ignored (ld.so only warns when it cannot load it), Triton would run with the known
    placeholder as its key: the check after start sees that the key does not open the restricted APIs."""
    from inferforge.triton.repository import write_repository

    repo = write_repository(converted_tiny("feature-extraction"), tmp_path / "repo", name="key_gone", threads=1)
    monkeypatch.setattr(hardening, "admin_key_hiding", lambda: KeyHiding(tmp_path / "deleted" / "hide_args.so"))
    server = HardenedServer(repo.path, ServerOptions(ready_timeout_s=300, python_models=repo.python_models))
    with pytest.raises(UserError, match="did not enforce the admin key .*without the key: 403, with the key: 403"):
        server.start()
    assert server.process is None
    shutil.rmtree(server.workdir, ignore_errors=True)  # kept for its log, as after every failed start


# A stand-in for Triton's HTTP front end (an executable that reads requests with readv and writes replies with writev,
# as libevent does), on a socket pair with small buffers so that the writes stop short.
FRONT_END_C = r"""
/* Drives the preloaded library's readv/writev wrappers as Triton's front end calls them, on a socket pair whose
 * send buffer is small, so writes stop short. Prints what the client side received. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static int server_fd, client_fd;
static char received[1 << 20];
static size_t received_length;

static void drain_client(void) {
    for (;;) {
        ssize_t got = recv(client_fd, received + received_length, sizeof(received) - received_length, MSG_DONTWAIT);
        if (got <= 0)
            return;
        received_length += (size_t)got;
    }
}

/* Writes all of `data` as the front end does: writev from this executable, again after each short write. */
static void reply(const char *data, size_t length) {
    size_t done = 0;
    while (done < length) {
        struct iovec parts[2] = {{(void *)(data + done), (length - done) / 2}, {(void *)(data + done + (length - done) / 2), length - done - (length - done) / 2}};
        ssize_t written = writev(server_fd, parts[0].iov_len ? parts : parts + 1, parts[0].iov_len ? 2 : 1);
        if (written < 0 && errno != EAGAIN) {
            perror("writev");
            exit(2);
        }
        if (written > 0)
            done += (size_t)written;
        drain_client();
    }
}

static void request(const char *text, char *into, size_t size) {
    send(client_fd, text, strlen(text), 0);
    struct iovec part = {into, size - 1};
    ssize_t got = readv(server_fd, &part, 1);
    into[got > 0 ? got : 0] = '\0';
}

/* The front end's (non-blocking) end and the client's of a socket pair whose buffers take 2 KB. */
static void open_pair(void) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0)
        exit(2);
    server_fd = pair[0];
    client_fd = pair[1];
    int small = 2048;
    setsockopt(server_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(client_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    fcntl(server_fd, F_SETFL, O_NONBLOCK);
}

int main(void) {
    open_pair();
    char seen[4096];
    static char body[20000], big[30000];
    memset(body, 'b', sizeof(body));
    /* 1. GET, answered with a long body; 2. HEAD behind it, answered with the GET's head and a body. */
    request("GET /one HTTP/1.1\r\nHost: x\r\n\r\n", seen, sizeof(seen));
    printf("read 1: %.16s\n", seen);
    int head = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof(body));
    memcpy(big + head, body, sizeof(body));
    reply(big, (size_t)head + sizeof(body));
    request("HEAD /two HTTP/1.1\r\nHost: x\r\n\r\n", seen, sizeof(seen));
    printf("read 2: %.16s\n", seen);
    reply(big, (size_t)head + sizeof(body));
    /* 3. HTTP/1.0 keep-alive, an empty reply with no length. */
    request("GET /three HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", seen, sizeof(seen));
    const char *empty = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Type: text/plain\r\n\r\n";
    reply(empty, strlen(empty));
    for (int i = 0; i < 100; i++) {
        drain_client();
        usleep(1000);
    }
    printf("received %zu\n", received_length);
    fwrite(received, 1, received_length, stderr);
    return 0;
}
"""


def run_under_the_library(source: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`source` (a stand-in front end) compiled and run with hide_args.c preloaded; it must exit 0."""
    compiler = hardening.find_c_compiler()
    if compiler is None:
        pytest.skip("no C compiler")
    library, program = tmp_path / "hide_args.so", tmp_path / "front_end"
    (tmp_path / "front_end.c").write_text(source)
    subprocess.run([compiler, *hardening.COMPILE_FLAGS, "-o", str(library), str(hardening.HIDE_ARGS_SOURCE)], check=True)
    subprocess.run([compiler, "-O1", "-o", str(program), str(tmp_path / "front_end.c")], check=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INFERFORGE_")}
    done = subprocess.run([str(program)], env={**environment, "LD_PRELOAD": str(library)}, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-500:]
    return done


def test_the_library_frames_replies_through_short_writes(tmp_path):
    """hide_args.c's readv/writev wrappers as the front end meets them, without a server: a GET answered with a 20 KB
    body, then a HEAD (read as GET) answered with the same reply, then an empty HTTP/1.0 keep-alive reply, all written
    through a 2 KB socket buffer (short writes, the caller writing again from where each stopped). The client side gets
    the GET's reply whole, the HEAD's head only (its body left out over several writes), and the HTTP/1.0 head with
    "Content-Length: 0"; nothing else."""
    done = run_under_the_library(FRONT_END_C, tmp_path)
    assert b"read 1: GET /one" in done.stdout and b"read 2: GET /two" in done.stdout, done.stdout  # HEAD read as GET
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n"
    assert done.stderr == (head + b"b" * 20000 + head + b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                           b"Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n"), done.stderr[-300:]


# The same stand-in front end for what the library adds to Triton's replies: the Allow header of a 405, OPTIONS
# answered 204, and a chunked reply to an HTTP/1.0 client written unchunked and close-delimited.
METHODS_AND_CHUNKS_C = FRONT_END_C.split("int main(void) {")[0].replace(
    "        if (got <= 0)\n            return;",
    "        if (got == 0)\n            closed = 1;\n        if (got <= 0)\n            return;",
).replace("static size_t received_length;", "static size_t received_length;\nstatic int closed;") + r"""
int main(void) {
    open_pair();
    char seen[4096];
    const char *refused = "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 30\r\n"
                          "\r\n{\"error\":\"Method Not Allowed\"}";
    /* 1. A CORS preflight on health, answered 405 by the front end; 2. GET on infer, the same 405. */
    request("OPTIONS /v2/health/ready HTTP/1.1\r\nHost: x\r\nOrigin: http://page.example\r\n"
            "Access-Control-Request-Method: GET\r\n\r\n", seen, sizeof(seen));
    reply(refused, strlen(refused));
    request("GET /v2/models/m/infer?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", seen, sizeof(seen));
    reply(refused, strlen(refused));
    /* 3. generate from an HTTP/1.0 client, answered chunked: a 20,000-byte chunk, one with an extension, the last. */
    request("POST /v2/models/m/generate HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}", seen,
            sizeof(seen));
    static char chunked[30000];
    size_t length = (size_t)snprintf(chunked, sizeof(chunked), "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                                     "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n4E20\r\n");
    memset(chunked + length, 'c', 20000);
    length += 20000;
    length += (size_t)snprintf(chunked + length, sizeof(chunked) - length, "\r\na;name=value\r\n0123456789\r\n0\r\n\r\n");
    reply(chunked, length);
    for (int i = 0; i < 100 && !closed; i++) {
        drain_client();
        usleep(1000);
    }
    printf("received %zu, closed %d\n", received_length, closed);
    fwrite(received, 1, received_length, stderr);
    return 0;
}
"""


def test_the_library_adds_allow_answers_options_and_unchunks_for_http_1_0(tmp_path):
    """hide_args.c's wrappers on the stand-in front end, through a 2 KB socket buffer: an OPTIONS (a CORS preflight)
    that the front end answers 405 reaches the client as "204 No Content" with the path's Allow header, without the
    error body or its type, and without any CORS header; a GET on /infer keeps its 405 and body and gains
    "Allow: POST, OPTIONS"; a chunked reply to an HTTP/1.0 client (generate) arrives unchunked (no size lines, no
    extension, no last chunk), with "Connection: close" in place of its Transfer-Encoding and keep-alive, and the
    connection's sending side shut after it, however the short writes cut its framing."""
    done = run_under_the_library(METHODS_AND_CHUNKS_C, tmp_path)
    assert b"closed 1" in done.stdout, done.stdout
    expected = (b"HTTP/1.1 204 No Content\r\nAllow: GET, HEAD, OPTIONS\r\n\r\n"
                b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 30\r\n"
                b"Allow: POST, OPTIONS\r\n\r\n{\"error\":\"Method Not Allowed\"}"
                b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                + b"c" * 20000 + b"0123456789")
    assert done.stderr == expected, done.stderr[:400]
