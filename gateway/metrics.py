"""Prometheus metrics. Each app has its own registry, so several apps (tests) can coexist."""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector


class BulkHistogram(Collector):
    """A histogram fed a whole receipt batch at a time. prometheus_client's Histogram takes a
    lock and walks its buckets per observation, which at tens of thousands of receipts a second
    costs more than the database work; this keeps exact per-bucket counts with one bisect each."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry):
        self.name, self.documentation = name, documentation
        self.bounds = list(buckets)
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total = 0.0
        registry.register(self)

    def observe_many(self, values: list[float]) -> None:
        bounds, counts = self.bounds, self.counts
        for v in values:
            counts[bisect_left(bounds, v)] += 1
        self.total += sum(values)

    def collect(self):
        cumulative = list(accumulate(self.counts))
        labels = [str(float(b)) for b in self.bounds] + ["+Inf"]
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], list(zip(labels, cumulative)), self.total)
        yield family


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
        self.receipt_lag = BulkHistogram(
            "smslab_receipt_lag_seconds", "Service time from a receipt's event to its commit",
            (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400), registry=r,
        )
        self.http_requests = Counter("smslab_http_requests", "HTTP requests", ["method", "status"], registry=r)

    def record_receipts(self, by_platform, tally) -> None:
        for platform, receipts in by_platform.items():
            self.receipts.labels(platform).inc(len(receipts))
        self.receipts_applied.inc(tally.applied)
        self.duplicates.inc(sum(tally.duplicate.values()))
        self.late.inc(sum(tally.late.values()))
        self.unmatched.inc(len(tally.unmatched))
        self.receipt_lag.observe_many(tally.lags)
