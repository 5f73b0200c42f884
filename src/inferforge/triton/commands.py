"""CLI commands `serve`, `repository` and `query`, registered on the main Typer app by `register(app)`."""

from __future__ import annotations

import json
import signal
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import List, Optional

import typer

from inferforge.errors import UserError

PORT_HELP = "0 picks a free port."
# Overload and hang bounds, shared by `serve` and `repository` (see RELIABILITY.md).
MAX_QUEUE_SIZE = typer.Option(128, help="Requests waiting per model, besides a full batch per instance running; more "
                                          "are refused at once (\"Exceeds maximum queue size\": HTTP 503, gRPC "
                                          "UNAVAILABLE).")
QUEUE_TIMEOUT_MS = typer.Option(10_000, help="A request waiting longer than this in the queue of a model outside the "
                                             "ensemble (<name>_tokenize with --tokenize-in-model) is refused; Triton "
                                             "2.51 leaves ensemble requests refused on a queue timeout unanswered.")
EXECUTE_TIMEOUT = typer.Option(60.0, help="Seconds one batch may run in a Python stub; a hung one ends its stub "
                                          "(`serve` then restarts the server).")
MAX_TEXT_CHARS = typer.Option(100_000, help="Longer texts are refused (400) instead of being tokenized.")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("repository")(repository)
    app.command("query")(query)


def _repository_options(**values):
    from inferforge.triton.repository import RepositoryOptions

    return RepositoryOptions(**values)


def serve(
    model_dir: Path = typer.Argument(..., help="A folder written by `inferforge convert`."),
    host: str = typer.Option("127.0.0.1", help="IPv4 address or host name to bind (HTTP, gRPC and metrics); 0.0.0.0 for every interface."),
    http_port: int = typer.Option(8000, help=f"HTTP port. {PORT_HELP}"),
    grpc_port: int = typer.Option(8001, help=f"gRPC port. {PORT_HELP}"),
    metrics_port: int = typer.Option(8002, help=f"Prometheus metrics port. {PORT_HELP}"),
    name: Optional[str] = typer.Option(None, help="Model name clients send text to (default: the folder's name, other characters than "
                                                  "letters, digits and _ made _)."),
    variant: Optional[str] = typer.Option(None, help="Variant to serve (default: the one the conversion selected)."),
    max_batch_size: int = typer.Option(32, help="Largest batch Triton's dynamic batcher forms."),
    queue_delay_us: int = typer.Option(0, help="How long the dynamic batcher waits for more requests (µs)."),
    instances: int = typer.Option(1, help="Model instances (each runs batches in parallel)."),
    threads: Optional[int] = typer.Option(None, help="Engine threads per model instance (default: all cores)."),
    tokenize_in_model: bool = typer.Option(False, help="Tokenize inside the model's Python stub (same tokenizer.json): "
                                                       "one Python hop per request instead of two."),
    in_process: bool = typer.Option(False, "--in-process", help="Run the tokenizer and model inside the Triton "
                                    "server's own process (inferforge's backend, built here with the C compiler) "
                                    "instead of a Python-backend stub process each: 0.5-0.8 ms less per 16-token "
                                    "request with the two-step pipeline, 0.2-0.4 ms with --tokenize-in-model "
                                    "(BENCHMARKS.md). A crash in a runtime then restarts the whole "
                                    "server, not one worker."),
    max_queue_size: int = MAX_QUEUE_SIZE,
    queue_timeout_ms: int = QUEUE_TIMEOUT_MS,
    execute_timeout: float = EXECUTE_TIMEOUT,
    max_text_chars: int = MAX_TEXT_CHARS,
    exit_timeout: int = typer.Option(15, help="On Ctrl-C/SIGTERM, seconds the accepted requests get to finish."),
    admin_key: Optional[str] = typer.Option(None, help="Key for the restricted model-repository, shared-memory, "
                                                       "logging and trace APIs (default: random, not shown)."),
    show_admin_key: bool = typer.Option(False, help="Print the admin key (header inferforge-admin-key)."),
    ready_timeout: float = typer.Option(180.0, help="Seconds to wait for the server to be ready."),
) -> None:
    """Serve a converted model on a real NVIDIA Triton server (tokenizer inside) until Ctrl-C or SIGTERM."""
    from inferforge.artifacts import Manifest
    from inferforge.triton.hardening import ADMIN_KEY_HEADER, loopback_warning, new_admin_key
    from inferforge.triton.serve import serve_converted
    from inferforge.triton.server import ServerOptions

    repo_options = _repository_options(
        flavour="python", name=name, variant=variant, max_batch_size=max_batch_size,
        **_limits(max_queue_size, queue_timeout_ms, execute_timeout, max_text_chars),
        queue_delay_us=queue_delay_us, instance_count=instances, threads=threads, tokenize_in_model=tokenize_in_model,
        in_process=in_process,
    )
    server_options = ServerOptions(
        host=host, http_port=http_port or None, grpc_port=grpc_port or None,
        metrics_port=metrics_port or None, ready_timeout_s=ready_timeout, exit_timeout_s=exit_timeout,
    )
    # Ctrl-C and SIGTERM both stop the server cleanly (SIGINT too when the shell had it ignored), and so does SIGHUP (the
    # terminal or SSH session closed), unless it is ignored (`nohup`): its default action ended this process at once,
    # leaving the repository and log folders behind.
    stops = [signal.SIGTERM, signal.SIGINT]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        stops.append(signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in stops}
    try:
        Manifest.read(model_dir)  # a folder `convert` did not write is said before anything starts
        warning = loopback_warning(host)
        if warning:
            typer.echo(warning, err=True)
        typer.echo(f"Starting Triton on {model_dir} ...", err=True)
        key = admin_key or new_admin_key()
        echo_event = partial(typer.echo, err=True)
        with ExitStack() as stack:
            try:
                served = stack.enter_context(serve_converted(model_dir, repo_options, server_options, admin_key=key,
                                                             on_event=echo_event))
            except KeyboardInterrupt:
                # Ctrl-C or SIGTERM while Triton was starting: serve_converted stopped it and removed its files.
                typer.echo("Interrupted while the server was starting: it was stopped, nothing is left behind.",
                           err=True)
                raise typer.Exit(128 + (_signals_received[-1] if _signals_received else signal.SIGINT))
            server, repo = served.server, served.repository
            typer.echo(f"Serving '{repo.name}' ({repo.task}): inputs {', '.join(repo.inputs)} -> "
                       f"outputs {', '.join(repo.outputs)}")
            typer.echo(f"  HTTP     http://{server.http_url}/v2/models/{repo.name}/infer")
            typer.echo(f"  gRPC     {server.grpc_url}")
            typer.echo(f"  metrics  {server.metrics_url}")
            for line in try_lines(server.http_url, repo.name, repo.task):
                typer.echo(line)
            if show_admin_key:
                typer.echo(f"  admin key (header {ADMIN_KEY_HEADER}): {key}")
            typer.echo("Ctrl-C or SIGTERM stops the server.", err=True)
            try:
                while True:
                    problem = server.check_health() if served.watchdog is None else None  # else it restarts
                    if problem is not None and server.process is not None and server.process.poll() is not None:
                        raise UserError(f"The Triton server stopped unexpectedly ({problem}).")
                    time.sleep(1.0)
            except KeyboardInterrupt:
                typer.echo("Stopping the server ...", err=True)
        typer.echo("Server stopped.", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def repository(
    model_dir: Path = typer.Argument(..., help="A folder written by `inferforge convert`."),
    output: Path = typer.Option(..., "--output", "-o", help="Model repository folder to create."),
    flavour: str = typer.Option("python", help="python (runs the variant in Triton's Python backend, what "
                                               "`serve` uses) or onnxruntime (native onnxruntime_onnx platform "
                                               "of a full Triton container)."),
    name: Optional[str] = typer.Option(None, help="Ensemble name (default: the folder's name, other characters than letters, "
                                                  "digits and _ made _)."),
    variant: Optional[str] = typer.Option(None, help="Variant to serve (default: the selected one)."),
    max_batch_size: int = typer.Option(32, help="Largest batch of the dynamic batcher."),
    queue_delay_us: int = typer.Option(0, help="Dynamic batcher queue delay (µs)."),
    instances: int = typer.Option(1, help="Model instances."),
    instance_kind: str = typer.Option("KIND_CPU", help="KIND_CPU, KIND_GPU or KIND_AUTO."),
    threads: Optional[int] = typer.Option(None, help="Engine threads per model instance."),
    tokenize_in_model: bool = typer.Option(False, help="python flavour: the ensemble sends text straight to the "
                                                       "model, which tokenizes itself (one Python hop less)."),
    max_queue_size: int = MAX_QUEUE_SIZE,
    queue_timeout_ms: int = QUEUE_TIMEOUT_MS,
    execute_timeout: float = EXECUTE_TIMEOUT,
    max_text_chars: int = MAX_TEXT_CHARS,
    accelerator: str = typer.Option("none", help="onnxruntime flavour: none, openvino (CPU) or tensorrt (GPU)."),
    overwrite: bool = typer.Option(False, help="Replace OUTPUT if it is a Triton model repository (a folder of "
                                               "other files is never deleted)."),
) -> None:
    """Write the Triton model repository (tokenizer, model, post-processing, ensemble) for a Triton deployment."""
    from inferforge.triton.repository import write_repository

    options = _repository_options(
        flavour=flavour, name=name, variant=variant, max_batch_size=max_batch_size, queue_delay_us=queue_delay_us,
        instance_count=instances, instance_kind=instance_kind, threads=threads, ort_accelerator=accelerator,
        **_limits(max_queue_size, queue_timeout_ms, execute_timeout, max_text_chars),
        tokenize_in_model=tokenize_in_model,
    )
    repo = write_repository(model_dir, output, options=options, overwrite=overwrite)
    typer.echo(f"Wrote {repo.path}: {', '.join(repo.model_names)} ({repo.flavour} flavour).")
    typer.echo(f"Send text to '{repo.name}' (inputs {', '.join(repo.inputs)}; outputs {', '.join(repo.outputs)}).")


# The texts of `query` and `predict` (read by `texts_and_pairs`).
TEXTS_ARGUMENT = typer.Argument(None, help="One or more texts (or --file).")
FILE_OPTION = typer.Option(None, "--file", "-f", help="Texts, one per line ('-': standard input); a tab separates a "
                           "text from its pair (QA: question<TAB>context). A blank line answers null, so that answer "
                           "N is line N (blank lines at the end are ignored); any number of texts, run in batches the "
                           "model takes.")
PAIR_OPTION = typer.Option(None, "--pair", help="Second text of a pair (QA: the context); repeat once per text.")


def query(
    texts: Optional[List[str]] = TEXTS_ARGUMENT,
    file: Optional[Path] = FILE_OPTION,
    pair: Optional[List[str]] = PAIR_OPTION,
    grpc: bool = typer.Option(False, "--grpc", help="Use gRPC instead of HTTP."),
    url: Optional[str] = typer.Option(None, help="Server address host:port (default 127.0.0.1:8000, "
                                                 "or 127.0.0.1:8001 with --grpc)."),
    model: Optional[str] = typer.Option(None, help="Model name (default: the only inferforge model served)."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for the answer."),
    wait: float = typer.Option(0.0, help="Seconds to wait for the server to become ready first "
                                         "(for scripts that just started `inferforge serve`)."),
) -> None:
    """Send texts to a served model and print one JSON answer per line."""
    from inferforge.triton.client import TritonTextClient

    if not timeout > 0:
        raise UserError(f"--timeout must be more than 0 seconds (got {timeout:g}).")
    if wait < 0:
        raise UserError(f"--wait cannot be negative (got {wait:g}).")
    texts, pairs, blanks = texts_and_pairs(texts, file, pair)
    with TritonTextClient(url, "grpc" if grpc else "http", model, timeout) as client:
        if wait > 0:
            client.wait_ready(wait)
        for answer in with_blank_lines(client.predict(list(texts), pairs), blanks):
            typer.echo(json.dumps(answer, ensure_ascii=False))


def texts_and_pairs(texts: list[str] | None, file: Path | None,
                    pair: list[str] | None) -> tuple[list[str], list[str] | None, list[int]]:
    """The texts (and pairs) of `query` and `predict`: from the command line or --file, one sentence when wrong; and
    the places among the answers of the file's blank lines (each answers null, see `with_blank_lines`)."""
    texts = list(texts or [])
    pairs = list(pair) if pair else None
    blanks: list[int] = []
    if file is not None:
        if texts or pairs:
            raise UserError("Give texts on the command line or --file, not both.")
        texts, pairs, blanks = _texts_from_file(file)
    if not texts:
        raise UserError("Nothing to send: give one or more texts, or --file FILE ('-' for standard input).")
    if pairs is not None and len(pairs) != len(texts):
        raise UserError(f"Got {len(texts)} texts but {len(pairs)} --pair values; give one --pair per text.")
    if file is None:
        _check_utf8(texts, "Text")
        _check_utf8(pairs or [], "--pair value")
    return texts, pairs, blanks


def _check_utf8(values: list[str], what: str) -> None:
    """Command-line texts are UTF-8: Python hands bytes that are not (a Latin-1 terminal's "café") over as lone
    surrogates, on which the tokenizer (predict) and the client's encoding (query) failed with a traceback."""
    import os

    for index, value in enumerate(values, 1):
        try:
            value.encode("utf-8")
            continue
        except UnicodeEncodeError:
            pass
        where = ""
        try:
            raw = os.fsencode(value)  # the bytes as typed
            raw.decode("utf-8")
        except UnicodeEncodeError:  # a surrogate that no typed byte gives: no byte to name
            pass
        except UnicodeDecodeError as error:
            where = f" (byte 0x{raw[error.start]:02x} at byte {error.start})"
        raise UserError(f"{what} {index} on the command line is not UTF-8{where}: set the terminal to UTF-8, or "
                        "save the texts as UTF-8 and use --file.")


def with_blank_lines(answers, blanks: list[int]):
    """The answers with None at the places of the input's blank lines (answer N stays line N of the file)."""
    answers, places = iter(answers), set(blanks)
    place = 0
    for answer in answers:
        while place in places:
            yield None
            place += 1
        yield answer
        place += 1
    while place in places:
        yield None
        place += 1


def _texts_from_file(file: Path) -> tuple[list[str], list[str] | None, list[int]]:
    import re
    import sys

    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as error:
        raise UserError(f"Cannot read '{file}': {error.strerror or error}.") from None
    try:
        # (file line number, text) of the non-blank lines: messages name the line as an editor shows it.
        # Line ends only (\n, \r\n, \r): str.splitlines() also cut a line at a form feed (pdftotext's page break),
        # U+2028, U+0085 and other separators a text holds, giving more answers than lines, answer N no longer line N.
        every = re.split(r"\r\n|\n|\r", raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise UserError(f"'{file}' is not UTF-8 text (byte {error.start}).") from None
    while every and not every[-1].strip():
        every.pop()  # blank lines at the end (an editor's) are not texts
    lines = [(number, line) for number, line in enumerate(every, 1) if line.strip()]
    blanks = [place for place, line in enumerate(every) if not line.strip()]
    split = [line.split("\t", 1) for _, line in lines]
    with_pair = sum(len(parts) == 2 for parts in split)
    if with_pair and with_pair != len(split):
        first = next(number for (number, _), parts in zip(lines, split) if len(parts) == 1)
        raise UserError(f"'{file}': some lines have a tab-separated pair and some do not (line {first} has none).")
    return [parts[0] for parts in split], ([parts[1] for parts in split] if with_pair else None), blanks


def try_lines(http_url: str, name: str, task: str) -> list[str]:
    """The "Try:" hint `serve` prints: a query and a curl line that work for the task (a pair when it needs one)."""
    from inferforge.tasks import get_task

    if get_task(task).needs_pairs:
        text, pair = "What is served?", "A model converted by inferforge is served on Triton."
        query_args, body = f'"{text}" --pair "{pair}"', {"text": text, "text_pair": pair}
    else:
        query_args, body = '"Some text"', {"text": "Some text"}
    return [f"Try: inferforge query {query_args} --url {http_url} --model {name}",
            f"  or: curl -s {http_url}/v2/models/{name}/generate -d '{json.dumps(body)}'"]


def _limits(max_queue_size: int, queue_timeout_ms: int, execute_timeout: float, max_text_chars: int) -> dict:
    return dict(max_queue_size=max_queue_size, queue_timeout_us=queue_timeout_ms * 1000,
                execute_timeout_s=execute_timeout, max_text_chars=max_text_chars)


_signals_received: list[int] = []


def _raise_interrupt(signum, frame) -> None:
    from inferforge.signals import raise_outside_finalizers

    _signals_received.append(signum)
    raise_outside_finalizers(KeyboardInterrupt(), frame)
