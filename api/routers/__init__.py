"""One module per area of the API, each with a ``router``; listed in ``api.main.ROUTERS``."""
