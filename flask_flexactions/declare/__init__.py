"""What users declare: actions, their params and fields, and the collections they act on."""
