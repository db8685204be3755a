"""VPool: a storage pool exposed on StorageRouters by StorageDrivers."""

from ovsd.dal.fields import ObjectType, Prop, dynamic_of
from ovsd.dal.hybrids import unmeasured

TYPE = ObjectType(
    kind="vpool",
    doc="A vPool",
    props=[
        Prop("name", str, mandatory=True, unique=True, doc="Name of the vPool"),
        Prop("description", str, text=True, doc="Description of the vPool"),
        Prop("size", int, doc="Size of the vPool"),
        Prop("login", str, doc="Login for the backend"),
        Prop("password", str, secret=True, doc="Password for the backend; never sent"),
        Prop("connection", str, doc="Connection (host:port) of the backend"),
        Prop("type", str, mandatory=True, allowed=("LOCAL", "DISTRIBUTED", "CEPH_S3", "AMAZON_S3", "SWIFT_S3"),
             writable=False, doc="Backend type"),
        Prop("metadata", dict, default={}, doc="Backend metadata"),
    ],
    dynamics=[
        dynamic_of("status", str, 10, doc="Status of the vPool (null until the data plane exists)"),
        dynamic_of("statistics", dict, 5, unmeasured.statistics,
                   "Aggregated vDisk statistics (zeros until the data plane exists)"),
        dynamic_of("stored_data", int, 60, unmeasured.stored_data, "Data stored (0 until the data plane exists)"),
    ],
    default_sort=("name",),
)
