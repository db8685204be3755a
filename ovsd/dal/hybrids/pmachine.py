"""PMachine: a physical machine (hypervisor host)."""

from typing import Any

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of


async def _host_status(obj: Any, repo: Any) -> str:
    # only a management center can tell a host's state, and none is queried yet
    return "UNKNOWN"


TYPE = ObjectType(
    kind="pmachine",
    doc="A physical machine running a hypervisor",
    props=[
        Prop("name", str, mandatory=True, doc="The name of the pMachine"),
        Prop("description", str, text=True, doc="The description of the pMachine"),
        Prop("username", str, doc="The username to connect to the pMachine"),
        Prop("password", str, secret=True, doc="The password to connect to the pMachine; never sent"),
        Prop("ip", str, mandatory=True, doc="The ip address of the pMachine"),
        Prop("hvtype", str, mandatory=True, allowed=("HYPERV", "VMWARE", "XEN", "KVM"), doc="Hypervisor type"),
        Prop("hypervisor_id", str, doc="The internal ID of the hypervisor, if available"),
    ],
    relations=[Relation("mgmtcenter", "mgmtcenter", "pmachines", doc="The linked Management Center")],
    dynamics=[dynamic_of("host_status", str, 60, _host_status, "The host's status")],
)
