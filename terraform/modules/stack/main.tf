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
  hosts = merge([
    for role, cfg in var.hosts : {
      for i in range(cfg.count) : "${replace(role, "_", "-")}-${i + 1}" => {
        role             = role
        index            = i
        instance_type    = cfg.instance_type
        root_volume_size = cfg.root_volume_size
        data_volume_size = cfg.data_volume_size
      }
    }
  ]...)

  enable_jenkins_agent = try(var.hosts["jenkins_agent"].count, 0) > 0

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

  # Only the tools hosts get more than SSM: the archive bucket.
  role_policy_json = each.value.role == "tools" ? module.archive.writer_policy_json : null

  # Only false against the test emulator, which lacks these APIs (see var.api_emulator).
  manage_metadata_options = !var.api_emulator
  monitoring              = var.api_emulator ? false : true

  tags = local.tags
}
