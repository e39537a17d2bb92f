# One lazyshift environment: network, one host per role instance, the MongoDB archive
# bucket. Every environment under envs/ is a thin root module calling this one with its own
# variable values, backend and provider; nothing here configures a provider or a backend.

locals {
  name = "${var.project}-${var.environment}"

  tags = {
    ManagedBy = "terraform"
    Component = "lazyshift"
  }

  # Expand {role => {count, ...}} into one entry per host: "mysql-1", "client-2", ...
  # retire_mongodb (make teardown, after stage 5's archive) takes the MongoDB host and its
  # data volume away whatever var.hosts says.
  host_counts = { for role, cfg in var.hosts : role => role == "mongodb" && var.retire_mongodb ? 0 : cfg.count }

  hosts = merge([
    for role, cfg in var.hosts : {
      for i in range(local.host_counts[role]) : "${replace(role, "_", "-")}-${i + 1}" => {
        role             = role
        index            = i
        instance_type    = cfg.instance_type
        root_volume_size = cfg.root_volume_size
        data_volume_size = cfg.data_volume_size
      }
    }
  ]...)

  enable_jenkins_agent = try(var.hosts["jenkins_agent"].count, 0) > 0

  # Data volumes wear this tag; the DLM policy below snapshots what wears it.
  snapshot_tag = "${local.name}-data"

  roles = ["bastion", "mongodb", "mysql", "source", "client", "tools", "jenkins_agent"]
}

# Fails the plan early when a listed zone does not exist or is not available in the region.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zones)
      error_message = "Some of var.availability_zones are not available in ${var.region}."
    }
  }
}

module "kms" {
  source = "../kms"

  name        = local.name
  project     = var.project
  environment = var.environment
  tags        = local.tags
}

module "network" {
  source = "../network"

  name                 = local.name
  project              = var.project
  environment          = var.environment
  vpc_cidr             = var.vpc_cidr
  availability_zones   = var.availability_zones
  single_nat_gateway   = var.single_nat_gateway
  admin_cidrs          = var.admin_cidrs
  enable_jenkins_agent = local.enable_jenkins_agent
  kms_key_arn          = module.kms.key_arn
  api_emulator         = var.api_emulator
  tags                 = local.tags
}

module "archive" {
  source = "../archive"

  name             = local.name
  project          = var.project
  environment      = var.environment
  kms_key_arn      = module.kms.key_arn
  writer_role_arns = [for k, h in module.host : h.iam_role_arn if h.role == "tools"]
  force_destroy    = var.archive_force_destroy
  # Only false against the test emulator (see var.api_emulator).
  manage_lifecycle = !var.api_emulator
  tags             = local.tags
}

module "host" {
  source   = "../host"
  for_each = local.hosts

  name        = "${local.name}-${each.key}"
  role        = each.value.role
  project     = var.project
  environment = var.environment

  # The bastion sits in a public subnet with an Elastic IP; every other host is private,
  # spread over the zones.
  subnet_id = (each.value.role == "bastion"
    ? module.network.public_subnet_ids[0]
  : module.network.private_subnet_ids[each.value.index % length(var.availability_zones)])
  # The subnets are made in var.availability_zones order (modules/network).
  availability_zone = (each.value.role == "bastion"
    ? var.availability_zones[0]
  : var.availability_zones[each.value.index % length(var.availability_zones)])
  data_volume_tags   = { Snapshot = local.snapshot_tag }
  public_ip          = each.value.role == "bastion"
  security_group_ids = module.network.role_security_group_ids[each.value.role]

  instance_type    = each.value.instance_type
  root_volume_size = each.value.root_volume_size
  data_volume_size = each.value.data_volume_size
  kms_key_arn      = module.kms.key_arn

  ami_id          = var.ami_id
  ami_owners      = var.ami_owners
  ami_name_filter = var.ami_name_filter
  key_name        = var.key_name

  # Only the tools hosts (the archive bucket) and the Jenkins agent get more than SSM.
  role_policy_json = (each.value.role == "tools" ? module.archive.writer_policy_json
  : each.value.role == "jenkins_agent" ? local.jenkins_agent_policy : null)

  # Only false against the test emulator, which lacks these APIs (see var.api_emulator).
  manage_metadata_options = !var.api_emulator
  monitoring              = var.api_emulator ? false : true

  tags = local.tags
}

################################################################################
# Snapshots of the database data volumes (DLM): daily, kept var.snapshot_retain_count days
################################################################################

resource "aws_iam_role" "dlm" {
  count = var.api_emulator ? 0 : 1

  name        = "${local.name}-dlm"
  description = "DLM snapshots of the ${local.name} database data volumes"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "dlm.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = local.tags
}

# AWS's managed policy for DLM's default role: snapshot create/delete/describe and tagging.
resource "aws_iam_role_policy_attachment" "dlm" {
  count = var.api_emulator ? 0 : 1

  role       = aws_iam_role.dlm[0].name
  policy_arn = "${local.arn}:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"
}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  account = data.aws_caller_identity.current.account_id
  arn     = "arn:${data.aws_partition.current.partition}"
  # terraform/bootstrap names the state bucket and the deploy role like this.
  state_bucket_arn = "${local.arn}:s3:::${var.project}-tfstate-${local.account}-${var.region}"

  # The Jenkins agent (AWS access by its instance role, no keys): its environment's state
  # (with the lock file), the EC2 reads of the aws_ec2 inventory, and assuming the deploy
  # role (terraform/bootstrap) that may change the stack. Nothing else.
  jenkins_agent_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "InventoryReads"
        Effect   = "Allow"
        Action   = ["ec2:DescribeInstances", "ec2:DescribeTags", "ec2:DescribeRegions"]
        Resource = "*"
      },
      {
        Sid      = "StateList"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = local.state_bucket_arn
      },
      {
        Sid      = "StateObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = "${local.state_bucket_arn}/${var.project}/${var.environment}/*"
      },
      {
        Sid      = "StateKeyThroughS3"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
        Resource = "*"
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.${var.region}.amazonaws.com" }
          StringLike   = { "kms:EncryptionContext:aws:s3:arn" = "${local.state_bucket_arn}/*" }
        }
      },
      {
        Sid      = "DeployRole"
        Effect   = "Allow"
        Action   = "sts:AssumeRole"
        Resource = "${local.arn}:iam::${local.account}:role/${var.project}-terraform-deploy"
      },
    ]
  })
}

# moto has no DLM API, so the emulator run leaves the policy out (tested with the mocked
# provider in tests/stack.tftest.hcl instead).
resource "aws_dlm_lifecycle_policy" "data" {
  count = var.api_emulator ? 0 : 1

  description        = "${local.name} database data volumes daily"
  execution_role_arn = aws_iam_role.dlm[0].arn
  state              = "ENABLED"

  policy_details {
    resource_types = ["VOLUME"]
    target_tags    = { Snapshot = local.snapshot_tag }

    schedule {
      name      = "daily"
      copy_tags = true

      create_rule {
        interval      = 24
        interval_unit = "HOURS"
        times         = ["03:00"]
      }

      retain_rule {
        count = var.snapshot_retain_count
      }

      tags_to_add = {
        SnapshotCreator = "dlm"
      }
    }
  }

  tags = local.tags
}
