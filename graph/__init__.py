"""The Graph API client: plain Python on requests. Imports nothing of the project."""
