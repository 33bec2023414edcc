"""The Graph API client: plain Python on requests. Imports nothing of the project.

``graph.client`` (the transport), ``graph.types`` (values), ``graph.errors``, ``graph.edges``
(asset edges), ``graph.usage`` (rate-limit headers), ``graph.hooks`` (per-call hook),
``graph.permissions`` (Meta's static permission facts), ``graph.signatures`` (Meta's signed
callbacks)."""
