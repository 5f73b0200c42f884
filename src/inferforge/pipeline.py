"""The main job in one call: load, export, build variants, verify, benchmark, select, write DIR."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from tokenizers import Tokenizer

from inferforge.artifacts import MANIFEST, TOKENIZER_DIR, Manifest
from inferforge.benchmark import LatencyStats, Shape, benchmark_engines, parse_shapes
from inferforge.cpu import default_threads, machine_info
from inferforge.engines.base import Engine
from inferforge.errors import NotApplicable, UserError, first_line
from inferforge.export import export_onnx, export_wrapper, reads_padding
from inferforge.labelled_data import LabelledData, TextRows, plain_text_source, read_texts
from inferforge.report import REFERENCE, VariantResult, report_dict, write_reports
from inferforge.source import load_source
from inferforge.tasks import get_task
from inferforge.tokenization import TextEncoder
from inferforge.variants import BuildContext, TorchEager, Variant, parse_variants
from inferforge.verify import (AccuracyBudget, builtin_texts, compare, run_batches,
                               validation_batches)

DEFAULT_SHAPES = "1x16,1x128,32x128"
# Without labels, the search keeps at most this share of an int8 model's nodes in fp32 (past it, int8 is
# rarely faster than the bf16/fp32 variants; measured on MiniLM: 10 of 48 kept made it slower than bf16).
VERIFICATION_SEARCH_MAX_KEPT = 0.2

# progress(step, done, total): called as long steps advance (the CLI draws bars from it).
# The last step: the output folder is in place and complete (a stop signal from then on changes nothing).
WRITTEN_STEP = "write output"
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class ConvertOptions:
    """Every option of `inferforge convert`, defined once (the CLI maps its flags onto this)."""

    task: str
    output: Path
    variants: str | list[Variant] | None = None
    shapes: str | list[Shape] = DEFAULT_SHAPES
    optimize_for: str | Shape | None = None
    nb_measures: int = 30
    warmup: int = 5
    threads: int | None = None
    atol: float | None = None
    min_agreement: float | None = None
    # Texts (labels not needed) from any source --eval-data reads: a .txt file (one per line, TAB-separated
    # pairs), a CSV/TSV/JSONL/JSON/Parquet/Arrow file's text column(s), or a dataset folder (labelled_data.read_texts).
    validation_texts: Path | TextRows | None = None
    force: bool = False
    trust_remote_code: bool = False
    # Accuracy on labelled data (a file or dataset folder, or rows read by evaluate.read_eval_data): scored for
    # every variant, reduced precision held to max_accuracy_drop points, int8 refined by the search when it drops more.
    eval_data: Path | LabelledData | None = None
    # The split of an eval_data dataset folder, as `--eval-split`: a name or a slice such as "validation[:200]"
    # (default: test, then validation). Only with an eval_data path: rows already read carry their split.
    eval_split: str | None = None
    calibration_data: Path | TextRows | None = None  # the same sources as validation_texts (int8 calibration)
    max_accuracy_drop: float = 1.0
    accuracy_search: bool = True
    text_column: str | None = None
    pair_column: str | None = None
    label_column: str | None = None
    # Sentence-transformers models: the prompt put before every text (one of the model's `prompts`, e.g. E5's
    # "query" or "passage"; "none": no prompt); default: the model's default_prompt_name, as encode() does.
    prompt_name: str | None = None

    def resolved_shapes(self) -> list[Shape]:
        """`shapes` as "1x16,1x128" (the CLI's form), or a list of "1x16" strings and Shapes (Python's)."""
        if isinstance(self.shapes, str):
            return parse_shapes(self.shapes)
        shapes = [Shape.parse(s) if isinstance(s, str) else s for s in self.shapes]
        if not shapes or not all(isinstance(s, Shape) for s in shapes):
            raise UserError(f"shapes must be like \"1x16,1x128\" or [\"1x16\", \"1x128\"], not {self.shapes!r}.")
        return shapes

    def resolved_target(self) -> Shape:
        shapes = self.resolved_shapes()
        if self.optimize_for is None:
            return shapes[0]
        target = Shape.parse(self.optimize_for) if isinstance(self.optimize_for, str) else self.optimize_for
        if target not in shapes:
            raise UserError(f"--optimize-for {target} is not one of the benchmarked shapes {', '.join(map(str, shapes))}.")
        return target


@dataclass
class ConvertResult:
    output: Path
    selected: str | None
    rows: list[VariantResult]
    report: dict
    manifest: Manifest = field(repr=False, default=None)

    def row(self, name: str) -> VariantResult:
        return next(r for r in self.rows if r.name == name)

    def load(self, variant: str | None = None, threads: int | None = None):
        from inferforge.artifacts import load

        return load(self.output, variant, threads)

    def __repr__(self) -> str:
        """One line a person can read (the dataclass repr printed every latency of every variant)."""
        target = self.report.get("optimize_for")
        parts = []
        for row in self.rows:
            latency = row.latency.get(target) if target else None
            parts.append(f"{row.name}: {row.status}" + (f" {latency.p50_ms:.2f} ms" if latency else ""))
        return (f"ConvertResult(output='{self.output}', selected={self.selected!r}, "
                f"p50 at {target}: {'; '.join(parts)})")

    def _repr_markdown_(self) -> str:
        """The report.md table, as a notebook shows the result."""
        from inferforge.report import markdown_report

        return markdown_report(self.report, self.rows)


def check_options(options: ConvertOptions) -> tuple[list[Shape], Shape, list[Variant]]:
    """Everything that can be checked before any model is loaded."""
    get_task(options.task)
    shapes = options.resolved_shapes()
    target = options.resolved_target()
    calibrated = options.eval_data is not None or options.calibration_data is not None
    variants = options.variants
    if isinstance(variants, (list, tuple)) and all(isinstance(v, str) for v in variants):
        variants = ",".join(variants)  # Python: ["ort-fp32", "openvino-default"] as well as "ort-fp32,openvino-default"
    variants = parse_variants(variants, calibrated) if not isinstance(variants, (list, tuple)) else list(variants)
    if not all(isinstance(v, Variant) for v in variants):
        raise UserError(f"variants must be names like \"ort-fp32,openvino-default\" or a list of them, not "
                        f"{options.variants!r}.")
    if not any(v.deployable for v in variants):
        raise UserError(f"--variants '{options.variants if isinstance(options.variants, str) else ','.join(v.name for v in variants)}' "
                        f"names only PyTorch variants, which the output folder cannot serve; add one it can, such as "
                        f"ort-fp32 or openvino-default.")
    if options.nb_measures < 1:
        raise UserError("--nb-measures must be at least 1.")
    if options.threads is not None and options.threads < 1:
        raise UserError("--threads must be at least 1.")
    if options.prompt_name is not None and get_task(options.task).name != "feature-extraction":
        raise UserError("--prompt-name chooses a sentence-transformers prompt, for --task feature-extraction only.")
    if len(set(shapes)) < len(shapes):
        twice = next(s for i, s in enumerate(shapes) if s in shapes[:i])
        raise UserError(f"--shapes names {twice} more than once; give each shape once.")
    check_output(Path(options.output), options.force)
    for flag, path in (("--validation-texts", options.validation_texts), ("--calibration-data", options.calibration_data)):
        if isinstance(path, (str, Path)) and not Path(path).exists():  # a file or a dataset folder
            raise UserError(f"{flag} file '{path}' does not exist.")
    if isinstance(options.eval_data, (str, Path)) and not Path(options.eval_data).exists():  # a file or a dataset folder
        raise UserError(f"--eval-data file '{options.eval_data}' does not exist.")
    if options.eval_split is not None and options.eval_data is None:
        raise UserError(f"--eval-split '{options.eval_split}' picks the split of an --eval-data folder; give --eval-data too.")
    if options.eval_split is not None and isinstance(options.eval_data, LabelledData):
        raise UserError("--eval-split applies to an --eval-data path, not to rows already read; read them with "
                        "evaluate.read_eval_data(..., split=...) or pass the path.")
    if not options.max_accuracy_drop >= 0:  # NaN too
        raise UserError("--max-accuracy-drop is in accuracy points and cannot be negative.")
    if options.atol is not None and not options.atol >= 0:
        raise UserError(f"--atol is the largest output difference allowed and cannot be negative (got {options.atol:g}).")
    if options.min_agreement is not None and not 0 <= options.min_agreement <= 1:
        raise UserError(f"--min-agreement is a fraction between 0 and 1, such as 0.99 (got {options.min_agreement:g}).")
    return shapes, target, variants


def check_output(output: Path, force: bool, model: str | None = None) -> None:
    """The output folder can be written, and --force replaces only a folder inferforge wrote: never a file, the
    model's own folder, the current folder, or a folder of the user's files (rmtree would delete them)."""
    if output.exists() and not output.is_dir():
        raise UserError(f"Output '{output}' is a file, not a folder; give the path of a folder to create.")
    above = next((p for p in output.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise UserError(f"Output folder '{output}' cannot be created: '{above}' is a file.")
    here = Path.cwd().resolve()
    if output.resolve() == here or output.resolve() in here.parents:
        raise UserError(f"Output folder '{output}' is the current folder (or holds it); give another folder to create.")
    if model is not None and Path(model).exists():
        if Path(model).resolve() == output.resolve() or output.resolve() in Path(model).resolve().parents:
            raise UserError(f"Output folder '{output}' is the model's own folder (or holds it); give another folder.")
    if output.exists() and not force:
        raise UserError(f"Output folder '{output}' already exists; pass --force (force=True in Python) to replace it.")
    if output.exists() and not (output / MANIFEST).is_file() and any(output.iterdir()):
        raise UserError(f"Output folder '{output}' already exists and was not written by inferforge (it has no "
                        f"{MANIFEST}), so --force does not replace it: it may hold your files; remove it yourself "
                        f"or choose another folder.")


def no_servable_variant(rows: list[VariantResult], budget: AccuracyBudget, output: Path,
                        max_accuracy_drop: float | None = None) -> UserError:
    """The one sentence for a conversion where no variant the folder could serve passed: each one's outcome and
    by how much it missed, and which option to change. Nothing is written: a folder without a selected variant
    would only fail later, in `inferforge.load` or `inferforge serve`."""
    servable = [r for r in rows if r.deployable]
    outcomes = "; ".join(f"{r.name} {r.status}" + (f" ({r.reason})" if r.reason else "") for r in servable)
    tries = []
    if any(r.status == "failed" and (r.check is None or not r.check.passed) for r in servable):
        tries.append(f"loosen --atol (now {budget.atol:g}) or --min-agreement (now {budget.min_agreement:g})")
    if max_accuracy_drop is not None and any(r.status == "failed" and " points of " in r.reason for r in servable):
        tries.append(f"raise --max-accuracy-drop (now {max_accuracy_drop:g})")
    tried = {r.name for r in servable}
    tries.append("choose other --variants" + ("" if "ort-fp32" in tried else " (e.g. ort-fp32, the exported graph as it is)"))
    return UserError(f"No variant the output folder could serve passed against PyTorch fp32, so {output} was not "
                     f"written: {outcomes}; {', or '.join(tries)}.")


def _read_text_option(options: ConvertOptions, field_name: str, flag: str) -> TextRows | None:
    source = getattr(options, field_name)
    if source is None or isinstance(source, TextRows):
        return source
    columns = (options.text_column, options.pair_column)
    others = [getattr(options, name) for name in ("eval_data", "calibration_data", "validation_texts")
              if name != field_name]
    if plain_text_source(source) and any(o is not None and not plain_text_source(o) for o in others):
        columns = (None, None)  # the column options name the columns of the other data; a text file has none
    return read_texts(source, get_task(options.task), *columns, flag)


def read_eval_rows(options: ConvertOptions) -> LabelledData | None:
    """The labelled rows of `options.eval_data` (read with `eval_split` and the column options when it is a path),
    before any model is loaded: a bad file or split stops here. The CLI prints what it found from these rows."""
    if options.eval_data is None or isinstance(options.eval_data, LabelledData):
        return options.eval_data
    from inferforge.evaluate import read_eval_data

    return read_eval_data(Path(options.eval_data), get_task(options.task), options.text_column, options.pair_column,
                          options.label_column, options.eval_split)


# Medians closer than this at the target shape are within the noise of one benchmark run.
SELECTION_TIE = 0.05


def select_variant(rows: list[VariantResult], target: Shape) -> str | None:
    """The fastest deployable variant inside the accuracy budget at the target shape.

    Variants whose median at the target shape is within SELECTION_TIE (5 %) of the fastest are a tie
    (the noise of one run): the tie goes to the one with the lowest geometric mean, over every shape
    they were all timed at, of its median relative to the fastest tied median at that shape.
    """
    return selection(rows, target)[0]


def selection(rows: list[VariantResult], target: Shape) -> tuple[str | None, list[str]]:
    """The selected variant and the variants tied with the fastest at the target shape (see select_variant)."""
    key = str(target)
    candidates = [r for r in rows if r.deployable and r.usable and key in r.latency]
    if not candidates:
        return None, []
    fastest = min(r.latency[key].p50_ms for r in candidates)
    tied = sorted((r for r in candidates if r.latency[key].p50_ms <= fastest * (1 + SELECTION_TIE)),
                  key=lambda r: r.latency[key].p50_ms)
    shapes = [k for k in tied[0].latency if all(k in r.latency for r in tied)]

    def overall(row: VariantResult) -> float:
        ratios = [row.latency[k].p50_ms / min(r.latency[k].p50_ms for r in tied) for k in shapes]
        return float(np.exp(np.mean(np.log(ratios))))

    best = min(tied, key=lambda r: (overall(r), r.latency[key].p50_ms))
    return best.name, [r.name for r in tied]


def convert(model: str | Path, task: str | None = None, output: str | Path | None = None, *,
            options: ConvertOptions | None = None, progress: ProgressCallback | None = None, **kwargs) -> ConvertResult:
    """Convert `model` (hub id or local directory) for `task` into `output`.

    The keyword options are the fields of ConvertOptions, one per `inferforge convert` flag with the same name
    and meaning (`eval_split="validation[:200]"` is `--eval-split 'validation[:200]'`), plus `warmup`.
    """
    if options is not None and kwargs:
        raise UserError(f"convert() takes options= or keyword options, not both (got {', '.join(sorted(kwargs))} too).")
    if options is None:
        if task is None or output is None:
            raise UserError("convert() needs a task and an output folder.")
        options = ConvertOptions(task=task, output=Path(output), **kwargs)
    shapes, target, variants = check_options(options)
    options = replace(options, eval_data=read_eval_rows(options), eval_split=None,  # read once, before the model
                      validation_texts=_read_text_option(options, "validation_texts", "--validation-texts"),
                      calibration_data=_read_text_option(options, "calibration_data", "--calibration-data"))
    model = str(model)  # a pathlib.Path is as good as a string
    output = Path(options.output)
    check_output(output, options.force, model)
    report_progress = progress or (lambda step, done, total: None)
    # Folders above the output that this run creates are removed again if it fails.
    created = [p for p in (output.parent, *output.parent.parents) if not p.exists()]
    workdir = output.parent / f".{output.name}.inferforge-tmp-{os.getpid()}"
    replaced = output.parent / f".{output.name}.inferforge-replaced-{os.getpid()}"
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir()
    except OSError as error:
        _remove_empty(created)
        raise UserError(f"Cannot create the output folder '{output}': {error.strerror or error}.") from None
    done = False
    try:
        result = _convert_into(model, options, shapes, target, variants, workdir, report_progress)
        result.report["output"] = str(output)
        (workdir / "report.json").write_text(json.dumps(result.report, indent=2))
        report_progress(WRITTEN_STEP, 0, 1)
        with _signals_held():  # a Ctrl-C from here is handled once the output is in place and said so
            if output.exists():  # --force: set aside (one rename), put back if the run stops before the next one
                output.rename(replaced)
            try:
                workdir.rename(output)  # the one step that makes the output: complete, or not there
            except BaseException:
                if replaced.exists() and not output.exists():
                    replaced.rename(output)
                raise
            result.output = output
            done = True
            report_progress(WRITTEN_STEP, 1, 1)
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(replaced, ignore_errors=True)
        if not done:
            _remove_empty(created)


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM wait until the block ends (main thread, POSIX); elsewhere nothing changes."""
    import signal
    import threading

    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created above its output, deepest first, if they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _drop_unused_variant_folders(workdir: Path, manifest: Manifest) -> None:
    """Remove the folders under variants/ that no variant of the manifest reads: what a build left for its own use
    (the calibration ranges of a ranking proxy, a variant that failed to build). A listed variant's folder is kept
    whole (an ONNX file's external data sits beside it, unlisted)."""
    root = workdir / "variants"
    used = {Path(f).parts[1] for entry in manifest.variants.values() for f in entry["files"]
            if len(Path(f).parts) > 2 and Path(f).parts[0] == "variants"}
    for folder in (root.iterdir() if root.is_dir() else ()):
        if folder.is_dir() and folder.name not in used:
            shutil.rmtree(folder)


def _convert_into(model, options, shapes, target, variants, workdir: Path, progress: ProgressCallback) -> ConvertResult:
    import torch

    task = get_task(options.task)
    threads = options.threads or default_threads()
    torch.set_num_threads(threads)
    machine = machine_info()
    budget = AccuracyBudget.for_task(task, options.atol, options.min_agreement)

    progress("load model", 0, 1)
    source = load_source(model, task, options.trust_remote_code, options.prompt_name)
    progress("load model", 1, 1)
    too_long = [shape for shape in shapes if shape.sequence > source.max_length]
    if too_long:
        fitting = ",".join(str(Shape(s.batch, min(s.sequence, source.max_length))) for s in shapes)
        raise UserError(f"Shape {too_long[0]} is longer than the {source.max_length} tokens this model reads; give "
                        f"--shapes with sequences of at most {source.max_length}, e.g. --shapes {fitting}.")
    source.tokenizer.save_pretrained(str(workdir / TOKENIZER_DIR))
    source.config.save_pretrained(str(workdir))
    # A copy of the fast tokenizer's backend, so our padding and truncation settings stay ours.
    encoder = TextEncoder(Tokenizer.from_str(source.tokenizer.backend_tokenizer.to_str()),
                          source.input_names, source.max_length, source.pad_id,
                          cls_id=_cls_id(source.tokenizer), windows=task.windows,
                          prefix=source.prompt)
    encoder.save(workdir / TOKENIZER_DIR)

    progress("export to ONNX", 0, 1)
    ctx = BuildContext(workdir=workdir, task=task, encoder=encoder, threads=threads, machine=machine,
                       wrapper=export_wrapper(source, task), model_type=getattr(source.config, "model_type", "bert"),
                       num_heads=getattr(source.config, "num_attention_heads", 0) or 0,
                       hidden_size=getattr(source.config, "hidden_size", 0) or 0)
    eval_set = None
    if options.eval_data is not None:  # rows read by read_eval_rows before the model loaded
        from inferforge.evaluate import read_eval_set

        eval_set = read_eval_set(options.eval_data, task, encoder, source.labels,
                                 problem_type=getattr(source.config, "problem_type", None))
    if options.calibration_data is not None:  # read by read_texts before the model loaded
        ctx.calibration_texts, ctx.calibration_pairs = options.calibration_data.texts, options.calibration_data.pairs
    export_onnx(source, task, ctx.fp32_onnx)
    progress("export to ONNX", 1, 1)

    rows, engines = _build_variants(variants, ctx, threads, progress)

    if options.validation_texts is not None:
        texts, pairs = options.validation_texts.texts, options.validation_texts.pairs
        validation = options.validation_texts.record()
    else:
        texts, pairs = builtin_texts(task)
        validation = {"source": "built-in", "count": len(texts)}
    batches = validation_batches(encoder, texts, pairs)
    reference = run_batches(engines[REFERENCE], batches)
    _verify(rows, engines, batches, reference, task, budget, progress)
    extra = {"warnings": list(source.warnings)}
    if options.calibration_data is not None:
        extra["calibration"] = options.calibration_data.record()
    if eval_set is not None:
        from inferforge.accuracy_search import judge_variants

        outcome = judge_variants(ctx, rows, engines, eval_set, options.max_accuracy_drop,
                                 search=options.accuracy_search, progress=progress)
        extra["accuracy"] = outcome.to_dict()
        extra["eval_data"] = eval_set.record()  # which file, split, columns, rows and label mapping were used
    elif options.accuracy_search:
        # No labels: an int8 variant outside the verification budget gets its most sensitive nodes
        # kept in fp32 until it passes, judged on the same texts and budget as every variant.
        from inferforge.accuracy_search import VerificationSet, refine_failed_int8

        verification = VerificationSet(task, batches, reference, budget)
        searches = refine_failed_int8(ctx, rows, rows, engines, verification, verification.max_drop, 100.0, progress,
                                      closest_first=True, share_ranking=True,
                                      max_kept_fraction=VERIFICATION_SEARCH_MAX_KEPT, bisect=True)
        if searches:
            extra["accuracy_search"] = {"yardstick": "verification", "searches": [r.to_dict() for r in searches]}
    added = [r for r in rows if r.check is None and r.name in engines]  # variants an accuracy search built
    if added:
        _verify(added, engines, batches, reference, task, budget, progress)

    max_drop = options.max_accuracy_drop if eval_set is not None else None
    if not any(r.deployable and r.usable for r in rows):  # before the benchmark: nothing to time
        raise no_servable_variant(rows, budget, Path(options.output), max_drop)

    frame = encoder.id_frame(getattr(source.config, "vocab_size", None))
    timed = {r.name: engines[r.name] for r in rows if r.name in engines}
    for i, shape in enumerate(shapes):
        done = [0]

        def tick(shape=shape):
            done[0] += 1
            progress(f"benchmark {shape}", done[0], options.nb_measures)

        stats: dict[str, LatencyStats] = benchmark_engines(timed, shape, frame, options.nb_measures, options.warmup,
                                                           seed=i, on_round=tick)
        for row in rows:
            if row.name in stats:
                row.latency[str(shape)] = stats[row.name]

    selected, tied = selection(rows, target)
    if selected is None:  # every passing variant failed to run in the benchmark
        raise no_servable_variant(rows, budget, Path(options.output), max_drop)
    if len(tied) > 1:
        extra["selection_ties"] = {"within": SELECTION_TIE, "tied": tied, "selected": selected}
    next(r for r in rows if r.name == selected).status = "selected"
    manifest = Manifest(
        task=task.name, source=source.name, input_names=list(source.input_names),
        output_names=list(task.output_names), max_length=source.max_length, labels=source.labels,
        pooling=source.pooling.to_dict() if source.pooling else None, selected=selected,
        problem_type=getattr(source.config, "problem_type", None),
        reads_padding=reads_padding(source, task),
        variants={r.name: {"config": r.config, "files": r.files, "deployable": r.deployable}
                  for r in rows if r.deployable and r.status not in ("skipped", "error")},
    )
    manifest.write(workdir)
    _drop_unused_variant_folders(workdir, manifest)
    report = report_dict(
        source=source.name, task=task.name, output=str(options.output), machine=machine.to_dict(), threads=threads,
        shapes=[str(s) for s in shapes], optimize_for=str(target), budget=budget.__dict__, selected=selected,
        rows=rows, validation=validation, extra=extra,
    )
    write_reports(workdir, report, rows)
    return ConvertResult(workdir, selected, rows, report, manifest)


def _build_variants(variants: list[Variant], ctx: BuildContext, threads: int,
                    progress: ProgressCallback) -> tuple[list[VariantResult], dict[str, Engine]]:
    rows: list[VariantResult] = []
    engines: dict[str, Engine] = {}
    if not any(isinstance(v, TorchEager) and v.dtype == "fp32" for v in variants):
        variants = [TorchEager("fp32"), *variants]
    for i, variant in enumerate(variants):
        progress("build variants", i, len(variants))
        row = VariantResult(variant.name, variant.to_dict(), variant.precision, variant.deployable)
        rows.append(row)
        reason = variant.unavailable_reason(ctx.machine)
        if reason:
            row.status, row.reason = "skipped", reason
            continue
        start = time.perf_counter()
        try:
            row.files = variant.build(ctx)
            engines[variant.name] = variant.open(ctx.workdir, row.files, threads, ctx)
            row.precision = _runs_at(row.precision, engines[variant.name])
        except UserError:
            raise
        except NotApplicable as why:
            row.status, row.reason = "skipped", str(why)
        except Exception as error:  # noqa: BLE001 - one variant failing must not stop the others
            row.status, row.reason = "error", f"{type(error).__name__}: {first_line(error, 200)}"
        row.build_seconds = time.perf_counter() - start
    progress("build variants", len(variants), len(variants))
    return rows, engines


def _runs_at(precision: str, engine: Engine) -> str:
    """A variant at its runtime's "default" precision is reported at the one its engine chose on this CPU (OpenVINO:
    bf16 with AVX512-BF16 or AMX, fp32 otherwise), so the table and the accuracy budget treat it as what it is."""
    chosen = getattr(engine, "precision", None)
    if precision != "default" or not chosen:
        return precision
    return {"f32": "fp32", "f16": "fp16"}.get(chosen, chosen)


def _verify(rows, engines, batches, reference, task, budget, progress) -> None:
    """Check every row that has an engine against the reference outputs on the validation batches."""
    checked = [r for r in rows if r.name in engines]
    for i, row in enumerate(checked):
        progress("verify", i, len(checked))
        try:
            row.check = compare(task, batches, reference, run_batches(engines[row.name], batches), budget)
        except Exception as error:  # noqa: BLE001 - a runtime failing on real text is that variant's failure
            row.status, row.reason = "error", f"{type(error).__name__}: {first_line(error, 200)}"
            engines.pop(row.name)
            continue
        if not row.check.passed:
            row.status, row.reason = "failed", row.check.reason
    progress("verify", len(checked), len(checked))


def _cls_id(tokenizer) -> int:
    """The classifier token's id (-1 when the tokenizer has none): question answering weighs it against the spans."""
    cls_id = getattr(tokenizer, "cls_token_id", None)
    return -1 if cls_id is None else int(cls_id)
