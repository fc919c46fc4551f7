# One of each way a policy reaches AWS. Expected documents are in
# tests/test_terraform.py::test_policies_fixture.
variable "account" {
  type    = string
  default = 111122223333
}

locals {
  read = ["s3:GetObject", "s3:ListBucket"]
}

resource "aws_iam_policy" "encoded" {
  name = "encoded"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = local.read
      Resource = "arn:aws:s3:::logs-${var.account}/*"
    }]
  })
}

resource "aws_iam_role_policy" "heredoc" {
  role   = "r"
  policy = <<EOF
{
  "Version": "2012-10-17",
  "Statement": {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}
}
EOF
}

resource "aws_iam_user_policy" "literal" {
  user   = "u"
  policy = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com", "lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "app" {
  name               = "app"
  assume_role_policy = data.aws_iam_policy_document.trust.json

  inline_policy {
    name   = "from-file"
    policy = file("${path.module}/inline.json")
  }
}

resource "aws_lambda_permission" "not_a_document" {
  action        = "lambda:InvokeFunction"
  function_name = "f"
  principal     = "s3.amazonaws.com"
}
