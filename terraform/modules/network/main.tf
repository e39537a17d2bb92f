locals {
  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
  })

  az_count = length(var.availability_zones)
  # Public subnets first, then private ones: /20 each out of a /16.
  newbits         = 20 - tonumber(split("/", var.vpc_cidr)[1]) > 0 ? 20 - tonumber(split("/", var.vpc_cidr)[1]) : 4
  public_subnets  = [for i in range(local.az_count) : cidrsubnet(var.vpc_cidr, local.newbits, i)]
  private_subnets = [for i in range(local.az_count) : cidrsubnet(var.vpc_cidr, local.newbits, i + local.az_count)]
  nat_count       = var.single_nat_gateway ? 1 : local.az_count

  # Every host role has its own security group, plus three "access" groups that a host
  # wears to be let in somewhere. One rule per (group, port, source) keeps the rules
  # readable and lets each be its own resource.
  roles = concat(["bastion", "mongodb", "mysql", "source", "client", "tools"], var.enable_jenkins_agent ? ["jenkins_agent"] : [])

  access_groups = {
    mongodb_access = "may connect to MongoDB (27017)"
    mysql_access   = "may connect to MySQL (3306)"
    managed        = "reachable on SSH from the bastion"
  }

  # Which groups the hosts of each role wear. The only way into a database port is the
  # access group, and only client and tools hosts wear it.
  role_security_groups = {
    for r in local.roles : r => concat(
      [r],
      contains(["client", "tools"], r) ? ["mongodb_access", "mysql_access"] : [],
      r != "bastion" ? ["managed"] : [],
    )
  }

  # Listener <- source group rules.
  service_rules = {
    mongodb_from_access = { to = "mongodb", from = "mongodb_access", port = 27017, what = "MongoDB" }
    mysql_from_access   = { to = "mysql", from = "mysql_access", port = 3306, what = "MySQL" }
    source_from_client  = { to = "source", from = "client", port = 8282, what = "mock source stream" }
    ssh_from_bastion    = { to = "managed", from = "bastion", port = 22, what = "SSH" }
  }
}

################################################################################
# VPC
################################################################################

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_hostnames = true
  enable_dns_support   = true

  tags = merge(local.tags, { Name = var.name })
}

# Lock down the default security group: no rules at all (nothing may use it).
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  count = local.az_count

  vpc_id                  = aws_vpc.this.id
  cidr_block              = local.public_subnets[count.index]
  availability_zone       = var.availability_zones[count.index]
  map_public_ip_on_launch = false

  tags = merge(local.tags, {
    Name = "${var.name}-public-${var.availability_zones[count.index]}"
    Tier = "public"
  })
}

resource "aws_subnet" "private" {
  count = local.az_count

  vpc_id                  = aws_vpc.this.id
  cidr_block              = local.private_subnets[count.index]
  availability_zone       = var.availability_zones[count.index]
  map_public_ip_on_launch = false

  tags = merge(local.tags, {
    Name = "${var.name}-private-${var.availability_zones[count.index]}"
    Tier = "private"
  })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = merge(local.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = local.az_count

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  count = local.nat_count

  domain = "vpc"

  tags = merge(local.tags, { Name = "${var.name}-nat-${count.index}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count = local.nat_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = merge(local.tags, { Name = "${var.name}-nat-${count.index}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "private" {
  count = local.az_count

  vpc_id = aws_vpc.this.id

  tags = merge(local.tags, { Name = "${var.name}-private-${var.availability_zones[count.index]}" })
}

resource "aws_route" "private_nat" {
  count = local.az_count

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.single_nat_gateway ? 0 : count.index].id
}

resource "aws_route_table_association" "private" {
  count = local.az_count

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

data "aws_region" "current" {}

resource "aws_vpc_endpoint" "s3" {
  count = var.enable_s3_endpoint ? 1 : 0

  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id

  tags = merge(local.tags, { Name = "${var.name}-s3" })
}

################################################################################
# Flow logs (all traffic, to an encrypted log group kept for a year)
################################################################################

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/lazyshift/${var.name}/vpc-flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = local.tags
}

resource "aws_iam_role" "flow_logs" {
  name = "${var.name}-vpc-flow-logs"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "vpc-flow-logs.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = local.tags
}

resource "aws_iam_role_policy" "flow_logs" {
  name = "write-flow-logs"
  role = aws_iam_role.flow_logs.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect = "Allow"
      Action = [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
      ]
      Resource = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
    }]
  })
}

resource "aws_flow_log" "this" {
  vpc_id               = aws_vpc.this.id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn         = aws_iam_role.flow_logs.arn

  tags = merge(local.tags, { Name = var.name })
}

################################################################################
# Security groups: one per role, least privilege
################################################################################

resource "aws_security_group" "this" {
  # checkov:skip=CKV2_AWS_5:The groups are attached to the instances by the host module (vpc_security_group_ids), across the module boundary checkov does not follow.
  for_each = merge(
    { for r in local.roles : r => "lazyshift ${r} hosts (${var.environment})" },
    { for g, what in local.access_groups : g => "lazyshift hosts that ${what} (${var.environment})" },
  )

  name        = "${var.name}-${replace(each.key, "_", "-")}"
  description = each.value
  vpc_id      = aws_vpc.this.id

  tags = merge(local.tags, {
    Name = "${var.name}-${replace(each.key, "_", "-")}"
  })

  lifecycle {
    create_before_destroy = true
  }
}

# Database, source and SSH ports, only from the groups that use them.
# (Rule descriptions of group-to-group rules are left out only under var.api_emulator.)
resource "aws_vpc_security_group_ingress_rule" "service" {
  # checkov:skip=CKV_AWS_24:Sources are security groups (referenced_security_group_id), never a CIDR; checkov reads a rule without a CIDR as open to 0.0.0.0/0.
  for_each = local.service_rules

  security_group_id            = aws_security_group.this[each.value.to].id
  referenced_security_group_id = aws_security_group.this[each.value.from].id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = var.api_emulator ? null : "${each.value.what} from ${each.value.from} group"

  tags = merge(local.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}" })
}

resource "aws_vpc_security_group_egress_rule" "service" {
  for_each = local.service_rules

  security_group_id            = aws_security_group.this[each.value.from].id
  referenced_security_group_id = aws_security_group.this[each.value.to].id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = var.api_emulator ? null : "${each.value.what} to ${each.value.to} group"

  tags = merge(local.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}" })
}

# SSH to the bastion: from the admin CIDRs ...
resource "aws_vpc_security_group_ingress_rule" "bastion_ssh_admin" {
  for_each = toset(var.admin_cidrs)

  security_group_id = aws_security_group.this["bastion"].id
  cidr_ipv4         = each.key
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  description       = "SSH from admin network ${each.key}"

  tags = merge(local.tags, { Name = "${var.name}-bastion-ssh-admin" })
}

# ... and from the Jenkins agent, whose Ansible runs jump through the bastion.
resource "aws_vpc_security_group_ingress_rule" "bastion_ssh_jenkins" {
  # checkov:skip=CKV_AWS_24:The source is a security group (referenced_security_group_id), not a CIDR; checkov reads a rule without a CIDR as open to 0.0.0.0/0.
  count = var.enable_jenkins_agent ? 1 : 0

  security_group_id            = aws_security_group.this["bastion"].id
  referenced_security_group_id = aws_security_group.this["jenkins_agent"].id
  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  description                  = var.api_emulator ? null : "SSH from the Jenkins agent (ProxyJump)"

  tags = merge(local.tags, { Name = "${var.name}-bastion-ssh-jenkins" })
}

resource "aws_vpc_security_group_egress_rule" "jenkins_ssh_bastion" {
  count = var.enable_jenkins_agent ? 1 : 0

  security_group_id            = aws_security_group.this["jenkins_agent"].id
  referenced_security_group_id = aws_security_group.this["bastion"].id
  ip_protocol                  = "tcp"
  from_port                    = 22
  to_port                      = 22
  description                  = var.api_emulator ? null : "SSH to the bastion (ProxyJump)"

  tags = merge(local.tags, { Name = "${var.name}-jenkins-ssh-bastion" })
}

# Outbound HTTPS/HTTP for package installs, SSM and S3 (through the NAT or the S3 endpoint).
resource "aws_vpc_security_group_egress_rule" "https" {
  for_each = toset(local.roles)

  security_group_id = aws_security_group.this[each.key].id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "HTTPS out (packages, SSM, S3)"

  tags = merge(local.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}-https" })
}

resource "aws_vpc_security_group_egress_rule" "http" {
  for_each = toset(local.roles)

  security_group_id = aws_security_group.this[each.key].id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  description       = "HTTP out (Debian package mirrors)"

  tags = merge(local.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}-http" })
}
