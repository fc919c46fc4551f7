# question: 22/tcp
# Meant: the load balancer's health check on 8080. protocol -1 on a
# separate rule ignores the ports: every port is open to the world.
resource "aws_security_group" "app" {
  name        = "app-sg"
  description = "Application servers"
  vpc_id      = "vpc-0a1b2c3d4e5f60718"
}

resource "aws_security_group_rule" "app_health" {
  type              = "ingress"
  security_group_id = aws_security_group.app.id
  from_port         = 8080
  to_port           = 8080
  protocol          = "-1"
  cidr_blocks       = ["0.0.0.0/0"]
}
