"""Accuracy-aware int8: when full int8 loses more than the budget, keep the costliest nodes in fp32.

The yardstick is the labelled data (`EvalSet`, a drop in points of the task's metric) or, without labels,
the verification texts (`VerificationSet`: agreement with the fp32 reference inside convert's budget).

1. Score the fully quantized model on the labelled data. Inside the budget: done.
2. Sensitivity: for each quantized node, build the model with only that node kept in fp32 and
   measure how much closer its outputs get to the fp32 graph's, on a subset of the labelled rows
   (relative squared error of the task outputs: smooth, unlike accuracy on a few hundred rows).
3. Keep the most sensitive node in fp32, then the next, one at a time, scoring the real metric on
   all the labelled rows after each, until the drop fits the budget (or `max_kept` nodes are kept).
4. Report which nodes were kept and what they cost in speed; if nothing fits, say so: the fp32
   variant stays the answer.

For onnxruntime a kept node is left out of quantization (`nodes_to_exclude`), for OpenVINO it is
in NNCF's `ignored_scope`; the calibration ranges are computed once and reused. The dynamic int8
candidates the search measures are made from the fully quantized graph by putting the kept nodes back
(`quantize.restore_fp32_nodes`: the quantizer's own model, ten times faster to make).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from inferforge.benchmark import Shape, benchmark_engines
from inferforge.engines.base import Engine
from inferforge.evaluate import EvalSet, TaskScore
from inferforge.quantize import _Int8Variant, forget_search_sources, searchable
from inferforge.tasks import TaskSpec
from inferforge.variants import BuildContext, Variant
from inferforge.verify import AccuracyBudget, agreement_metric, compare, run_batches

SENSITIVITY_ROWS = 256
TIMING_SHAPE = Shape(1, 128)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class NodeSensitivity:
    """How much closer to fp32 the outputs get when this node alone stays in fp32."""

    node: str
    output_error: float  # relative squared error vs fp32 with this node kept in fp32
    gain: float  # full int8's error minus the above


@dataclass(frozen=True)
class SearchStep:
    kept_fp32: list[str]
    score: float
    drop_points: float
    seconds: float
    fits: bool = False


@dataclass
class SearchResult:
    base_variant: str
    metric: str
    max_drop: float
    reference_score: float
    full_int8_score: float
    full_int8_drop: float
    fits: bool
    message: str
    variant: _Int8Variant | None = None  # the config that fits (None: nothing fits, keep fp32)
    files: list[str] = field(default_factory=list)
    kept_fp32: list[str] = field(default_factory=list)
    final_score: float | None = None
    final_drop: float | None = None
    full_int8_output_error: float | None = None
    ranked_on: str | None = None  # the config the sensitivities were measured on
    sensitivities: list[NodeSensitivity] = field(default_factory=list)
    steps: list[SearchStep] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50 at timing_shape
    timing_shape: str = str(TIMING_SHAPE)
    search_seconds: float = 0.0
    engine: Engine | None = field(default=None, repr=False)

    @property
    def name(self) -> str | None:
        return self.variant.name if self.variant else None

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("variant", "engine")}
        data["sensitivities"] = [asdict(s) for s in self.sensitivities]
        data["steps"] = [asdict(s) for s in self.steps]
        data["variant"] = self.variant.to_dict() if self.variant else None
        data["variant_name"] = self.name
        return data


def output_error(reference: list[dict[str, np.ndarray]], candidate: list[dict[str, np.ndarray]]) -> float:
    """Squared difference over squared reference, summed over batches, averaged over outputs."""
    names = sorted(reference[0])
    errors = []
    for name in names:
        diff = sum(float(np.square(c[name].astype(np.float64) - r[name]).sum()) for r, c in zip(reference, candidate))
        size = sum(float(np.square(r[name].astype(np.float64)).sum()) for r in reference)
        errors.append(diff / max(size, 1e-30))
    return float(np.mean(errors))


def _score_candidate(variant: _Int8Variant, ctx: BuildContext, scratch: Path,
                     measure: Callable[[Engine], object]):
    """Build a candidate in its own scratch folder, measure it, and delete its files (one model on disk at a time)."""
    folder = Path(tempfile.mkdtemp(prefix="candidate-", dir=scratch))
    try:
        paths = variant.candidate_into(ctx, folder)
        return measure(variant.open(folder, [paths[0].name], ctx.threads))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rank_nodes(full: _Int8Variant, ctx: BuildContext, subset: EvalSet, fp32_outputs: list[dict[str, np.ndarray]],
               full_error: float | None, scratch: Path, progress: Progress) -> list[NodeSensitivity]:
    """Every quantized node, most costly first (measured on the variant's ranking proxy when it has one)."""
    ranker = full.ranking_proxy() or full
    if full_error is None or ranker is not full:
        full_error = _score_candidate(ranker.with_keep_fp32(()), ctx, scratch,
                                      lambda engine: output_error(fp32_outputs, subset.outputs(engine)))
    nodes = ranker.quantized_nodes(ctx)
    own_nodes = set(full.quantized_nodes(ctx)) if ranker is not full else set(nodes)
    ranked = []
    for i, node in enumerate(nodes):
        progress("int8 sensitivity", i, len(nodes))
        error = _score_candidate(ranker.with_keep_fp32([node]), ctx, scratch,
                                 lambda engine: output_error(fp32_outputs, subset.outputs(engine)))
        name = full.node_from_proxy(node, own_nodes) if ranker is not full else node
        if name is not None:
            ranked.append(NodeSensitivity(name, error, full_error - error))
    progress("int8 sensitivity", len(nodes), len(nodes))
    return sorted(ranked, key=lambda s: -s.gain)


def _lets_go_of_its_graphs(search):
    """The graphs a search made its candidates from (`quantize.candidate_into`) are let go when it ends."""
    @functools.wraps(search)
    def wrapper(*args, **kwargs):
        try:
            return search(*args, **kwargs)
        finally:
            forget_search_sources()
    return wrapper


@_lets_go_of_its_graphs
def search_int8(ctx: BuildContext, variant: Variant, eval_set: EvalSet, max_drop: float, reference_score: float,
                *, fp32_engine: Engine | None = None, full_engine: Engine | None = None,
                full_files: list[str] | None = None, sensitivity_rows: int = SENSITIVITY_ROWS,
                max_kept: int | None = None, max_kept_fraction: float | None = None, bisect: bool = False,
                ranking: tuple[str, list[NodeSensitivity]] | None = None,
                timing_shape: Shape | None = TIMING_SHAPE, nb_measures: int = 10,
                progress: Progress | None = None) -> SearchResult:
    """The int8 model closest to full int8 whose drop in points (vs `reference_score`) is <= max_drop.

    `max_kept`/`max_kept_fraction`: give up after that many (that share of the) nodes kept in fp32.
    `bisect`: try the most nodes allowed first and bisect down (few builds), instead of adding one at a time.
    `ranking`: (config name, sensitivities) measured on another int8 config of the same graph, used instead
    of ranking again (the costly part: one build per node).
    `full_engine`/`full_files`: the fully quantized variant when the caller already built it.
    `fp32_engine`: what sensitivities are measured against (default: the fp32 ONNX in onnxruntime).
    """
    started = time.perf_counter()
    tick = progress or (lambda step, done, total: None)
    full = searchable(variant)
    if full is None:
        raise ValueError(f"{variant.name} is not an int8 variant the search can refine")
    full = full.with_keep_fp32(())
    if full_engine is None:
        full_files = full.build(ctx)
        full_engine = full.open(ctx.workdir, full_files, ctx.threads)
    accepts = getattr(eval_set, "accepts", lambda score: True)  # a budget beyond the drop (VerificationSet)
    full_score = eval_set.score(full_engine)
    result = SearchResult(base_variant=full.name, metric=eval_set.primary, max_drop=max_drop,
                          reference_score=reference_score, full_int8_score=full_score.value,
                          full_int8_drop=reference_score - full_score.value, fits=False, message="")
    if result.full_int8_drop <= max_drop and accepts(full_score):
        result.fits, result.variant, result.files, result.engine = True, full, list(full_files or []), full_engine
        result.final_score, result.final_drop = result.full_int8_score, result.full_int8_drop
        result.message = (f"{full.name} loses {result.full_int8_drop:.2f} points of {result.metric}, "
                          f"inside the budget of {max_drop:g}: nothing kept in fp32.")
        result.search_seconds = time.perf_counter() - started
        return result

    if fp32_engine is None:
        from inferforge.engines.ort import OrtEngine

        fp32_engine = OrtEngine(ctx.fp32_onnx, ctx.threads, "ort-fp32")
    subset = eval_set.subset(sensitivity_rows)
    fp32_outputs = subset.outputs(fp32_engine)
    result.full_int8_output_error = output_error(fp32_outputs, subset.outputs(full_engine))
    result.ranked_on = (full.ranking_proxy() or full).name
    with tempfile.TemporaryDirectory(prefix="inferforge-int8-search-") as tmp:
        scratch = Path(tmp)
        if ranking is not None:  # another int8 config's sensitivities, in this config's node names
            result.ranked_on, borrowed = ranking
            own = set(full.quantized_nodes(ctx))
            result.sensitivities = [NodeSensitivity(name, s.output_error, s.gain) for s in borrowed
                                    if (name := full.node_from_proxy(s.node, own)) is not None]
        else:
            result.sensitivities = rank_nodes(full, ctx, subset, fp32_outputs, result.full_int8_output_error,
                                              scratch, tick)
        order = [s.node for s in result.sensitivities]
        if max_kept_fraction is not None:  # past a share of the nodes, int8 has lost what made it worth it
            order = order[: max(1, int(len(order) * max_kept_fraction))]
        order = order[: max_kept if max_kept is not None else None]
        def attempt(count: int) -> bool:
            step_start = time.perf_counter()
            score = _score_candidate(full.with_keep_fp32(order[:count]), ctx, scratch, eval_set.score)
            drop = reference_score - score.value
            fits = drop <= max_drop and accepts(score)
            result.steps.append(SearchStep(list(order[:count]), score.value, drop, time.perf_counter() - step_start,
                                           fits))
            return fits

        best: int | None = None
        if bisect and order:
            # Every build can take a while (NNCF recalibrates): try the most that may be kept first; if even
            # that does not fit, nothing smaller will. Otherwise halve the range down to the fewest that fit.
            tick("keep nodes in fp32", 0, 1)
            if attempt(len(order)):
                best, low = len(order), 0
                while best - low > 1:
                    middle = (low + best) // 2
                    if attempt(middle):
                        best = middle
                    else:
                        low = middle
            tick("keep nodes in fp32", 1, 1)
        else:
            for i in range(len(order)):
                tick("keep nodes in fp32", i, len(order))
                if attempt(i + 1):
                    best = i + 1
                    break
            tick("keep nodes in fp32", len(order), len(order))
        result.fits = best is not None
        kept = list(order[:best]) if best is not None else []

    if result.fits:
        final = full.with_keep_fp32(kept)
        result.variant, result.kept_fp32 = final, list(kept)
        result.files = final.build(ctx)
        result.engine = final.open(ctx.workdir, result.files, ctx.threads)
        chosen = next(step for step in result.steps if step.fits and len(step.kept_fp32) == len(kept))
        result.final_score, result.final_drop = chosen.score, chosen.drop_points
        result.message = (f"{full.name} lost {result.full_int8_drop:.2f} points of {result.metric}; keeping "
                          f"{len(kept)} of {len(result.sensitivities)} quantized nodes in fp32 brings the loss to "
                          f"{result.final_drop:.2f} points (budget {max_drop:g}).")
    else:
        tried = max((len(step.kept_fp32) for step in result.steps), default=0)
        budget = getattr(eval_set, "budget", None)
        if budget is not None and result.full_int8_drop <= max_drop and all(
                step.drop_points <= max_drop for step in result.steps):
            # The points were never what failed (a message naming them read as a contradiction): the difference was.
            result.message = (f"{full.name} lost {result.full_int8_drop:.2f} points of {result.metric}, inside the "
                              f"budget of {max_drop:g}, but its output difference is over the budget (--atol "
                              f"{budget.atol:g}) and stays so with up to {tried} nodes kept in fp32: keep the fp32 "
                              f"variant.")
        else:
            result.message = (f"{full.name} lost {result.full_int8_drop:.2f} points of {result.metric} and no int8 "
                              f"model with up to {tried} nodes kept in fp32 fits the budget of {max_drop:g} points: "
                              f"keep the fp32 variant.")

    if timing_shape is not None:
        engines = {"fp32": fp32_engine, "full int8": full_engine}
        if result.fits and result.kept_fp32:
            engines[result.name] = result.engine
        frame = ctx.encoder.id_frame()
        timing_shape = Shape(timing_shape.batch, min(timing_shape.sequence, ctx.encoder.max_length))
        stats = benchmark_engines(engines, timing_shape, frame, nb_measures, warmup=2)
        result.latency_ms = {name: s.p50_ms for name, s in stats.items()}
        result.timing_shape = str(timing_shape)
        if result.fits and result.kept_fp32:
            cost = result.latency_ms[result.name] / result.latency_ms["full int8"]
            result.message += (f" Speed at {timing_shape}: {result.latency_ms[result.name]:.2f} ms against "
                               f"{result.latency_ms['full int8']:.2f} ms for full int8 ({cost:.2f}x) and "
                               f"{result.latency_ms['fp32']:.2f} ms for fp32.")
    result.search_seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------- conversion hook


@dataclass
class AccuracyOutcome:
    """What `judge_variants` did: the reference score and one search per int8 variant over budget."""

    metric: str
    reference: str
    reference_score: TaskScore
    max_drop: float
    rows: int
    searches: list[SearchResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "reference": self.reference, "reference_score": self.reference_score.to_dict(),
                "max_drop": self.max_drop, "rows": self.rows, "searches": [s.to_dict() for s in self.searches]}


def judge_variants(ctx: BuildContext, rows: list, engines: dict[str, Engine], eval_set: EvalSet, max_drop: float,
                   reference: str = "pytorch-fp32", search: bool = True, progress: Progress | None = None) -> AccuracyOutcome:
    """Score every built variant on the labelled data and hold the reduced-precision ones to `max_drop`.

    `rows` are the conversion's `report.VariantResult`s and `engines` their open engines. Each scored row
    gets `extra["accuracy"]`; a bf16/int8 row over budget becomes "failed" with the reason; for an
    int8 row over budget the search runs and, when it finds a fitting model, a new row (and engine) is
    added. fp32 variants are never failed here: they are the fallback the budget falls back to.
    """
    tick = progress or (lambda step, done, total: None)
    if reference not in engines:
        raise ValueError(f"the reference {reference} has no engine")
    scored = [r for r in rows if r.name in engines]
    scores: dict[str, TaskScore] = {}
    for i, row in enumerate(scored):
        tick("accuracy", i, len(scored))
        scores[row.name] = eval_set.score(engines[row.name])
    tick("accuracy", len(scored), len(scored))
    ref = scores[reference]
    outcome = AccuracyOutcome(eval_set.primary, reference, ref, max_drop, len(eval_set))
    for row in scored:
        score = scores[row.name]
        drop = ref.value - score.value
        row.extra["accuracy"] = {**score.to_dict(), "drop_points": drop}
        if row.precision != "fp32" and drop > max_drop and row.status not in ("skipped", "error"):
            why = f"loses {drop:.2f} points of {eval_set.primary} on {len(eval_set)} labelled rows (budget {max_drop:g})"
            if row.usable:
                row.status, row.reason = "failed", why
            else:  # already outside the verification budget: say both
                row.reason = f"{row.reason}; {why}" if row.reason else why
    if search:
        outcome.searches += refine_failed_int8(ctx, scored, rows, engines, eval_set, max_drop, ref.value, tick,
                           over_budget=lambda row: row.extra.get("accuracy", {}).get("drop_points", 0.0) > max_drop)
    return outcome


def refine_failed_int8(ctx: BuildContext, candidates: list, rows: list, engines: dict[str, Engine], eval_set,
                       max_drop: float, reference_score: float, tick: Progress,
                       over_budget: Callable[[object], bool] = lambda row: True, closest_first: bool = False,
                       share_ranking: bool = False, max_kept_fraction: float | None = None,
                       bisect: bool = False) -> list[SearchResult]:
    """Run the search for the failed int8 rows of `candidates`; a model that fits becomes a new row (and engine).

    `closest_first`: search first the config whose verification agreement is closest to the reference
    (deterministic, unlike a timing; its ranking is the one shared).
    `share_ranking`: rank the nodes once (on the first config searched) and reuse that order for the others.
    """
    from inferforge.report import VariantResult

    todo = []
    for row in candidates:
        config = _config_of(row)
        if row.status != "failed" or config is None or searchable(config) is None or row.name not in engines:
            continue
        if over_budget(row):
            todo.append((row, config))
    if closest_first:
        todo.sort(key=lambda item: -(item[0].check.agreement if item[0].check is not None else 0.0))
    results: list[SearchResult] = []
    for row, config in todo:
        ranked = next((r for r in results if r.sensitivities), None) if share_ranking else None
        ranking = (ranked.ranked_on, ranked.sensitivities) if ranked else None
        result = search_int8(ctx, config, eval_set, max_drop, reference_score, full_engine=engines[row.name],
                             full_files=row.files, fp32_engine=engines.get("ort-fp32"),
                             max_kept_fraction=max_kept_fraction, bisect=bisect, ranking=ranking, progress=tick)
        row.extra["accuracy_search"] = result.to_dict()
        results.append(result)
        if result.fits and result.kept_fp32 and result.name not in engines:
            new = VariantResult(result.name, result.variant.to_dict(), result.variant.precision, True,
                                files=result.files)
            new.extra["accuracy"] = {"metric": result.metric, "value": result.final_score,
                                     "metrics": {result.metric: result.final_score}, "rows": len(eval_set),
                                     "drop_points": result.final_drop}
            new.extra["kept_fp32"] = result.kept_fp32
            new.reason = f"int8 with {len(result.kept_fp32)} node(s) kept in fp32 by the accuracy search"
            rows.append(new)
            engines[result.name] = result.engine
    return results


class VerificationSet:
    """The verification texts as the search's yardstick when there is no labelled data.

    The score is the task agreement with the fp32 reference in percent (100: identical answers), so the
    "drop" is how far a candidate is from the reference; a candidate fits only when it passes the whole
    verification budget (`accepts`: the output difference too), exactly as `convert`'s check judges it.
    """

    def __init__(self, task: TaskSpec, batches: list, reference: list[dict[str, np.ndarray]], budget: AccuracyBudget):
        self.task, self.batches, self.reference, self.budget = task, batches, reference, budget
        self.rows = sum(len(b.arrays["input_ids"]) for b in batches)

    def __len__(self) -> int:
        return self.rows

    @property
    def primary(self) -> str:
        return f"{agreement_metric(self.task, self.reference)} agreement"

    @property
    def max_drop(self) -> float:
        return 100.0 * (1.0 - self.budget.min_agreement)

    def subset(self, size: int) -> "VerificationSet":
        return self

    def outputs(self, engine: Engine) -> list[dict[str, np.ndarray]]:
        return run_batches(engine, self.batches)

    def score(self, engine: Engine) -> TaskScore:
        check = compare(self.task, self.batches, self.reference, self.outputs(engine), self.budget)
        return TaskScore({self.primary: 100.0 * check.agreement, "scaled_diff": check.scaled_diff,
                          "passed": float(check.passed)}, self.primary, self.rows)

    def accepts(self, score: TaskScore) -> bool:
        return bool(score.metrics["passed"])


def _config_of(row) -> Variant | None:
    from inferforge.variants import variant_from_dict

    try:
        return variant_from_dict(row.config)
    except Exception:  # noqa: BLE001 - a row without a rebuildable config is not searchable
        return None
