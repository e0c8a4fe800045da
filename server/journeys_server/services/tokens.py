"""``journeys.v1.TokenService``: access tokens, created, listed and revoked."""

from __future__ import annotations

from typing import Any

import grpc
from journeys.v1 import token_pb2 as pb
from journeys.v1 import token_pb2_grpc

from journeys_engine import Engine
from journeys_engine.access import Role, Token
from journeys_server.convert.common import timestamp_proto
from journeys_server.errors import handle_errors

__all__ = ["ROLES", "TokenServicer", "token_to_proto"]

Context = grpc.aio.ServicerContext[Any, Any]

ROLES: dict[Role, pb.TokenRole.ValueType] = {
    Role.INGEST: pb.TOKEN_ROLE_INGEST,
    Role.SUBSCRIBE: pb.TOKEN_ROLE_SUBSCRIBE,
    Role.ADMIN: pb.TOKEN_ROLE_ADMIN,
}
_FROM_PROTO = {value: role for role, value in ROLES.items()}


def token_to_proto(token: Token) -> pb.Token:
    return pb.Token(
        id=token.id,
        space_id=token.space_id,
        role=ROLES[token.role],
        name=token.name,
        destination_ids=token.destination_ids,
        create_time=timestamp_proto(token.create_ms),
    )


class TokenServicer(token_pb2_grpc.TokenServiceServicer):
    """Tokens over gRPC (who may call is decided before, by the interceptor)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @handle_errors
    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: Context
    ) -> pb.CreateTokenResponse:
        token, secret = await self._engine.tokens.create(
            request.space_id,
            _FROM_PROTO.get(request.role, ""),  # the engine says what the roles are
            name=request.name,
            destination_ids=tuple(request.destination_ids),
        )
        return pb.CreateTokenResponse(token=token_to_proto(token), secret=secret)

    @handle_errors
    async def ListTokens(
        self, request: pb.ListTokensRequest, context: Context
    ) -> pb.ListTokensResponse:
        page = await self._engine.tokens.list(
            request.space_id, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListTokensResponse(
            tokens=[token_to_proto(t) for t in page.items], next_page_token=page.next_page_token
        )

    @handle_errors
    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: Context
    ) -> pb.RevokeTokenResponse:
        token = await self._engine.tokens.revoke(request.space_id, request.token_id)
        return pb.RevokeTokenResponse(token=token_to_proto(token))
