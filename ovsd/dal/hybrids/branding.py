"""Branding: the GUI's look (product name, css)."""

from ovsd.dal.fields import ObjectType, Prop

TYPE = ObjectType(
    kind="branding",
    doc="A brand of the GUI",
    props=[
        Prop("name", str, mandatory=True, doc="The brand name"),
        Prop("description", str, text=True, doc="A description of the brand"),
        Prop("css", str, doc="The GUI main css filename"),
        Prop("productname", str, doc="Commercial product name in this Branding"),
        Prop("is_default", bool, default=False, doc="Whether this is the default brand"),
    ],
)
