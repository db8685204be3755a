"""VDisk: a virtual disk served by a vPool."""

from ovsd.dal.fields import ObjectType, Prop, Relation, dynamic_of
from ovsd.dal.hybrids import unmeasured

TYPE = ObjectType(
    kind="vdisk",
    doc="A virtual disk",
    props=[
        Prop("name", str, doc="Name of the vDisk"),
        Prop("description", str, text=True, doc="Description of the vDisk"),
        Prop("size", int, mandatory=True, doc="Size of the vDisk in bytes"),
        Prop("devicename", str, doc="The name of the container file backing the vDisk"),
        Prop("order", int, doc="Order with which the vDisk is attached to a vMachine"),
        Prop("volume_id", str, writable=False, doc="ID of the vDisk in the volume driver"),
        Prop("parentsnapshot", str, writable=False, doc="Snapshot of the parent this vDisk was cloned from"),
        Prop("cinder_id", str, doc="Cinder Volume ID, for volumes managed through Cinder"),
    ],
    relations=[
        Relation("vmachine", "vmachine", "vdisks", doc="The vMachine this vDisk is attached to"),
        Relation("vpool", "vpool", "vdisks", mandatory=True, writable=False, doc="The vPool of the vDisk"),
        Relation("parent_vdisk", "vdisk", "child_vdisks", writable=False, doc="The vDisk this one was cloned from"),
    ],
    dynamics=[
        dynamic_of("snapshots", list, 60, unmeasured.no_snapshots, "Snapshots ([] until the data plane exists)"),
        dynamic_of("info", dict, 60, unmeasured.volume_info,
                   "Volume driver information (stored 0, failover_mode UNKNOWN until the data plane exists)"),
        dynamic_of("statistics", dict, 5, unmeasured.statistics, "I/O statistics (zeros until the data plane exists)"),
        dynamic_of("storagedriver_id", str, 60, doc="StorageDriver serving the vDisk (null until known)"),
        dynamic_of("storagerouter_guid", str, 15, doc="StorageRouter serving the vDisk (null until known)"),
        dynamic_of("is_vtemplate", bool, 60, doc="Whether the vDisk is a template (null until known)"),
    ],
)
