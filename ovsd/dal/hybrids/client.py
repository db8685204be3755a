"""Client: an OAuth 2 client of a user (the GUI's INTERNAL password client, or a USER API client)."""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of


async def _client_id(obj: Any, repo: Any) -> str:
    # the client id is the object's guid, as in the original
    return str(obj.guid)


# its roles are RoleClient junctions (ovsd/dal/hybrids/roleclient.py): ``roles_guids`` lists their guids
TYPE = ObjectType(
    kind="client",
    doc="An OAuth 2 client",
    props=[
        Prop("name", str, doc="Name of the Client"),
        Prop("client_secret", str, secret=True, writable=False,
             doc="SHA-256 of the secret; the secret itself is shown once, at creation"),
        Prop("grant_type", str, mandatory=True, allowed=("PASSWORD", "CLIENT_CREDENTIALS"), writable=False,
             doc="Grant type of the Client"),
        Prop("ovs_type", str, mandatory=True, allowed=("INTERNAL", "REPLICATION", "USER"), writable=False,
             doc="The type of the client within Open vStorage"),
    ],
    relations=[
        Relation("user", "user", "clients", mandatory=True, writable=False, doc="The User this Client belongs to"),
    ],
    dynamics=[dynamic_of("client_id", str, 86400, _client_id, "The Client's ID (its guid)")],
)
