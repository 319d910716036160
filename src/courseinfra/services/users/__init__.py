"""The user directory: imports, logins and profiles."""

from courseinfra.services.users.handlers import (
    ImportReport,
    UserNotFound,
    import_users,
    record_login,
    update_profile,
)
from courseinfra.services.users.queries import (
    get_user,
    list_users,
)

__all__ = [
    "ImportReport",
    "UserNotFound",
    "get_user",
    "import_users",
    "list_users",
    "record_login",
    "update_profile",
]
