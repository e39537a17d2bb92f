output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "IDs of the public subnets, one per availability zone (NAT gateways, bastion)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets, one per availability zone (every other host)."
  value       = aws_subnet.private[*].id
}

output "availability_zones" {
  description = "Availability zones of the subnets, in subnet order."
  value       = var.availability_zones
}

output "nat_gateway_ids" {
  description = "IDs of the NAT gateways."
  value       = aws_nat_gateway.this[*].id
}

output "nat_public_ips" {
  description = "Public IPs of the NAT gateways (what outside services see)."
  value       = aws_eip.nat[*].public_ip
}

output "security_group_ids" {
  description = "Security group ID by name: one per role (bastion, mongodb, mysql, source, client, tools, jenkins_agent) and the access groups (mongodb_access, mysql_access, managed)."
  value       = { for name, sg in aws_security_group.this : name => sg.id }
}

output "role_security_group_ids" {
  description = "Security group IDs that the hosts of each role wear (its role group plus access groups)."
  value       = { for role, groups in local.role_security_groups : role => [for g in groups : aws_security_group.this[g].id] }
}

output "flow_log_group_name" {
  description = "Name of the CloudWatch log group receiving the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}
