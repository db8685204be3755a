"""BearerToken (internal): an issued access token, stored by its SHA-256 only."""

from ovsd.dal.fields import ObjectType, Prop, Relation

TYPE = ObjectType(
    kind="bearertoken",
    doc="An OAuth 2 bearer token (internal; never served as a resource)",
    props=[
        Prop("access_token", str, mandatory=True, secret=True, unique=True, writable=False,
             doc="SHA-256 of the access token"),
        Prop("expiration", float, mandatory=True, writable=False, doc="Expiration timestamp"),
    ],
    relations=[
        Relation("client", "client", "tokens", mandatory=True, writable=False),
        # a role lists its tokens as RoleBearerToken junction guids (contract §6), derived from token and role
        Relation("roles", "role", "tokens", many=True, writable=False, junction=True),
    ],
)
