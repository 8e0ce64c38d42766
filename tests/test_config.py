"""Settings read from SMSLAB_* environment variables."""

from gateway.config import Config


def test_receipt_group_commit_settings_come_from_the_environment(monkeypatch):
    assert (Config.from_env().receipt_flush_max, Config.from_env().receipt_flush_interval) == (4000, 0.002)
    monkeypatch.setenv("SMSLAB_RECEIPT_FLUSH_MAX", "4000")
    monkeypatch.setenv("SMSLAB_RECEIPT_FLUSH_MS", "0.5")
    config = Config.from_env()
    assert (config.receipt_flush_max, config.receipt_flush_interval) == (4000, 0.0005)
