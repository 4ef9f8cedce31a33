"""The local supervisor: bring the stack up, play AWS's runtime roles, stop cleanly.

Start-up, in order (each step prints one line):

1. bind the webhook port, start the embedded AWS endpoint (a busy port is one error line);
2. deploy the same templates through ``gip.cli.deploy`` (``local=True``), read back the wiring,
   stop moto's own Lambda runtime, create the Organization and its member accounts
   (``gip.local.aws_setup``);
3. append the saved event log back (``state``), then play the runtime: the stream mapping
   (``streams``), the SQS mappings, the schedules on a compressed clock, ECS (``workers``),
   API Gateway (``apigw``); the member accounts are registered by reconcile, as in AWS
   (``knobs``: GIP_LOCAL_* variables that shorten the stream retries and two schedules);
4. once every account is AVAILABLE, ``/healthz`` answers 200 and the banner is printed.

Shutdown (Ctrl-C / SIGTERM): stop taking webhooks, SIGTERM the workers (they give their work
back while the endpoint and pollers still run), stop the pollers, save the log, stop the endpoint.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import json
import logging
import os
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import boto3

from gip.adapters.github.token import check_app
from gip.config import Settings
from gip.errors import GipError
from gip.isolation import detect_mode
from gip.local import aws_setup, health, knobs, samples, state
from gip.local.apigw import Gateway
from gip.local.console import (
    QuietReporter,
    banner_lines,
    configure_logging,
    ensure_free,
    isolation_notice,
)
from gip.local.counting import CountingApp
from gip.local.embedded_aws import EmbeddedAws
from gip.local.lambdas import Function, merged_environment
from gip.local.printer import Printer, StdoutRouter
from gip.local.schedules import Scheduler, build_jobs
from gip.local.sqs_mappings import QueuePoller, compress_visibility, concurrency_of, queue_url
from gip.local.streams import StreamPoller, sqs_parker
from gip.local.workers import Workers, parent_credentials, worker_environment

log = logging.getLogger("local")
ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("Gatekeeper", "Issue", "Notifier", "Cleanup", "Capacity", "OrgEvents")
PASSED_TO_FUNCTIONS = ("GITHUB_API_URL", "GITHUB_TOKEN", "GITHUB_WEBHOOK_SECRET", "BOT_LOGIN",
                       "GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_PRIVATE_KEY_FILE")


@dataclass
class LocalOptions:
    org: str
    prefix: str = "github-issue-processor"
    region: str = "us-east-1"
    host: str = "127.0.0.1"
    port: int = 8080
    aws_port: int = 4566
    accounts: int = 3
    workers: int = 2
    labels: tuple[str, ...] = ("needs-reproduction",)
    bot_login: str = ""
    count_calls: bool = False
    state_dir: Path = ROOT / ".local"  # logs, run files, local-stack.json
    event_log: Path = ROOT / ".local" / "state" / "events.jsonl"  # kept across restarts (gip.local.state)
    fresh: bool = False
    ready_timeout_s: float = 90.0


class Supervisor:
    def __init__(self, opts: LocalOptions, *, out: TextIO | None = None) -> None:
        self.opts = opts
        self.printer = Printer(out)
        self.requested = threading.Event()  # Ctrl-C / SIGTERM
        self.halt = threading.Event()  # pollers and schedules stop
        self.ready = False
        self.phase = "starting"
        self.counter: CountingApp | None = None
        self.aws: EmbeddedAws | None = None
        self.gateway: Gateway | None = None
        self.workers: Workers | None = None
        self.threads: list[threading.Thread] = []
        self.stream_pollers: list[StreamPoller] = []
        self.outputs: dict[str, str] = {}
        self.state_file = opts.state_dir / "local-stack.json"
        self.saved: state.Saved | None = None
        self.may_save = False  # only once the saved log is restored (or there was none)
        self.knobs = knobs.Knobs()

    # ------------------------------------------------------------------ lifecycle
    def say(self, text: str) -> None:
        self.printer.line(text)

    def run(self) -> int:
        try:
            self._start()
            gc.freeze()  # the deploy's many objects (moto's models) are kept: later collections skip them
            if not self.requested.is_set():
                self._wait_ready()
            while not self.requested.wait(1.0):
                self._watch_workers()
            return 0
        finally:
            self._shutdown()

    def _start(self) -> None:
        o = self.opts
        self.gateway = Gateway(o.host, o.port, invoke=self._invoke_webhook, health=self.health,
                               stats=self._stats if o.count_calls else None, on_request=self.say,
                               report=self._report)
        wrap = self._wrap if o.count_calls else None
        notice = isolation_notice(detect_mode()[0])  # the workers decide the same way
        if notice:
            self.say(notice)
        self.knobs = knobs.from_env(os.environ)  # a bad value: one line, exit 1
        app = check_app(Settings.from_env())  # a bad key or an unknown App id: one line, exit 1
        if app:
            self.say(app.line)
            os.environ.setdefault("BOT_LOGIN", app.bot_login)  # the App comments as <slug>[bot]
        if o.fresh:
            aside = state.set_aside(o.event_log)
            if aside:
                self.say(f"--fresh: starting empty; the saved event log is kept as {aside}")
        else:
            self.saved = state.load(o.event_log)  # unreadable: one line, refuse (before deploying)
        ensure_free(o.host, o.aws_port, flag="--aws-port")
        self.aws = EmbeddedAws(o.host, o.aws_port, wrap=wrap).start()
        endpoint = self.aws.url
        self._environment(endpoint)
        self.say(f"AWS endpoint (moto) on {endpoint}; deploying the templates ...")
        started = time.monotonic()
        from gip.cli.deploy import DeployOptions, deploy

        self.outputs = deploy(DeployOptions(
            org_id=o.org, prefix=o.prefix, region=o.region, endpoint_url=endpoint,
            labels=list(o.labels), local=True, yes=True, vendor_deps=False, bot_login=o.bot_login,
            github_api_url=os.environ.get("GITHUB_API_URL") or "https://api.github.com",
            poll=0.2), QuietReporter(self.say))
        self.say(f"deployed in {time.monotonic() - started:.1f}s")
        if self.requested.is_set():
            return
        self._play(endpoint)

    def _wrap(self, app: Any) -> Any:
        self.counter = CountingApp(app)
        return self.counter

    def _environment(self, endpoint: str) -> None:
        """This process plays every function: the endpoint and fake credentials for all."""
        os.environ.pop("AWS_PROFILE", None)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": self.opts.region,
                           "AWS_DEFAULT_REGION": self.opts.region, "GIP_PREFIX": self.opts.prefix})

    def _play(self, endpoint: str) -> None:
        o, out = self.opts, self.outputs
        sess = boto3.Session(region_name=o.region)
        client = lambda name: sess.client(name, endpoint_url=endpoint)  # noqa: E731
        account = client("sts").get_caller_identity()["Account"]
        wiring = aws_setup.read_wiring(client, outputs=out, account=account, region=o.region)
        aws_setup.stop_moto_lambda(client("lambda"), endpoint, wiring.mappings)
        sqs = client("sqs")
        aws_setup.check_queue_keeps_messages(sqs, out["GatekeeperQueueUrl"])
        compress_visibility(sqs, [out[f"{name}QueueUrl"] for name in QUEUES])
        self.say(f"moto's Lambda runtime off; {len(wiring.mappings)} event source mapping(s) disabled "
                 f"(checked: a message sent stays in its queue) and played here with the real handlers")
        trust = aws_setup.processing_trust_policy(worker_role_arn=out["WorkerTaskRoleArn"],
                                                  external_id=out["ExternalId"], org_id=o.org)
        members = aws_setup.create_organization(
            client, accounts=o.accounts, prefix=o.prefix, trust_policy=trust,
            role_name=out["ProcessingRoleName"], member_client=self._member_client(client("sts"), endpoint))
        self.say(f"Organization with {len(members)} member account(s): {' '.join(members)} "
                 f"(reconcile registers them)")
        functions = wiring.functions
        os.environ.update(merged_environment(functions.values()))
        for mapping in wiring.mappings:
            handler = mapping.function.load()
            if mapping.kind == "dynamodb":
                thread: threading.Thread = StreamPoller(
                    client=client("dynamodbstreams"), function=mapping.function, handler=handler,
                    stream_arn=mapping.source_arn, region=o.region, batch_size=mapping.batch_size,
                    stop=self.halt, on_event=self.printer.event, retry_s=self.knobs.stream_retry_s,
                    max_retries=self.knobs.max_retries(mapping.max_retries),
                    park=sqs_parker(sqs, mapping.on_failure_arn))
                self.stream_pollers.append(thread)  # type: ignore[arg-type]
            else:
                thread = QueuePoller(sqs=client("sqs"), function=mapping.function, handler=handler,
                                     queue_arn=mapping.source_arn, region=o.region,
                                     batch_size=mapping.batch_size, stop=self.halt,
                                     concurrency=concurrency_of(mapping.max_concurrency,
                                                                queue_arn=mapping.source_arn))
            self.threads.append(thread)
        jobs = build_jobs(wiring.schedules, functions=functions, load=Function.load, sqs=sqs,
                          queue_url=lambda arn: queue_url(sqs, arn), account=account, region=o.region,
                          periods=self.knobs.periods())
        self.threads.append(Scheduler(jobs, stop=self.halt))
        self.webhook = next(f for f in functions.values() if f.name == f"{o.prefix}-webhook")
        self._webhook_handler = self.webhook.load()
        self._restore()
        for thread in self.threads:
            thread.start()
        parent = dict(os.environ)
        self.workers = Workers(
            count=o.workers, log_dir=o.state_dir / "run", json_dir=o.state_dir / "logs", echo=self.say,
            env_for=lambda name: worker_environment(wiring.worker_env, name=name, endpoint=endpoint,
                                                    region=o.region, credentials=parent_credentials(),
                                                    parent=parent))
        self.workers.start()
        self.gateway.start()  # type: ignore[union-attr]
        self.phase = "registering accounts"
        self._expected_accounts = len(members)

    def _restore(self) -> None:  # before any poller runs: the stream pollers start after it
        if self.saved is not None and self.saved.events:
            self.say(state.restore_stack(self.saved, pollers=self.stream_pollers, path=self.opts.event_log))
        self.may_save = True

    def _member_client(self, sts: Any, endpoint: str) -> Callable[[str, str], Any]:
        def factory(account_id: str, service: str) -> Any:
            creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
                                    RoleSessionName="gip-local-setup")["Credentials"]
            return boto3.client(service, region_name=self.opts.region, endpoint_url=endpoint,
                                aws_access_key_id=creds["AccessKeyId"],
                                aws_secret_access_key=creds["SecretAccessKey"],
                                aws_session_token=creds["SessionToken"])
        return factory

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.opts.ready_timeout_s
        while self._pool_counts().get("AVAILABLE", 0) < self._expected_accounts:
            if time.monotonic() > deadline:
                raise GipError(f"only {self._pool_counts().get('AVAILABLE', 0)} of "
                               f"{self._expected_accounts} member accounts were registered "
                               f"within {self.opts.ready_timeout_s:.0f}s")
            if self.requested.wait(0.5):
                return
        self.ready, self.phase = True, "ready"
        secret = self._webhook_secret()
        self._write_state(secret)
        for line in self.banner(secret):
            self.say(line)

    # ------------------------------------------------------------------ the webhook and health
    def _invoke_webhook(self, event: dict[str, Any]) -> Any:
        # The gateway is started after the webhook function is loaded; a delivery that
        # arrives before the accounts are registered is queued like any other.
        return self._webhook_handler(event, self.webhook.context())

    def health(self) -> tuple[bool, dict[str, Any]]:
        if not self.ready:
            return False, {"status": self.phase}
        pollers = self.stream_pollers
        # parked is read before the dead-letter queues: a poller parks a record (sends it) before
        # it counts it, so a count seen here is always in the depths read next
        parked = sum(p.parked for p in pollers)
        queues, dlq = health.queue_depths(boto3.client("sqs", region_name=self.opts.region), self.outputs, QUEUES)
        return True, health.document(
            accounts=self._pool_counts(), queues=queues, dlq=dlq,
            lag_s=max((p.lag_s for p in pollers), default=0.0), parked=parked,
            last_error="; ".join(p.last_error for p in pollers if p.last_error),
            live_workers=self.workers.alive() if self.workers else 0, configured_workers=self.opts.workers)

    def _report(self) -> str:
        """``GET /report``: the page ``bootstrap.py report`` writes, drawn from the log now."""
        from gip.cli.report import local_page

        if not self.ready or self.aws is None:
            raise GipError(f"the stack is not ready yet ({self.phase})")
        return local_page(prefix=self.opts.prefix, region=self.opts.region, endpoint_url=self.aws.url)

    def _stats(self) -> dict[str, Any]:
        return self.counter.snapshot() if self.counter is not None else {}

    def _pool_counts(self) -> dict[str, int]:
        from gip.config import Settings
        from gip.services.pool import Pool

        if not hasattr(self, "_pool"):
            self._pool = Pool.from_settings(Settings.from_env())
        return dict(Counter(a.status for a in self._pool.accounts()))

    def _webhook_secret(self) -> str:
        """GITHUB_WEBHOOK_SECRET, else the one the template generated (read like the webhook does)."""
        if os.environ.get("GITHUB_WEBHOOK_SECRET"):
            return os.environ["GITHUB_WEBHOOK_SECRET"].split(",")[0].strip()
        sm = boto3.client("secretsmanager", region_name=self.opts.region)
        value = sm.get_secret_value(SecretId=self.outputs["WebhookSecretArn"])["SecretString"]
        return str(value).split(",")[0].strip()

    # ------------------------------------------------------------------ output
    def banner(self, secret: str) -> list[str]:
        o, gateway, aws = self.opts, self.gateway, self.aws
        assert gateway is not None and aws is not None
        url = f"http://{o.host}:{gateway.port}/webhook"
        sample = o.state_dir / "sample-issue.json"
        body = samples.encode(samples.issue_payload(number=1, body=samples.FAILS,
                                                    title="hello crashes on an empty config"))
        sample.write_bytes(body)
        return banner_lines(
            accounts=self._expected_accounts, workers=o.workers, url=url,
            health=f"http://{o.host}:{gateway.port}/healthz", secret=secret,
            secret_from_env=bool(os.environ.get("GITHUB_WEBHOOK_SECRET")),
            github=os.environ.get("GITHUB_API_URL", "https://api.github.com"),
            token=bool(os.environ.get("GITHUB_TOKEN") or os.environ.get("GITHUB_APP_ID")), endpoint=aws.url, region=o.region,
            curl=samples.curl_command(url, str(sample), body, secret))

    def _write_state(self, secret: str) -> None:
        assert self.gateway is not None and self.aws is not None
        self.opts.state_dir.mkdir(parents=True, exist_ok=True)
        doc = {"webhook_url": f"http://{self.opts.host}:{self.gateway.port}/webhook",
               "endpoint_url": self.aws.url, "prefix": self.opts.prefix, "pid": os.getpid(),
               "secret": secret}
        fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle)

    def _watch_workers(self) -> None:
        if self.workers is None:
            return
        for notice in self.workers.replace_dead(time.monotonic()):
            self.say(notice)

    def _shutdown(self) -> None:
        if self.ready or self.workers is not None:
            self.say("stopping: no more webhooks, workers give their work back ...")
        if self.gateway is not None:
            self.gateway.stop()
        if self.workers is not None:
            started = time.monotonic()
            self.workers.stop()
            log.info("workers stopped in %.1fs", time.monotonic() - started)
        self.halt.set()
        started = time.monotonic()
        for thread in self.threads:
            thread.join(timeout=5)
        log.info("pollers and schedules stopped in %.1fs", time.monotonic() - started)
        try:
            if self.may_save and self.aws is not None:
                self.say(state.save_stack(boto3.client("dynamodb", region_name=self.opts.region), self.opts.event_log))
        except Exception as exc:  # never lose the old file: dump() renames only a whole new one
            self.say(f"error: the event log could not be saved to {self.opts.event_log}: {type(exc).__name__}: {exc}")
        if self.aws is not None:
            started = time.monotonic()
            self.aws.stop()
            log.info("embedded AWS stopped in %.1fs", time.monotonic() - started)
        if self.ready:
            with contextlib.suppress(FileNotFoundError):
                self.state_file.unlink()
            self.say("stopped.")


def run_local(opts: LocalOptions) -> int:
    """Run until Ctrl-C / SIGTERM; a second signal stops waiting for the workers."""
    configure_logging(opts.state_dir / "logs")
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>`: where is it stuck?
    router = StdoutRouter.install(opts.state_dir / "run" / "metrics.log")
    supervisor = Supervisor(opts, out=router.terminal)
    signals = {"count": 0}

    def on_signal(signum: int, frame: Any) -> None:
        signals["count"] += 1
        supervisor.requested.set()
        if signals["count"] > 1:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return supervisor.run()
    except (GipError, KeyboardInterrupt):
        raise
    except Exception as exc:  # unexpected: one line here, the traceback in a file
        crash = opts.state_dir / "run" / "crash.log"
        crash.parent.mkdir(parents=True, exist_ok=True)
        crash.write_text(traceback.format_exc())
        raise GipError(f"the local stack failed: {type(exc).__name__}: {exc} (traceback in {crash})") from exc
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        router.uninstall()
        gc.freeze()  # the collection at interpreter exit would walk moto's objects for seconds
