# terraform test: the composition shared by every environment, against a mocked AWS
# provider. Environment-specific defaults are tested in envs/*/tests.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b"]
    }
  }

  mock_data "aws_ami" {
    defaults = {
      id = "ami-0123456789abcdef0"
    }
  }

  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }

  # The provider and the modules validate ARNs; give the mocks well-formed ones.
  mock_resource "aws_kms_key" {
    defaults = {
      arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/lazyshift-mock"
    }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/lazyshift/mock"
    }
  }

  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::lazyshift-test-mongodb-archive-123456789012"
    }
  }
}

variables {
  environment        = "dev"
  region             = "eu-west-1"
  vpc_cidr           = "10.40.0.0/16"
  availability_zones = ["eu-west-1a", "eu-west-1b"]
  admin_cidrs        = ["203.0.113.0/24"]
  hosts = {
    bastion = { count = 1, instance_type = "t3.micro" }
    mongodb = { count = 1, instance_type = "t3.medium", data_volume_size = 50 }
    mysql   = { count = 1, instance_type = "t3.medium", data_volume_size = 50 }
    source  = { count = 1, instance_type = "t3.small" }
    client  = { count = 1, instance_type = "t3.small" }
    tools   = { count = 1, instance_type = "t3.medium" }
  }
}

run "one_host_per_role_instance" {
  command = apply

  assert {
    condition = { for role in ["bastion", "mongodb", "mysql", "source", "client", "tools", "jenkins_agent"] :
      role => length([for n, h in output.hosts : n if h.role == role]) } == {
      bastion = 1, mongodb = 1, mysql = 1, source = 1, client = 1, tools = 1, jenkins_agent = 0
    }
    error_message = "One host per role instance, no Jenkins agent unless asked for."
  }

  assert {
    condition     = alltrue([for n, h in output.hosts : startswith(n, "lazyshift-dev-${replace(h.role, "_", "-")}-")])
    error_message = "Host names are <project>-<environment>-<role>-<n>."
  }

  assert {
    condition     = output.project == "lazyshift" && output.environment == "dev" && output.region == "eu-west-1"
    error_message = "Outputs name the project, environment and region."
  }

  assert {
    condition     = output.archive_bucket_arn == "arn:aws:s3:::lazyshift-test-mongodb-archive-123456789012"
    error_message = "Outputs name the archive bucket."
  }

  assert {
    condition     = output.mysql_host != null && output.mongodb_host != null && output.source_host != null
    error_message = "The database and source addresses are exported for the renderer."
  }

  assert {
    condition     = keys(output.hosts_by_role) == ["bastion", "client", "jenkins_agent", "mongodb", "mysql", "source", "tools"]
    error_message = "hosts_by_role lists every role."
  }

  assert {
    condition     = length(output.private_subnet_ids) == 2 && !contains(keys(output.security_group_ids), "jenkins_agent")
    error_message = "One private subnet per zone; no Jenkins agent group without an agent."
  }

  assert {
    condition     = local.tags == { ManagedBy = "terraform", Component = "lazyshift" }
    error_message = "Every module gets the ManagedBy/Component tags (Project/Environment/Role are added by the modules)."
  }
}

run "only_the_bastion_has_a_public_ip" {
  command = apply

  assert {
    condition     = alltrue([for n, h in output.hosts : (h.public_ip != null) == (h.role == "bastion")])
    error_message = "Only the bastion has a public IP; database hosts never do."
  }

  assert {
    condition     = output.bastion_public_ip != null
    error_message = "The bastion's address is exported."
  }
}

run "database_access_only_for_client_and_tools" {
  command = apply

  assert {
    condition = jsonencode({
      for role in ["bastion", "mongodb", "mysql", "source", "client", "tools"] : role => sort([
        for name, id in output.security_group_ids : name if contains(module.network.role_security_group_ids[role], id)
      ])
      }) == jsonencode({
      bastion = ["bastion"]
      mongodb = ["managed", "mongodb"]
      mysql   = ["managed", "mysql"]
      source  = ["managed", "source"]
      client  = ["client", "managed", "mongodb_access", "mysql_access"]
      tools   = ["managed", "mongodb_access", "mysql_access", "tools"]
    })
    error_message = "Only client and tools hosts wear the database access groups; every host but the bastion is managed (SSH from the bastion)."
  }
}

run "several_clients_spread_over_the_zones" {
  command = apply

  variables {
    availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    hosts = {
      bastion       = { count = 1, instance_type = "t3.micro" }
      mongodb       = { count = 1, instance_type = "t3.medium", data_volume_size = 50 }
      mysql         = { count = 1, instance_type = "t3.medium", data_volume_size = 50 }
      client        = { count = 3, instance_type = "t3.small" }
      tools         = { count = 2, instance_type = "t3.medium" }
      jenkins_agent = { count = 1, instance_type = "t3.medium" }
    }
  }

  override_data {
    target = data.aws_availability_zones.selected
    values = {
      names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    }
  }

  assert {
    condition     = length(output.hosts_by_role["client"]) == 3 && length(output.hosts_by_role["tools"]) == 2 && length(output.hosts_by_role["jenkins_agent"]) == 1
    error_message = "Counts per role follow var.hosts."
  }

  assert {
    condition     = length(output.private_subnet_ids) == 3 && contains(keys(output.security_group_ids), "jenkins_agent")
    error_message = "One private subnet per zone; a Jenkins agent gets its group."
  }

  assert {
    condition     = output.source_host == null && length(output.hosts_by_role["source"]) == 0
    error_message = "A role without hosts is exported as empty."
  }
}

run "rejects_open_ssh_and_a_second_mysql" {
  command = plan

  variables {
    admin_cidrs = ["0.0.0.0/0"]
    hosts = {
      bastion = { count = 1, instance_type = "t3.micro" }
      mysql   = { count = 2, instance_type = "t3.medium", data_volume_size = 50 }
    }
  }

  expect_failures = [var.admin_cidrs, var.hosts]
}

run "rejects_a_database_without_data_volume" {
  command = plan

  variables {
    hosts = {
      bastion = { count = 1, instance_type = "t3.micro" }
      mysql   = { count = 1, instance_type = "t3.medium" }
    }
  }

  expect_failures = [var.hosts]
}

run "rejects_an_unknown_role_and_environment" {
  command = plan

  variables {
    environment = "qa"
    hosts = {
      bastion = { count = 1, instance_type = "t3.micro" }
      mysql   = { count = 1, instance_type = "t3.medium", data_volume_size = 50 }
      web     = { count = 1, instance_type = "t3.small" }
    }
  }

  expect_failures = [var.environment, var.hosts]
}

run "stage_5_drops_mongodb" {
  command = apply

  variables {
    hosts = {
      bastion = { count = 1, instance_type = "t3.micro" }
      mysql   = { count = 1, instance_type = "t3.medium", data_volume_size = 50 }
      client  = { count = 1, instance_type = "t3.small" }
      tools   = { count = 1, instance_type = "t3.medium" }
    }
  }

  assert {
    condition     = output.mongodb_host == null && length(output.hosts_by_role["mongodb"]) == 0
    error_message = "Without a MongoDB host the outputs say so."
  }
}

run "data_volumes_are_snapshotted_daily_and_outlive_their_instance" {
  command = apply

  assert {
    condition     = alltrue([for k, h in module.host : h.data_volume_id != null if contains(["mongodb", "mysql"], h.role)]) && keys(output.data_volume_ids) == ["lazyshift-dev-mongodb-1", "lazyshift-dev-mysql-1"]
    error_message = "Each database host has a data volume, listed in data_volume_ids."
  }

  assert {
    condition     = aws_dlm_lifecycle_policy.data[0].policy_details[0].target_tags["Snapshot"] == "lazyshift-dev-data" && length(aws_dlm_lifecycle_policy.data[0].policy_details[0].target_tags) == 1 && aws_dlm_lifecycle_policy.data[0].state == "ENABLED"
    error_message = "One enabled DLM policy selects the data volumes by their Snapshot tag."
  }

  assert {
    condition     = aws_dlm_lifecycle_policy.data[0].policy_details[0].schedule[0].retain_rule[0].count == 14 && aws_dlm_lifecycle_policy.data[0].policy_details[0].schedule[0].create_rule[0].interval == 24
    error_message = "Daily snapshots, 14 kept by default."
  }
}

run "retire_mongodb_removes_its_host_whatever_hosts_says" {
  command = apply

  variables {
    retire_mongodb = true
  }

  assert {
    condition     = output.mongodb_host == null && output.mongodb_retired && keys(output.data_volume_ids) == ["lazyshift-dev-mysql-1"]
    error_message = "retire_mongodb drops the MongoDB host and its data volume, and says so."
  }
}

run "jenkins_agent_gets_its_state_the_inventory_and_the_deploy_role_only" {
  command = apply

  variables {
    hosts = {
      bastion       = { count = 1, instance_type = "t3.micro" }
      mysql         = { count = 1, instance_type = "t3.medium", data_volume_size = 50 }
      jenkins_agent = { count = 1, instance_type = "t3.medium" }
    }
  }

  assert {
    condition = [for s in jsondecode(module.host["jenkins-agent-1"].role_policy_json).Statement : s.Sid] == [
    "InventoryReads", "StateList", "StateObjects", "StateKeyThroughS3", "DeployRole"]
    error_message = "The agent's role: inventory reads, its state, the state key through S3, the deploy role."
  }

  assert {
    condition     = jsondecode(module.host["jenkins-agent-1"].role_policy_json).Statement[2].Resource == "arn:aws:s3:::lazyshift-tfstate-123456789012-eu-west-1/lazyshift/dev/*"
    error_message = "The agent reads and writes only its own environment's state objects."
  }

  assert {
    condition     = jsondecode(module.host["jenkins-agent-1"].role_policy_json).Statement[4].Resource == "arn:aws:iam::123456789012:role/lazyshift-terraform-deploy"
    error_message = "The agent may assume only the deploy role terraform/bootstrap makes."
  }
}

run "zones_must_be_in_the_region" {
  command = plan

  variables {
    availability_zones = ["us-east-1a", "us-east-1b"]
  }

  expect_failures = [var.availability_zones]
}
