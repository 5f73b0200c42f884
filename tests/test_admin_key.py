"""Issue 6: the Triton admin key stays off tritonserver's command line (hide_args.c preloaded), falls back to
the command line with a warning when there is no C compiler, and a server whose key is not in place is
stopped. The checks on a real hardened server (cmdline, environ, stubs, log, restart) are in
test_reliability.py (`-k "admin_key or restarted"`), on its shared server."""

from __future__ import annotations

import os
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
