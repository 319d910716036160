"""API tokens: create, list and revoke them (administrators only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.api.deps import AUTH, INVALID, NOT_FOUND, AppDep, guard
from courseinfra.entrypoints.schemas.tokens import TokenCreatedOut, TokenIn, TokenOut
from courseinfra.services import access

router = APIRouter(
    tags=["tokens"],
    dependencies=[guard(read=Permission.ADMINISTER, write=Permission.ADMINISTER)],
    responses=AUTH,
)


@router.post("/v1/tokens", status_code=201, response_model=TokenCreatedOut, responses=INVALID)
def create_token(app: AppDep, body: TokenIn) -> TokenCreatedOut:
    """A new token; its secret is in this answer only."""
    token, secret = access.create_token(
        body.name,
        body.role,
        app.uow_factory(),
        pii=body.pii,
        expires_in_days=body.expires_in_days,
        scope=body.scope,
    )
    return TokenCreatedOut.of(token, secret=secret)


@router.get("/v1/tokens", response_model=list[TokenOut], responses=INVALID)
def list_tokens(app: AppDep) -> list[TokenOut]:
    """Every token (revoked and expired ones too), without secrets."""
    return [TokenOut.of(token) for token in access.list_tokens(app.uow_factory)]


@router.delete("/v1/tokens/{token_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
def revoke_token(app: AppDep, token_id: str) -> Response:
    """Revoke a token: the next request with it is refused."""
    access.revoke_token(token_id, app.uow_factory())
    return Response(status_code=204)
