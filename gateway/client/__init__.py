"""A typed client for smslab's gateway REST API and the standalone carrier's control API.

    from gateway.client import Client, ApiError
    client = Client("http://127.0.0.1:8080", token)
    client.request("GET", "/api/v1/tasks")      # decoded JSON; ApiError on any 4xx/5xx
    audience = client.create_audience("friends", ["+8613800138000"])
    task = client.create_task(name="hello", audience_id=audience["id"], text="Hello")
    client.advance(3600)                          # POST /api/v1/clock/advance (virtual clock)
    client.wait_for_task(task["id"], "completed")
    client.assert_matches_ground_truth(task["id"])

:class:`AsyncClient` has the same methods as coroutines (``async with AsyncClient(...) as c``);
:class:`CarrierClient`/:class:`AsyncCarrierClient` drive ``smslab carrier``. ``ROUTES`` and
``CARRIER_ROUTES`` map every route to its method. See docs/testing.md.
"""

from ._core import ApiError
from .carrier import CARRIER_ROUTES, AsyncCarrierClient, CarrierClient
from .gateway import ITERATORS, PLUGIN_ROUTES, ROUTES, AsyncClient, Client

ApiError.__module__ = __name__  # shown as gateway.client.ApiError in tracebacks

__all__ = ["ApiError", "AsyncCarrierClient", "AsyncClient", "CARRIER_ROUTES", "CarrierClient", "Client", "ITERATORS",
           "PLUGIN_ROUTES", "ROUTES"]
