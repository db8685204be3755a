"""Group: a set of users that share roles (administrators, viewers)."""

from ovsd.dal.fields import ObjectType, Prop

# its roles are RoleGroup junctions (ovsd/dal/hybrids/rolegroup.py): ``roles_guids`` lists their guids
TYPE = ObjectType(
    kind="group",
    doc="A group of users",
    props=[
        Prop("name", str, mandatory=True, unique=True, doc="Name of the Group"),
        Prop("description", str, text=True, doc="Description of the Group"),
    ],
)
