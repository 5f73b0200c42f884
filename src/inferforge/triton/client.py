"""Send text to a served model over KServe v2 (HTTP or gRPC) and get the task's answers back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from inferforge.errors import UserError
from inferforge.triton.backend_models.text_checks import TOO_MANY_WINDOWS
from inferforge.triton.repository import ANSWER_OUTPUT, PAIR_INPUT, TEXT_INPUT

PROTOCOLS = ("http", "grpc")
# What `inferforge serve` answers while its watchdog restarts the server after a worker crash (the 503 answerer, and
# Triton's own words for a request that reached the dead worker): worth waiting for, within the client's timeout.
RESTARTING_SIGNS = ("restarting after a worker crash", "is not healthy")
RESTART_WAIT_S = 30.0
RESTART_POLL_S = 0.5
DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}


@dataclass
class TritonTextClient:
    """A `tritonclient` connection to the ensemble of a repository written by inferforge.

    `model` None: the ensemble is found through the server's repository index (the model whose
    name plus `_tokenize` is also served).
    """

    url: str | None = None
    protocol: str = "http"
    model: str | None = None
    timeout_s: float = 60.0
    _client: object = field(default=None, init=False, repr=False)
    _config: dict | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise UserError(f"Unknown protocol '{self.protocol}'; choose http or grpc.")
        if not self.timeout_s > 0:
            raise UserError(f"The timeout (--timeout, timeout_s) must be more than 0 seconds (got {self.timeout_s:g}).")
        self.url = _strip_scheme(self.url or DEFAULT_URLS[self.protocol])
        if self.protocol == "http":
            import tritonclient.http as module

            self._client = module.InferenceServerClient(
                self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
            )
        else:
            import tritonclient.grpc as module

            self._client = module.InferenceServerClient(self.url)
        self._module = module

    # ----- answers ------------------------------------------------------------------------
    def predict(self, texts: list[str] | str, pairs: list[str] | str | None = None) -> list:
        """The task's answers, one per text, as `LoadedModel.predict` returns them (in requests of at most
        the model's `max_batch_size` texts, so any number of texts can be sent)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if pairs is not None:
            pairs = [pairs] if isinstance(pairs, str) else list(pairs)
        self._check_model(pairs is not None, answers=True)
        step = self.max_batch_size() or max(1, len(texts))
        answers = []
        for start in range(0, len(texts), step):
            answers.extend(self._answers(texts[start:start + step], pairs[start:start + step] if pairs is not None else None))
        return answers

    def _answers(self, texts: list[str], pairs: list[str] | None) -> list:
        """One request's answers. Question answering reads long contexts in windows, and a request whose contexts
        need more windows than the served model takes in one request is refused: it is sent again in halves."""
        try:
            result = self.infer(texts, pairs)
        except UserError as error:
            if len(texts) < 2 or TOO_MANY_WINDOWS not in str(error):
                raise
            half = len(texts) // 2
            return [*self._answers(texts[:half], pairs[:half] if pairs is not None else None),
                    *self._answers(texts[half:], pairs[half:] if pairs is not None else None)]
        values = result.as_numpy(ANSWER_OUTPUT)
        if values is None:  # a model whose configuration could not be read, answering without it
            raise UserError(f"Model '{self.model_name()}' answered without '{ANSWER_OUTPUT}': "
                            f"{self._not_public_reason()}")
        return [json.loads(value) for value in _strings(values)]

    def max_batch_size(self) -> int:
        """The served model's `max_batch_size` (0 when the configuration cannot be read)."""
        config = self._model_config()
        return int(config.get("max_batch_size", 0) or config.get("maxBatchSize", 0) or 0)

    def infer(self, texts: list[str] | str, pairs: list[str] | str | None = None, outputs: list[str] | None = None):
        """The raw `InferResult` (typed outputs such as `embedding`, `label`, `score` included)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if pairs is not None:
            pairs = [pairs] if isinstance(pairs, str) else list(pairs)
        self._check_model(pairs is not None, answers=False)
        inputs = [self._bytes_input(TEXT_INPUT, texts)]
        if pairs is not None:
            inputs.append(self._bytes_input(PAIR_INPUT, pairs))
        requested = [self._module.InferRequestedOutput(name) for name in outputs] if outputs else None
        deadline = time.monotonic() + min(self.timeout_s, RESTART_WAIT_S)
        while True:
            try:
                return self._client.infer(self.model_name(), inputs, outputs=requested, **self._timeout())
            except Exception as error:
                if (_restarting(error) or self._answered_restarting()) and time.monotonic() + RESTART_POLL_S < deadline:
                    time.sleep(RESTART_POLL_S)  # the server is being restarted: ask again
                    continue
                raise UserError(self._explain(error)) from None

    def model_name(self) -> str:
        if self.model is None:
            self.model = self._find_ensemble()
        return self.model

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the server says it is ready (for scripts that start `inferforge serve` in the background)."""
        import time

        deadline = time.monotonic() + timeout_s
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise UserError(f"No Triton server was ready at {self.url} ({self.protocol}) within {timeout_s:.0f} s.")
            time.sleep(0.5)

    def is_ready(self) -> bool:
        try:
            return bool(self._client.is_server_ready())
        except Exception:
            return False

    def statistics(self, model: str | None = None) -> dict:
        """Triton's inference statistics of one model (batch sizes executed, counts, times)."""
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        stats = self._client.get_inference_statistics(model or self.model_name(), **kwargs)
        return stats["model_stats"][0]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> "TritonTextClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- internals ----------------------------------------------------------------------
    def _bytes_input(self, name: str, values: list[str]):
        array = np.array([[v.encode("utf-8")] for v in values], dtype=np.object_)
        tensor = self._module.InferInput(name, list(array.shape), "BYTES")
        tensor.set_data_from_numpy(array)
        return tensor

    def _timeout(self) -> dict:
        return {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    def _model_config(self) -> dict:
        """The served model's configuration ({} when it cannot be read: the request itself then says why)."""
        if self._config is None:
            try:
                kwargs = {"as_json": True} if self.protocol == "grpc" else {}
                config = self._client.get_model_config(self.model_name(), **kwargs)
                self._config = config.get("config", config) or {}
            except UserError:
                raise
            except Exception:  # noqa: BLE001 - the request itself will say what is wrong
                self._config = {}
        return self._config

    def _check_model(self, with_pairs: bool, *, answers: bool) -> None:
        """One sentence, before sending, when the model cannot take these texts: an internal step of an
        ensemble, pairs to a single-text model, single texts to a model that needs pairs."""
        config = self._model_config()
        if not config:
            return
        inputs = {entry.get("name"): bool(entry.get("optional", False)) for entry in config.get("input", [])}
        outputs = {entry.get("name") for entry in config.get("output", [])}
        if TEXT_INPUT not in inputs or (answers and ANSWER_OUTPUT not in outputs):
            raise UserError(self._not_public_reason())
        name = self.model_name()
        if with_pairs and PAIR_INPUT not in inputs:
            raise UserError(f"Model '{name}' takes single texts, not text pairs; leave out --pair.")
        if not with_pairs and PAIR_INPUT in inputs and not inputs[PAIR_INPUT]:
            raise UserError(f"Model '{name}' needs a text pair for every text (question, context): give one --pair "
                            "per text, or question<TAB>context lines with --file.")

    def _not_public_reason(self) -> str:
        name = self.model_name()
        try:
            served = self._served_ensembles()
        except UserError:
            served = []
        listed = ", ".join(served) or "none"
        if any(name.startswith(f"{ensemble}_") for ensemble in served):
            return f"'{name}' is an internal step, not a model that takes text; served: {listed}."
        return (f"'{name}' is not a model inferforge sends text to (it lacks the '{TEXT_INPUT}' input or the "
                f"'{ANSWER_OUTPUT}' output); served: {listed}.")

    def _served_ensembles(self) -> list[str]:
        """The inferforge models the server serves (those whose name plus `_tokenize` is also served)."""
        deadline = time.monotonic() + min(self.timeout_s, RESTART_WAIT_S)
        while True:
            try:
                # The statistics API lists the loaded models; the repository index needs the admin key.
                kwargs = {"as_json": True} if self.protocol == "grpc" else {}
                index = self._client.get_inference_statistics("", **kwargs).get("model_stats", [])
                break
            except Exception as error:
                if (_restarting(error) or self._answered_restarting()) and time.monotonic() + RESTART_POLL_S < deadline:
                    time.sleep(RESTART_POLL_S)  # the server is being restarted: ask again, as `infer` does
                    continue
                if not self.is_ready():
                    raise UserError(self._explain(error)) from None
                raise UserError(f"Could not list the served models ({_message(error)}); name one with --model.") from None
        names = {entry["name"] for entry in index}
        return sorted(n for n in names if f"{n}_tokenize" in names)

    def _find_ensemble(self) -> str:
        ensembles = self._served_ensembles()
        if len(ensembles) != 1:
            found = ", ".join(ensembles) or "none"
            raise UserError(f"The server at {self.url} serves {found} inferforge models; name one with --model.")
        return ensembles[0]

    def _answered_restarting(self) -> bool:
        """Whether the HTTP port answers the watchdog's restarting 503 (a request cut by the restart, such as one on a
        connection the old server still held, fails with a connection error rather than that 503)."""
        if self.protocol != "http":
            return False
        import http.client

        host, _, port = self.url.rpartition(":")
        connection = http.client.HTTPConnection(host or self.url, int(port) if port.isdigit() else 80, timeout=2)
        try:
            connection.request("GET", "/v2/health/ready")
            reply = connection.getresponse()
            return reply.status == 503 and any(sign in reply.read().decode("utf-8", "replace")
                                               for sign in RESTARTING_SIGNS)
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            connection.close()

    def _explain(self, error: Exception) -> str:
        if _restarting(error):
            return (f"The server at {self.url} is restarting after a worker crash and did not answer within "
                    f"{min(self.timeout_s, RESTART_WAIT_S):.0f} s; retry in a few seconds ({_message(error)}).")
        if not self.is_ready():
            return f"No Triton server answers at {self.url} ({self.protocol}); start one with `inferforge serve DIR`."
        message = f"The server at {self.url} refused the request: {_message(error)}"
        if TOO_MANY_WINDOWS in message:  # a context too long for the two-step pipeline (the tokenizer model's windows)
            message += " (`inferforge serve --tokenize-in-model` reads every window of any context)"
        return message


def _restarting(error: Exception) -> bool:
    message = _message(error)
    return any(sign in message for sign in RESTARTING_SIGNS)


def _message(error: Exception) -> str:
    message = getattr(error, "message", None)
    return (message() if callable(message) else str(error)).strip()


def _strip_scheme(url: str) -> str:
    for scheme in ("http://", "https://", "grpc://"):
        if url.startswith(scheme):
            return url[len(scheme):].rstrip("/")
    return url.rstrip("/")


def _strings(array: np.ndarray) -> list[str]:
    return [bytes(v).decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v) for v in array.reshape(-1)]
