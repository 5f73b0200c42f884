"""The `inferforge` command: a thin layer over the library (parse, show progress, call, exit codes)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from inferforge.errors import UserError
from inferforge.report import output_console
from inferforge.signals import raise_outside_finalizers
from inferforge.triton.commands import FILE_OPTION, PAIR_OPTION, TEXTS_ARGUMENT, texts_and_pairs, with_blank_lines

app = typer.Typer(
    name="inferforge",
    help=(
        "Make Hugging Face transformer inference fast and serve it on NVIDIA Triton.\n\n"
        "Typical session:\n\n"
        "\b\n"  # click's plain help keeps these lines as they are (rich's help does anyway)
        "  inferforge convert sentence-transformers/all-MiniLM-L6-v2 --task feature-extraction --output out/minilm\n"
        "  inferforge serve out/minilm        (a real Triton server, tokenizer inside)\n"
        "  inferforge query \"Some text\"       (from another shell)"
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from inferforge import __version__

        typer.echo(f"inferforge {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print inferforge's version and exit.")) -> None:
    pass


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: not an Exception, so no `except Exception` on the way counts it as a failure, and not a
    KeyboardInterrupt, which typer turns into a silent exit 130."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_stopped_by: list[int] = []  # the signal that stopped this run, if one did
_written: list[str] = []  # set once this run's output folder is in place: a signal from then on stops nothing
_late_signals: list[int] = []


def _interrupt(signum, frame) -> None:
    import signal

    if _written:
        _late_signals.append(signum)
        return
    _stopped_by.append(signum)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    raise_outside_finalizers(Interrupted(signum), frame)


def _help_style() -> None:
    """Rich's boxed help only on a terminal wide enough for it: in a pipe or a file, or under 100 columns, rich cut
    option names and words short ("--trust-remote-co…", "text-classi…"); click's plain help wraps them whole."""
    import os
    import shutil

    terminal = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    if not terminal or shutil.get_terminal_size().columns < 100:
        app.rich_markup_mode = None


# A file or pipe (CI logs, `make demo`, `> out.txt`) gets whole lines: tables as wide as they need, text and
# errors never wrapped (rich would wrap both at 80 columns); a terminal keeps rich's width.
console = output_console(stderr=True)
out = output_console()


class RichProgress:
    """Turns `progress(step, done, total)` callbacks into one rich bar per step."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        from inferforge.pipeline import WRITTEN_STEP

        if step == WRITTEN_STEP and done == total:
            _written.append(step)
        elif _stopped_by:  # a signal a library swallowed (an import that failed "initialization") still stops the run
            raise Interrupted(_stopped_by[0])
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(self.tasks[step], completed=done, total=total)


def print_variant_table(result) -> None:
    from inferforge.report import table_rows

    header, cells, notes = table_rows(result.rows, result.report["shapes"])
    table = Table(title=f"{result.report['task']}: p50 latency in ms (speed-up vs PyTorch fp32); * = selected")
    for column in header:
        table.add_column(column.replace("p50 ms ", ""), no_wrap=column == "variant")
    for row in cells:
        table.add_row(*row, style="bold green" if row[0].startswith("* ") else None)
    if Measurement.get(out, out.options.update_width(10_000), table).maximum <= out.width:
        out.print(table)
    else:  # a narrow terminal: rich would cut the numbers to "0.…"; one line per variant keeps every value whole
        out.print(table.title, highlight=False, markup=False)
        for row in cells:
            out.print("; ".join(f"{name.replace('p50 ms ', '')}: {value}" for name, value in zip(header, row)),
                      highlight=False, markup=False, style="bold green" if row[0].startswith("* ") else None)
    for note in notes:
        out.print(note, highlight=False)
    out.print(f"Selected: [bold]{result.selected}[/bold] at {result.report['optimize_for']}. "
              f"Output: {result.output} (report.md, report.json, latency.png)")
    for warning in result.report.get("warnings") or ():
        out.print(f"warning: {warning}", style="bold yellow", highlight=False, markup=False, soft_wrap=True)


def _tasks(incomplete: str) -> list[str]:
    """Shell completion of --task."""
    from inferforge.tasks import task_names

    return [name for name in task_names() if name.startswith(incomplete)]


def read_eval_data(options):
    """Read --eval-data once, before the conversion starts (a bad file or split stops here, before the model loads),
    and say which rows and columns will be used; the conversion then scores these rows."""
    from inferforge.pipeline import read_eval_rows

    data = read_eval_rows(options)
    if data is None:
        return None
    console.print(f"--eval-data {data.name}: {len(data)} rows; columns: {data.describe()}", highlight=False,
                  markup=False, soft_wrap=True)
    for note in data.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    return data


def _finite_atol(value: Optional[float]) -> Optional[float]:
    """--atol is a number of output units: 0 or more and finite (inf would pass any variant, nan none)."""
    import math

    if value is not None and not (math.isfinite(value) and value >= 0):
        raise UserError(f"--atol is the largest output difference allowed and cannot be negative, infinite or NaN; give "
                        f"a number such as 0.05 (got {value:g}).")
    return value


@app.command()
def convert(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Hub id (e.g. bert-base-uncased) or local Hugging Face directory "
                                          "(a sentence-transformers directory too)."),
    task: str = typer.Option(..., "--task", "-t", autocompletion=lambda incomplete: _tasks(incomplete),
                             help="text-classification, token-classification, feature-extraction or "
                                  "question-answering."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to create with everything needed to serve."),
    variants: Optional[str] = typer.Option(None, help="Comma-separated subset, e.g. ort-fp32,openvino-default "
                                                      "(default: all; PyTorch fp32 is always the reference). If none "
                                                      "the folder can serve passes, nothing is written (exit 2)."),
    shapes: str = typer.Option("1x16,1x128,32x128", help="Benchmark shapes, BATCHxSEQUENCE, comma-separated."),
    optimize_for: Optional[str] = typer.Option(None, help="Shape the selection optimizes for (default: the first)."),
    nb_measures: int = typer.Option(30, help="Timed runs per variant and shape (after 5 warm-up runs)."),
    threads: Optional[int] = typer.Option(None, help="Threads per runtime (default: all cores)."),
    atol: Optional[float] = typer.Option(None, callback=_finite_atol,
                                         help="Largest allowed output difference against PyTorch fp32, "
                                              "scaled by max(1, |reference|) (default per task)."),
    min_agreement: Optional[float] = typer.Option(None, help="Smallest task agreement: top-1 share, cosine, "
                                                             "or identical spans (default per task)."),
    validation_texts: Optional[Path] = typer.Option(None, help="Texts to verify every variant on (default: built-in): "
                                                               "a UTF-8 .txt file, one text per line (TAB-separated "
                                                               "pairs; question<TAB>context for QA), or any --eval-data "
                                                               "source (CSV, TSV, JSONL/JSON, Parquet, Arrow, dataset "
                                                               "folder; its test split first), by its text column(s); "
                                                               "labels not needed."),
    eval_data: Optional[Path] = typer.Option(None, help="Labelled CSV, TSV, JSONL/JSON, SQuAD .json, CoNLL/CoNLL-U, "
                                                         "BRAT standoff (.ann or folder), Excel .xlsx, Parquet or "
                                                         "Arrow file, or a datasets save_to_disk folder (text in "
                                                         "UTF-8/16/32 or Windows-1252, detected; columns found by "
                                                         "their usual names, e.g. text / sentence1 + "
                                                         "sentence2 / question + context / tokens, and label / "
                                                         "ner_tags / answers / score): "
                                                         "every variant's task accuracy, selection inside "
                                                         "--max-accuracy-drop; adds calibrated int8 variants."),
    eval_split: Optional[str] = typer.Option(None, help="Split of an --eval-data folder (a datasets save_to_disk "
                                                        "DatasetDict or a Hub-style folder; default: test, then "
                                                        "validation); a slice such as validation[:200] too, rows counted as datasets counts them. "
                                                        "Python: inferforge.convert(..., eval_split=...)."),
    calibration_data: Optional[Path] = typer.Option(None, help="Texts for int8 calibration (the first 128 are used), "
                                                               "from the same sources as --validation-texts: .txt (one "
                                                               "per line, TAB-separated pairs), CSV, TSV, JSONL/JSON, "
                                                               "Parquet, Arrow or a dataset folder (its train split "
                                                               "first; point at a split's folder or file for another)."),
    max_accuracy_drop: float = typer.Option(1.0, help="With --eval-data: largest loss of task accuracy, in points, "
                                                      "a reduced-precision variant may have against fp32."),
    accuracy_search: bool = typer.Option(True, help="When an int8 variant is outside the budget (the "
                                                    "--eval-data drop, or without labels the verification budget), keep its most "
                                                    "sensitive nodes in fp32 one at a time until it passes."),
    text_column: Optional[str] = typer.Option(None, help="Text column of --eval-data, and of --calibration-data / "
                                                         "--validation-texts tables (default: detected; text first)."),
    pair_column: Optional[str] = typer.Option(None, help="Second-text column (default: detected, e.g. text_pair, "
                                                         "sentence2, hypothesis, context; none if absent)."),
    label_column: Optional[str] = typer.Option(None, help="Label column of --eval-data (default: detected; label "
                                                          "first)."),
    force: bool = typer.Option(False, "--force", help="Replace the output folder if it exists and inferforge wrote "
                                                      "it (a folder without inferforge.json is never deleted)."),
    trust_remote_code: bool = typer.Option(False, help="Run the model repository's own code (only if you trust it)."),
    prompt_name: Optional[str] = typer.Option(None, help="feature-extraction with a sentence-transformers model: the "
                                                         "prompt put before every text, by name from the model's "
                                                         "prompts (e.g. query or passage for E5-style models; none: "
                                                         "no prompt). Default: the model's default_prompt_name, as "
                                                         "SentenceTransformer.encode does."),
) -> None:
    """Convert, optimize, verify and benchmark every variant, then select the fastest one inside the budget."""
    from dataclasses import replace

    from inferforge.cpu import machine_info
    from inferforge.pipeline import ConvertOptions, check_options, convert as run_convert

    # Options that only apply to data given with another option would otherwise be silently ignored.
    given = {name for name in ("max_accuracy_drop", "label_column", "text_column", "pair_column")
             if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}
    sources = {"--eval-data": eval_data, "--validation-texts": validation_texts, "--calibration-data": calibration_data}
    for name, needs in (("max_accuracy_drop", ["--eval-data"]), ("label_column", ["--eval-data"]),
                        ("text_column", list(sources)), ("pair_column", list(sources))):
        if name in given and not any(sources[flag] is not None for flag in needs):
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} applies to {' or '.join(needs)}, which {'was' if len(needs) == 1 else 'were'} "
                            f"not given; give {' or '.join(needs)} too, or leave {flag} out.")

    # Every flag maps onto the ConvertOptions field of the same name (inferforge.convert takes them as keywords).
    options = ConvertOptions(task=task, output=output, variants=variants, shapes=shapes, optimize_for=optimize_for,
                             nb_measures=nb_measures, threads=threads, atol=atol, min_agreement=min_agreement,
                             validation_texts=validation_texts, force=force, trust_remote_code=trust_remote_code,
                             eval_data=eval_data, eval_split=eval_split, calibration_data=calibration_data,
                             max_accuracy_drop=max_accuracy_drop, accuracy_search=accuracy_search,
                             text_column=text_column, pair_column=pair_column, label_column=label_column,
                             prompt_name=prompt_name)
    check_options(options)  # a bad flag stops here, before the data is read
    cores = machine_info().cores
    if threads is not None and threads > cores:
        console.print(f"note: --threads {threads} is more than the {cores} cores this process may use: the threads "
                      f"compete for them, and every timing is slower than with --threads {cores}.",
                      highlight=False, markup=False, soft_wrap=True)
    options = replace(options, eval_data=read_eval_data(options), eval_split=None)
    columns = (SpinnerColumn(), TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        result = run_convert(model, options=options, progress=RichProgress(progress))
    print_variant_table(result)
    note = ((result.report.get("eval_data") or {}).get("labels") or {}).get("note")
    if note:
        out.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    if _late_signals:
        import signal

        console.print(f"{signal.Signals(_late_signals[0]).name} came after the output was written: it is complete.",
                      highlight=False)


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="A folder written by `inferforge convert`."),
    texts: Optional[List[str]] = TEXTS_ARGUMENT,
    file: Optional[Path] = FILE_OPTION,
    pair: Optional[List[str]] = PAIR_OPTION,
    variant: Optional[str] = typer.Option(None, help="Variant to run (default: the selected one; the others are "
                                                     "listed in the folder's report.md)."),
    threads: Optional[int] = typer.Option(None, min=1, help="Threads of the engine (default: all cores)."),
) -> None:
    """Answer texts on this machine with a converted model, no server: one JSON answer per line, the same
    answers `inferforge query` gets from the served model.

    Example: inferforge predict out/minilm "A man is playing a guitar." "Someone plays music."
    """
    from inferforge.artifacts import load
    from inferforge.triton.answers import answer_json

    texts, pairs, blanks = texts_and_pairs(texts, file, pair)
    model = load(model_dir, variant=variant, threads=threads)
    if pairs is None and model.task.needs_pairs:
        raise UserError(f"{model.task.name} needs a text pair for every text (question, context): give one --pair "
                        "per text, or question<TAB>context lines with --file.")
    if pairs is not None and not model.task.supports_pairs:
        raise UserError(f"{model.task.name} takes single texts, not text pairs; leave out --pair (and the tabs of "
                        "--file lines).")
    import warnings

    from inferforge.tokenization import CutTextWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CutTextWarning)
        answers = model.predict(texts, pairs)
    for warning in caught:
        if issubclass(warning.category, CutTextWarning):  # on stderr: stdout stays one JSON answer per line
            said = warning.message
            if blanks:  # numbered as the answers' lines (blank lines answer null)
                skipped = set(blanks)
                said = said.renumbered([p for p in range(len(texts) + len(blanks)) if p not in skipped])
            typer.echo(f"note: {said}", err=True)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    for answer in with_blank_lines(answers, blanks):
        typer.echo("null" if answer is None else answer_json(answer).decode("utf-8"))


@app.command()
def info() -> None:
    """What this machine offers: CPU, ISA flags (AVX-512, VNNI, AMX) and library versions."""
    from inferforge.cpu import machine_info

    machine = machine_info()
    out.print(f"CPU: {machine.cpu_model} ({machine.cores} cores)")
    out.print("ISA: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in machine.isa.items()))
    out.print("Libraries: " + ", ".join(f"{k} {v}" for k, v in machine.libraries.items()))


# Commands that live beside their subsystem register themselves here.
for _module in ("inferforge.triton.commands", "inferforge.evaluate"):
    try:
        importlib.import_module(_module).register(app)
    except ModuleNotFoundError as _error:
        if _error.name != _module:
            raise
    except AttributeError:
        pass


def main() -> None:
    """Usage errors are click's (message + exit 2); UserErrors print one sentence and exit 2; Ctrl-C and SIGTERM
    unwind (a conversion removes its temporary folder), print one sentence and exit 130 or 143."""
    import signal

    _help_style()
    for state in (_stopped_by, _written, _late_signals):  # a run of its own, when main() is called again in a process
        state.clear()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal or SSH session closed
        if signal.getsignal(sig) is not signal.SIG_IGN:  # `nohup` and background jobs keep ignoring them
            signal.signal(sig, _interrupt)
    try:
        app(prog_name="inferforge")  # `python -m inferforge` too: shell completion is for the `inferforge` command
    except UserError as error:
        console.print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False)
        sys.exit(error.exit_code)
    except Exception:
        if not _stopped_by:
            raise
        # The interrupt landed in a library that wrapped it (a C extension's import says "initialization failed").
        console.print(f"interrupted ({signal.Signals(_stopped_by[0]).name}); nothing was left half-written.",
                      highlight=False)
        sys.exit(128 + _stopped_by[0])
    except (Interrupted, KeyboardInterrupt) as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        console.print(f"interrupted ({signal.Signals(signum).name}); nothing was left half-written.", highlight=False)
        sys.exit(128 + signum)


if __name__ == "__main__":
    main()
