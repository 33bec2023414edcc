"""Shapes shared by every router."""

from __future__ import annotations

from ninja import Schema


class ErrorDetail(Schema):
    code: str
    message: str

    model_config = {"extra": "allow"}


class ErrorOut(Schema):
    """Every error: ``{"error": {"code": ..., "message": ..., ...}}`` (extra fields per code)."""

    error: ErrorDetail
