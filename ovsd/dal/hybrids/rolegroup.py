"""RoleGroup: the grant of one role to one group, an object of its own as in the original.

Its guid is what both sides list (``group.roles_guids`` and ``role.groups_guids``), see roleclient.py.
"""

from ovsd.dal.fields import ObjectType, Relation

TYPE = ObjectType(
    kind="rolegroup",
    doc="A role granted to a group (junction)",
    props=[],
    relations=[
        Relation("role", "role", "groups", mandatory=True, writable=False, doc="The granted Role"),
        Relation("group", "group", "roles", mandatory=True, writable=False, doc="The Group holding it"),
    ],
)
