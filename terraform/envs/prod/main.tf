# The prod environment: modules/stack with this directory's variable values (variables.tf).
# Nothing but wiring lives here; resources belong in modules/ (tests/terraform checks it).

module "stack" {
  source = "../../modules/stack"

  project               = var.project
  environment           = var.environment
  region                = var.region
  vpc_cidr              = var.vpc_cidr
  availability_zones    = var.availability_zones
  single_nat_gateway    = var.single_nat_gateway
  admin_cidrs           = var.admin_cidrs
  hosts                 = var.hosts
  ami_id                = var.ami_id
  ami_owners            = var.ami_owners
  ami_name_filter       = var.ami_name_filter
  key_name              = var.key_name
  archive_force_destroy = var.archive_force_destroy
  api_emulator          = var.api_emulator
  retire_mongodb        = var.retire_mongodb
  snapshot_retain_count = var.snapshot_retain_count
}

# The composition used to live in this root module; these keep existing state in place
# (no destroy/create) when it moves into modules/stack.
moved {
  from = module.kms
  to   = module.stack.module.kms
}

moved {
  from = module.network
  to   = module.stack.module.network
}

moved {
  from = module.archive
  to   = module.stack.module.archive
}

moved {
  from = module.host
  to   = module.stack.module.host
}
