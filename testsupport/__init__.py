"""What the tests share: factories, the in-memory fake Graph, the whole-run leak check (a pytest
plugin), the lean SMTP server the benchmarks and mail tests talk to. Test code only: nothing of the running portal
imports it."""
