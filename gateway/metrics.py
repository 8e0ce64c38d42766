"""Prometheus metrics. Each app has its own registry, so several apps (tests) can coexist."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tasks_by_status = Gauge("smslab_tasks", "Tasks by status", ["status"], registry=r)
        self.submissions = Counter("smslab_submissions", "Numbers submitted to a platform", ["platform"], registry=r)
        self.submit_retries = Counter("smslab_submit_retries", "Submission batches retried", ["platform", "reason"], registry=r)
        self.receipts = Counter("smslab_receipts", "Receipts committed", ["platform"], registry=r)
        self.receipts_applied = Counter("smslab_receipts_applied", "Receipts that changed a message", registry=r)
        self.duplicates = Counter("smslab_receipts_duplicate", "Duplicate receipts (changed nothing)", registry=r)
        self.late = Counter("smslab_receipts_late", "Receipts after the receipt timeout", registry=r)
        self.unmatched = Counter("smslab_receipts_unmatched", "Receipts for unknown message ids, kept aside", registry=r)
        self.receipt_timeouts = Counter("smslab_receipt_timeouts", "Numbers failed with RECEIPT_TIMEOUT", registry=r)
        self.receipt_lag = Histogram(
            "smslab_receipt_lag_seconds", "Service time from a receipt's event to its commit", registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400),
        )
        self.http_requests = Counter("smslab_http_requests", "HTTP requests", ["method", "status"], registry=r)

    def record_receipts(self, by_platform, tally) -> None:
        for platform, receipts in by_platform.items():
            self.receipts.labels(platform).inc(len(receipts))
        self.receipts_applied.inc(tally.applied)
        self.duplicates.inc(sum(tally.duplicate.values()))
        self.late.inc(sum(tally.late.values()))
        self.unmatched.inc(len(tally.unmatched))
        for lag in tally.lags:
            self.receipt_lag.observe(lag)
