"""The embedded sandbox issuer: AgentCard's v1 API on SQLite, for tests and first use.

store = Store(path)
credentials = provision(store, path)      # first start: owner, starter agent, test key
app = create_app(store)                   # serve with uvicorn, or embed:
httpx.AsyncClient(transport=InProcessTransport(app), base_url="http://sandbox")  # direct.py
"""

from .app import create_app
from .provision import Credentials, key_file_for, provision, read_credentials
from .store import Store

__all__ = [
    "Credentials",
    "Store",
    "create_app",
    "key_file_for",
    "provision",
    "read_credentials",
]
