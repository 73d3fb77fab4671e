"""Remote trials as OpenAI / Azure OpenAI fine-tuning jobs.

One trial is one job: data checked and priced locally first (``prepare``), files uploaded once
per dataset digest, the job id saved on the trial at once (a restarted sweep reattaches instead
of paying twice), then the job is polled until it ends. ``train`` is thread-safe, so a study can
run ``openai.max_concurrent_jobs`` trials at a time.

An interrupted trial (Ctrl-C) leaves its job running on purpose: the retry trial reattaches.
Azure serves a fine-tuned model only through a deployment, which harness does not create (that
is the Azure management API, with Azure credentials); name one with ``openai.azure_deployment``
to get answers, otherwise an Azure trial returns no ``answer`` function.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import openai
import optuna

from harness.answering import Answerer
from harness.backends.openai.jobs import (
    Caller,
    FileStore,
    Sleep,
    check_credentials,
    job_payload,
    job_seed,
    jobs_client,
    make_answerer,
    parse_result_file,
    scrub_secrets,
    suffix_for,
)
from harness.backends.openai.preflight import Preflight, preflight
from harness.backends.openai.training_file import METHOD_KIND, DataError, RemoteDataset, load_dataset
from harness.backends.openai.watch import JobWatcher
from harness.backends.protocol import TrainResult, TrialContext, TrialStopped
from harness.config import ConfigError, StudyConfig
from harness.retry import Clock
from harness.search_space import TrialParams
from harness.settings.openai import by_deployment

ATTR_JOB = "resume.openai_job_id"
ATTR_COST = "estimated_cost_usd"
VALIDATION_METRICS = ("eval_loss", "eval_accuracy")


def _method_choices(config: StudyConfig) -> list[str]:
    spec = config.search_space.method
    return [str(m) for m in spec] if isinstance(spec, list) else [str(spec)]


def check_setup(config: StudyConfig, dataset: RemoteDataset, estimate: Preflight) -> None:
    """Config problems a remote run would only discover after paying: raise ConfigError."""
    settings = config.openai
    problems = []
    for method in _method_choices(config):
        if METHOD_KIND.get(method) != dataset.kind:
            wanted = "supervised" if dataset.kind == "chat" else "dpo"
            problems.append(f"search_space.method {method!r} cannot train on {dataset.kind} data ({wanted})")
    if not dataset.validation and config.objective.metric in VALIDATION_METRICS:
        problems.append(
            f"objective.metric {config.objective.metric!r} needs data.validation_file or data.validation_split"
        )
    if settings.budget_usd is not None and estimate.price_per_mtok is None:
        problems.append(
            f"openai.budget_usd is set but openai.training_price_per_mtok has no price for {config.base_model!r}"
        )
    if problems:
        raise ConfigError("\n".join(["openai backend:", *(f"  {p}" for p in problems)]))
    if len(dataset.train) < settings.min_train_examples:
        needed = settings.min_train_examples
        raise DataError([f"{len(dataset.train)} training examples; the service needs at least {needed}"])


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """API refusals end the trial with the service's error code as a tag."""
    try:
        yield
    except openai.AuthenticationError as error:
        # The service echoes part of a rejected key in its message: keep none of it.
        raise TrialStopped(
            f"authentication failed (HTTP {error.status_code}): check the API key variable",
            stop_study=True,
            code=str(error.code or "authentication_error"),
        ) from None
    except openai.APIStatusError as error:
        code = str(error.code or f"http_{error.status_code}")
        message = scrub_secrets(error.message)
        raise TrialStopped(f"API error {error.status_code}: {message}", code=code) from None


class OpenAIBackend:
    """The Backend protocol over the fine-tuning API (``backend: openai`` or ``azure_openai``)."""

    def __init__(
        self,
        config: StudyConfig,
        *,
        http_client: Any = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ):
        self.config = config
        self.settings = config.openai
        self.sleep = sleep
        self.call = Caller(self.settings, sleep, clock)
        self._http_client = http_client  # tests pass httpx.Client(transport=MockTransport(...))
        self._lock = threading.Lock()
        self._budget_lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        self._files: FileStore | None = None
        self._loaded: tuple[RemoteDataset, Preflight] | None = None

    # -- local work: no network ---------------------------------------------------------------

    def load(self) -> tuple[RemoteDataset, Preflight]:
        """Checked data and its preflight, computed once."""
        with self._lock:
            if self._loaded is None:
                data = self.config.data
                dataset = load_dataset(
                    data.train_file,
                    data.validation_file,
                    data.validation_split,
                    data.shuffle_seed,
                    self.config.system_prompt,
                )
                estimate = preflight(dataset, self.config.base_model, self.settings)
                check_setup(self.config, dataset, estimate)
                self._loaded = (dataset, estimate)
            return self._loaded

    def prepare(self) -> dict[str, Any]:
        """Check data, config and credentials; no request is made. Returns dataset facts."""
        dataset, estimate = self.load()
        check_credentials(self.config.backend, self.settings.api_version)
        facts: dict[str, Any] = {"dataset_digest": dataset.digest, **estimate.facts()}
        if estimate.price_per_mtok is not None:
            facts["est_cost_per_epoch_usd"] = round(estimate.cost_usd(1) or 0.0, 4)
        return facts

    def dry_run(self, params: Sequence[TrialParams]) -> str:
        """The preflight and the job requests the sampled trials would send; makes no request."""
        dataset, estimate = self.load()
        drawn = list(params)
        files = {w: f"<file id of {self._filename(dataset, w)}>" for w in ("train", "validation")}
        if not dataset.validation:
            files.pop("validation")
        lines = ["preflight (no request made):", estimate.render(), ""]
        total = 0.0
        budget = self.settings.budget_usd
        for number, params in enumerate(drawn):
            cost = estimate.cost_usd(params.epochs)
            total += cost or 0.0
            over = " (over budget: the study would stop here)" if budget and total > budget else ""
            shown = f"${cost:.4f}" if cost is not None else "unknown (no price)"
            lines.append(
                f"trial {number}: {estimate.trained_tokens(params.epochs)} trained tokens, estimated {shown}{over}"
            )
            payload = job_payload(
                self.config.base_model,
                params,
                files,
                suffix_for(self._suffix_prefix(), number),
                self.settings.seed,
            )
            lines.append("POST /fine_tuning/jobs " + json.dumps(payload, indent=2))
        limit = f" of budget ${budget:.2f}" if budget else " (no budget set)"
        lines.append(f"estimated total for {len(drawn)} trial(s): ${total:.4f}{limit}")
        return "\n".join(lines)

    # -- what a remote service cannot offer: no local tokenizer, no untuned model to run here -----

    def token_counter(self) -> None:
        return None  # evaluation estimates answer budgets from characters

    def base_answerer(self) -> None:
        return None  # no baseline run: the base model is not evaluated

    def baseline_metrics(self) -> dict[str, float]:
        return {}

    # -- remote work ---------------------------------------------------------------------------

    @property
    def client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                self._client = jobs_client(self.config.backend, self.settings, self._http_client)
                self._files = FileStore(self._client, self.call, self.sleep, self.settings.poll_interval_s)
            return self._client

    def train(self, params: TrialParams, ctx: TrialContext) -> TrainResult:
        dataset, estimate = self.load()
        client = self.client
        with api_errors():
            job = self._attach_or_create(params, ctx, dataset, estimate)
            watcher = JobWatcher(client, self.call, ctx, self.settings, self.sleep)
            try:
                job = watcher.wait(job)
            except optuna.TrialPruned:
                self._cancel(job.id)
                raise
            return self._result(job, ctx, watcher, estimate)

    def _suffix_prefix(self) -> str:
        return self.settings.suffix or self.config.study_name

    @staticmethod
    def _filename(dataset: RemoteDataset, which: str) -> str:
        return f"harness-{dataset.digest}-{which}.jsonl"

    def _attach_or_create(
        self, params: TrialParams, ctx: TrialContext, dataset: RemoteDataset, estimate: Preflight
    ) -> Any:
        job_id = ctx.attrs.get(ATTR_JOB)
        if job_id:  # a retry of an interrupted trial: its job is already paid for
            # Its state is learnt by polling, which outlives an API outage (JobWatcher.wait).
            return SimpleNamespace(id=str(job_id), status="unknown")
        self._reserve_budget(params, ctx, estimate)
        try:
            job = self._create_job(params, ctx, dataset)
        except TrialStopped as stopped:
            if stopped.resumable:  # no job was made: its retry reserves the budget again
                ctx.set_attr(ATTR_COST, 0.0)
            raise
        ctx.set_attr(ATTR_JOB, job.id)
        return job

    def _create_job(self, params: TrialParams, ctx: TrialContext, dataset: RemoteDataset) -> Any:
        """Upload the data (once per dataset) and create the trial's job."""
        assert self._files is not None
        files = {"train": self._files.file_id(self._filename(dataset, "train"), dataset.jsonl("train"))}
        if dataset.validation:
            files["validation"] = self._files.file_id(
                self._filename(dataset, "validation"), dataset.jsonl("validation")
            )
        payload = job_payload(
            self.config.base_model,
            params,
            files,
            suffix_for(self._suffix_prefix(), ctx.number),
            job_seed(self.settings.seed, ctx.repeat),
        )
        ctx.log_text(json.dumps(payload, indent=2), "openai/job_request.json")
        return self._create(payload, ctx.number)

    def _reserve_budget(self, params: TrialParams, ctx: TrialContext, estimate: Preflight) -> None:
        """Refuse a trial whose estimate would pass the budget; record it otherwise.

        Check-and-record is atomic between this process's parallel trials (the thread lock) and
        between every worker of the study (a lock held in the study's storage), so N workers
        cannot each see the same spend and overspend the budget together.
        """
        cost = estimate.cost_usd(params.epochs)
        budget = self.settings.budget_usd
        with self._budget_lock, ctx.exclusive("openai-budget"):
            if budget is not None and cost is not None:
                spent = ctx.spent(ATTR_COST)
                if spent + cost > budget:
                    raise TrialStopped(
                        f"trial {ctx.number} is estimated at ${cost:.4f}; with ${spent:.4f} "
                        f"already committed that passes openai.budget_usd ${budget:.2f}",
                        stop_study=True,
                        code="budget_exceeded",
                    )
            if cost is not None:
                ctx.set_attr(ATTR_COST, cost)

    def _create(self, payload: dict[str, Any], trial: int) -> Any:
        """jobs.create, retried without ever creating a second job for one trial.

        A 5xx or lost connection may hide a job that was created; on OpenAI a token in the
        job's metadata lets a retry find it first (Azure has no metadata filter to ask).
        """
        jobs = self.client.fine_tuning.jobs
        token = uuid.uuid4().hex
        if self.config.backend == "openai":
            payload = {**payload, "metadata": {"harness_trial": str(trial), "harness_token": token}}
        attempts = 0

        def attempt(**body: Any) -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and "metadata" in body:
                found = jobs.list(metadata={"harness_token": token}, limit=1).data
                if found:
                    return found[0]
            return jobs.create(**body)

        return self.call(attempt, **payload)

    def _cancel(self, job_id: str) -> None:
        # Already finished, or unreachable: the trial is pruned either way.
        with contextlib.suppress(openai.APIError, TrialStopped):
            self.call(self.client.fine_tuning.jobs.cancel, job_id)

    def _result(self, job: Any, ctx: TrialContext, watcher: JobWatcher, estimate: Preflight) -> TrainResult:
        ctx.log_text(json.dumps(job.model_dump(mode="json"), indent=2), "openai/job.json")
        if job.status == "failed":
            error = job.error
            code = (error.code if error else None) or "job_failed"
            message = (error.message if error else None) or "no error message"
            raise TrialStopped(f"fine-tuning job {job.id} failed: {message}", code=code)
        if job.status == "cancelled":
            raise TrialStopped(f"fine-tuning job {job.id} was cancelled", run_status="KILLED", code="cancelled")
        for file_id in job.result_files or []:
            content = self.call(self.client.files.content, file_id).content
            watcher.record(parse_result_file(content), prune=False)
        metrics = watcher.final_metrics()
        if job.trained_tokens is not None:
            metrics["trained_tokens"] = float(job.trained_tokens)
            if estimate.price_per_mtok is not None:
                metrics["cost_usd"] = job.trained_tokens * estimate.price_per_mtok / 1e6
        params = {
            "openai_job_id": job.id,
            "fine_tuned_model": job.fine_tuned_model,
            "openai_training_file": job.training_file,
            "openai_validation_file": job.validation_file or "",
        }
        return TrainResult(metrics, params, remote_model=job.fine_tuned_model, answer=self._answerer(job, ctx))

    def _answerer(self, job: Any, ctx: TrialContext) -> Answerer | None:
        model = job.fine_tuned_model
        if by_deployment(self.config.backend):  # Azure needs a deployment of this model first (module docs)
            model = self.settings.deployment(self.config.backend, ctx.number, job.id, self.config.study_name)
        if not model:
            return None
        return make_answerer(self.client, self.call, model, self.config.evaluation.max_new_tokens)
