# Every output of modules/stack, under the same name (tools/lazyshift/infra_config.py
# reads them from `terraform output -json`).

output "project" {
  description = "Project name (Project tag)."
  value       = module.stack.project
}

output "environment" {
  description = "Environment name (Environment tag)."
  value       = module.stack.environment
}

output "region" {
  description = "AWS region of the environment."
  value       = module.stack.region
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = module.stack.vpc_id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC (the hand-over derives the MySQL account host pattern from it)."
  value       = module.stack.vpc_cidr
}

output "mongodb_retired" {
  description = "true once make teardown removed the MongoDB host and its volume; make stage0 keeps it so."
  value       = module.stack.mongodb_retired
}

output "private_subnet_ids" {
  description = "IDs of the private subnets."
  value       = module.stack.private_subnet_ids
}

output "hosts" {
  description = "Every host by name: role, instance id, private and public IP, zone."
  value       = module.stack.hosts
}

output "hosts_by_role" {
  description = "Private IPs of the hosts, by role (every role listed, empty when it has no host)."
  value       = module.stack.hosts_by_role
}

output "data_volume_ids" {
  description = "Data volume ID by database host name (kept across instance replacement, snapshotted daily)."
  value       = module.stack.data_volume_ids
}

output "mongodb_host" {
  description = "Private IP of the MongoDB host (null when there is none, e.g. after stage 5)."
  value       = module.stack.mongodb_host
}

output "mysql_host" {
  description = "Private IP of the MySQL host."
  value       = module.stack.mysql_host
}

output "source_host" {
  description = "Private IP of the mock source host (TCP 8282)."
  value       = module.stack.source_host
}

output "bastion_public_ip" {
  description = "Public IP of the bastion (the SSH ProxyJump for Ansible)."
  value       = module.stack.bastion_public_ip
}

output "security_group_ids" {
  description = "Security group ID by role."
  value       = module.stack.security_group_ids
}

output "archive_bucket" {
  description = "Name of the S3 bucket receiving the MongoDB archive."
  value       = module.stack.archive_bucket
}

output "archive_bucket_arn" {
  description = "ARN of the S3 bucket receiving the MongoDB archive."
  value       = module.stack.archive_bucket_arn
}

output "kms_key_arn" {
  description = "ARN of the environment's KMS key (volumes, archive, flow logs)."
  value       = module.stack.kms_key_arn
}
