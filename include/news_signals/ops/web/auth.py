"""Airflow login for the model-history app when the api-server mounts it.

Airflow 3 does not authenticate plugin FastAPI apps: a mounted app answers anyone unless it checks
the caller itself. :func:`airflow_login` is a route dependency built on the api-server's own
security helpers (``get_user`` reads the JWT from the ``Authorization`` header or the UI's
``_token`` cookie) and the configured auth manager's ``is_authorized_custom_view`` check, the one
Airflow provides for plugin views. It fails closed: no token, a bad token, a denied user or any
error inside the auth manager is a 401/403, never a page.
"""

# No ``from __future__ import annotations``: FastAPI must see the real types of the nested functions.
import logging
from typing import Annotated, Any

log = logging.getLogger(__name__)

# The resource name the auth manager is asked about (auth managers with per-view roles can grant it).
RESOURCE_NAME = "Model history"


def airflow_login() -> Any:
    """A FastAPI dependency (``Depends(...)``) that lets only users the auth manager allows through."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user
    from fastapi import Depends, HTTPException, Request, status

    async def user_or_401(request: Request) -> Any:
        # get_user's sub-dependencies are resolved here (not by FastAPI) so that an unexpected error
        # inside them or the auth manager is caught below instead of becoming a 500.
        try:
            bearer = await bearer_scheme(request)  # the Authorization header, if any
            return await get_user(request, _oauth_token=None, bearer_credentials=bearer)  # Airflow 3.3 signature
        except HTTPException:
            raise
        except Exception as exc:  # fail closed: an auth manager error is a refusal, not a page
            log.warning("model-history login check failed: %s", type(exc).__name__)
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated") from None

    async def check(user: Annotated[Any, Depends(user_or_401)]) -> None:
        try:
            allowed = get_auth_manager().is_authorized_custom_view(
                method="GET", resource_name=RESOURCE_NAME, user=user
            )
        except Exception as exc:
            log.warning("model-history access check failed: %s", type(exc).__name__)
            allowed = False
        if allowed is not True:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")

    return Depends(check)
