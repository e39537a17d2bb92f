locals {
  is_database = contains(["mongodb", "mysql"], var.role)

  # The Ansible aws_ec2 inventory groups by these three tags.
  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    Role        = var.role
  })

  ami_id = var.ami_id != null ? var.ami_id : data.aws_ami.this[0].id
}

data "aws_partition" "current" {}

data "aws_ami" "this" {
  count = var.ami_id == null ? 1 : 0

  most_recent = true
  owners      = var.ami_owners

  filter {
    name   = "name"
    values = [var.ami_name_filter]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "virtualization-type"
    values = ["hvm"]
  }

  filter {
    name   = "root-device-type"
    values = ["ebs"]
  }
}

################################################################################
# IAM: a role per host, with only what the role needs
################################################################################

resource "aws_iam_role" "this" {
  name        = var.name
  description = "lazyshift ${var.environment} ${var.role} host"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count = var.enable_ssm ? 1 : 0

  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "this" {
  count = var.role_policy_json != null ? 1 : 0

  name   = "${var.role}-access"
  role   = aws_iam_role.this.id
  policy = var.role_policy_json
}

resource "aws_iam_instance_profile" "this" {
  name = var.name
  role = aws_iam_role.this.name

  tags = local.tags
}

################################################################################
# Instance
################################################################################

resource "aws_instance" "this" {
  ami                    = local.ami_id
  availability_zone      = var.availability_zone
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = var.security_group_ids
  iam_instance_profile   = aws_iam_instance_profile.this.name
  key_name               = var.key_name
  monitoring             = var.monitoring
  ebs_optimized          = true

  dynamic "metadata_options" {
    for_each = var.manage_metadata_options ? [1] : []

    content {
      http_endpoint               = "enabled"
      http_tokens                 = "required"
      http_put_response_hop_limit = 1
      instance_metadata_tags      = "disabled"
    }
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    kms_key_id            = var.kms_key_arn
    delete_on_termination = true

    tags = merge(local.tags, { Name = "${var.name}-root" })
  }

  tags = merge(local.tags, { Name = var.name })

  lifecycle {
    # A newer AMI must not replace a running database host; roll hosts on purpose.
    ignore_changes = [ami]
  }
}

# The bastion's public address: an Elastic IP, stable across instance replacement.
resource "aws_eip" "this" {
  count = var.public_ip && !local.is_database ? 1 : 0

  domain   = "vpc"
  instance = aws_instance.this.id

  tags = merge(local.tags, { Name = var.name })
}

# Databases keep their data on a separate volume that outlives an instance replacement:
# its zone comes from the subnet's zone, not from the instance (a replaced instance's zone
# is unknown at plan time, which would replace the volume with it). The snapshot tag puts
# it under the environment's snapshot policy (modules/stack, DLM).
resource "aws_ebs_volume" "data" {
  count = var.data_volume_size > 0 ? 1 : 0

  availability_zone = var.availability_zone
  size              = var.data_volume_size
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.kms_key_arn

  tags = merge(local.tags, var.data_volume_tags, { Name = "${var.name}-data" })
}

resource "aws_volume_attachment" "data" {
  count = var.data_volume_size > 0 ? 1 : 0

  device_name = var.data_volume_device_name
  volume_id   = aws_ebs_volume.data[0].id
  instance_id = aws_instance.this.id
}
