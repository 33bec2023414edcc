"""Helpers every app may use: templated email, admin mixins, status transitions, the Graph
client built from settings, bulk writes. Imports no app of the project (only Django and
``graph``), so any app can depend on it without depending on another app."""
