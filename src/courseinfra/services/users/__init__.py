"""The user directory: imports, logins and profiles."""

from courseinfra.services.users.handlers import (
    ImportReport,
    UserNotFound,
    get_user,
    import_users,
    record_login,
    update_profile,
)

__all__ = [
    "ImportReport",
    "UserNotFound",
    "get_user",
    "import_users",
    "record_login",
    "update_profile",
]
