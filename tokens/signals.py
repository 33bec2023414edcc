"""What the token lifecycle tells other apps. Receivers connect in their ``AppConfig.ready()``.

``tokens_invalidated``: Meta stopped accepting these tokens (a 190 seen by a sweep). Sent with
``token_ids`` inside the transaction that recorded it, so a receiver's writes commit with it.
"""

from django.dispatch import Signal

tokens_invalidated = Signal()
