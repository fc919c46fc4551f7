# question: 6379/tcp
# tcp 0..0 is port 0 only, not every port.
resource "aws_security_group" "cache" {
  name        = "cache-sg"
  description = "Redis"
  vpc_id      = "vpc-0a1b2c3d4e5f60718"

  ingress {
    from_port   = 0
    to_port     = 0
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  ingress {
    from_port   = 6379
    to_port     = 6379
    protocol    = "tcp"
    cidr_blocks = ["10.0.0.0/8"]
    self        = true
  }
}
