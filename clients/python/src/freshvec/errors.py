"""Errors: every failed call raises a FreshvecError carrying the gRPC code and message."""
from __future__ import annotations

import grpc


class FreshvecError(Exception):
    """A call the server refused or could not answer. `code` is the grpc.StatusCode,
    `code_name` its name (as the JSON gateway spells it), `message` the server's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.code_name = code.name
        self.message = message


class InvalidArgument(FreshvecError):
    pass


class NotFound(FreshvecError):
    pass


class AlreadyExists(FreshvecError):
    pass


class FailedPrecondition(FreshvecError):
    pass


class ResourceExhausted(FreshvecError):
    pass


class Unavailable(FreshvecError):
    pass


class DeadlineExceeded(FreshvecError):
    pass


class Unauthenticated(FreshvecError):
    pass


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def from_rpc(e: grpc.RpcError) -> FreshvecError:
    """The FreshvecError for a failed call (sync or asyncio)."""
    code = e.code() if callable(getattr(e, "code", None)) else grpc.StatusCode.UNKNOWN
    details = e.details() if callable(getattr(e, "details", None)) else str(e)
    return _BY_CODE.get(code, FreshvecError)(code, details or "")

