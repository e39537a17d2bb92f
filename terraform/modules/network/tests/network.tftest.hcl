# terraform test: least-privilege network rules, against a mocked AWS provider.
# command = apply with mocks gives every resource an id, so rules can be matched to groups.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }

  # The provider still validates ARNs it is handed; give the mocks well-formed ones.
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/lazyshift/test/vpc-flow-logs"
    }
  }

  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/lazyshift-test-vpc-flow-logs"
    }
  }
}

variables {
  name               = "lazyshift-test"
  environment        = "dev"
  availability_zones = ["eu-west-1a", "eu-west-1b"]
  admin_cidrs        = ["203.0.113.0/24"]
  kms_key_arn        = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
}

run "subnets_span_two_zones_and_private_hosts_use_nat" {
  command = apply

  assert {
    condition     = length(aws_subnet.public) == 2 && length(aws_subnet.private) == 2
    error_message = "One public and one private subnet per zone."
  }

  assert {
    condition     = length(distinct(aws_subnet.private[*].availability_zone)) == 2
    error_message = "Private subnets cover two availability zones."
  }

  assert {
    condition     = alltrue([for s in concat(aws_subnet.public, aws_subnet.private) : !s.map_public_ip_on_launch])
    error_message = "No subnet hands out public IPs on launch."
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 1 && alltrue([for r in aws_route.private_nat : r.nat_gateway_id == aws_nat_gateway.this[0].id])
    error_message = "Private subnets route to the internet through the NAT gateway."
  }

  assert {
    condition     = aws_flow_log.this.traffic_type == "ALL" && aws_cloudwatch_log_group.flow_logs.kms_key_id == var.kms_key_arn
    error_message = "VPC flow logs go to an encrypted log group."
  }
}

run "nothing_of_the_databases_is_reachable_from_the_internet" {
  command = apply

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.service : r.cidr_ipv4 == null && r.cidr_ipv6 == null && r.referenced_security_group_id != null])
    error_message = "Service ports are opened to security groups only, never to a CIDR."
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.bastion_ssh_admin : r.cidr_ipv4 != "0.0.0.0/0" && r.from_port == 22 && r.to_port == 22])
    error_message = "The only CIDR ingress is SSH to the bastion from the admin CIDRs."
  }

  assert {
    condition = length([for r in aws_vpc_security_group_ingress_rule.bastion_ssh_admin : r]) == 1 && alltrue([
      for r in aws_vpc_security_group_ingress_rule.bastion_ssh_admin : r.security_group_id == aws_security_group.this["bastion"].id
    ])
    error_message = "Admin CIDRs reach the bastion only."
  }
}

run "database_and_source_ports_only_from_the_roles_that_use_them" {
  command = apply

  # MongoDB 27017: a single rule, from the mongodb_access group, worn by client and tools only.
  assert {
    condition = [for r in aws_vpc_security_group_ingress_rule.service : [r.from_port, r.to_port, r.referenced_security_group_id]
      if r.security_group_id == aws_security_group.this["mongodb"].id] == [
      [27017, 27017, aws_security_group.this["mongodb_access"].id]
    ]
    error_message = "MongoDB accepts 27017 only from the mongodb_access group."
  }

  assert {
    condition     = sort([for role, ids in output.role_security_group_ids : role if contains(ids, aws_security_group.this["mongodb_access"].id)]) == tolist(["client", "tools"])
    error_message = "Only client and tools hosts wear the mongodb_access group."
  }

  assert {
    condition = [for r in aws_vpc_security_group_ingress_rule.service : [r.from_port, r.to_port, r.referenced_security_group_id]
      if r.security_group_id == aws_security_group.this["mysql"].id] == [
      [3306, 3306, aws_security_group.this["mysql_access"].id]
    ]
    error_message = "MySQL accepts 3306 only from the mysql_access group."
  }

  assert {
    condition     = sort([for role, ids in output.role_security_group_ids : role if contains(ids, aws_security_group.this["mysql_access"].id)]) == tolist(["client", "tools"])
    error_message = "Only client and tools hosts wear the mysql_access group."
  }

  assert {
    condition = [for r in aws_vpc_security_group_ingress_rule.service : [r.from_port, r.to_port, r.referenced_security_group_id]
      if r.security_group_id == aws_security_group.this["source"].id] == [
      [8282, 8282, aws_security_group.this["client"].id]
    ]
    error_message = "The mock source accepts 8282 only from client hosts."
  }

  assert {
    condition     = [for role, ids in output.role_security_group_ids : role if contains(ids, aws_security_group.this["client"].id)] == ["client"]
    error_message = "Only client hosts wear the client group."
  }
}

run "ssh_only_from_the_bastion" {
  command = apply

  assert {
    condition = [for r in aws_vpc_security_group_ingress_rule.service : [r.security_group_id, r.referenced_security_group_id]
      if r.from_port <= 22 && r.to_port >= 22] == [
      [aws_security_group.this["managed"].id, aws_security_group.this["bastion"].id]
    ]
    error_message = "SSH into hosts is allowed from the bastion group only."
  }

  assert {
    condition     = alltrue([for role, ids in output.role_security_group_ids : contains(ids, aws_security_group.this["managed"].id) == (role != "bastion")])
    error_message = "Every host but the bastion is managed through the bastion."
  }
}

run "default_security_group_denies_everything" {
  command = apply

  assert {
    condition     = length(aws_default_security_group.this.ingress) == 0 && length(aws_default_security_group.this.egress) == 0
    error_message = "The VPC default security group has no rules."
  }
}

run "prod_layout_one_nat_per_zone_and_jenkins_agent" {
  command = apply

  variables {
    availability_zones   = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    single_nat_gateway   = false
    enable_jenkins_agent = true
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 3 && length(aws_subnet.private) == 3
    error_message = "One NAT gateway and one private subnet per zone."
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.bastion_ssh_jenkins) == 1 && aws_vpc_security_group_ingress_rule.bastion_ssh_jenkins[0].referenced_security_group_id == aws_security_group.this["jenkins_agent"].id
    error_message = "The Jenkins agent reaches the bastion on SSH (ProxyJump)."
  }
}

run "rejects_an_open_admin_cidr_and_a_single_zone" {
  command = plan

  variables {
    admin_cidrs        = ["0.0.0.0/0"]
    availability_zones = ["eu-west-1a"]
  }

  expect_failures = [var.admin_cidrs, var.availability_zones]
}
