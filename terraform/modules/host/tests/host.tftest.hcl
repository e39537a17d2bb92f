# terraform test: the host module's security properties, against a mocked AWS provider.

mock_provider "aws" {
  mock_data "aws_ami" {
    defaults = {
      id = "ami-0123456789abcdef0"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
}

variables {
  name               = "lazyshift-test-mysql-1"
  role               = "mysql"
  environment        = "dev"
  subnet_id          = "subnet-0123456789abcdef0"
  availability_zone  = "eu-west-1a"
  security_group_ids = ["sg-0123456789abcdef0"]
  kms_key_arn        = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  data_volume_size   = 50
}

run "database_host_is_private_encrypted_and_imdsv2" {
  command = plan

  assert {
    condition     = length(aws_eip.this) == 0
    error_message = "A database host must not get a public IP."
  }

  assert {
    condition     = aws_instance.this.metadata_options[0].http_tokens == "required" && aws_instance.this.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "IMDSv2 must be required (hop limit 1)."
  }

  assert {
    condition     = aws_instance.this.root_block_device[0].encrypted && aws_instance.this.root_block_device[0].volume_type == "gp3" && aws_instance.this.root_block_device[0].kms_key_id == var.kms_key_arn
    error_message = "The root volume must be gp3, encrypted with the environment's key."
  }

  assert {
    condition     = length(aws_ebs_volume.data) == 1 && aws_ebs_volume.data[0].encrypted && aws_ebs_volume.data[0].type == "gp3" && aws_ebs_volume.data[0].size == 50 && aws_ebs_volume.data[0].kms_key_id == var.kms_key_arn
    error_message = "A database host needs a separate encrypted gp3 data volume."
  }

  assert {
    condition     = aws_instance.this.tags["Project"] == "lazyshift" && aws_instance.this.tags["Environment"] == "dev" && aws_instance.this.tags["Role"] == "mysql"
    error_message = "The instance must carry the Project, Environment and Role tags the inventory groups by."
  }

  assert {
    condition     = aws_ebs_volume.data[0].tags["Role"] == "mysql" && aws_iam_role.this.tags["Role"] == "mysql"
    error_message = "Volumes and the role are tagged too."
  }

  assert {
    condition     = length(aws_iam_role_policy.this) == 0 && length(aws_iam_role_policy_attachment.ssm) == 1
    error_message = "A non-tools host gets nothing beyond SSM core."
  }

  assert {
    condition     = aws_instance.this.monitoring && aws_instance.this.ebs_optimized
    error_message = "Detailed monitoring and EBS optimisation are on by default."
  }

  assert {
    condition     = data.aws_ami.this[0].owners == tolist(["136693071363"]) && anytrue([for f in data.aws_ami.this[0].filter : f.name == "name" && startswith(tolist(f.values)[0], "debian-12-")])
    error_message = "The AMI is looked up among Debian's official Debian 12 images (the lab's release)."
  }
}

run "database_host_refuses_a_public_ip" {
  command = plan

  variables {
    public_ip = true
  }

  expect_failures = [var.public_ip]
}

run "database_host_requires_a_data_volume" {
  command = plan

  variables {
    role             = "mongodb"
    data_volume_size = 0
  }

  expect_failures = [var.data_volume_size]
}

run "bastion_gets_an_elastic_ip_and_no_data_volume" {
  command = plan

  variables {
    name             = "lazyshift-test-bastion-1"
    role             = "bastion"
    public_ip        = true
    data_volume_size = 0
  }

  assert {
    condition     = length(aws_eip.this) == 1 && length(aws_ebs_volume.data) == 0
    error_message = "The bastion has an Elastic IP and no data volume."
  }
}

run "pinned_ami_skips_the_lookup" {
  command = plan

  variables {
    ami_id = "ami-0fedcba9876543210"
  }

  assert {
    condition     = length(data.aws_ami.this) == 0 && aws_instance.this.ami == "ami-0fedcba9876543210"
    error_message = "ami_id pins the AMI."
  }
}

run "tools_host_gets_its_extra_policy" {
  command = plan

  variables {
    name             = "lazyshift-test-tools-1"
    role             = "tools"
    data_volume_size = 0
    role_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }

  assert {
    condition     = length(aws_iam_role_policy.this) == 1
    error_message = "The role policy is attached when given."
  }
}

run "rejects_non_debian_images_and_unknown_roles" {
  command = plan

  variables {
    ami_name_filter = "amzn2-ami-hvm-*"
    role            = "webserver"
  }

  expect_failures = [var.ami_name_filter, var.role]
}
