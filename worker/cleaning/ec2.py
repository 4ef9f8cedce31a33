"""EC2 kinds: instances, NAT gateways, Elastic IPs, images, snapshots, volumes."""

from __future__ import annotations

from typing import Any

from worker.cleaning.job import CleanupJob
from worker.cleaning.kinds import Kind, each, listed, pages, wait

_LIVE_INSTANCE = ["pending", "running", "stopping", "stopped"]
_LIVE_NAT = ["pending", "available", "failed"]


def _instances(ec2: Any, _: CleanupJob) -> list[str]:
    reservations = pages(ec2, "describe_instances", "Reservations",
                         Filters=[{"Name": "instance-state-name", "Values": _LIVE_INSTANCE}])
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


def _terminate(ec2: Any, ids: list[str], job: CleanupJob) -> None:
    for instance in ids:  # a run may have set termination protection
        ec2.modify_instance_attribute(InstanceId=instance, DisableApiTermination={"Value": False})
    ec2.terminate_instances(InstanceIds=ids)
    wait(ec2, "instance_terminated", job, InstanceIds=ids)  # their volumes and EIPs free up after


def _delete_nat(ec2: Any, ids: list[str], job: CleanupJob) -> None:
    for gateway in ids:
        ec2.delete_nat_gateway(NatGatewayId=gateway)
    wait(ec2, "nat_gateway_deleted", job, NatGatewayIds=ids)  # its Elastic IP is released after


def _addresses(ec2: Any, _: CleanupJob) -> list[str]:
    return [a["AllocationId"] for a in ec2.describe_addresses().get("Addresses", []) if "AllocationId" in a]


def _release(ec2: Any, ids: list[str], _: CleanupJob) -> None:
    by_id = {a["AllocationId"]: a for a in ec2.describe_addresses(AllocationIds=ids)["Addresses"]}
    for allocation in ids:
        if by_id.get(allocation, {}).get("AssociationId"):
            ec2.disassociate_address(AssociationId=by_id[allocation]["AssociationId"])
        ec2.release_address(AllocationId=allocation)


def _images(ec2: Any, _: CleanupJob) -> list[str]:
    return [i["ImageId"] for i in ec2.describe_images(Owners=["self"]).get("Images", [])]


def _snapshots(ec2: Any, job: CleanupJob) -> list[str]:
    # OwnerId checked again: moto answers "self" with every snapshot it knows, AMIs' included
    snapshots = pages(ec2, "describe_snapshots", "Snapshots", OwnerIds=[job.account_id])
    return [s["SnapshotId"] for s in snapshots if s.get("OwnerId") == job.account_id]


def _delete_volumes(ec2: Any, ids: list[str], job: CleanupJob) -> None:
    attached = [v["VolumeId"] for v in ec2.describe_volumes(VolumeIds=ids)["Volumes"] if v.get("Attachments")]
    for volume in attached:
        ec2.detach_volume(VolumeId=volume, Force=True)
    if attached:
        wait(ec2, "volume_available", job, VolumeIds=attached)
    for volume in ids:
        ec2.delete_volume(VolumeId=volume)


KINDS = (
    Kind("ec2:instance", "ec2", _instances, _terminate),
    Kind("ec2:nat-gateway", "ec2", listed("describe_nat_gateways", "NatGateways", "NatGatewayId",
                                          Filters=[{"Name": "state", "Values": _LIVE_NAT}]), _delete_nat),
    Kind("ec2:elastic-ip", "ec2", _addresses, _release),
    # images before snapshots: a registered image's snapshot cannot be deleted
    Kind("ec2:image", "ec2", _images, each("deregister_image", "ImageId")),
    Kind("ec2:snapshot", "ec2", _snapshots, each("delete_snapshot", "SnapshotId")),
    Kind("ec2:volume", "ec2", listed("describe_volumes", "Volumes", "VolumeId",
                                     keep=lambda v: v.get("State") not in ("deleting", "deleted")), _delete_volumes),
)
