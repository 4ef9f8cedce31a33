"""Make one resource of every kind the built-in cleaner covers, in one member-account region."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return 1\n")
    return buffer.getvalue()


def make_everything(client: Callable[..., Any], region: str, *, role_arn: str) -> None:
    """One of each: EC2 instance (+ its volume), extra volume, snapshot, image, NAT gateway, EIP,
    ALB, classic ELB, RDS instance and cluster, Lambda, ECS cluster + service, DynamoDB table,
    log group, S3 bucket, CloudFormation stack."""
    ec2 = client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=z)["Subnet"]["SubnetId"]
               for i, z in enumerate(zones)]
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 SubnetId=subnets[0], DisableApiTermination=True)["Instances"][0]["InstanceId"]
    volume = ec2.create_volume(AvailabilityZone=zones[0], Size=8)["VolumeId"]
    ec2.create_snapshot(VolumeId=volume)
    ec2.create_image(InstanceId=instance, Name=f"run-image-{region}")
    nat_eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=nat_eip)
    ec2.allocate_address(Domain="vpc")
    elbv2 = client("elbv2", region)
    elbv2.create_load_balancer(Name=f"alb-{region}", Subnets=subnets)
    client("elb", region).create_load_balancer(
        LoadBalancerName=f"elb-{region}", AvailabilityZones=zones,
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}])
    rds = client("rds", region)
    rds.create_db_instance(DBInstanceIdentifier=f"db-{region}", DBInstanceClass="db.t3.micro", Engine="postgres",
                           MasterUsername="admin1", MasterUserPassword="password123", AllocatedStorage=20,
                           DeletionProtection=True)
    rds.create_db_cluster(DBClusterIdentifier=f"aurora-{region}", Engine="aurora-postgresql",
                          MasterUsername="admin1", MasterUserPassword="password123")
    client("lambda", region).create_function(FunctionName=f"fn-{region}", Runtime="python3.11", Role=role_arn,
                                             Handler="index.handler", Code={"ZipFile": _zip()})
    ecs = client("ecs", region)
    ecs.create_cluster(clusterName=f"cluster-{region}")
    ecs.register_task_definition(family="td", containerDefinitions=[
        {"name": "c", "image": "busybox", "memory": 128}])
    ecs.create_service(cluster=f"cluster-{region}", serviceName="svc", taskDefinition="td", desiredCount=1)
    client("dynamodb", region).create_table(
        TableName=f"table-{region}", BillingMode="PAY_PER_REQUEST", DeletionProtectionEnabled=True,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    client("logs", region).create_log_group(logGroupName=f"/run/{region}")
    s3 = client("s3", region)
    config = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=f"run-bucket-{region}", **config)
    s3.put_object(Bucket=f"run-bucket-{region}", Key="a.txt", Body=b"x")
    client("cloudformation", region).create_stack(StackName=f"run-stack-{region}", TemplateBody=json.dumps(
        {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}))
