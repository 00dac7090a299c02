"""Service configuration: one pydantic-settings object read from LEAKGATE_* variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path.home() / ".leakgate"


class Settings(BaseSettings):
    """Everything an operator may set. Defaults give the embedded mode (SQLite, no servers)."""

    model_config = SettingsConfigDict(env_prefix="LEAKGATE_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    home: Path = DEFAULT_HOME
    database_url: str = ""
    broker_url: str = ""
    storage_dir: Path | None = None
    queue_name: str = "leakgate-audits"

    # Uploads: bounded so that one request cannot fill the disk or exhaust memory.
    max_upload_bytes: int = 2 * 1024**3
    max_archive_entries: int = 2_000
    max_archive_unpacked_bytes: int = 4 * 1024**3
    max_dataset_records: int = 1_000_000
    # Non-weight files (config, tokenizer, README) in a model archive: a zeroed README that
    # compresses a thousandfold is refused while it is written, not after.
    max_archive_file_bytes: int = 64 * 1024**2
    # Sizes inside uploads, checked before anything is built from them: classes in a model
    # config or a dataset, config.json bytes, characters in one record's text (refused, not cut).
    max_labels: int = Field(default=10_000, ge=2)
    max_config_bytes: int = 4 * 1024**2
    max_record_chars: int = Field(default=200_000, ge=1)
    # The model check (transformers config, architecture on the meta device, safetensors
    # headers) runs in a child process with this memory limit (RLIMIT_DATA) and timeout.
    inspect_memory_bytes: int = 4 * 1024**3
    inspect_timeout_s: float = Field(default=120.0, gt=0)
    # Disk: uploads and unpacking keep this much free on the storage volume (507 otherwise);
    # each tenant may store this many bytes of distinct uploads (413 beyond; 0 = no quota).
    storage_reserve_bytes: int = Field(default=1024**3, ge=0)
    tenant_quota_bytes: int = Field(default=50 * 1024**3, ge=0)
    # An upload body that sends nothing for `upload_idle_timeout_s`, or is not complete after
    # `upload_timeout_s`, is cut off with 408 (slow senders hold a connection and a temp file).
    upload_idle_timeout_s: float = Field(default=60.0, gt=0)
    upload_timeout_s: float = Field(default=3600.0, gt=0)
    # `leakgate gc`: temporary files older than this are removed; artifacts older than
    # `gc_artifact_max_age_days` that no audit or canary set refers to are removed (0 = never).
    gc_tmp_age_s: int = Field(default=24 * 3600, ge=0)
    gc_artifact_max_age_days: int = Field(default=0, ge=0)

    # Long jobs: the soft limit raises inside the task, the hard limit kills the process.
    task_soft_time_limit_s: int = 3 * 3600
    task_hard_time_limit_s: int = 3 * 3600 + 300
    # An audit left `queued` this long without a worker claiming it is sent again.
    sweep_after_s: float = Field(default=120, gt=0)
    sweep_interval_s: float = Field(default=15, gt=0)
    # Whether each API process also runs the sweeper as a thread. Off when a `leakgate
    # sweeper` process runs (docker-compose); running both is harmless, since a claim is one
    # guarded UPDATE and a second delivery of a claimed audit does nothing.
    api_sweeper: bool = True
    # A running audit's worker writes its heartbeat every `heartbeat_interval_s` from a timer
    # thread, whatever the stage is doing, so the heartbeat says "the process is alive", not
    # "the stage reported progress" (a hung stage is bounded by the task time limits). An audit
    # whose heartbeat is older than `stale_after_s` is presumed to have lost its worker and is
    # taken over by a new delivery. 90 s is six missed heartbeats: it rides out a database
    # restart or a loaded machine, yet a dead worker's audit resumes within about
    # stale_after_s + sweep_interval_s (under 2 minutes) instead of the 10 it took at 600 s.
    heartbeat_interval_s: float = Field(default=15, gt=0)
    stale_after_s: float = Field(default=90, gt=0)
    # Deliveries of one audit before the sweeper gives up and ends it as failed.
    max_attempts: int = Field(default=3, ge=1, le=20)

    # Reference models (LiRA/RMIA) of one audit are trained in this many shards, each a
    # Celery task that any worker may take, unless the spec's `references.shards` says
    # otherwise. 1 = all references in the audit's own task, as before sharding. The layout
    # is part of an audit's seeds (references of a shard share one vmapped run and its
    # dropout draws), so it is recorded in the report.
    reference_shards: int = Field(default=1, ge=1, le=64)
    # Whether shards beyond the audit's own go out as Celery tasks. Off: the audit's task
    # trains every shard itself, one after another (the same numbers, on one worker).
    reference_fanout: bool = True

    bootstrap_samples: int = Field(default=1000, ge=100)
    # CPU threads per audit; `leakgate worker` sets cores // concurrency, so that parallel
    # audits do not oversubscribe the cores (torch stalls badly when they do).
    torch_threads: int | None = Field(default=None, ge=1)

    # Webhooks: attempts per completion, the first retry's delay (doubling after), the
    # request timeout, and whether callback URLs may point at loopback or private networks
    # (allowed by default so that a pipeline on the same host or network can be called).
    webhook_max_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_s: float = Field(default=10.0, ge=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_allow_private: bool = True

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        """Derive embedded-mode URLs from `home` and refuse embedded defaults in production."""
        if self.env == "production" and not (self.database_url and self.broker_url):
            raise ValueError(
                "LEAKGATE_ENV=production needs LEAKGATE_DATABASE_URL and LEAKGATE_BROKER_URL "
                "(PostgreSQL and Redis); the SQLite defaults are for the embedded mode only"
            )
        home = self.home.expanduser().resolve()
        self.home = home
        if not self.database_url:
            self.database_url = f"sqlite:///{home / 'leakgate.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{home / 'broker.db'}"
        if self.storage_dir is None:
            self.storage_dir = home / "storage"
        if self.task_hard_time_limit_s <= self.task_soft_time_limit_s:
            raise ValueError("task_hard_time_limit_s must exceed task_soft_time_limit_s")
        if self.stale_after_s < 3 * self.heartbeat_interval_s:
            raise ValueError(
                "stale_after_s must be at least 3 x heartbeat_interval_s, or a live worker "
                "that misses one heartbeat would have its audit taken over"
            )
        return self

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("sqla+")

    @property
    def visibility_timeout_s(self) -> int:
        """Redis redelivers unacked messages after this; it must outlast the longest task."""
        return self.task_hard_time_limit_s + 600

    def ensure_dirs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        assert self.storage_dir is not None
        self.storage_dir.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
