variable "name" {
  description = "Name of the host (Name tag, IAM role and instance profile prefix), e.g. lazyshift-dev-mysql-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,50}[a-z0-9]$", var.name))
    error_message = "name must be 3-52 characters of lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "role" {
  description = "Role of the host; the Ansible dynamic inventory groups hosts by this Role tag."
  type        = string

  validation {
    condition     = contains(["bastion", "mongodb", "mysql", "source", "client", "tools", "jenkins_agent"], var.role)
    error_message = "role must be one of bastion, mongodb, mysql, source, client, tools, jenkins_agent."
  }
}

variable "project" {
  description = "Value of the Project tag."
  type        = string
  default     = "lazyshift"
}

variable "environment" {
  description = "Value of the Environment tag (dev, staging or prod)."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "subnet_id" {
  description = "Subnet to launch the host in (a private subnet for everything but the bastion)."
  type        = string
}

variable "availability_zone" {
  description = "Zone of subnet_id; the data volume is created there, so an instance replacement keeps it."
  type        = string
}

variable "data_volume_tags" {
  description = "Extra tags for the data volume only, e.g. the tag a snapshot policy selects."
  type        = map(string)
  default     = {}
}

variable "security_group_ids" {
  description = "Security groups of the host (the role's group from the network module)."
  type        = list(string)

  validation {
    condition     = length(var.security_group_ids) > 0
    error_message = "At least one security group is required; the VPC default group denies everything."
  }
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
  default     = "t3.small"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like an EC2 instance type, e.g. t3.small or m6i.large."
  }
}

variable "root_volume_size" {
  description = "Size of the encrypted gp3 root volume, in GiB."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_size >= 8 && var.root_volume_size <= 1024
    error_message = "root_volume_size must be between 8 and 1024 GiB."
  }
}

variable "data_volume_size" {
  description = "Size of the separate encrypted gp3 data volume, in GiB; required (> 0) for the database roles (mongodb, mysql), 0 means none."
  type        = number
  default     = 0

  validation {
    condition     = var.data_volume_size >= 0 && var.data_volume_size <= 16384
    error_message = "data_volume_size must be between 0 and 16384 GiB."
  }

  validation {
    condition     = !contains(["mongodb", "mysql"], var.role) || var.data_volume_size > 0
    error_message = "Database hosts (mongodb, mysql) need a data volume: set data_volume_size > 0."
  }
}

variable "data_volume_device_name" {
  description = "Device name of the data volume as attached to the instance."
  type        = string
  default     = "/dev/sdf"

  validation {
    condition     = can(regex("^/dev/(sd|xvd)[f-p]$", var.data_volume_device_name))
    error_message = "data_volume_device_name must be /dev/sd[f-p] or /dev/xvd[f-p]."
  }
}

variable "ami_id" {
  description = "Pin an AMI instead of looking one up (null: newest AMI matching ami_owners/ami_name_filter)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be null or an AMI id (ami-...)."
  }
}

variable "ami_owners" {
  description = "Owners searched by the AMI lookup (136693071363 is Debian's official AMI account)."
  type        = list(string)
  default     = ["136693071363"]

  validation {
    condition     = length(var.ami_owners) > 0
    error_message = "ami_owners must name at least one owner."
  }
}

variable "ami_name_filter" {
  description = "Name pattern of the AMI lookup: Debian 12 for amd64, the release the lab runs."
  type        = string
  default     = "debian-12-amd64-*"

  validation {
    condition     = startswith(var.ami_name_filter, "debian-12-")
    error_message = "ami_name_filter must select Debian 12 images (debian-12-...): the lab tests that release."
  }
}

variable "kms_key_arn" {
  description = "ARN of the customer-managed KMS key that encrypts the root and data volumes."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "public_ip" {
  description = "Give the host a public Elastic IP (only the bastion needs one). Never allowed for mongodb and mysql."
  type        = bool
  default     = false

  validation {
    condition     = !(var.public_ip && contains(["mongodb", "mysql"], var.role))
    error_message = "Database hosts (mongodb, mysql) must not get a public IP."
  }
}

variable "key_name" {
  description = "Name of an existing EC2 key pair for SSH (null: none; use SSM or keys installed by Ansible)."
  type        = string
  default     = null
}

variable "role_policy_json" {
  description = "Extra IAM policy (JSON) for this role only, e.g. the archive bucket access of the tools hosts (null: none)."
  type        = string
  default     = null
}

variable "enable_ssm" {
  description = "Attach AmazonSSMManagedInstanceCore so the host can be reached with SSM Session Manager."
  type        = bool
  default     = true
}

variable "monitoring" {
  description = "Enable detailed (1-minute) CloudWatch monitoring."
  type        = bool
  default     = true
}

variable "manage_metadata_options" {
  description = <<-EOT
    Set the instance metadata options (IMDSv2 required, hop limit 1). Keep true: false exists
    only for tests against an AWS API emulator (moto) that does not implement
    ModifyInstanceMetadataOptions / MetadataOptions, where the block would never converge.
  EOT
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
