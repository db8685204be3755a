"""User: a person who logs in to the GUI or owns API clients."""

from ovsd.dal.fields import ObjectType, Prop, Relation

TYPE = ObjectType(
    kind="user",
    doc="A user of the cluster",
    props=[
        Prop("username", str, mandatory=True, unique=True, doc="Username of the User"),
        Prop("password", str, mandatory=True, secret=True, writable=False, doc="argon2id hash; never sent"),
        Prop("is_active", bool, default=True, doc="An inactive user cannot log in or use tokens"),
        Prop("language", str, default="en-US", allowed=("en-US", "nl-NL"), doc="The GUI language"),
    ],
    relations=[Relation("group", "group", "users", mandatory=True, doc="The Group of the User")],
    default_sort=("username",),
)
