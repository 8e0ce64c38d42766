"""The plugin's tests run smslab carrier (its Twilio API) as a process; the
helpers that start it live with smslab's tests, in the repository this plugin is part of."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.pg_support import drop_session_databases, drop_test_databases  # noqa: E402,F401 (autouse: SMSLAB_TEST_BACKEND)
