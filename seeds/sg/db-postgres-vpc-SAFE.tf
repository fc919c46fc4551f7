# question: 5432/tcp
locals {
  app_cidrs = ["10.20.0.0/16", "10.21.0.0/16"]
}

resource "aws_security_group" "db" {
  name        = "db-sg"
  description = "Postgres"
  vpc_id      = "vpc-0a1b2c3d4e5f60718"
}

resource "aws_security_group_rule" "db_postgres" {
  type              = "ingress"
  security_group_id = aws_security_group.db.id
  from_port         = 5432
  to_port           = 5432
  protocol          = "tcp"
  cidr_blocks       = local.app_cidrs
}

resource "aws_security_group_rule" "db_all_egress" {
  type              = "egress"
  security_group_id = aws_security_group.db.id
  from_port         = 0
  to_port           = 0
  protocol          = "-1"
  cidr_blocks       = ["0.0.0.0/0"]
}
