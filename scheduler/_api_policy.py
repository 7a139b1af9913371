"""Authentication (noauth2) and policy for the Placement API.

Authentication, as a deployment using OpenStack's noauth2 strategy sees it:
``x-auth-token`` is required (except for ``/``); ``admin`` is the admin
role; ``user`` or ``user:project`` is a project user with no role;
``x-roles`` (comma separated) replaces the roles, ``x-project-id`` the
project, and ``openstack-system-scope`` makes the token system scoped.

Policy, in Placement's two modes (chosen in config, ``[placement] policy``):

- ``secure-rbac`` (new defaults): every API is for ``admin`` or
  ``service``, except ``GET /usages`` which a ``reader`` of the project asked
  about may also call, and ``POST /reshaper`` which is ``service`` only.
- ``legacy``: the new defaults OR the old ``role:admin`` rule (what
  oslo.policy does with enforce_new_defaults off). Scope is enforced in
  both modes, as Placement 16 does: a system-scoped token gets 403.
- ``open``: every rule is ``@`` (any authenticated project token), as
  Placement's ``OpenPolicyFixture`` configures it; for tests and trusted labs.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._api_common import Auth
from ._store_records import PlacementError

POLICIES = ("legacy", "secure-rbac", "open")
PROJECT_READABLE = frozenset({"placement:usages"})  # admin_or_project_reader_or_service
SERVICE_ONLY = frozenset({"placement:reshaper:reshape"})  # service_api


def authenticate(headers: Mapping[str, str]) -> Auth:
    token = headers.get("x-auth-token")
    if not token:
        raise PlacementError(401, "The request you have made requires authentication.")
    user, _, project = token.partition(":")
    project = project or user
    if "x-roles" in headers:
        roles = frozenset(r.strip().lower() for r in headers["x-roles"].split(",") if r.strip())
    else:
        roles = frozenset({"admin"}) if user == "admin" else frozenset()
    project = headers.get("x-project-id") or headers.get("x-tenant-id") or project
    scope = headers.get("openstack-system-scope") or None
    return Auth(user, None if scope else project, roles, scope)


def allowed(policy: str, action: str, auth: Auth, target_project: str | None = None) -> bool:
    if action in SERVICE_ONLY:
        new_rule = "service" in auth.roles
    else:
        new_rule = bool(auth.roles & {"admin", "service"})
    if action in PROJECT_READABLE and not new_rule:
        new_rule = ("reader" in auth.roles and auth.project_id is not None
                    and auth.project_id == target_project)
    if auth.system_scope is not None:  # Placement's rules are project scoped (all modes)
        return False
    if policy == "open":
        return True
    if policy == "secure-rbac":
        return new_rule
    return new_rule or "admin" in auth.roles


def enforce(policy: str, action: str, auth: Auth | None, target_project: str | None = None) -> None:
    if auth is None or not allowed(policy, action, auth, target_project):
        raise PlacementError(403, f"Policy does not allow {action} to be performed.")
