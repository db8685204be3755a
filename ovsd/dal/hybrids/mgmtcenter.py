"""MgmtCenter: a hypervisor management center (vCenter, OpenStack controller)."""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, dynamic_of


async def _hosts(obj: Any, repo: Any) -> dict[str, Any]:
    # no hypervisor integration exists yet: the center's host list is not known, so it is empty
    return {}


TYPE = ObjectType(
    kind="mgmtcenter",
    doc="A hypervisor management center",
    props=[
        Prop("name", str, mandatory=True, doc="Name of the Management Center"),
        Prop("description", str, text=True, doc="Description of the Management Center"),
        Prop("username", str, mandatory=True, doc="Username for the Management Center"),
        Prop("password", str, mandatory=True, secret=True, doc="Password for the Management Center; never sent"),
        Prop("ip", str, mandatory=True, unique=True, doc="IP address of the Management Center"),
        Prop("port", int, mandatory=True, doc="Port of the Management Center's API"),
        Prop("type", str, mandatory=True, allowed=("VCENTER", "OPENSTACK"), doc="Type of the Management Center"),
        Prop("metadata", dict, default={}, doc="Management center specific metadata"),
    ],
    dynamics=[dynamic_of("hosts", dict, 60, _hosts, "Hosts managed by this Management Center")],
)
