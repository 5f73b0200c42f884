"""OpenVINO's static-shape compilations (a speed setting) answer exactly what the dynamic model answers."""

import numpy as np

from inferforge.engines.openvino import STATIC_AFTER_CALLS, STATIC_MAX_TOKENS, OpenVinoEngine
from inferforge.tokenization import TextEncoder

# fp32 kernels: on a CPU with bf16 (AVX512-BF16, AMX) OpenVINO's default precision is bf16, whose rounding differs
# between a static and a dynamic compilation; these tests are about which compilation runs, not about precision.
F32 = "f32"


def test_repeated_small_shape_gets_a_static_compilation_with_the_same_outputs(converted_tiny):
    folder = converted_tiny("feature-extraction")
    engine = OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32)
    encoder = TextEncoder.from_dir(folder / "tokenizer")
    arrays = encoder.encode(["A short sentence.", "Another one, a little longer than the first one."]).arrays
    dynamic = engine.run(arrays)["sentence_embedding"]
    assert engine.static_shapes == ()
    for _ in range(STATIC_AFTER_CALLS - 1):
        engine.run(arrays)
    # The third call starts the static compilation on its own thread and is answered without waiting for it.
    np.testing.assert_allclose(engine.run(arrays)["sentence_embedding"], dynamic, rtol=1e-4, atol=1e-5)
    compiling = engine._compiling
    assert compiling is not None and compiling.is_alive()
    engine.settle()
    assert engine.static_shapes == (tuple(arrays[n].shape for n in engine.input_names),)
    static = engine.run(arrays)["sentence_embedding"]
    np.testing.assert_allclose(static, dynamic, rtol=1e-4, atol=1e-5)

    # Another shape still runs (on the dynamic model) and answers the same as on its own.
    other = encoder.encode(["One more sentence of a different length, to change the padded shape."]).arrays
    alone = OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32).run(other)["sentence_embedding"]
    np.testing.assert_allclose(engine.run(other)["sentence_embedding"], alone, rtol=1e-4, atol=1e-5)
    assert len(engine.static_shapes) == 1


def test_calls_while_a_static_compilation_runs_are_answered_by_the_dynamic_model(converted_tiny):
    """Compiling a shape statically took 0.55-0.7 s on MiniLM: done inside a call, it held every request queued
    behind it (served at concurrency 4: 23-46 requests/s against 129-155 at concurrency 1). Calls go on meanwhile."""
    folder = converted_tiny("feature-extraction")
    engine = OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32)
    encoder = TextEncoder.from_dir(folder / "tokenizer")
    arrays = encoder.encode(["Calls go on while the compiler works."]).arrays
    expected = engine.run(arrays)["sentence_embedding"]
    for _ in range(STATIC_AFTER_CALLS - 1):
        engine.run(arrays)
    answered = 0
    while engine._compiling is not None:
        np.testing.assert_allclose(engine.run(arrays)["sentence_embedding"], expected, rtol=1e-4, atol=1e-5)
        answered += 1
    assert answered > 0  # calls were answered during the compilation
    assert len(engine.static_shapes) == 1
    np.testing.assert_allclose(engine.run(arrays)["sentence_embedding"], expected, rtol=1e-4, atol=1e-5)

    # The synchronous mode (background_static=False) compiles inside the third call.
    waiting = OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32, background_static=False)
    for _ in range(STATIC_AFTER_CALLS):
        waiting.run(arrays)
    assert waiting._compiling is None and len(waiting.static_shapes) == 1


def test_large_shapes_stay_on_the_dynamic_model(converted_tiny):
    folder = converted_tiny("feature-extraction")
    engine = OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32)
    batch = STATIC_MAX_TOKENS // 8 + 1
    ids = np.full((batch, 8), 5, dtype=np.int64)
    arrays = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    for _ in range(STATIC_AFTER_CALLS + 1):
        engine.run(arrays)
    assert engine.static_shapes == ()


def test_a_large_batch_split_across_streams_answers_like_one_request(converted_tiny):
    """From SPLIT_MIN_TOKENS tokens, the batch runs as one slice per stream; rows keep their order."""
    from inferforge.engines.openvino import SPLIT_MIN_TOKENS

    folder = converted_tiny("feature-extraction")
    encoder = TextEncoder.from_dir(folder / "tokenizer")
    texts = [f"Sentence number {i} talks about {'rain' if i % 3 else 'the sea'} for {i % 7 + 1} words." for i in range(40)]
    sequence = SPLIT_MIN_TOKENS // len(texts) + 1
    arrays = encoder.encode(texts, pad_to=sequence).arrays
    assert arrays["input_ids"].size >= SPLIT_MIN_TOKENS
    split = OpenVinoEngine(folder / "model.onnx", threads=2, split_streams=3, precision=F32)
    single = OpenVinoEngine(folder / "model.onnx", threads=2, split_streams=1, precision=F32)
    got = split.run(arrays)["sentence_embedding"]
    assert split._queue is not None and single._queue is None  # the split path really ran
    np.testing.assert_allclose(got, single.run(arrays)["sentence_embedding"], rtol=1e-4, atol=1e-5)
    # Small batches take the single-request path.
    small = encoder.encode(texts[:3]).arrays
    np.testing.assert_allclose(split.run(small)["sentence_embedding"], single.run(small)["sentence_embedding"],
                               rtol=1e-4, atol=1e-5)


def test_calls_from_several_threads_all_get_their_own_answer(converted_tiny):
    """One infer request cannot run two calls at once; callers on several threads take turns."""
    from concurrent.futures import ThreadPoolExecutor

    folder = converted_tiny("feature-extraction")
    engine = OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32)
    encoder = TextEncoder.from_dir(folder / "tokenizer")
    texts = [f"Thread test sentence {i} with {'some' if i % 2 else 'a few more'} words." for i in range(24)]
    def embed(text):  # a batch big enough that calls overlap
        return engine.run(encoder.encode([text] * 16, pad_to=60).arrays)["sentence_embedding"]

    expected = [embed(t) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(embed, texts))
    for want, have in zip(expected, got):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5)


def test_varied_shapes_stop_new_static_compilations(converted_tiny):
    """Shapes that keep changing (dynamic batching) would compile and drop models forever: after
    STATIC_MAX_DROPPED drops the engine stops compiling new shapes, and still answers them right."""
    from inferforge.engines.openvino import STATIC_CACHE_SIZE, STATIC_MAX_DROPPED

    folder = converted_tiny("feature-extraction")
    engine = OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32)
    reference = OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32)
    compiled = set()
    for length in range(4, 4 + STATIC_CACHE_SIZE + STATIC_MAX_DROPPED + 3):
        ids = np.full((1, length), 7, dtype=np.int64)
        arrays = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        for _ in range(STATIC_AFTER_CALLS):
            out = engine.run(arrays)["sentence_embedding"]
        engine.settle()
        compiled.update(engine.static_shapes)
        np.testing.assert_allclose(out, reference.run(arrays)["sentence_embedding"], rtol=1e-4, atol=1e-5)
    assert len(compiled) == STATIC_CACHE_SIZE + STATIC_MAX_DROPPED
    assert len(engine.static_shapes) == STATIC_CACHE_SIZE


def test_a_model_that_compiles_only_with_dynamic_shapes_keeps_answering(tmp_path):
    """A Funnel model reshaped to a static 1x16 stopped OpenVINO in ConvertMatMulToFC (after its dynamic compilation
    had answered), and the exception ended `inferforge convert` with a traceback at the benchmark's third call. The
    engine now stays on the dynamic model, and the variant is verified, timed and can be selected like any other."""
    import inferforge
    from tiny_models import build_tiny_model

    model = build_tiny_model(tmp_path / "funnel", "funnel", "text-classification")
    result = inferforge.convert(str(model), "text-classification", tmp_path / "out", shapes="1x16", nb_measures=4,
                                variants="ort-fp32,openvino-fp32")
    rows = {row["name"]: row for row in result.report["variants"]}
    assert rows["openvino-fp32"]["status"] in ("passed", "selected"), rows["openvino-fp32"]
    assert rows["openvino-fp32"]["latency"]["1x16"]["p50_ms"] > 0

    engine = OpenVinoEngine(tmp_path / "out" / "model.onnx", threads=1, precision=F32)
    encoder = TextEncoder.from_dir(tmp_path / "out" / "tokenizer")
    arrays = encoder.encode(["Paris is the capital of France.", "Meh."]).arrays
    first = engine.run(arrays)["logits"]
    for _ in range(STATIC_AFTER_CALLS + 1):
        np.testing.assert_array_equal(engine.run(arrays)["logits"], first)
    engine.settle()
    assert engine.static_failed and engine.static_shapes == ()
    np.testing.assert_array_equal(engine.run(arrays)["logits"], first)


def test_a_script_that_ends_while_a_static_compilation_runs_exits_cleanly(converted_tiny, tmp_path):
    """A script's third call of one shape starts a static compilation; on a daemon thread, the process ending during
    it aborted ("terminate called without an active exception", exit code 134). The interpreter now waits for it."""
    import subprocess
    import sys

    folder = converted_tiny("feature-extraction")
    script = tmp_path / "three_calls.py"
    script.write_text(
        "import sys\nfrom inferforge.engines.openvino import OpenVinoEngine\nfrom inferforge.tokenization import "
        "TextEncoder\nengine = OpenVinoEngine(sys.argv[1] + '/model.onnx', threads=1, precision='f32')\n"
        "arrays = TextEncoder.from_dir(sys.argv[1] + '/tokenizer').encode(['A short sentence.']).arrays\n"
        "for _ in range(3):\n    engine.run(arrays)\nassert engine._compiling is not None\nprint('answered')\n")
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stdout.strip() == "answered", (done.returncode, done.stderr[-500:])


def test_first_calls_of_engines_on_several_threads_run_one_at_a_time(converted_tiny, monkeypatch):
    """Two engines (or two served instances in one interpreter) making their first call at once deadlocked now and
    then inside OpenVINO (a C++ static initialized with the GIL released and taken back). The first call of each way
    of calling runs alone in the process; later calls overlap as before."""
    import threading
    import time

    import inferforge.engines.openvino as ov_engine

    monkeypatch.setattr(ov_engine, "_FIRST_CALLS_DONE", set())
    folder = converted_tiny("feature-extraction")
    arrays = TextEncoder.from_dir(folder / "tokenizer").encode(["A short sentence."]).arrays
    engines = [OpenVinoEngine(folder / "model.onnx", threads=1, precision=F32, static_shapes=False) for _ in range(2)]
    running, most = [0], []
    count = threading.Lock()

    class Watched:  # the engine's infer request, counting the calls inside it at once
        def __init__(self, request):
            self.request = request

        def infer(self, *args, **kwargs):
            with count:
                running[0] += 1
                most.append(running[0])
            time.sleep(0.3)
            try:
                return self.request.infer(*args, **kwargs)
            finally:
                with count:
                    running[0] -= 1

    for engine in engines:
        engine.request = Watched(engine.request)
    barrier = threading.Barrier(2)

    def calls(engine, rounds):
        barrier.wait()
        for _ in range(rounds):
            engine.run(arrays)

    threads = [threading.Thread(target=calls, args=(engine, 1)) for engine in engines]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert max(most) == 1, most  # the two first calls did not overlap
    most.clear()
    threads = [threading.Thread(target=calls, args=(engine, 2)) for engine in engines]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert max(most) == 2, most  # later calls do
