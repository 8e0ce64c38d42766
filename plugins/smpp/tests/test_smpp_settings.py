"""The connection URL: every setting a query parameter, each bad one refused at start with its
name (``smslab serve`` exits with status 2 and says which, without a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from smslab_smpp.settings import Settings, SettingsError, from_environment
from tests.pg_support import db_target


def test_defaults_and_every_parameter():
    s = Settings.from_url("smpp://gw:secret@smsc.example:2776")
    assert (s.system_id, s.password, s.host, s.port, s.tls) == ("gw", "secret", "smsc.example", 2776, False)
    assert (s.binds, s.bind, s.window, s.long, s.receipt_id, s.registered_delivery) == (1, "trx", 10, "udh", "auto", 1)
    s = Settings.from_url("smpps://gw:pw@127.0.0.1?binds=3&bind=tx%2Brx&window=50&long=sar&udh16=true&receipt_id=hex-to-dec"
                          "&registered_delivery=2&source=%2B4470000&timeout=5&enquire_link=10&reconnect_min=1"
                          "&reconnect_max=8&hold_receipts=3&connect_wait=2&tls_verify=false&workspace=7&system_type=VMA")
    assert s.tls and s.port == 3550 and not s.tls_verify
    assert (s.binds, s.bind, s.window, s.long, s.udh16, s.receipt_id) == (3, "tx+rx", 50, "sar", True, "hex-to-dec")
    assert (s.registered_delivery, s.source, s.source_ton_npi, s.workspace, s.system_type) == (2, "+4470000", (1, 1), 7, "VMA")
    assert Settings.from_url("smpp://gw:pw@h?source=ShopName").source_ton_npi == (5, 0)
    assert "secret" not in str(Settings.from_url("smpp://gw:secret@h").public())


@pytest.mark.parametrize("url, named", [
    ("http://gw:pw@h", "scheme"),
    ("smpp://h:2775", "system_id"),
    ("smpp://gw:123456789@h", "password"),
    ("smpp://averyveryverylongid:pw@h", "system_id"),
    ("smpp://gw:pw@h:notaport", "port"),
    ("smpp://gw:pw@h?binds=0", "binds"),
    ("smpp://gw:pw@h?window=many", "window"),
    ("smpp://gw:pw@h?long=split", "long"),
    ("smpp://gw:pw@h?bind=both", "bind"),
    ("smpp://gw:pw@h?receipt_id=guess", "receipt_id"),
    ("smpp://gw:pw@h?registered_delivery=3", "registered_delivery"),
    ("smpp://gw:pw@h?timeout=0", "timeout"),
    ("smpp://gw:pw@h?tls_verify=maybe", "tls_verify"),
    ("smpp://gw:pw@h?colour=blue", "colour"),
    ("smpp://gw:pw@h?source=Shop%00", "source"),
    ("smpp://gw:pw@h?source=%E2%86%92Shop", "source"),
    ("smpp://gw:pw@h?system_type=V%00A", "system_type"),
    ("smpp://gw:pw@h?system_type=ABCDEFGHIJKLM", "system_type"),
    ("smpp://g%00w:pw@h", "system_id"),
    ("smpp://gw:p%00w@h", "password"),
])
def test_a_bad_setting_is_named(url, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_url(url)


def test_several_connections_from_the_environment():
    found = from_environment({"SMSLAB_SMPP_URL": "smpp://a:pw@h1", "SMSLAB_SMPP_URL_BACKUP_EU": "smpp://b:pw@h2",
                              "SMSLAB_OTHER": "x"})
    assert [(s.name, s.system_id, s.host) for s in found] == [("smpp", "a", "h1"), ("smpp-backup-eu", "b", "h2")]
    with pytest.raises(SettingsError, match="SMSLAB_SMPP_URL_EU: window"):
        from_environment({"SMSLAB_SMPP_URL_EU": "smpp://b:pw@h2?window=0"})


def test_serve_refuses_a_bad_url_with_its_name(tmp_path):
    env = {**os.environ, "SMSLAB_SMPP_URL_EU": "smpp://gw:pw@127.0.0.1:2775?window=0"}
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--db", db_target(tmp_path, "g.db"), "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "SMSLAB_SMPP_URL_EU: window must be between 1 and 10000" in proc.stderr
    assert "Traceback" not in proc.stderr
