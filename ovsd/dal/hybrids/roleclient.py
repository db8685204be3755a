"""RoleClient: the grant of one role to one client, an object of its own as in the original.

Its guid is what both sides list (``client.roles_guids`` and ``role.clients_guids``): the original web GUI
finds a client's roles by intersecting those two lists (contract §6).
"""

from ovsd.dal.fields import ObjectType, Relation

TYPE = ObjectType(
    kind="roleclient",
    doc="A role granted to a client (junction)",
    props=[],
    relations=[
        Relation("role", "role", "clients", mandatory=True, writable=False, doc="The granted Role"),
        Relation("client", "client", "roles", mandatory=True, writable=False, doc="The Client holding it"),
    ],
)
