"""Role: a permission (read, write, manage) granted to groups, clients and tokens."""

from ovsd.dal.fields import ObjectType, Prop

TYPE = ObjectType(
    kind="role",
    doc="A role (scope) that groups, clients and tokens carry",
    props=[
        Prop("name", str, mandatory=True, doc="Name of the Role"),
        Prop("code", str, mandatory=True, unique=True, writable=False, doc="Code of the Role (the OAuth scope)"),
        Prop("description", str, text=True, doc="Description of the Role"),
    ],
)
