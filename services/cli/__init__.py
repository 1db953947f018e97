"""The `tunegate` command line: operators, data owners, approvers and auditors."""
