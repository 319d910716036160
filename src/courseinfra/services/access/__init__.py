"""API access: tokens, and who a bearer secret acts for."""

from courseinfra.services.access.handlers import create_token, revoke_token
from courseinfra.services.access.queries import any_token, authenticate, list_tokens

__all__ = ["any_token", "authenticate", "create_token", "list_tokens", "revoke_token"]
