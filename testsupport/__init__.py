"""What the tests share: factories, the in-memory fake Graph, the whole-run leak check (a pytest
plugin). Test code only: nothing of the running portal imports it."""
