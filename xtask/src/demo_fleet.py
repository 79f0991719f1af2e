"""Builds a small EC2 fleet in the emulator for the demo: one instance per verdict."""
import os
import sys

import boto3

endpoint = sys.argv[1]
ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
open_ssh = ec2.create_security_group(GroupName="demo-open-ssh", Description="ssh from anywhere", VpcId=vpc)["GroupId"]
ec2.authorize_security_group_ingress(
    GroupId=open_ssh,
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
)
web = ec2.create_security_group(GroupName="demo-web", Description="https from anywhere", VpcId=vpc)["GroupId"]
ec2.authorize_security_group_ingress(
    GroupId=web,
    IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
)
full = [{"Key": "Environment", "Value": "prod"}, {"Key": "Owner", "Value": "web-team"}, {"Key": "CostCenter", "Value": "cc-42"}]
fleet = [
    ("web-1 (compliant)", full, web),
    ("batch-1 (missing CostCenter)", full[:2], web),
    ("api-1 (near miss: 'owner')", [full[0], {"Key": "owner", "Value": "api"}, full[2]], web),
    ("bastion-1 (ssh open to the world)", full, open_ssh),
    ("lab-1 (exempt)", [{"Key": "ComplianceExempt", "Value": "true"}], open_ssh),
]
for name, tags, group in fleet:
    ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        SubnetId=subnet,
        SecurityGroupIds=[group],
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags + [{"Key": "Name", "Value": name}]}],
    )
    print(f"  instance {name}")
