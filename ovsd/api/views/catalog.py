"""Read-only catalogues: branding (no token needed), groups and roles."""

from __future__ import annotations

from ovsd.api.views.common import declare_served

declare_served("branding", "branding", token=False, summary="Brandings of the GUI")
declare_served("groups", "group", summary="The groups a user can belong to")
declare_served("roles", "role", summary="Roles (scopes) of groups, clients and tokens")
